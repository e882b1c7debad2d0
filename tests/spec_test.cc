// Parsing and checking migration files, without a database.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pgshift/errors.h"
#include "pgshift/migration.h"
#include "pgshift/phase.h"

namespace pgshift {
namespace {

constexpr char kRename[] = R"({"name": "0042_rename", "schema": "app",
  "operations": [{"rename_column": {"table": "users", "from": "name", "to": "full_name"}}]})";

TEST(ParseMigrationJson, ReadsSnakeCaseFields) {
  absl::StatusOr<v1::Migration> m = ParseMigrationJson(kRename);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->name(), "0042_rename");
  EXPECT_EQ(m->schema(), "app");
  ASSERT_EQ(m->operations_size(), 1);
  EXPECT_EQ(m->operations(0).rename_column().from(), "name");
  EXPECT_EQ(OperationKind(m->operations(0)), "rename_column");
}

TEST(ParseMigrationJson, SchemaDefaultsToPublic) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [{"rename_column":
      {"table": "t", "from": "a", "to": "b"}}]})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->schema(), "public");
}

TEST(ParseMigrationJson, MalformedJsonIsInvalidArgument) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [)", "bad.json");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("bad.json"), absl::string_view::npos);
  EXPECT_NE(m.status().message().find("malformed JSON"), absl::string_view::npos);
}

TEST(ParseMigrationJson, UnknownFieldIsRefusedAndNamed) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [{"rename_column":
      {"table": "t", "from": "a", "to": "b", "colour": "red"}}]})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("unknown field"), absl::string_view::npos);
  EXPECT_NE(m.status().message().find("colour"), absl::string_view::npos);
}

TEST(ParseMigrationJson, UnknownOperationIsRefused) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [{"rename_table": {}}]})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseMigrationJson, MissingNameSaysWhatToDo) {
  auto m = ParseMigrationJson(R"({"operations": [{"rename_column":
      {"table": "t", "from": "a", "to": "b"}}]})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("\"name\" is missing"), absl::string_view::npos);
}

TEST(ParseMigrationJson, EmptyOperationsAreRefused) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": []})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseMigrationJson, OperationWithoutKindIsRefused) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [{}]})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("operations[0]"), absl::string_view::npos);
}

TEST(ParseMigrationJson, MissingColumnNamesTheField) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [{"rename_column":
      {"table": "t", "from": "a"}}]})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("\"to\" is missing"), absl::string_view::npos);
}

TEST(ParseMigrationJson, RenameToSameNameIsRefused) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [{"rename_column":
      {"table": "t", "from": "a", "to": "a"}}]})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseMigrationJson, TooLongIdentifierIsRefused) {
  std::string json = R"({"name": "x", "operations": [{"rename_column": {"table": "t", "from": "a", "to": ")" +
                     std::string(64, 'b') + R"("}}]})";
  auto m = ParseMigrationJson(json);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseMigrationJson, TwoOperationsOnOneColumnAreRefused) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [
      {"rename_column": {"table": "t", "from": "a", "to": "b"}},
      {"set_not_null": {"table": "t", "column": "a", "fill": "0"}}]})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("more than one operation"), absl::string_view::npos);
}

TEST(ParseMigrationJson, ChangeTypeNeedsUpAndDown) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [{"change_type":
      {"table": "t", "column": "a", "new_column": "a2", "type": "bigint", "up": "a"}}]})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("\"down\" is missing"), absl::string_view::npos);
}

TEST(ParseMigrationJson, NotNullAddColumnNeedsAFill) {
  auto m = ParseMigrationJson(R"({"name": "x", "operations": [{"add_column":
      {"table": "t", "column": "c", "type": "int", "not_null": true}}]})");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
}

// Protobuf's JSON parser is lenient; the loader is not (issue 10). Each
// refusal names the key or field and what is wrong.
absl::Status ParseError(const std::string& json) {
  return ParseMigrationJson(json, "m.json").status();
}
::testing::AssertionResult RefusedSaying(const std::string& json, std::vector<std::string> parts) {
  absl::Status s = ParseError(json);
  if (s.code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "not InvalidArgument: " << s;
  }
  parts.push_back("m.json: ");
  for (const std::string& p : parts) {
    if (s.message().find(p) == absl::string_view::npos) {
      return ::testing::AssertionFailure() << "no \"" << p << "\" in: " << s.message();
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(ParseMigrationJson, DuplicateKeysAreRefused) {
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "name": "y", "operations": [{"rename_column":
      {"table": "t", "from": "a", "to": "b"}}]})", {"key \"name\" appears twice"}));
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "operations": [{"rename_column":
      {"table": "t", "from": "a", "to": "b", "to": "c"}}]})",
                            {"operations[0].rename_column", "key \"to\" appears twice"}));
  // The same key spelled with an escape is the same key.
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "n\u0061me": "y", "operations": [{"rename_column":
      {"table": "t", "from": "a", "to": "b"}}]})", {"key \"name\" appears twice"}));
}

