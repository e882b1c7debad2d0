// Faults (docs/architecture.md, "The phase ladder"; docs/runbook.md): the driver is killed with SIGKILL at every
// step boundary and in the middle of every long step (backfill, CREATE INDEX
// CONCURRENTLY, VALIDATE), its backend is terminated mid-step, the server is
// restarted between and during steps. After each fault, running the same
// command again finishes the migration and the data equals an independent
// oracle (a copy of the table maintained by the test with the same writes).
//
// Step boundaries are hit exactly with a test-only trigger on pgshift's
// control tables that makes the driver's write wait on an advisory lock the
// test holds: the test then kills the CLI (kill -9) and terminates the
// backend it left behind, as a crashed host would.
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/pgshift.h"
#include "tests/support/cli.h"
#include "tests/support/every_kind.h"
#include "tests/support/pause.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace pgshift {
namespace {

using ::pgshift::testing::ChildProcess;
using ::pgshift::testing::CliArgv;
using ::pgshift::testing::CliResult;
using ::pgshift::testing::Describe;
using ::pgshift::testing::kSlowFunctionsSql;
using ::pgshift::testing::Lit;
using ::pgshift::testing::PauseTriggerSql;
using ::pgshift::testing::Query;
using ::pgshift::testing::QueryValue;
using ::pgshift::testing::RunCli;
using ::pgshift::testing::ScratchDatabase;
using ::pgshift::testing::Session;
using ::pgshift::testing::Spec;
using ::pgshift::testing::WaitUntil;
using ::pgshift::testing::WaitUntilLeaseReleased;
using ::testing::HasSubstr;

constexpr char kName[] = "0100_rename_users_name";
constexpr int kPauseKey = 424242;
// pgshift's build of the copy of the slow expression index.
// The copy's name comes from the deparser, which quotes it only where
// PostgreSQL needs quotes.
constexpr char kCicLike[] = "CREATE INDEX CONCURRENTLY %pgshift%slow_lower%";

const std::vector<std::string>& Steps() {
  static const std::vector<std::string> steps = {"column_added", "trigger_installed", "backfilled",
                                                 "validated",    "switched",          "contracted"};
  return steps;
}

int StepIndex(const std::string& phase) {
  if (phase == "registered") return -1;
  for (size_t i = 0; i < Steps().size(); ++i) {
    if (Steps()[i] == phase) return static_cast<int>(i);
  }
  return -2;
}

// A users table with a NOT NULL column renamed by the migration, an index,
// a CHECK and an expression index on it, and the oracle: the same rows the
// way the application sees them (id, name), kept by the test.
class Faults : public ::testing::Test {
 protected:
  void Make(const std::string& prefix, int rows, bool slow_index = false, bool slow_check = false) {
    db_ = std::make_unique<ScratchDatabase>(prefix);
    rows_ = rows;
    // slow_*: immutable in what they return; slow only inside pgshift's index
    // build / constraint validation, so that the test can kill it mid-way.
    Query(dsn(), kSlowFunctionsSql);
    Query(dsn(), absl::StrCat(
                     "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, tag int);"
                     "CREATE INDEX users_name_idx ON users (name);"
                     "INSERT INTO users SELECT g, 'user ' || g, g % 7 FROM generate_series(1, ", rows,
                     ") g;",
                     slow_index ? "CREATE INDEX users_lower_idx ON users (slow_lower(name));" : "",
                     slow_check ? "ALTER TABLE users ADD CONSTRAINT users_name_ok CHECK (slow_check(name));" : "",
                     "ANALYZE users;"
                     "CREATE TABLE oracle AS SELECT id, name FROM users;"
                     "CREATE TABLE test_pause_at (label text PRIMARY KEY)"));
    ASSERT_EQ(Cli({"init"}).exit_code, 0);
    CliResult reg = Cli({"register", Spec(kName).RenameColumn("users", "name", "full_name").File()});
    ASSERT_EQ(reg.exit_code, 0) << Describe(reg);
  }

  const std::string& dsn() const { return db_->dsn(); }

  std::vector<std::string> Args(const std::vector<std::string>& rest) const { return CliArgv(dsn(), rest); }
  CliResult Cli(const std::vector<std::string>& rest) const { return RunCli(dsn(), rest); }

  std::string Phase() const {
    return QueryValue(dsn(), absl::StrCat("SELECT phase FROM pgshift.migrations WHERE name = ", Lit(kName)));
  }

