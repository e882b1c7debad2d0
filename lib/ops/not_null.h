// NOT NULL on a column without a long ACCESS EXCLUSIVE lock: CHECK (col IS
// NOT NULL) NOT VALID, VALIDATE (SHARE UPDATE EXCLUSIVE: writes go on),
// then SET NOT NULL, which PostgreSQL 12+ proves from the validated check
// without a scan, and drop the check.
#ifndef PGSHIFT_LIB_OPS_NOT_NULL_H_
#define PGSHIFT_LIB_OPS_NOT_NULL_H_

#include <string>
#include <vector>

#include "lib/catalog/catalog.h"
#include "lib/ops/action.h"
#include "lib/ops/operation.h"

namespace pgshift::ops {

// The first half: the check added NOT VALID, then validated.
std::vector<Action> NotNullCheckActions(const catalog::Table& t, const Context& ctx,
                                        const std::string& column);
// The second half: SET NOT NULL and drop the check, in one short transaction.
Action NotNullFromCheckAction(const catalog::Table& t, const Context& ctx, const std::string& column);
// Both halves.
std::vector<Action> SetNotNullActions(const catalog::Table& t, const Context& ctx,
                                      const std::string& column);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_NOT_NULL_H_