TEST(ParseMigrationJson, ValuesOfTheWrongJsonTypeAreRefused) {
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "operations": {"rename_column":
      {"table": "t", "from": "a", "to": "b"}}})", {"operations: ", "an object", "a list"}));
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "operations": [{"add_column":
      {"table": "t", "column": "c", "type": "int", "default": "0", "not_null": "yes"}}]})",
                            {"operations[0].add_column.not_null: ", "a string", "true or false"}));
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "operations": [{"add_column":
      {"table": "t", "column": "c", "type": "int", "default": 0}}]})",
                            {"operations[0].add_column.default: ", "a number", "a string"}));
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "operations": [{"rename_column":
      {"table": "t", "from": "a", "to": null}}]})", {"operations[0].rename_column.to: ", "null"}));
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "operations": ["rename_column"]})",
                            {"operations[0]: ", "a string", "an object"}));
  EXPECT_TRUE(RefusedSaying(R"(["name", "x"])", {"a list", "an object"}));
}

TEST(ParseMigrationJson, TwoKindsInOneOperationAreRefused) {
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "operations": [{
      "rename_column": {"table": "t", "from": "a", "to": "b"},
      "drop_column": {"table": "t", "column": "c"}}]})",
                            {"operations[0]", "rename_column", "drop_column", "one operation"}));
}

TEST(ParseMigrationJson, WhitespaceOnlyNameIsRefused) {
  EXPECT_TRUE(RefusedSaying(R"({"name": " \t ", "operations": [{"rename_column":
      {"table": "t", "from": "a", "to": "b"}}]})", {"\"name\"", "whitespace"}));
}

TEST(ParseMigrationJson, StrictReadingKeepsWhatIsValid) {
  // Escapes, unicode, numbers elsewhere, nested whitespace: all still read.
  auto m = ParseMigrationJson("{\"name\":\"0001_\\u00e9t\\u00E9\\/\", \"schema\" : \"app\",\n"
                              " \"operations\" : [ {\"add_column\": {\"table\": \"t\\\"q\", \"column\": \"c\","
                              " \"type\": \"int\", \"default\": \"0\", \"not_null\": true}} ] }");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->name(), "0001_\xc3\xa9t\xc3\xa9/");
  EXPECT_EQ(m->operations(0).add_column().table(), "t\"q");
  // The camelCase JSON names protobuf accepts are checked like the others.
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "operations": [{"addColumn":
      {"table": "t", "column": "c", "type": "int", "default": "0", "notNull": 1}}]})",
                            {"not_null", "a number", "true or false"}));
  // A syntax error still says "malformed JSON", with where.
  EXPECT_TRUE(RefusedSaying(R"({"name": "x", "operations": [)", {"malformed JSON", "line 1"}));
}

TEST(LoadMigrationFile, MissingFileIsNotFound) {
  auto m = LoadMigrationFile("/nonexistent/pgshift/migration.json");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ExitCodeFor(m.status()), 2);
}

TEST(CanonicalJson, RoundTripsAndIsStable) {
  auto m = ParseMigrationJson(kRename);
  ASSERT_TRUE(m.ok());
  std::string json = CanonicalJson(*m);
  auto again = ParseMigrationJson(json);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(CanonicalJson(*again), json);
  EXPECT_NE(json.find("\"rename_column\""), std::string::npos);
}

TEST(Phase, NamesRoundTrip) {
  for (Phase p : PhaseLadder()) {
    auto parsed = ParsePhase(PhaseName(p));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, p);
  }
  EXPECT_EQ(*ParsePhase("rolled_back"), Phase::kRolledBack);
  EXPECT_EQ(PhaseLadder().size(), 7u);
}

TEST(Phase, UnknownNameListsTheValidOnes) {
  auto p = ParsePhase("done");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("column_added"), absl::string_view::npos);
}

TEST(Phase, AtLeastFollowsTheLadder) {
  EXPECT_TRUE(PhaseAtLeast(Phase::kSwitched, Phase::kValidated));
  EXPECT_TRUE(PhaseAtLeast(Phase::kSwitched, Phase::kSwitched));
  EXPECT_FALSE(PhaseAtLeast(Phase::kValidated, Phase::kSwitched));
  EXPECT_FALSE(PhaseAtLeast(Phase::kRolledBack, Phase::kRegistered));
  EXPECT_TRUE(PhaseAtLeast(Phase::kRolledBack, Phase::kRolledBack));
}

TEST(ExitCodeFor, MapsCodesToTheCliContract) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("x")), 2);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("x")), 2);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("x")), 1);
  EXPECT_EQ(ExitCodeFor(absl::AbortedError("x")), 4);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("x")), 4);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("x")), 1);
}

}  // namespace
}  // namespace pgshift
