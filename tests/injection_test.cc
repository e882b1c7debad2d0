// Injection attempts through every field of every operation (the registry's
// rows, the proto's fields): an expression or a type that is more than one
// expression or one type name is refused by `plan` and `register` with exit
// 2 and a message naming the field; a name is always quoted, so a payload is
// just a name (refused when it must exist, created as written when it is a
// new one). Nothing of a payload ever runs, nothing refused is registered. Also the catalog's type names and
// the pg layer's ownership rules. Real PostgreSQL.
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/catalog/catalog.h"
#include "lib/ops/registry.h"
#include "lib/pg/connection.h"
#include "lib/sql/sql.h"
#include "pgshift/migration.h"
#include "tests/support/cli.h"
#include "tests/support/every_kind.h"
#include "tests/support/test_db.h"

namespace pgshift {
namespace {

using ::testing::HasSubstr;
using testing::BaseOperations;
using testing::kEveryKindTable;
using testing::CliResult;
using testing::Query;
using testing::QueryValue;
using testing::RunCli;
using testing::ScratchDatabase;
using testing::WriteTempFile;

using google::protobuf::FieldDescriptor;

// Payloads by what the field holds: each tries to end the expression or
// name and run a statement of its own.
std::vector<std::string> Payloads(v1::FieldKind kind) {
  switch (kind) {
    case v1::FIELD_EXPRESSION:
      return {"1); DROP TABLE victim; --", "1; DROP TABLE victim", "(SELECT count(*) FROM victim)",
              "1 FROM victim", "0 /* */ ; DROP TABLE victim"};
    case v1::FIELD_TYPE:
      return {"int; DROP TABLE victim", "int) FROM victim; DROP TABLE victim; --",
              "int DEFAULT 1; DROP TABLE victim"};
    case v1::FIELD_SQL:  // statements by design: what does not parse, or ends a literal, is refused
      return {"SELECT 1); DROP TABLE victim; --(", "COMMENT ON TABLE users IS 'x'' ; DROP TABLE victim; --",
              "SELECT $$ ; DROP TABLE victim"};
    case v1::FIELD_INDEX_ELEMENT:  // a column name (quoted) or an expression: both kinds of payload
      return {"1); DROP TABLE victim; --", "(SELECT count(*) FROM victim)", "0 /* */ ; DROP TABLE victim",
              "users\"; DROP TABLE victim; --", "name) WITH (fillfactor=10"};
    default:  // identifiers are always quoted: the payload is a name that does not exist
      return {"users\"; DROP TABLE victim; --", "name\" text); DROP TABLE victim; --"};
  }
}

// One string value of an operation's message, nested ones included
// (create_table's columns[0].type): the message fields to go down through
// (with the element's index, -1 for a singular field), the field, and its
// index when it is repeated (primary_key[0]).
struct StringField {
  std::vector<std::pair<const FieldDescriptor*, int>> parents;
  const FieldDescriptor* field = nullptr;
  int index = -1;
  std::string path;  // "columns[0].type"
};

void StringFields(const google::protobuf::Message& m, const std::vector<std::pair<const FieldDescriptor*, int>>& parents,
                  const std::string& prefix, std::vector<StringField>* out) {
  const google::protobuf::Reflection* r = m.GetReflection();
  for (int i = 0; i < m.GetDescriptor()->field_count(); ++i) {
    const FieldDescriptor* f = m.GetDescriptor()->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      const int n = f->is_repeated() ? r->FieldSize(m, f) : (r->HasField(m, f) ? 1 : 0);
      for (int j = 0; j < n; ++j) {
        auto down = parents;
        down.emplace_back(f, f->is_repeated() ? j : -1);
        StringFields(f->is_repeated() ? r->GetRepeatedMessage(m, f, j) : r->GetMessage(m, f), down,
                     absl::StrCat(prefix, f->name(), f->is_repeated() ? absl::StrCat("[", j, "]") : "", "."),
                     out);
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      if (!f->is_repeated()) {
        out->push_back({parents, f, -1, absl::StrCat(prefix, f->name())});
        continue;
      }
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        out->push_back({parents, f, j, absl::StrCat(prefix, f->name(), "[", j, "]")});
      }
    }
  }
}

// Sets the field `s` of `body` (a message like the one StringFields walked).
void SetField(google::protobuf::Message* body, const StringField& s, const std::string& value) {
  for (const auto& [f, j] : s.parents) {
    body = j < 0 ? body->GetReflection()->MutableMessage(body, f)
                 : body->GetReflection()->MutableRepeatedMessage(body, f, j);
  }
  if (s.index < 0) {
    body->GetReflection()->SetString(body, s.field, value);
  } else {
    body->GetReflection()->SetRepeatedString(body, s.field, s.index, value);
  }
}

class InjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<ScratchDatabase>("injection");
    Query(dsn(), kEveryKindTable);
    Query(dsn(), "CREATE TABLE victim (v int); INSERT INTO victim VALUES (1)");
    ASSERT_EQ(Cli({"init"}).exit_code, 0);
  }
  const std::string& dsn() const { return db_->dsn(); }
  CliResult Cli(const std::vector<std::string>& args) { return RunCli(dsn(), args); }
  std::unique_ptr<ScratchDatabase> db_;
};

