// The SQL layer (lib/sql): splitting scripts, syntax errors with positions,
// user expressions and type names, index and constraint definitions moved to
// another column. No database: this is the parser alone.
#include "lib/sql/sql.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pgshift::sql {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(Split, SemicolonsInsideLiteralsBodiesCommentsAndNamesDoNotSplit) {
  auto stmts = Split(
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n"
      "-- a comment; with a semicolon\n"
      "SELECT ';' AS \"a;b\" /* ; */;\n"
      "\n"
      "  ALTER TABLE t RENAME COLUMN a TO b");
  ASSERT_TRUE(stmts.ok()) << stmts.status();
  ASSERT_EQ(stmts->size(), 3u);
  EXPECT_EQ((*stmts)[0].text, "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$");
  EXPECT_EQ((*stmts)[0].line, 1);
  EXPECT_THAT((*stmts)[1].text, HasSubstr("SELECT ';' AS \"a;b\""));
  EXPECT_EQ((*stmts)[2].text, "ALTER TABLE t RENAME COLUMN a TO b");
  EXPECT_EQ((*stmts)[2].line, 5);
}

TEST(Split, SyntaxErrorSaysWhere) {
  auto stmts = Split("SELECT 1;\nALTER TABLE t ADD COLUMNN x int;");
  EXPECT_EQ(stmts.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(stmts.status()), HasSubstr("syntax error at or near \"int\""));
  EXPECT_THAT(Msg(stmts.status()), HasSubstr("line 2, column 29"));
}

TEST(CheckSyntax, AcceptsValidSqlAndLocatesErrors) {
  EXPECT_TRUE(CheckSyntax("SELECT 1; SELECT 2").ok());
  absl::Status s = CheckSyntax("SELECT (1");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), HasSubstr("line 1, column 10"));
}

TEST(Expression, IsCanonicalAndListsItsColumns) {
  auto e = Expression::Parse("lower(Name) || \"Other\" -- trailing comment", "up");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->sql(), "lower(name) || \"Other\"");
  EXPECT_EQ(e->columns(), (std::vector<std::string>{"name", "Other"}));
  EXPECT_TRUE(e->References("name"));
  EXPECT_FALSE(e->References("Name"));
}

TEST(Expression, RefusesAnythingButOneExpressionAndQuotesTheField) {
  for (const char* bad : {"1); DROP TABLE users; --", "1; DROP TABLE users", "(SELECT max(id) FROM t)",
                          "1 FROM t", "a, b", "1 AS x", "$1", "users.name", "*", "1 UNION SELECT 2",
                          "EXISTS (SELECT 1)", "a ORDER BY 1", "(a", "'unterminated"}) {
    auto e = Expression::Parse(bad, "operations[0].change_type.up");
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(Msg(e.status()), HasSubstr("operations[0].change_type.up")) << bad;
    EXPECT_THAT(Msg(e.status()), HasSubstr(absl::StrCat("\"", bad, "\""))) << bad;
  }
  EXPECT_EQ(Expression::Parse("   ", "fill").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Expression, SyntaxErrorPositionIsInTheUsersText) {
  auto e = Expression::Parse("a + (b", "up");
  EXPECT_THAT(Msg(e.status()), HasSubstr("line 1, column 7"));
}

TEST(Expression, RenameColumnTouchesColumnReferencesOnly) {
  auto e = Expression::Parse("name(x) || name || 'name' || x::name || \"Name\"", "check");
  ASSERT_TRUE(e.ok()) << e.status();
  auto r = e->RenameColumn("name", "full name");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sql(), "(((name(x) || \"full name\") || 'name') || x::name) || \"Name\"");
  EXPECT_EQ(r->columns(), (std::vector<std::string>{"x", "full name", "Name"}));
}

TEST(TypeName, AcceptsTypeNamesOnly) {
  auto t = TypeName::Parse("numeric(12,2)", "type");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->sql(), "numeric(12, 2)");
  EXPECT_EQ(TypeName::Parse("timestamp with time zone", "type")->sql(), "timestamp with time zone");
  EXPECT_EQ(TypeName::Parse("\"My Type\"[]", "type")->sql(), "\"My Type\"[]");
  for (const char* bad : {"int; DROP TABLE users", "int) FROM t --", "int COLLATE \"C\"", "int, text",
                          "int::text", "1", "", "int AS x"}) {
    auto r = TypeName::Parse(bad, "operations[0].add_column.type");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(Msg(r.status()), HasSubstr("operations[0].add_column.type")) << bad;
  }
}

TEST(CopyIndexDefinition, RenamesTheColumnEverywhereAndBuildsConcurrently) {
  auto sql = CopyIndexDefinition(
      "CREATE UNIQUE INDEX users_name_idx ON public.users USING btree (lower(name), name "
      "text_pattern_ops DESC) INCLUDE (name) WHERE (name <> 'name'::text)",
      "pgshift_copy", "name", "full_name");
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql,
            "CREATE UNIQUE INDEX CONCURRENTLY pgshift_copy ON public.users USING btree "
            "(lower(full_name), full_name text_pattern_ops DESC) INCLUDE (full_name) WHERE "
            "full_name <> 'name'::text");
}

TEST(CopyIndexDefinition, MatchesQuotedNamesExactly) {
  auto sql = CopyIndexDefinition("CREATE INDEX i ON s.t USING btree (\"Name\", name)", "c", "Name", "b");
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql, "CREATE INDEX CONCURRENTLY c ON s.t USING btree (b, name)");
}

TEST(CopyConstraintDefinition, CheckIsRenamedAndNotValid) {
  auto sql = CopyConstraintDefinition({"app", "Users"}, "CHECK ((length(name) > 0))", "c1", "name", "n2");
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql, "ALTER TABLE app.\"Users\" ADD CONSTRAINT c1 CHECK (length(n2) > 0) NOT VALID");
}

TEST(CopyConstraintDefinition, ForeignKeyRenamesOnlyItsOwnColumns) {
  auto sql = CopyConstraintDefinition(
      {"public", "orders"}, "FOREIGN KEY (user_id) REFERENCES users(user_id) ON DELETE CASCADE", "c2",
      "user_id", "account_id", {"crm", "users"});
  ASSERT_TRUE(sql.ok()) << sql.status();
  EXPECT_EQ(*sql,
            "ALTER TABLE public.orders ADD CONSTRAINT c2 FOREIGN KEY (account_id) REFERENCES crm.users "
            "(user_id) ON DELETE CASCADE NOT VALID");
}

TEST(CopyConstraintDefinition, RefusesOtherKinds) {
  auto sql = CopyConstraintDefinition({"public", "t"}, "UNIQUE (a)", "c", "a", "b");
  EXPECT_EQ(sql.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pgshift::sql
