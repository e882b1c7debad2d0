// change_type {table, column, new_column, type, up, down}: the column
// replacement recipe (replace_column.h) with a new type; `up` computes the
// new column from the row, `down` the old one, so that old and new app
// versions both keep writing (docs/operations/change_type.md).
#include "absl/strings/str_cat.h"
#include "lib/ops/registry.h"
#include "lib/ops/replace_column.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

absl::Status Validate(const v1::Operation& op, const std::string& where) {
  const v1::ChangeType& o = op.change_type();
  if (o.column() == o.new_column()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"new_column\" must differ from \"column\""));
  }
  return absl::OkStatus();
}

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  const v1::ChangeType& o = op.change_type();
  std::vector<Touch> out = {{schema, o.table(), o.column()}, {schema, o.table(), o.new_column()}};
  for (const std::string& e : {o.up(), o.down()}) {
    for (Touch& t : ReadsOf(schema, o.table(), e, {o.column(), o.new_column()})) out.push_back(t);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  const v1::ChangeType& o = op.change_type();
  Replacement r;
  r.kind = "change_type";
  r.table = o.table();
  r.old_column = o.column();
  r.new_column = o.new_column();
  r.new_column_field = "new_column";
  ASSIGN_OR_RETURN(r.type, sql::TypeName::Parse(o.type(), "change_type.type"));
  ASSIGN_OR_RETURN(r.up, sql::Expression::Parse(o.up(), "change_type.up"));
  ASSIGN_OR_RETURN(r.down, sql::Expression::Parse(o.down(), "change_type.down"));
  return NewReplaceColumn(std::move(r), std::move(ctx));
}

}  // namespace

extern const OperationType kChangeTypeType = {v1::Operation::kChangeType, "change_type", &Validate,
                                              &Touches, &Make};

}  // namespace pgshift::ops