  // What the application writes, the way its version at `phase` writes it,
  // applied to the table and to the oracle alike.
  void AppWrites(const std::string& phase, int round) {
    const int id = 1000000 + round;
    const bool new_app = StepIndex(phase) >= StepIndex("switched");
    const std::string col = new_app ? "full_name" : "name";
    Query(dsn(), absl::StrCat("INSERT INTO users (id, ", col, ") VALUES (", id, ", 'app ", round, "');"
                              "UPDATE users SET ", col, " = ", col, " || '*' WHERE id % 97 = ", round % 97, ";"
                              "DELETE FROM users WHERE id = ", 50 + round));
    Query(dsn(), absl::StrCat("INSERT INTO oracle VALUES (", id, ", 'app ", round, "');"
                              "UPDATE oracle SET name = name || '*' WHERE id % 97 = ", round % 97, ";"
                              "DELETE FROM oracle WHERE id = ", 50 + round));
  }

  // The migration is contracted and the table equals the oracle, with
  // nothing of pgshift's left over and every index valid.
  void ExpectDoneAndEqualToOracle() {
    EXPECT_EQ(Phase(), "contracted");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass "
                                "AND attname = 'name' AND NOT attisdropped"),
              "0");
    EXPECT_EQ(QueryValue(dsn(), "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass "
                                "AND attname = 'full_name'"),
              "t");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM ((SELECT id, full_name FROM users EXCEPT ALL "
                                "SELECT id, name FROM oracle) UNION ALL (SELECT id, name FROM oracle "
                                "EXCEPT ALL SELECT id, full_name FROM users)) d"),
              "0");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM users"), QueryValue(dsn(), "SELECT count(*) FROM oracle"));
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass AND NOT indisvalid "
                                "AND indexrelid::regclass::text LIKE 'pgshift%'"),
              "0");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass "
                                "AND indexrelid::regclass::text = 'users_name_idx' AND indisvalid"),
              "1");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal"), "0");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgshift%'"), "0");
    EXPECT_EQ(QueryValue(dsn(), "SELECT running_step IS NULL AND last_error IS NULL FROM pgshift.migrations"), "t");
  }

  // Waits until no session of a killed driver still holds its lease.
  void WaitForLeaseRelease() { ASSERT_TRUE(WaitUntilLeaseReleased(dsn())); }

  // Re-runs `advance --to contracted`, as an operator would after a crash.
  void Finish() {
    WaitForLeaseRelease();
    CliResult r = Cli({"advance", kName, "--to", "contracted"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    ExpectDoneAndEqualToOracle();
  }

  void InstallPauseTrigger() { Query(dsn(), PauseTriggerSql(kPauseKey)); }

  // pid of the driver backend waiting at the pause point, or 0.
  int PausedBackend() {
    return std::atoi(QueryValue(dsn(), absl::StrCat("SELECT coalesce(max(pid), 0) FROM pg_locks WHERE "
                                                    "locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid = ",
                                                    kPauseKey))
                         .c_str());
  }

  // pid of the backend running a statement that starts with `prefix`.
  int BackendRunning(const std::string& like) {
    return std::atoi(QueryValue(dsn(), absl::StrCat("SELECT coalesce(max(pid), 0) FROM pg_stat_activity "
                                                    "WHERE state = 'active' AND datname = current_database() AND query LIKE ", Lit(like),
                                                    " AND pid <> pg_backend_pid()"))
                         .c_str());
  }

  // The main backend of the driver running as process `pid`.
  int DriverBackend(pid_t cli_pid) {
    return std::atoi(QueryValue(dsn(), absl::StrCat("SELECT coalesce(max(pid), 0) FROM pg_stat_activity "
                                                    "WHERE application_name LIKE '%:", cli_pid, "'"))
                         .c_str());
  }

  void Terminate(int backend) {
    ASSERT_GT(backend, 0);
    Query(dsn(), absl::StrCat("SELECT pg_terminate_backend(", backend, ")"));
    ASSERT_TRUE(WaitUntil([&] {
      return QueryValue(dsn(), absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE pid = ", backend)) == "0";
    }));
  }

  std::unique_ptr<ScratchDatabase> db_;
  int rows_ = 0;
};

// kill -9 of the driver while it records the start of each step, and while
// it records the end of each step (its work committed, the phase not yet):
// the phase stays where it was, and running the command again finishes.
TEST_F(Faults, KillAtEveryStepBoundary) {
  for (const std::string& point : {"running", "phase"}) {
    for (size_t i = 0; i < Steps().size(); ++i) {
      const std::string& step = Steps()[i];
      SCOPED_TRACE(absl::StrCat("killed at ", point, ":", step));
      Make(absl::StrCat("kill_", point, "_", step), 400);
      if (i > 0) {
        AppWrites("registered", 1);
        CliResult r = Cli({"advance", kName, "--to", Steps()[i - 1]});
        ASSERT_EQ(r.exit_code, 0) << Describe(r);
      }
      const std::string before = Phase();
      InstallPauseTrigger();
      Query(dsn(), absl::StrCat("INSERT INTO test_pause_at VALUES (", Lit(point + ":" + step), ")"));
      Session pauser(dsn());
      pauser.Exec(absl::StrCat("SELECT pg_advisory_lock(", kPauseKey, ")"));
      ChildProcess cli(Args({"advance", kName, "--to", "contracted"}));
      ASSERT_TRUE(WaitUntil([&] { return PausedBackend() != 0 || !cli.Running(); })) << cli.CurrentErr();
      ASSERT_TRUE(cli.Running()) << Describe(cli.Wait());
      const int backend = PausedBackend();
      cli.Kill(SIGKILL);
      CliResult killed = cli.Wait();
      EXPECT_EQ(killed.exit_code, -1);
      Terminate(backend);  // the crashed host's connection goes away
      pauser.Exec(absl::StrCat("SELECT pg_advisory_unlock(", kPauseKey, ")"));
      Query(dsn(), "DELETE FROM test_pause_at");
      EXPECT_EQ(Phase(), before);
      const std::string running =
          QueryValue(dsn(), "SELECT coalesce(running_step, '') FROM pgshift.migrations");
      EXPECT_EQ(running, point == std::string("phase") ? step : "");
      // status tells the operator what happened (once the dead driver's
      // lease connection is gone too).
      WaitForLeaseRelease();
      CliResult status = Cli({"status", kName});
      if (!running.empty()) EXPECT_THAT(status.out, HasSubstr("interrupted while reaching " + step));
      AppWrites(before, 2);
      Finish();
      if (::testing::Test::HasFailure()) return;
    }
  }
}

// kill -9 in the middle of the batched backfill: the next run resumes from
// the checkpoint.
TEST_F(Faults, KillInTheMiddleOfTheBackfill) {
  Make("kill_backfill", 3000);
  ChildProcess cli(Args({"--batch-rows", "50", "--batch-delay", "20ms", "advance", kName, "--to", "contracted"}));
  ASSERT_TRUE(WaitUntil([&] {
    return std::atoi(QueryValue(dsn(), "SELECT coalesce(max(rows_done), 0) FROM pgshift.checkpoints").c_str()) >= 1000;
  })) << cli.CurrentErr();
  cli.Kill(SIGKILL);
  cli.Wait();
  const int done_at_kill = std::atoi(QueryValue(dsn(), "SELECT rows_done FROM pgshift.checkpoints").c_str());
  EXPECT_LT(done_at_kill, 3000);
  EXPECT_EQ(Phase(), "trigger_installed");
  AppWrites("trigger_installed", 3);
  WaitForLeaseRelease();
  // Resume for a few batches only: it continues from the checkpoint.
  CliResult part = Cli({"--batch-rows", "50", "--max-batches", "2", "advance", kName});
  EXPECT_EQ(part.exit_code, 1) << Describe(part);
  EXPECT_GE(std::atoi(QueryValue(dsn(), "SELECT rows_done FROM pgshift.checkpoints").c_str()), done_at_kill + 100);
  Finish();
}

// kill -9 while CREATE INDEX CONCURRENTLY runs: its backend goes on building
// the index; the next run waits for it instead of dropping it under its feet.
TEST_F(Faults, KillDuringCreateIndexConcurrentlyWhileItsBackendFinishes) {
  Make("kill_cic_orphan", 1500, /*slow_index=*/true);
  ASSERT_EQ(Cli({"advance", kName, "--to", "backfilled"}).exit_code, 0);
  ChildProcess cli(Args({"advance", kName, "--to", "contracted"}));
  ASSERT_TRUE(WaitUntil([&] { return BackendRunning(kCicLike) != 0; }))
      << cli.CurrentErr();
  const int builder = BackendRunning(kCicLike);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  cli.Kill(SIGKILL);
  cli.Wait();
  EXPECT_EQ(Phase(), "backfilled");
  // The orphaned build is still running when the operator re-runs.
  EXPECT_EQ(QueryValue(dsn(), absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE pid = ", builder,
                                           " AND state = 'active'")),
            "1");
  Finish();
}

// The driver's backend is terminated during CREATE INDEX CONCURRENTLY: an
// INVALID index of ours is left; the next run drops and rebuilds it, and
// leaves alone an INVALID index that is not pgshift's.
TEST_F(Faults, InterruptedIndexBuildIsRebuiltButNotSomeoneElses) {
  Make("kill_cic_invalid", 1500, /*slow_index=*/true);
  // The user's own failed build: INVALID, not ours.
  Session user(dsn());
  EXPECT_NE(user.TryExec("CREATE UNIQUE INDEX CONCURRENTLY users_tag_uniq ON users (tag)"), "");
  ASSERT_EQ(QueryValue(dsn(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_tag_uniq'::regclass"), "f");
  ASSERT_EQ(Cli({"advance", kName, "--to", "backfilled"}).exit_code, 0);
  ChildProcess cli(Args({"advance", kName, "--to", "contracted"}));
  ASSERT_TRUE(WaitUntil([&] { return BackendRunning(kCicLike) != 0; }))
      << cli.CurrentErr();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  cli.Kill(SIGKILL);
  cli.Wait();
  Terminate(BackendRunning(kCicLike));
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass AND NOT indisvalid "
                              "AND indexrelid::regclass::text LIKE 'pgshift%'"),
            "1");
  AppWrites("backfilled", 4);
  Finish();
  EXPECT_EQ(QueryValue(dsn(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_tag_uniq'::regclass"), "f");
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_index WHERE indexrelid = 'users_lower_idx'::regclass "
                              "AND indisvalid"),
            "1");
}

// create_index: the driver is killed and its backend terminated in the
// middle of CREATE INDEX CONCURRENTLY, leaving pgshift's INVALID index; the
// next run drops it and builds the index again. Interrupted the same way,
// rollback drops the INVALID index and leaves the catalog as it was.
TEST_F(Faults, CreateIndexInterruptedMidBuildIsRebuiltOrRolledBack) {
  db_ = std::make_unique<ScratchDatabase>("kill_create_index");
  Query(dsn(), kSlowFunctionsSql);
  Query(dsn(), "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);"
               "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 1500) g; ANALYZE users;");
  ASSERT_EQ(Cli({"init"}).exit_code, 0);
  const std::string before = ::pgshift::testing::CatalogSnapshot(dsn(), "public");
  const char* invalid_ours = "SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass AND NOT indisvalid "
                             "AND indexrelid::regclass::text LIKE 'pgshift%'";
  for (const std::string name : {"ci_rebuilt", "ci_rolled_back"}) {
    SCOPED_TRACE(name);
    CliResult reg = Cli({"register", Spec(name).CreateIndex("users", "users_slow_idx", {"slow_lower(name)"}).File()});
    ASSERT_EQ(reg.exit_code, 0) << Describe(reg);
    ASSERT_EQ(Cli({"advance", name, "--to", "backfilled"}).exit_code, 0);
    ChildProcess cli(Args({"advance", name, "--to", "contracted"}));
    ASSERT_TRUE(WaitUntil([&] { return BackendRunning(kCicLike) != 0; })) << cli.CurrentErr();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cli.Kill(SIGKILL);
    cli.Wait();
    Terminate(BackendRunning(kCicLike));
    EXPECT_EQ(QueryValue(dsn(), invalid_ours), "1");
    EXPECT_EQ(QueryValue(dsn(), absl::StrCat("SELECT phase FROM pgshift.migrations WHERE name = ", Lit(name))),
              "backfilled");
    WaitForLeaseRelease();
    if (name == "ci_rebuilt") {
      CliResult r = Cli({"advance", name, "--to", "contracted"});
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
      EXPECT_EQ(QueryValue(dsn(), invalid_ours), "0");
      EXPECT_EQ(QueryValue(dsn(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_slow_idx'::regclass"),
                "t");
      Query(dsn(), "DROP INDEX users_slow_idx");
    } else {
      CliResult r = Cli({"rollback", name});
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
      EXPECT_EQ(QueryValue(dsn(), invalid_ours), "0");
    }
    EXPECT_EQ(::pgshift::testing::CatalogSnapshot(dsn(), "public"), before);
  }
}

// kill -9 in the middle of VALIDATE CONSTRAINT (of the copied CHECK).
TEST_F(Faults, KillDuringValidateConstraint) {
  for (const bool terminate_backend : {false, true}) {
    SCOPED_TRACE(terminate_backend ? "backend terminated too" : "backend left running");
    Make(terminate_backend ? "kill_validate_term" : "kill_validate", 1000, false, /*slow_check=*/true);
    ASSERT_EQ(Cli({"advance", kName, "--to", "backfilled"}).exit_code, 0);
    ChildProcess cli(Args({"advance", kName, "--to", "contracted"}));
    const std::string like = "ALTER TABLE%VALIDATE CONSTRAINT \"pgshift%";
    ASSERT_TRUE(WaitUntil([&] {
      return QueryValue(dsn(), absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND datname = current_database() "
                                            "AND wait_event IS DISTINCT FROM 'relation' AND query LIKE ", Lit(like),
                                            " AND now() - query_start > interval '300 ms'")) != "0";
    })) << cli.CurrentErr();
    const int backend = BackendRunning(like);
    cli.Kill(SIGKILL);
    cli.Wait();
    if (terminate_backend) Terminate(backend);
    EXPECT_EQ(Phase(), "backfilled");
    AppWrites("backfilled", 5);
    Finish();
    EXPECT_EQ(QueryValue(dsn(), "SELECT convalidated FROM pg_constraint WHERE conname = 'users_name_ok'"), "t");
    EXPECT_THAT(QueryValue(dsn(), "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'users_name_ok'"),
                HasSubstr("full_name"));
    if (::testing::Test::HasFailure()) return;
  }
}

// The driver's own backend is terminated mid-backfill and mid-index-build:
// the CLI stops with exit 1 and a message saying to run it again; the failure
// is recorded; running again finishes.
TEST_F(Faults, DriverBackendTerminatedMidStep) {
  Make("term_backend", 3000, /*slow_index=*/true);
  ChildProcess cli(Args({"--batch-rows", "50", "--batch-delay", "20ms", "advance", kName, "--to", "contracted"}));
  ASSERT_TRUE(WaitUntil([&] {
    return std::atoi(QueryValue(dsn(), "SELECT coalesce(max(rows_done), 0) FROM pgshift.checkpoints").c_str()) >= 500;
  })) << cli.CurrentErr();
  Terminate(DriverBackend(cli.pid()));
  CliResult r = cli.Wait();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("connection to the server was lost"));
  EXPECT_THAT(QueryValue(dsn(), "SELECT coalesce(last_error, '') FROM pgshift.migrations"),
              HasSubstr("connection to the server was lost"));
  EXPECT_EQ(QueryValue(dsn(), "SELECT running_step FROM pgshift.migrations"), "backfilled");
  AppWrites("trigger_installed", 6);

  WaitForLeaseRelease();
  ChildProcess again(Args({"advance", kName, "--to", "contracted"}));
  ASSERT_TRUE(WaitUntil([&] { return BackendRunning(kCicLike) != 0; }))
      << again.CurrentErr();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Terminate(DriverBackend(again.pid()));
  CliResult r2 = again.Wait();
  EXPECT_EQ(r2.exit_code, 1) << Describe(r2);
  Finish();
}

// The lease's connection is ended mid-step: the driver notices, records no
// phase (the phase write is fenced on the lease), and a new run finishes.
TEST_F(Faults, LostLeaseRecordsNothing) {
  Make("lost_lease", 2000);
  ChildProcess cli(Args({"--batch-rows", "50", "--batch-delay", "20ms", "advance", kName, "--to", "validated"}));
  ASSERT_TRUE(WaitUntil([&] {
    return std::atoi(QueryValue(dsn(), "SELECT coalesce(max(rows_done), 0) FROM pgshift.checkpoints").c_str()) >= 200;
  })) << cli.CurrentErr();
  Terminate(std::atoi(QueryValue(dsn(), absl::StrCat("SELECT max(pid) FROM pg_stat_activity WHERE application_name "
                                                     "LIKE '%:", cli.pid(), " [lease]'")).c_str()));
  CliResult r = cli.Wait();
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("lost the driver lease"));
  EXPECT_EQ(Phase(), "trigger_installed");
  Finish();
}

// ---------------------------------------------------------------------------
// Every operation kind at once: one migration renaming a, making b NOT NULL,
// adding c, dropping d and changing e's type, killed at every step boundary
// and in the middle of its backfills. Application rows follow one rule, so
// the oracle is a formula: a2 = 'a'||id, b = (id % 3 = 0 ? -1 : id),
// c = id * 2, e2 = id * 1.5.

constexpr char kAllOps[] = "0101_every_operation";

class EveryOperation : public Faults {
 protected:
  void MakeShop(const std::string& prefix, int rows) {
    db_ = std::make_unique<ScratchDatabase>(prefix);
    Query(dsn(), absl::StrCat(
        "CREATE TABLE shop (id int PRIMARY KEY, a text NOT NULL, b int, d text NOT NULL, e text NOT NULL);"
        "CREATE INDEX shop_a_idx ON shop (a); CREATE INDEX shop_e_idx ON shop (e);"
        "CREATE INDEX shop_id_idx ON shop (id);"
        "INSERT INTO shop SELECT g, 'a' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE g END, 'd' || g, "
        "(g * 1.5)::text FROM generate_series(1, ", rows, ") g; ANALYZE shop;"
        "CREATE TABLE test_pause_at (label text PRIMARY KEY)"));
    const std::string spec = Spec(kAllOps)
                                 .RenameColumn("shop", "a", "a2")
                                 .SetNotNull("shop", "b", "-1")
                                 .AddColumn("shop", "c", "int")
                                 .NotNull()
                                 .Up("id * 2")
                                 .DropColumn("shop", "d")
                                 .Down("'gone'")
                                 .ChangeType("shop", "e", "e2", "numeric", "e::numeric", "e2::text")
                                 .CreateIndex("shop", "shop_id3_idx", {"(id * 3)"})
                                 .DropIndex("shop_id_idx")
                                 .AddUnique("shop", "shop_id_key", {"id"})
                                 .File();
    ASSERT_EQ(Cli({"init"}).exit_code, 0);
    CliResult reg = Cli({"register", spec});
    ASSERT_EQ(reg.exit_code, 0) << Describe(reg);
    rows_ = rows;
  }
  std::string ShopPhase() {
    return QueryValue(dsn(), absl::StrCat("SELECT phase FROM pgshift.migrations WHERE name = ", Lit(kAllOps)));
  }
  // Writes of the application version that runs at `phase`.
  void ShopWrites(const std::string& phase, int round) {
    const int id = 99999 + round * 3;  // a multiple of 3: b is -1 in the formula
    if (StepIndex(phase) >= StepIndex("switched")) {
      Query(dsn(), absl::StrCat("INSERT INTO shop (id, a2, b, c, e2) VALUES (", id, ", 'a", id, "', -1, ", id * 2,
                                ", ", id, " * 1.5)"));
    } else {
      Query(dsn(), absl::StrCat("INSERT INTO shop (id, a, b, d, e) VALUES (", id, ", 'a", id, "', NULL, 'd', (",
                                id, " * 1.5)::text)"));
    }
    ++extra_;
  }
  void ShopFinish() {
    WaitForLeaseRelease();
    CliResult r = Cli({"advance", kAllOps, "--to", "contracted"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(ShopPhase(), "contracted");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM shop WHERE a2 = 'a' || id AND b = CASE WHEN id % 3 = 0 "
                                "THEN -1 ELSE id END AND c = id * 2 AND e2 = id * 1.5"),
              std::to_string(rows_ + extra_));
    EXPECT_EQ(QueryValue(dsn(), "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE "
                                "attrelid = 'shop'::regclass AND attnum > 0 AND NOT attisdropped"),
              "id,b,a2,c,e2");
    // The primary key and the copies of shop_a_idx and shop_e_idx, the
    // index create_index built and the one add_unique attached; shop_id_idx
    // is dropped.
    EXPECT_EQ(QueryValue(dsn(), "SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index "
                                "WHERE indrelid = 'shop'::regclass AND indisvalid"),
              "shop_a_idx,shop_e_idx,shop_id3_idx,shop_id_key,shop_pkey");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'shop'::regclass AND NOT tgisinternal"), "0");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgshift%'"), "0");
  }
  int extra_ = 0;
};

