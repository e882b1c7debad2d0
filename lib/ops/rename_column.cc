// rename_column {table, from, to}: the column replacement recipe
// (replace_column.h) with the same type and a plain copy both ways, so that
// old app versions keep reading and writing `from` until contract
// (docs/operations/rename_column.md).
#include "absl/strings/str_cat.h"
#include "lib/ops/registry.h"
#include "lib/ops/replace_column.h"

namespace pgshift::ops {

namespace {

absl::Status Validate(const v1::Operation& op, const std::string& where) {
  const v1::RenameColumn& o = op.rename_column();
  if (o.from() == o.to()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"from\" and \"to\" are both \"", o.from(),
                                                   "\"; nothing to rename"));
  }
  return absl::OkStatus();
}

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  const v1::RenameColumn& o = op.rename_column();
  return {{schema, o.table(), o.from()}, {schema, o.table(), o.to()}};
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  const v1::RenameColumn& o = op.rename_column();
  Replacement r;
  r.kind = "rename_column";
  r.table = o.table();
  r.old_column = o.from();
  r.new_column = o.to();
  r.new_column_field = "target";
  return NewReplaceColumn(std::move(r), std::move(ctx));
}

}  // namespace

extern const OperationType kRenameColumnType = {v1::Operation::kRenameColumn, "rename_column",
                                                &Validate, &Touches, &Make};

}  // namespace pgshift::ops
