// Faults of the constraint operations (add_check, add_foreign_key), as
// tests/faults_test.cc does for the column operations: the driver is killed
// with SIGKILL at every step boundary and in the middle of VALIDATE
// CONSTRAINT (its backend left running, or terminated too). Running the same
// command again finishes the migration; the constraints end VALID and the
// table equals an oracle kept by the test.
//
// Step boundaries are hit exactly with a test-only trigger on pgshift's
// control table that makes the driver's write wait on an advisory lock the
// test holds. VALIDATE is slowed down only inside pgshift's own statement,
// by a CHECK function that sleeps when the running query validates it.
#include <signal.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/cli.h"
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

constexpr char kName[] = "0300_constraints";
constexpr int kPauseKey = 434343;

const std::vector<std::string>& Steps() {
  static const std::vector<std::string> steps = {"column_added", "trigger_installed", "backfilled",
                                                 "validated",    "switched",          "contracted"};
  return steps;
}

// The constraints the migration adds, and what their VALIDATE runs as.
struct Added {
  std::string name;
  std::string validate_like;  // pg_stat_activity.query of its VALIDATE
};

class ConstraintFaults : public ::testing::Test {
 protected:
  // users(id, name, pid) with `rows` rows; slow_ok(name) is 2 ms a row inside
  // VALIDATE CONSTRAINT "users_name_ok" only. parent's key is a unique index
  // whose operator class compares in 1 ms inside VALIDATE CONSTRAINT
  // "users_pid_fk" only (a foreign key compares with the referenced index's
  // equality; needs a superuser, as the test server's role is).
  void Make(const std::string& prefix, int rows) {
    db_ = std::make_unique<ScratchDatabase>(prefix);
    Query(dsn(), absl::StrCat(R"(
      CREATE FUNCTION slow_ok(t text) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$
      BEGIN
        IF current_query() LIKE '%VALIDATE CONSTRAINT "users_name_ok"%' THEN PERFORM pg_sleep(0.002); END IF;
        RETURN length(t) < 100;
      END $$;
      CREATE FUNCTION slow_cmp(a int, b int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
      BEGIN
        IF current_query() LIKE '%VALIDATE CONSTRAINT "users_pid_fk"%' THEN PERFORM pg_sleep(0.001); END IF;
        RETURN btint4cmp(a, b);
      END $$;
      CREATE FUNCTION slow_eq(a int, b int) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$
      BEGIN
        IF current_query() LIKE '%VALIDATE CONSTRAINT "users_pid_fk"%' THEN PERFORM pg_sleep(0.001); END IF;
        RETURN a = b;
      END $$;
      CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = slow_eq, COMMUTATOR = ===);
      CREATE OPERATOR CLASS slow_int_ops FOR TYPE int USING btree AS
        OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 ===, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 slow_cmp(int, int);
      CREATE TABLE parent (id int NOT NULL);
      CREATE UNIQUE INDEX parent_id_key ON parent (id slow_int_ops);
      INSERT INTO parent SELECT generate_series(1, 100);
      CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, pid int);
      INSERT INTO users SELECT g, 'user ' || g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 100 + 1 END
        FROM generate_series(1, )", rows, R"() g;
      ANALYZE users;
      CREATE TABLE oracle AS SELECT * FROM users;
      CREATE TABLE test_pause_at (label text PRIMARY KEY))"));
    ASSERT_EQ(Cli({"init"}).exit_code, 0);
    CliResult reg = Cli({"register", Migration().File()});
    ASSERT_EQ(reg.exit_code, 0) << Describe(reg);
  }

  static Spec Migration() {
    return Spec(kName)
        .AddCheck("users", "users_name_ok", "slow_ok(name)")
        .AddForeignKey("users", "users_pid_fk", {"pid"}, "parent", {"id"});
  }
  static std::vector<Added> Constraints() {
    return {{"users_name_ok", "ALTER TABLE%VALIDATE CONSTRAINT \"users_name_ok\"%"},
            {"users_pid_fk", "ALTER TABLE%VALIDATE CONSTRAINT \"users_pid_fk\"%"}};
  }

  const std::string& dsn() const { return db_->dsn(); }
  std::vector<std::string> Args(const std::vector<std::string>& rest) const { return CliArgv(dsn(), rest); }
  CliResult Cli(const std::vector<std::string>& rest) const { return RunCli(dsn(), rest); }

  std::string Phase() const {
    return QueryValue(dsn(), absl::StrCat("SELECT phase FROM pgshift.migrations WHERE name = ", Lit(kName)));
  }

  // What the application writes, to the table and to the oracle alike:
  // values every constraint accepts.
  void AppWrites(int round) {
    for (const std::string& t : {"users", "oracle"}) {
      Query(dsn(), absl::StrCat("INSERT INTO ", t, " VALUES (", 1000000 + round, ", 'app ", round, "', ",
                                round % 100 + 1, ");"
                                "UPDATE ", t, " SET name = name || '*', pid = NULL WHERE id % 97 = ",
                                round % 97, ";"
                                "DELETE FROM ", t, " WHERE id = ", 50 + round));
    }
  }