TEST_F(EveryOperation, KillAtEveryStepBoundary) {
  for (size_t i = 0; i < Steps().size(); ++i) {
    const std::string& step = Steps()[i];
    SCOPED_TRACE(absl::StrCat("killed before recording ", step));
    extra_ = 0;
    MakeShop(absl::StrCat("all_ops_kill_", step), 300);
    ShopWrites("registered", 1);
    if (i > 0) {
      CliResult r = Cli({"advance", kAllOps, "--to", Steps()[i - 1]});
      ASSERT_EQ(r.exit_code, 0) << Describe(r);
    }
    const std::string before = ShopPhase();
    InstallPauseTrigger();
    Query(dsn(), absl::StrCat("INSERT INTO test_pause_at VALUES (", Lit("phase:" + step), ")"));
    Session pauser(dsn());
    pauser.Exec(absl::StrCat("SELECT pg_advisory_lock(", kPauseKey, ")"));
    ChildProcess cli(Args({"advance", kAllOps, "--to", "contracted"}));
    ASSERT_TRUE(WaitUntil([&] { return PausedBackend() != 0 || !cli.Running(); })) << cli.CurrentErr();
    ASSERT_TRUE(cli.Running()) << Describe(cli.Wait());
    const int backend = PausedBackend();
    cli.Kill(SIGKILL);
    cli.Wait();
    Terminate(backend);
    pauser.Exec(absl::StrCat("SELECT pg_advisory_unlock(", kPauseKey, ")"));
    Query(dsn(), "DELETE FROM test_pause_at");
    EXPECT_EQ(ShopPhase(), before);
    ShopWrites(before, 2);
    ShopFinish();
    if (::testing::Test::HasFailure()) return;
  }
}

