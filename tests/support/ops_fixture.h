// Shared fixture of the per-operation tests (tests/ops_<op>_test.cc): a
// scratch database, a Driver on it, and helpers to run SQL and migrations.
// Migrations go in as JSON text, through the same loader as a file
// (ParseMigrationJson), so that a spec pgshift refuses to load is refused here
// too; build valid ones with tests/support/spec_builder.h.
//
// Example:
//   class RenameColumnTest : public pgshift::testing::OpsTest {};
//   TEST_F(RenameColumnTest, Works) {
//     Sql("CREATE TABLE people (id int PRIMARY KEY, name text)");
//     ASSERT_TRUE(Register(Spec("r").RenameColumn("people", "name", "full_name").Json()).ok());
//     ASSERT_TRUE(Advance("r", Phase::kContracted).ok());
//   }
//
// Header-only (it is a GoogleTest fixture); each test binary links gtest.
#ifndef PGSHIFT_TESTS_SUPPORT_OPS_FIXTURE_H_
#define PGSHIFT_TESTS_SUPPORT_OPS_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/driver.h"
#include "pgshift/errors.h"
#include "pgshift/migration.h"
#include "pgshift/phase.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace pgshift::testing {

class OpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<ScratchDatabase>(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    Options options;
    options.backfill_batch_rows = 100;  // several batches on small tables
    options.backfill_min_batch_rows = 50;
    options.backfill_max_batch_rows = 200;
    options.max_replication_lag = absl::ZeroDuration();
    options.retry_deadline = absl::Seconds(20);
    auto d = Driver::Connect(db_->dsn(), options);
    ASSERT_TRUE(d.ok()) << d.status();
    driver_ = std::move(*d);
    ASSERT_TRUE(driver_->Init().ok());
  }

  const std::string& dsn() const { return db_->dsn(); }
  Rows Sql(const std::string& sql) { return Query(dsn(), sql); }
  std::string Value(const std::string& sql) { return QueryValue(dsn(), sql); }
  std::string Snapshot(const std::string& schema = "public") { return CatalogSnapshot(dsn(), schema); }

  // Everything a refused plan or register could have changed: the catalog
  // of `schema` and pgshift's control tables.
  std::string RefusalState(const std::string& schema = "public") {
    return absl::StrCat(Snapshot(schema), "\nmigrations: ", Value("SELECT count(*) FROM pgshift.migrations"),
                        "\nhistory: ", Value("SELECT count(*) FROM pgshift.history"));
  }

  // The loader refuses `json`, or else plan and register through `driver`
  // both do: with `code` (exit 2), every part in the message, and nothing
  // changed.
  void ExpectRefused(Driver& driver, const std::string& json, absl::StatusCode code,
                     const std::vector<std::string>& parts, const std::string& schema = "public") {
    SCOPED_TRACE(json);
    const std::string before = RefusalState(schema);
    absl::StatusOr<v1::Migration> m = ParseMigrationJson(json, "test");
    std::vector<absl::Status> got;
    if (!m.ok()) {
      got.push_back(m.status());
    } else {
      got.push_back(driver.PlanMigration(*m).status());
      got.push_back(driver.Register(*m).status());
    }
    for (const absl::Status& s : got) {
      EXPECT_EQ(s.code(), code) << s;
      EXPECT_EQ(ExitCodeFor(s), 2) << s;
      for (const std::string& p : parts) EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(p));
    }
    EXPECT_EQ(RefusalState(schema), before);
  }
  void ExpectRefused(const std::string& json, absl::StatusCode code, const std::vector<std::string>& parts,
                     const std::string& schema = "public") {
    ExpectRefused(*driver_, json, code, parts, schema);
  }

  static v1::Migration Load(const std::string& json) {
    auto m = ParseMigrationJson(json, "test");
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : v1::Migration();
  }
  // A spec that does not even load (bad field) is refused like one the
  // server refuses: InvalidArgument, nothing changed.
  absl::Status Register(const std::string& json) {
    auto m = ParseMigrationJson(json, "test");
    if (!m.ok()) return m.status();
    return driver_->Register(*m).status();
  }
  absl::Status Advance(const std::string& name, Phase to) { return driver_->Advance(name, to).status(); }
  absl::Status RollbackMigration(const std::string& name) { return driver_->Rollback(name).status(); }
  Phase PhaseOf(const std::string& name) {
    auto p = driver_->CurrentPhase(name);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : Phase::kRolledBack;
  }
  absl::StatusOr<Plan> PlanOf(const std::string& json) { return driver_->PlanMigration(Load(json)); }

  // The statements of `plan` reaching `to`, all operations together.
  static std::vector<PlannedStatement> StepStatements(const Plan& plan, Phase to) {
    std::vector<PlannedStatement> out;
    for (const auto& s : plan.steps) {
      if (s.to != to) continue;
      for (const auto& st : s.statements) out.push_back(st);
    }
    return out;
  }

  // For each phase from registered to switched: registers a copy of the
  // migration (named <name>_<i>, built by `json_for(name)`), advances it to
  // that phase, rolls it back and checks that the catalog of `schema` and
  // the rows of `data_sql` are what they were.
  template <typename JsonFor>
  void ExpectRollbackFromEveryPhaseRestores(const std::string& name, JsonFor json_for,
                                            const std::string& schema, const std::string& data_sql) {
    const std::string before = Snapshot(schema);
    const Rows data = Sql(data_sql);
    const Phase phases[] = {Phase::kRegistered, Phase::kColumnAdded, Phase::kTriggerInstalled,
                            Phase::kBackfilled, Phase::kValidated, Phase::kSwitched};
    int i = 0;
    for (Phase p : phases) {
      const std::string n = absl::StrCat(name, "_", i++);
      SCOPED_TRACE(absl::StrCat("rollback from ", PhaseName(p)));
      ASSERT_TRUE(Register(json_for(n)).ok());
      if (p != Phase::kRegistered) {
        absl::Status s = Advance(n, p);
        ASSERT_TRUE(s.ok()) << s;
      }
      absl::Status r = RollbackMigration(n);
      ASSERT_TRUE(r.ok()) << r;
      EXPECT_EQ(PhaseOf(n), Phase::kRolledBack);
      EXPECT_EQ(Snapshot(schema), before);
      EXPECT_EQ(Sql(data_sql), data);
      // Rollback is idempotent.
      EXPECT_TRUE(RollbackMigration(n).ok());
      EXPECT_EQ(Snapshot(schema), before);
    }
  }

  std::unique_ptr<ScratchDatabase> db_;
  std::unique_ptr<Driver> driver_;
};

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_OPS_FIXTURE_H_
