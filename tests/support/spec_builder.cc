#include "tests/support/spec_builder.h"

#include <stdexcept>
#include <utility>

#include "pgshift/migration.h"
#include "tests/support/cli.h"

namespace pgshift::testing {

Spec::Spec(std::string name) { m_.set_name(std::move(name)); }

Spec& Spec::Name(std::string name) {
  m_.set_name(std::move(name));
  return *this;
}

Spec& Spec::Schema(std::string schema) {
  m_.set_schema(std::move(schema));
  return *this;
}

Spec& Spec::RenameColumn(std::string table, std::string from, std::string to) {
  v1::RenameColumn* op = m_.add_operations()->mutable_rename_column();
  op->set_table(std::move(table));
  op->set_from(std::move(from));
  op->set_to(std::move(to));
  return *this;
}

Spec& Spec::SetNotNull(std::string table, std::string column, std::string fill) {
  SetNotNull(std::move(table), std::move(column));
  m_.mutable_operations(m_.operations_size() - 1)->mutable_set_not_null()->set_fill(std::move(fill));
  return *this;
}

Spec& Spec::SetNotNull(std::string table, std::string column) {
  v1::SetNotNull* op = m_.add_operations()->mutable_set_not_null();
  op->set_table(std::move(table));
  op->set_column(std::move(column));
  return *this;
}

Spec& Spec::AddColumn(std::string table, std::string column, std::string type) {
  v1::AddColumn* op = m_.add_operations()->mutable_add_column();
  op->set_table(std::move(table));
  op->set_column(std::move(column));
  op->set_type(std::move(type));
  return *this;
}

Spec& Spec::DropColumn(std::string table, std::string column) {
  v1::DropColumn* op = m_.add_operations()->mutable_drop_column();
  op->set_table(std::move(table));
  op->set_column(std::move(column));
  return *this;
}

Spec& Spec::ChangeType(std::string table, std::string column, std::string new_column,
                       std::string type, std::string up, std::string down) {
  v1::ChangeType* op = m_.add_operations()->mutable_change_type();
  op->set_table(std::move(table));
  op->set_column(std::move(column));
  op->set_new_column(std::move(new_column));
  op->set_type(std::move(type));
  op->set_up(std::move(up));
  op->set_down(std::move(down));
  return *this;
}

Spec& Spec::CreateIndex(std::string table, std::string name, std::vector<std::string> columns) {
  v1::CreateIndex* op = m_.add_operations()->mutable_create_index();
  op->set_table(std::move(table));
  op->set_name(std::move(name));
  for (std::string& c : columns) op->add_columns(std::move(c));
  return *this;
}

Spec& Spec::DropIndex(std::string name) {
  m_.add_operations()->mutable_drop_index()->set_name(std::move(name));
  return *this;
}

Spec& Spec::AddUnique(std::string table, std::string name, std::vector<std::string> columns) {
  v1::AddUnique* op = m_.add_operations()->mutable_add_unique();
  op->set_table(std::move(table));
  op->set_name(std::move(name));
  for (std::string& c : columns) op->add_columns(std::move(c));
  return *this;
}

Spec& Spec::AddForeignKey(std::string table, std::string name, std::vector<std::string> columns,
                          std::string references_table, std::vector<std::string> references_columns) {
  v1::AddForeignKey* op = m_.add_operations()->mutable_add_foreign_key();
  op->set_table(std::move(table));
  op->set_name(std::move(name));
  for (std::string& c : columns) op->add_columns(std::move(c));
  op->set_references_table(std::move(references_table));
  for (std::string& c : references_columns) op->add_references_columns(std::move(c));
  return *this;
}

Spec& Spec::AddCheck(std::string table, std::string name, std::string check) {
  v1::AddCheck* op = m_.add_operations()->mutable_add_check();
  op->set_table(std::move(table));
  op->set_name(std::move(name));
  op->set_check(std::move(check));
  return *this;
}

Spec& Spec::RenameTable(std::string from, std::string to) {
  v1::RenameTable* op = m_.add_operations()->mutable_rename_table();
  op->set_from(std::move(from));
  op->set_to(std::move(to));
  return *this;
}

Spec& Spec::CreateTable(std::string table) {
  m_.add_operations()->mutable_create_table()->set_table(std::move(table));
  return *this;
}

Spec& Spec::Column(std::string name, std::string type) {
  v1::CreateTable::Column* c =
      Last(v1::Operation::kCreateTable, v1::Operation::kCreateTable, "columns").mutable_create_table()->add_columns();
  c->set_name(std::move(name));
  c->set_type(std::move(type));
  return *this;
}

Spec& Spec::PrimaryKey(std::vector<std::string> columns) {
  v1::CreateTable* op =
      Last(v1::Operation::kCreateTable, v1::Operation::kCreateTable, "primary_key").mutable_create_table();
  for (std::string& c : columns) op->add_primary_key(std::move(c));
  return *this;
}

Spec& Spec::DropTable(std::string table) {
  m_.add_operations()->mutable_drop_table()->set_table(std::move(table));
  return *this;
}

Spec& Spec::Sql(std::string up) {
  m_.add_operations()->mutable_sql()->set_up(std::move(up));
  return *this;
}

Spec& Spec::SqlDown(std::string down) {
  Last(v1::Operation::kSql, v1::Operation::kSql, "down").mutable_sql()->set_down(std::move(down));
  return *this;
}

Spec& Spec::Unsafe() {
  Last(v1::Operation::kSql, v1::Operation::kSql, "unsafe").mutable_sql()->set_unsafe(true);
  return *this;
}

v1::Operation& Spec::Last(v1::Operation::KindCase a, v1::Operation::KindCase b, const char* field) {
  if (m_.operations_size() == 0) {
    throw std::logic_error(std::string("Spec: \"") + field + "\" before any operation");
  }
  v1::Operation& op = *m_.mutable_operations(m_.operations_size() - 1);
  if (op.kind_case() != a && op.kind_case() != b) {
    throw std::logic_error(std::string("Spec: the last operation (") +
                           std::string(OperationKind(op)) + ") has no \"" + field + "\"");
  }
  return op;
}

// The last column of the create_table `op`.
static v1::CreateTable::Column& LastColumn(v1::Operation& op, const char* field) {
  v1::CreateTable* t = op.mutable_create_table();
  if (t->columns_size() == 0) {
    throw std::logic_error(std::string("Spec: \"") + field + "\" before any Column of create_table");
  }
  return *t->mutable_columns(t->columns_size() - 1);
}

Spec& Spec::Default(std::string expression) {
  v1::Operation& op = Last(v1::Operation::kAddColumn, v1::Operation::kCreateTable, "default");
  if (op.has_add_column()) {
    op.mutable_add_column()->set_default_(std::move(expression));
  } else {
    LastColumn(op, "default").set_default_(std::move(expression));
  }
  return *this;
}

Spec& Spec::NotNull() {
  v1::Operation& op = Last(v1::Operation::kAddColumn, v1::Operation::kCreateTable, "not_null");
  if (op.has_add_column()) {
    op.mutable_add_column()->set_not_null(true);
  } else {
    LastColumn(op, "not_null").set_not_null(true);
  }
  return *this;
}

Spec& Spec::Up(std::string expression) {
  v1::Operation& op = Last(v1::Operation::kAddColumn, v1::Operation::kChangeType, "up");
  if (op.has_add_column()) {
    op.mutable_add_column()->set_up(std::move(expression));
  } else {
    op.mutable_change_type()->set_up(std::move(expression));
  }
  return *this;
}

Spec& Spec::Down(std::string expression) {
  v1::Operation& op = Last(v1::Operation::kDropColumn, v1::Operation::kChangeType, "down");
  if (op.has_drop_column()) {
    op.mutable_drop_column()->set_down(std::move(expression));
  } else {
    op.mutable_change_type()->set_down(std::move(expression));
  }
  return *this;
}

Spec& Spec::Unique() {
  Last(v1::Operation::kCreateIndex, v1::Operation::kCreateIndex, "unique").mutable_create_index()->set_unique(true);
  return *this;
}

Spec& Spec::Method(std::string method) {
  Last(v1::Operation::kCreateIndex, v1::Operation::kCreateIndex, "method")
      .mutable_create_index()
      ->set_method(std::move(method));
  return *this;
}

Spec& Spec::Where(std::string expression) {
  Last(v1::Operation::kCreateIndex, v1::Operation::kCreateIndex, "where")
      .mutable_create_index()
      ->set_where(std::move(expression));
  return *this;
}

Spec& Spec::Include(std::vector<std::string> columns) {
  v1::CreateIndex* op =
      Last(v1::Operation::kCreateIndex, v1::Operation::kCreateIndex, "include").mutable_create_index();
  for (std::string& c : columns) op->add_include(std::move(c));
  return *this;
}

Spec& Spec::OnDelete(v1::ForeignKeyAction action) {
  Last(v1::Operation::kAddForeignKey, v1::Operation::kAddForeignKey, "on_delete")
      .mutable_add_foreign_key()
      ->set_on_delete(action);
  return *this;
}

Spec& Spec::OnUpdate(v1::ForeignKeyAction action) {
  Last(v1::Operation::kAddForeignKey, v1::Operation::kAddForeignKey, "on_update")
      .mutable_add_foreign_key()
      ->set_on_update(action);
  return *this;
}

std::string Spec::Json() const {
  std::string json = CanonicalJson(m_);
  // CanonicalJson gives "" when protobuf cannot print the message (a string
  // that is not UTF-8): say so rather than write an empty file.
  if (json.empty()) throw std::invalid_argument("Spec: cannot print \"" + m_.name() + "\" as JSON");
  return json;
}

std::string Spec::File() const { return WriteTempFile(Json()); }

v1::Migration Spec::Migration() const {
  absl::StatusOr<v1::Migration> m = ParseMigrationJson(Json(), "test spec");
  if (!m.ok()) throw std::invalid_argument(std::string(m.status().message()));
  return *std::move(m);
}

}  // namespace pgshift::testing