TEST_F(EveryOperation, KillInTheMiddleOfTheBackfills) {
  MakeShop("all_ops_kill_backfill", 2000);
  ChildProcess cli(Args({"--batch-rows", "50", "--batch-delay", "10ms", "advance", kAllOps, "--to", "contracted"}));
  // Killed once in the backfill of the third operation (add_column).
  ASSERT_TRUE(WaitUntil([&] {
    return QueryValue(dsn(), "SELECT count(*) FROM pgshift.checkpoints WHERE operation = 2 AND rows_done >= 300") != "0";
  })) << cli.CurrentErr();
  cli.Kill(SIGKILL);
  cli.Wait();
  EXPECT_EQ(ShopPhase(), "trigger_installed");
  ShopWrites("trigger_installed", 3);
  ShopFinish();
}

// ---------------------------------------------------------------------------
// The table operations at once: one migration creating, renaming and
// dropping a table, killed (kill -9) while recording the start and the end of
// every step; running it again finishes, and the old name keeps serving the
// renamed table's rows until contract.

constexpr char kTableOps[] = "0102_table_operations";

class TableOperations : public Faults {
 protected:
  void MakeTables(const std::string& prefix) {
    db_ = std::make_unique<ScratchDatabase>(prefix);
    Query(dsn(), "CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL DEFAULT 'anon');"
                 "INSERT INTO accounts (name) SELECT 'a' || g FROM generate_series(1, 200) g;"
                 "CREATE TABLE legacy (id int PRIMARY KEY); INSERT INTO legacy VALUES (1);"
                 "CREATE TABLE test_pause_at (label text PRIMARY KEY)");
    ASSERT_EQ(Cli({"init"}).exit_code, 0);
    CliResult reg = Cli({"register", Spec(kTableOps)
                                         .CreateTable("audit")
                                         .Column("id", "bigint")
                                         .Column("what", "text")
                                         .NotNull()
                                         .Column("at", "timestamptz")
                                         .Default("now()")
                                         .PrimaryKey({"id"})
                                         .RenameTable("accounts", "customers")
                                         .DropTable("legacy")
                                         .File()});
    ASSERT_EQ(reg.exit_code, 0) << Describe(reg);
  }
  std::string TablePhase() {
    return QueryValue(dsn(), absl::StrCat("SELECT phase FROM pgshift.migrations WHERE name = ", Lit(kTableOps)));
  }
  // An insert of the app version that runs at `phase`.
  void TableWrites(const std::string& phase) {
    Query(dsn(), StepIndex(phase) >= StepIndex("switched") ? "INSERT INTO customers (name) VALUES ('new app')"
                                                           : "INSERT INTO accounts (name) VALUES ('old app')");
    ++extra_;
  }
  void TableFinish() {
    WaitForLeaseRelease();
    CliResult r = Cli({"advance", kTableOps, "--to", "contracted"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(TablePhase(), "contracted");
    EXPECT_EQ(QueryValue(dsn(), "SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class "
                                "WHERE relnamespace = 'public'::regnamespace AND relname IN "
                                "('accounts', 'customers', 'legacy', 'audit')"),
              "audit:r,customers:r");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(DISTINCT id) FROM customers"), std::to_string(200 + extra_));
    EXPECT_EQ(QueryValue(dsn(), "SELECT coalesce(obj_description('audit'::regclass, 'pg_class'), 'none')"), "none");
    EXPECT_EQ(QueryValue(dsn(), "SELECT running_step IS NULL AND last_error IS NULL FROM pgshift.migrations"), "t");
  }
  int extra_ = 0;
};

TEST_F(TableOperations, KillAtEveryStepBoundary) {
  for (const std::string& point : {"running", "phase"}) {
    for (size_t i = 0; i < Steps().size(); ++i) {
      const std::string& step = Steps()[i];
      SCOPED_TRACE(absl::StrCat("killed at ", point, ":", step));
      extra_ = 0;
      MakeTables(absl::StrCat("table_ops_kill_", point, "_", step));
      if (i > 0) {
        CliResult r = Cli({"advance", kTableOps, "--to", Steps()[i - 1]});
        ASSERT_EQ(r.exit_code, 0) << Describe(r);
      }
      const std::string before = TablePhase();
      TableWrites(before);
      InstallPauseTrigger();
      Query(dsn(), absl::StrCat("INSERT INTO test_pause_at VALUES (", Lit(point + ":" + step), ")"));
      Session pauser(dsn());
      pauser.Exec(absl::StrCat("SELECT pg_advisory_lock(", kPauseKey, ")"));
      ChildProcess cli(Args({"advance", kTableOps, "--to", "contracted"}));
      ASSERT_TRUE(WaitUntil([&] { return PausedBackend() != 0 || !cli.Running(); })) << cli.CurrentErr();
      ASSERT_TRUE(cli.Running()) << Describe(cli.Wait());
      const int backend = PausedBackend();
      cli.Kill(SIGKILL);
      cli.Wait();
      Terminate(backend);
      pauser.Exec(absl::StrCat("SELECT pg_advisory_unlock(", kPauseKey, ")"));
      Query(dsn(), "DELETE FROM test_pause_at");
      EXPECT_EQ(TablePhase(), before);
      // The app version of that phase still works: the old one through the
      // old name (a view once the switch committed), the new one after it.
      TableWrites(before);
      if (point == std::string("phase") && step == "switched") {
        Query(dsn(), "INSERT INTO accounts (name) VALUES ('old app through the view')");
        ++extra_;
      }
      TableFinish();
      if (::testing::Test::HasFailure()) return;
    }
  }
}

// ---------------------------------------------------------------------------
// Server restarts, on a cluster of the test's own.

class OwnCluster {
 public:
  OwnCluster() : dir_(testing::TempPath("faults-cluster")) {
    std::string out = Shell(absl::StrCat("bash ", PGSHIFT_SOURCE_DIR, "/scripts/pgtemp.sh start ", dir_));
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    dsn_ = out;
  }
  ~OwnCluster() { Shell(absl::StrCat("bash ", PGSHIFT_SOURCE_DIR, "/scripts/pgtemp.sh stop ", dir_)); }
  const std::string& dsn() const { return dsn_; }

  // pg_ctl MODE (restart / stop / start) on the cluster, as its owner.
  void Ctl(const std::string& mode) {
    std::string as = getuid() == 0 ? "runuser -u postgres -- " : "";
    Shell(absl::StrCat("cd ", dir_, " && ", as, "\"$(bash -c 'source ", PGSHIFT_SOURCE_DIR,
                       "/scripts/pgtemp.sh; pgtemp_bindir')/pg_ctl\" -D ", dir_, "/data -l ", dir_,
                       "/log -w -t 60 -m fast ", mode == "start" ? absl::StrCat("-o \"-p $(cat ", dir_, "/port)\" ") : "",
                       mode, " >/dev/null 2>&1"));
  }

 private:
  static std::string Shell(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    return out;
  }
  std::string dir_, dsn_;
};

TEST(ServerRestart, BetweenStepsAndDuringTheBackfill) {
  OwnCluster cluster;
  ASSERT_FALSE(cluster.dsn().empty());
  const std::string dsn = cluster.dsn();
  Query(dsn, "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL); CREATE INDEX users_name_idx ON users (name);"
             "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 3000) g;"
             "CREATE TABLE oracle AS SELECT id, name FROM users");
  const std::string spec = Spec(kName).RenameColumn("users", "name", "full_name").File();
  ASSERT_EQ(RunCli(dsn, {"init"}).exit_code, 0);
  ASSERT_EQ(RunCli(dsn, {"register", spec}).exit_code, 0);
  ASSERT_EQ(RunCli(dsn, {"advance", kName, "--to", "trigger_installed"}).exit_code, 0);
  cluster.Ctl("restart");
  // Stopped mid-backfill: the CLI reports the lost connection (exit 1).
  ChildProcess running(CliArgv(dsn, {"--batch-rows", "50", "--batch-delay", "20ms", "advance", kName, "--to", "validated"}));
  ASSERT_TRUE(WaitUntil([&] {
    return std::atoi(QueryValue(dsn, "SELECT coalesce(max(rows_done), 0) FROM pgshift.checkpoints").c_str()) >= 500;
  })) << running.CurrentErr();
  cluster.Ctl("stop");
  CliResult r = running.Wait();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  cluster.Ctl("start");
  Query(dsn, "INSERT INTO users VALUES (5000, 'written while down'); INSERT INTO oracle VALUES (5000, 'written while down')");
  CliResult resumed = RunCli(dsn, {"advance", kName, "--to", "validated"});
  ASSERT_EQ(resumed.exit_code, 0) << Describe(resumed);
  cluster.Ctl("restart");
  ASSERT_EQ(RunCli(dsn, {"advance", kName, "--to", "switched"}).exit_code, 0);
  cluster.Ctl("restart");
  CliResult done = RunCli(dsn, {"advance", kName, "--to", "contracted"});
  ASSERT_EQ(done.exit_code, 0) << Describe(done);
  EXPECT_EQ(QueryValue(dsn, "SELECT count(*) FROM ((SELECT id, full_name FROM users EXCEPT ALL SELECT id, name FROM oracle) "
                            "UNION ALL (SELECT id, name FROM oracle EXCEPT ALL SELECT id, full_name FROM users)) d"),
            "0");
  EXPECT_EQ(QueryValue(dsn, "SELECT count(*) FROM users"), "3001");
}

}  // namespace
}  // namespace pgshift