TEST_F(InjectionTest, EveryOperationHasABaseSpecHere) {
  for (const ops::OperationType* t : ops::Registry()) {
    EXPECT_EQ(BaseOperations().count(t->name), 1u)
        << "add a valid " << t->name << " to BaseOperations() so that its fields are tried";
  }
}

TEST_F(InjectionTest, TheBaseSpecsAreValid) {
  for (const auto& [kind, op] : BaseOperations()) {
    const std::string file =
        WriteTempFile(absl::StrCat(R"({"name": "base_)", kind, R"(", "operations": [)", op, "]}"));
    CliResult r = Cli({"plan", file});
    EXPECT_EQ(r.exit_code, 0) << kind << ": " << r.err;
  }
}

TEST_F(InjectionTest, EveryFieldRefusesPayloadsAndNothingChanges) {
  const std::string before = testing::CatalogSnapshot(dsn(), "public");
  int tried = 0, nested = 0;
  for (const ops::OperationType* t : ops::Registry()) {
    auto base = BaseOperations().find(t->name);
    ASSERT_NE(base, BaseOperations().end()) << t->name;
    // Every string of the base operation, nested ones included.
    auto base_m = ParseMigrationJson(absl::StrCat(R"({"name": "x", "operations": [)", base->second, "]}"));
    ASSERT_TRUE(base_m.ok()) << base_m.status();
    const FieldDescriptor* op_field = v1::Operation::descriptor()->FindFieldByName(t->name);
    std::vector<StringField> fields;
    StringFields(base_m->operations(0).GetReflection()->GetMessage(base_m->operations(0), op_field), {}, "",
                 &fields);
    for (const StringField& sf : fields) {
      const FieldDescriptor* f = sf.field;
      const v1::FieldKind kind = f->options().GetExtension(v1::kind);
      for (const std::string& payload : Payloads(kind)) {
        // The base operation with this field replaced by the payload.
        v1::Migration copy = *base_m;
        v1::Migration* m = &copy;
        SetField(m->mutable_operations(0)->GetReflection()->MutableMessage(m->mutable_operations(0), op_field), sf,
                 payload);
        const std::string name = absl::StrCat("inj_", tried);
        // Only the migration's own name (the first key) is replaced.
        std::string json = CanonicalJson(*m);
        const std::string key = "\"name\":\"x\"";
        json.replace(json.find(key), key.size(), absl::StrCat("\"name\":\"", name, "\""));
        const std::string file = WriteTempFile(json);
        const std::string where = absl::StrCat(t->name, ".", sf.path, " = ", payload);
        if (kind == v1::FIELD_IDENTIFIER) {
          // Names are always quoted: a payload is either a name that does not
          // exist (refused, quoted in the message) or a new name, created
          // exactly as written.
          CliResult r = Cli({"plan", file});
          if (r.exit_code == 2) {
            EXPECT_THAT(r.err, HasSubstr(payload)) << where;
          } else {
            EXPECT_EQ(r.exit_code, 0) << where << ": " << r.err;
            const std::string quoted = absl::StrCat("\"", absl::StrReplaceAll(payload, {{"\"", "\"\""}}), "\"");
            EXPECT_THAT(r.out, HasSubstr(quoted)) << where;
          }
        } else {
          for (const char* command : {"plan", "register"}) {
            CliResult r = Cli({command, file});
            EXPECT_EQ(r.exit_code, 2) << command << " " << where << ": " << r.out << r.err;
            // The message names the field it refused.
            EXPECT_THAT(r.err, HasSubstr(absl::StrCat(t->name, ".", sf.path))) << command << " " << where;
          }
        }
        ++tried;
        if (!sf.parents.empty()) ++nested;
      }
    }
  }
  EXPECT_GE(tried, 40);
  EXPECT_GE(nested, 10) << "the fields of nested messages (create_table's columns) are tried too";
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM victim"), "1");
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pgshift.migrations"), "0");
  EXPECT_EQ(testing::CatalogSnapshot(dsn(), "public"), before);
}

