#include "absl/strings/str_cat.h"
#include "lib/ops/ops.h"
#include "pgshift/migration.h"

namespace pgshift::ops {

absl::StatusOr<std::unique_ptr<Operation>> MakeOperation(const v1::Operation& op,
                                                         const std::string& schema,
                                                         const Context& ctx) {
  switch (op.kind_case()) {
    case v1::Operation::kRenameColumn:
      return NewRenameColumn(op.rename_column(), schema, ctx);
    case v1::Operation::kSetNotNull:
      return NewSetNotNull(op.set_not_null(), schema, ctx);
    case v1::Operation::kAddColumn:
      return NewAddColumn(op.add_column(), schema, ctx);
    case v1::Operation::kDropColumn:
      return NewDropColumn(op.drop_column(), schema, ctx);
    case v1::Operation::kChangeType:
      return NewChangeType(op.change_type(), schema, ctx);
    default:
      break;
  }
  return absl::UnimplementedError(
      absl::StrCat("operation ", OperationKind(op), " is not available in this build"));
}

}  // namespace pgshift::ops
