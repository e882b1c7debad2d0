// Constructors of the operations, one file each (lib/ops/<kind>.cc).
#ifndef PGSHIFT_LIB_OPS_OPS_H_
#define PGSHIFT_LIB_OPS_OPS_H_

#include <memory>
#include <string>

#include "lib/ops/operation.h"

namespace pgshift::ops {

std::unique_ptr<Operation> NewRenameColumn(const v1::RenameColumn& spec, const std::string& schema,
                                           const Context& ctx);

std::unique_ptr<Operation> NewSetNotNull(const v1::SetNotNull& spec, const std::string& schema,
                                         const Context& ctx);
std::unique_ptr<Operation> NewAddColumn(const v1::AddColumn& spec, const std::string& schema,
                                        const Context& ctx);
std::unique_ptr<Operation> NewDropColumn(const v1::DropColumn& spec, const std::string& schema,
                                         const Context& ctx);
std::unique_ptr<Operation> NewChangeType(const v1::ChangeType& spec, const std::string& schema,
                                         const Context& ctx);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_OPS_H_
