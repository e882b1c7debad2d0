#include "lib/ops/registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "lib/sql/lint.h"
#include "lib/sql/sql.h"

namespace pgshift::ops {

// One row per operation, defined in the operation's own file
// (lib/ops/<kind>.cc); in the order of the proto's oneof.
#define PGSHIFT_OPERATION_TYPES(X) \
  X(kRenameColumnType)             \
  X(kSetNotNullType)               \
  X(kAddColumnType)                \
  X(kDropColumnType)               \
  X(kChangeTypeType)               \
  X(kCreateIndexType)              \
  X(kDropIndexType)                \
  X(kAddForeignKeyType)            \
  X(kAddCheckType)                 \
  X(kAddUniqueType)                \
  X(kRenameTableType)              \
  X(kCreateTableType)              \
  X(kDropTableType)                \
  X(kSqlType)

#define PGSHIFT_DECLARE_TYPE(row) extern const OperationType row;
PGSHIFT_OPERATION_TYPES(PGSHIFT_DECLARE_TYPE)
#undef PGSHIFT_DECLARE_TYPE

const std::vector<const OperationType*>& Registry() {
#define PGSHIFT_LIST_TYPE(row) &row,
  static const std::vector<const OperationType*> rows = {PGSHIFT_OPERATION_TYPES(PGSHIFT_LIST_TYPE)};
#undef PGSHIFT_LIST_TYPE
  return rows;
}

const OperationType* FindOperationType(v1::Operation::KindCase kind) {
  for (const OperationType* t : Registry()) {
    if (t->kind == kind) return t;
  }
  return nullptr;
}

bool Touch::Conflicts(const Touch& other) const {
  if (schema != other.schema || table != other.table) return false;
  if (read && other.read) return false;
  return column.empty() || other.column.empty() || column == other.column;
}

std::vector<Touch> ReadsOf(const std::string& schema, const std::string& table,
                           const std::string& expr, const std::vector<std::string>& changed) {
  std::vector<Touch> out;
  if (expr.empty()) return out;
  // The spec was checked when it was loaded; an expression that does not
  // parse here reads nothing pgshift could name.
  absl::StatusOr<sql::Expression> e = sql::Expression::Parse(expr, "expression");
  if (!e.ok()) return out;
  for (const std::string& c : e->columns()) {
    if (std::find(changed.begin(), changed.end(), c) != changed.end()) continue;
    out.push_back(Touch{schema, table, c, /*read=*/true});
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Operation>> MakeOperation(const v1::Operation& op,
                                                         const v1::Migration& migration, int index,
                                                         int server_version) {
  const OperationType* type = FindOperationType(op.kind_case());
  if (type == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("operations[", index, "] of migration \"", migration.name(),
                     "\" names no operation this pgshift knows"));
  }
  Context ctx;
  ctx.migration = migration.name();
  ctx.schema = migration.schema();
  ctx.index = index;
  ctx.server_version = server_version;
  ctx.names = Names(migration.name(), index);
  for (int i = 0; i < index && i < migration.operations_size(); ++i) {
    const v1::Operation& before = migration.operations(i);
    if (before.has_create_table()) {
      ctx.tables_created_before.emplace_back(migration.schema(), before.create_table().table());
    }
    if (!before.has_sql()) continue;
    sql::NoCatalog none;
    absl::StatusOr<std::vector<sql::LintedStatement>> linted =
        sql::Lint(before.sql().up(), migration.schema(), false, none, ctx.tables_created_before);
    if (!linted.ok()) continue;
    for (const sql::LintedStatement& st : *linted) {
      for (const auto& c : st.changes) {
        if (c.column.empty()) ctx.tables_created_before.emplace_back(c.schema, c.table);
      }
    }
  }
  return type->make(op, std::move(ctx));
}

std::vector<Touch> TouchesOf(const v1::Operation& op, const std::string& schema) {
  const OperationType* type = FindOperationType(op.kind_case());
  return type == nullptr ? std::vector<Touch>{} : type->touches(op, schema);
}

}  // namespace pgshift::ops
