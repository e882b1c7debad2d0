// Parsing and checking migration files, without a database.
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