  // Contracted; every constraint VALID and the user's (no pgshift mark);
  // the table equals the oracle; nothing left running or failed.
  void ExpectDone() {
    EXPECT_EQ(Phase(), "contracted");
    for (const Added& c : Constraints()) {
      EXPECT_EQ(QueryValue(dsn(), absl::StrCat("SELECT (convalidated, obj_description(oid, 'pg_constraint') "
                                               "IS NULL)::text FROM pg_constraint WHERE conrelid = "
                                               "'users'::regclass AND conname = ", Lit(c.name))),
                "(t,t)")
          << c.name;
    }
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM ((TABLE users EXCEPT ALL TABLE oracle) UNION ALL "
                                "(TABLE oracle EXCEPT ALL TABLE users)) d"),
              "0");
    EXPECT_EQ(QueryValue(dsn(), "SELECT running_step IS NULL AND last_error IS NULL FROM pgshift.migrations"), "t");
  }

  void WaitForLeaseRelease() { ASSERT_TRUE(WaitUntilLeaseReleased(dsn())); }

  // Re-runs `advance --to contracted`, as an operator would after a crash.
  void Finish() {
    WaitForLeaseRelease();
    CliResult r = Cli({"advance", kName, "--to", "contracted"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    ExpectDone();
  }

  void InstallPauseTrigger() { Query(dsn(), PauseTriggerSql(kPauseKey)); }

  int IntValue(const std::string& sql) { return std::atoi(QueryValue(dsn(), sql).c_str()); }

  int PausedBackend() {
    return IntValue(absl::StrCat("SELECT coalesce(max(pid), 0) FROM pg_locks WHERE locktype = 'advisory' "
                                 "AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid = ", kPauseKey));
  }

  int BackendRunning(const std::string& like) {
    return IntValue(absl::StrCat("SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE state = 'active' "
                                 "AND query LIKE ", Lit(like), " AND pid <> pg_backend_pid()"));
  }

  void Terminate(int backend) {
    ASSERT_GT(backend, 0);
    Query(dsn(), absl::StrCat("SELECT pg_terminate_backend(", backend, ")"));
    ASSERT_TRUE(WaitUntil([&] {
      return QueryValue(dsn(), absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE pid = ", backend)) == "0";
    }));
  }

  std::unique_ptr<ScratchDatabase> db_;
};

// kill -9 while the driver records the start of each step, and while it
// records the end of each step (its work committed, the phase not yet).
TEST_F(ConstraintFaults, KillAtEveryStepBoundary) {
  for (const std::string& point : {"running", "phase"}) {
    for (size_t i = 0; i < Steps().size(); ++i) {
      const std::string& step = Steps()[i];
      SCOPED_TRACE(absl::StrCat("killed at ", point, ":", step));
      Make(absl::StrCat("con_kill_", point, "_", step), 300);
      if (i > 0) {
        AppWrites(1);
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
      EXPECT_EQ(cli.Wait().exit_code, -1);
      Terminate(backend);  // the crashed host's connection goes away
      pauser.Exec(absl::StrCat("SELECT pg_advisory_unlock(", kPauseKey, ")"));
      Query(dsn(), "DELETE FROM test_pause_at");
      EXPECT_EQ(Phase(), before);
      AppWrites(2);
      Finish();
      if (::testing::Test::HasFailure()) return;
    }
  }
}

// kill -9 in the middle of each VALIDATE CONSTRAINT: with its backend left
// running (the next run waits for its lock, then validates or skips), and
// with the backend terminated too (the constraint stays NOT VALID and is
// validated by the next run).
TEST_F(ConstraintFaults, KillDuringValidateConstraint) {
  for (const Added& c : Constraints()) {
    for (const bool terminate_backend : {false, true}) {
      SCOPED_TRACE(absl::StrCat(c.name, terminate_backend ? ", backend terminated too" : ", backend left running"));
      Make(absl::StrCat("con_validate_", c.name.substr(0, 10), terminate_backend ? "_term" : ""), 1000);
      ASSERT_EQ(Cli({"advance", kName, "--to", "backfilled"}).exit_code, 0);
      ChildProcess cli(Args({"advance", kName, "--to", "contracted"}));
      ASSERT_TRUE(WaitUntil([&] {
        return QueryValue(dsn(), absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                              "AND datname = current_database() AND wait_event IS DISTINCT "
                                              "FROM 'relation' AND query LIKE ", Lit(c.validate_like),
                                              " AND now() - query_start > interval '300 ms'")) != "0";
      }, 60)) << cli.CurrentErr();
      const int backend = BackendRunning(c.validate_like);
      cli.Kill(SIGKILL);
      cli.Wait();
      if (terminate_backend) {
        Terminate(backend);
        EXPECT_EQ(QueryValue(dsn(), absl::StrCat("SELECT convalidated FROM pg_constraint WHERE conname = ",
                                                 Lit(c.name))),
                  "f");
      }
      EXPECT_EQ(Phase(), "backfilled");
      AppWrites(5);
      Finish();
      if (::testing::Test::HasFailure()) return;
    }
  }
}

}  // namespace
}  // namespace pgshift