TEST_F(InjectionTest, SchemaAndNameAreRefusedOrQuoted) {
  const std::string op = BaseOperations().at("rename_column");
  // A schema that is a payload is just a schema that does not exist.
  CliResult r = Cli({"register", WriteTempFile(absl::StrCat(
                                     R"({"name": "s", "schema": "public\"; DROP TABLE victim; --", "operations": [)",
                                     op, "]}"))});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("DROP TABLE victim"));
  // A migration name is a value (a parameter), never SQL.
  r = Cli({"register", WriteTempFile(absl::StrCat(R"({"name": "n'); DROP TABLE victim; --", "operations": [)",
                                                  op, "]}"))});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(QueryValue(dsn(), "SELECT name FROM pgshift.migrations"), "n'); DROP TABLE victim; --");
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM victim"), "1");
}

TEST(ResolveType, SpellsTypesAsFormatTypeWithTheirModifiers) {
  ScratchDatabase db("resolve_type");
  Query(db.dsn(), "CREATE DOMAIN positive AS int CHECK (VALUE > 0); CREATE SCHEMA other; "
                  "CREATE TYPE other.mood AS ENUM ('ok')");
  auto conn = pg::Connection::Open(db.dsn(), "test");
  ASSERT_TRUE(conn.ok()) << conn.status();
  const std::map<std::string, std::string> want = {
      {"int8", "bigint"},
      {"varchar(5)", "character varying(5)"},
      {"numeric(12,2)", "numeric(12,2)"},
      {"timestamptz", "timestamp with time zone"},
      {"int[]", "integer[]"},
      {"positive", "positive"},  // a domain stays a domain
      {"other.mood", "other.mood"},
  };
  for (const auto& [text, spelled] : want) {
    auto type = sql::TypeName::Parse(text, "type");
    ASSERT_TRUE(type.ok()) << type.status();
    auto got = catalog::ResolveType(**conn, *type);
    ASSERT_TRUE(got.ok()) << text << ": " << got.status();
    EXPECT_EQ(got->spelled, spelled) << text;
  }
  auto missing = catalog::ResolveType(**conn, *sql::TypeName::Parse("no_such_type", "type"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("no_such_type"));
}

TEST(ResolveType, KnowsWhichTypesCompareExactly) {
  ScratchDatabase db("resolve_exact");
  Query(db.dsn(), "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false); "
                  "CREATE DOMAIN money2 AS numeric(12,2); CREATE DOMAIN ident AS bigint");
  auto conn = pg::Connection::Open(db.dsn(), "test");
  ASSERT_TRUE(conn.ok()) << conn.status();
  const std::vector<std::pair<std::string, bool>> want = {
      {"bigint", true}, {"uuid", true}, {"text", true}, {"timestamptz", true}, {"ident", true},
      {"numeric(10,2)", false}, {"json", false}, {"jsonb", false}, {"float8", false},
      {"interval", false}, {"money2", false}, {"text[]", false}};
  for (const auto& [text, exact] : want) {
    auto got = catalog::ResolveType(**conn, *sql::TypeName::Parse(text, "type"));
    ASSERT_TRUE(got.ok()) << text << ": " << got.status();
    EXPECT_EQ(got->exact_equality, exact) << text;
    EXPECT_FALSE(got->raw.empty()) << text;
  }
  // Under a nondeterministic collation, equal text values can differ.
  auto ci = catalog::ResolveType(**conn, *sql::TypeName::Parse("text", "type"), "\"public\".\"ci\"");
  ASSERT_TRUE(ci.ok()) << ci.status();
  EXPECT_FALSE(ci->exact_equality);
  // The raw name casts without a modifier: it never truncates.
  auto vc = catalog::ResolveType(**conn, *sql::TypeName::Parse("varchar(5)", "type"));
  ASSERT_TRUE(vc.ok());
  EXPECT_EQ(QueryValue(db.dsn(), absl::StrCat("SELECT length('abcdefgh'::", vc->raw, ")")), "8");
}

TEST(Connection, IsMoveOnlyAndAMovedFromConnectionIsClosed) {
  static_assert(!std::is_copy_constructible_v<pg::Connection>);
  static_assert(!std::is_copy_assignable_v<pg::Connection>);
  static_assert(std::is_nothrow_move_constructible_v<pg::Connection>);
  ScratchDatabase db("move_only");
  auto conn = pg::Connection::Open(db.dsn(), "test");
  ASSERT_TRUE(conn.ok()) << conn.status();
  pg::Connection moved(std::move(**conn));
  EXPECT_FALSE((*conn)->ok());
  EXPECT_TRUE(moved.ok());
  auto r = moved.Exec("SELECT 41 + 1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->Get(0, 0), "42");
}

}  // namespace
}  // namespace pgshift
