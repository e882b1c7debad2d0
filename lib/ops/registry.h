// The registry: one row per operation kind, the only list of them. A row
// says the kind's JSON name, how to check its fields without a database,
// what it touches, and how to make it. Adding an operation is its proto
// message, its file in lib/ops/ defining its row, one line in registry.cc,
// its docs page and its tests (docs/architecture.md, "Adding an operation").
#ifndef PGSHIFT_LIB_OPS_REGISTRY_H_
#define PGSHIFT_LIB_OPS_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/ops/operation.h"
#include "pgshift/v1/migration.pb.h"

namespace pgshift::ops {

struct OperationType {
  v1::Operation::KindCase kind;
  // The field name of the kind in pgshift.v1.Operation: "rename_column".
  const char* name;
  // Checks what the field kinds of the proto (lib/spec) do not: relations
  // between fields ("from" and "to" differ, ...). InvalidArgument naming the
  // field (`where` is its path, e.g. "operations[0].rename_column").
  absl::Status (*validate)(const v1::Operation& op, const std::string& where);
  // What it changes in `schema`, for conflicts between migrations.
  std::vector<Touch> (*touches)(const v1::Operation& op, const std::string& schema);
  // The operation for `op` in context `ctx`.
  absl::StatusOr<std::unique_ptr<Operation>> (*make)(const v1::Operation& op, Context ctx);
  // Its contract only removes pgshift's mark from what it built: old app
  // versions see no difference. `migrate` contracts such a migration early
  // when a later file of the directory needs what it touches.
  bool contract_only_unmarks = false;
};

// Every operation kind, in the order of the proto's oneof.
const std::vector<const OperationType*>& Registry();

// The row of `kind`; nullptr when the kind has none (KIND_NOT_SET).
const OperationType* FindOperationType(v1::Operation::KindCase kind);

// The operation for `op` of migration `migration` (its `index`-th).
absl::StatusOr<std::unique_ptr<Operation>> MakeOperation(const v1::Operation& op,
                                                         const v1::Migration& migration, int index,
                                                         int server_version);

// What `op` of a migration on `schema` touches.
std::vector<Touch> TouchesOf(const v1::Operation& op, const std::string& schema);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_REGISTRY_H_
