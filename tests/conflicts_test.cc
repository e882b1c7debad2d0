// Migrations that read each other's columns (issue "Nothing lost, nothing
// stuck", item 8): an active migration's expressions, run by its triggers
// and backfill until it is contracted, read columns; another migration may
// not change those columns meanwhile (its contract would drop a column the
// first one's trigger reads, and every INSERT would fail). Reads alone never
// conflict. Real PostgreSQL.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/migration.h"
#include "tests/support/ops_fixture.h"
#include "tests/support/spec_builder.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class ConflictsTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE users (id int PRIMARY KEY, name text, email text, score int);"
        "INSERT INTO users SELECT g, 'u' || g, NULL, NULL FROM generate_series(1, 50) g");
  }
  std::string ReadsName() {
    return Spec("reads_name").SetNotNull("users", "email", "lower(name) || '@example.invalid'").Json();
  }
  std::string RenamesName() { return Spec("renames_name").RenameColumn("users", "name", "full_name").Json(); }
};

TEST_F(ConflictsTest, AColumnAnActiveMigrationReadsCannotBeChanged) {
  ASSERT_TRUE(Register(ReadsName()).ok());
  ASSERT_TRUE(Advance("reads_name", Phase::kTriggerInstalled).ok());
  const std::string before = Snapshot();
  absl::Status s = Register(RenamesName());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"name\""));
  EXPECT_THAT(std::string(s.message()), HasSubstr("is read by"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("reads_name"));
  EXPECT_EQ(Snapshot(), before);
  // Once the reader is contracted (its trigger gone), the rename may come.
  ASSERT_TRUE(Advance("reads_name", Phase::kContracted).ok());
  ASSERT_TRUE(Register(RenamesName()).ok());
  ASSERT_TRUE(Advance("renames_name", Phase::kContracted).ok());
  Sql("INSERT INTO users (id, full_name, email) VALUES (100, 'x', 'x@y')");  // nothing reads "name"
  EXPECT_EQ(Value("SELECT full_name FROM users WHERE id = 100"), "x");
}

TEST_F(ConflictsTest, AnExpressionCannotReadAColumnAnActiveMigrationChanges) {
  ASSERT_TRUE(Register(RenamesName()).ok());
  absl::Status s = Register(ReadsName());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("renames_name"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"name\""));
}

TEST_F(ConflictsTest, TwoReadersDoNotConflict) {
  ASSERT_TRUE(Register(ReadsName()).ok());
  absl::Status s = Register(Spec("also_reads").AddColumn("users", "name_len", "int").Up("length(name)").Json());
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(ConflictsTest, OneMigrationCannotReadWhatItChanges) {
  auto m = ParseMigrationJson(Spec("both")
                                  .SetNotNull("users", "email", "lower(name) || '@x'")
                                  .RenameColumn("users", "name", "full_name")
                                  .Json());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("operations[0] reads column \"name\""));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("operations[1] changes it"));
}

}  // namespace
}  // namespace pgshift::testing
