// Migration specs for tests, built on the proto (pgshift.v1.Migration)
// instead of JSON written by hand.
//
// Example:
//   using pgshift::testing::Spec;
//   // The JSON of a migration file, e.g. for `pgshift register FILE`:
//   std::string json = Spec("0042_rename").Schema("app")
//                          .RenameColumn("users", "name", "full_name").Json();
//   // Optional fields apply to the operation added just before them:
//   std::string file = Spec("0043_add").AddColumn("orders", "total", "bigint")
//                          .Up("qty * 10").Default("0").NotNull().File();
//   // The migration as pgshift loads it, for the Driver API:
//   pgshift::v1::Migration m = Spec("0044_drop").DropColumn("t", "legacy").Down("'x'")
//                                  .Migration();
//
// A builder writes only what it is given, field by field, so every string
// reaches pgshift exactly as written. It is for valid specs; tests of the
// loader itself (malformed JSON, unknown fields, missing names) write their
// JSON by hand. Builders are values: copy one to vary it. Methods return
// *this for chaining; do not keep a reference to a temporary builder.
#ifndef PGSHIFT_TESTS_SUPPORT_SPEC_BUILDER_H_
#define PGSHIFT_TESTS_SUPPORT_SPEC_BUILDER_H_

#include <string>
#include <vector>

#include "pgshift/v1/migration.pb.h"

namespace pgshift::testing {

class Spec {
 public:
  // A spec without a name yet (give one with Name before use), e.g. the
  // operations of a test case that the harness names.
  Spec() = default;
  explicit Spec(std::string name);

  Spec& Name(std::string name);
  // The schema of the tables; pgshift uses "public" when none is given.
  Spec& Schema(std::string schema);

  // One method per operation of the proto, with its required fields.
  Spec& RenameColumn(std::string table, std::string from, std::string to);
  Spec& SetNotNull(std::string table, std::string column, std::string fill);
  Spec& SetNotNull(std::string table, std::string column);  // without fill
  Spec& AddColumn(std::string table, std::string column, std::string type);
  Spec& DropColumn(std::string table, std::string column);
  Spec& ChangeType(std::string table, std::string column, std::string new_column, std::string type,
                   std::string up, std::string down);
  Spec& CreateIndex(std::string table, std::string name, std::vector<std::string> columns);
  Spec& DropIndex(std::string name);
  Spec& AddUnique(std::string table, std::string name, std::vector<std::string> columns);
  Spec& AddForeignKey(std::string table, std::string name, std::vector<std::string> columns,
                      std::string references_table, std::vector<std::string> references_columns);
  Spec& AddCheck(std::string table, std::string name, std::string check);
  Spec& RenameTable(std::string from, std::string to);
  // A table without columns yet: add them with Column, its key with PrimaryKey.
  Spec& CreateTable(std::string table);
  Spec& DropTable(std::string table);
  // Hand-written statements; SqlDown and Unsafe apply to the sql added last.
  Spec& Sql(std::string up);
  Spec& SqlDown(std::string down);
  Spec& Unsafe();

  // A column of the create_table added last; Default and NotNull then apply
  // to this column.
  Spec& Column(std::string name, std::string type);
  Spec& PrimaryKey(std::vector<std::string> columns);  // create_table

  // Optional fields of the operation added last. Throw std::logic_error when
  // that operation has no such field.
  Spec& Default(std::string expression);  // add_column, create_table's last column
  Spec& NotNull();                        // add_column, create_table's last column
  Spec& Up(std::string expression);       // add_column, change_type
  Spec& Down(std::string expression);     // drop_column, change_type
  Spec& Unique();                          // create_index
  Spec& Method(std::string method);        // create_index
  Spec& Where(std::string expression);     // create_index
  Spec& Include(std::vector<std::string> columns);  // create_index
  Spec& OnDelete(v1::ForeignKeyAction action);  // add_foreign_key
  Spec& OnUpdate(v1::ForeignKeyAction action);  // add_foreign_key

  // The migration file text: pgshift's canonical JSON of what was built.
  std::string Json() const;
  // Json() written to a temporary file (removed at exit); returns its path.
  std::string File() const;
  // The migration as pgshift loads it from Json() (ParseMigrationJson:
  // checked, schema filled in). Throws std::invalid_argument with pgshift's
  // message when it refuses the spec.
  v1::Migration Migration() const;
  // Exactly what was built, unchecked.
  const v1::Migration& proto() const { return m_; }

 private:
  v1::Operation& Last(v1::Operation::KindCase a, v1::Operation::KindCase b, const char* field);

  v1::Migration m_;
};

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_SPEC_BUILDER_H_
