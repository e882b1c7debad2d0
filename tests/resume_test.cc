// Crash safety (docs/architecture.md, "The phase ladder"): a step killed mid-way (the
// CLI process killed with SIGKILL, or its backend terminated) is simply run
// again and finishes with nothing lost; the backfill resumes from its
// checkpoint rather than restarting; a second driver on a migration that is
// being driven gets exit 4 naming the holder and changes nothing.
//
// Every test drives the real CLI (PGSHIFT_CLI) as a child process. Verdicts
// never depend on timing: "mid-step" is reached by making the step wait on a
// lock (or snapshot) the test holds, or by polling the checkpoint table; the
// waits have generous upper bounds only so that a bug cannot hang the test.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "tests/support/cli.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace {

namespace pt = ::pgshift::testing;

using pt::CliArgv;
using pt::Describe;
using pt::Lit;
using pt::RunCli;
constexpr auto Int = pt::QueryInt;

// How long a test waits for a state it needs: a hang guard, not a timing
// assertion.
constexpr double kWaitSeconds = 90;

// The rename of app.t's column v to w, named `name`.
std::string RenameFile(const std::string& name) {
  return pt::Spec(name).Schema("app").RenameColumn("t", "v", "w").File();
}

// Backends of pgshift drivers (application_name "pgshift <driver name>").
constexpr char kDriverBackends[] =
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name LIKE 'pgshift %' AND pid <> pg_backend_pid()";

// Drivers waiting for a lock right now.
constexpr char kDriversWaiting[] =
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE NOT l.granted AND a.datname = current_database() "
    "AND a.application_name LIKE 'pgshift %'";

void TerminateDrivers(const std::string& dsn) {
  pt::Query(dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            "current_database() AND application_name LIKE 'pgshift %' AND pid <> pg_backend_pid()");
}

std::string Phase(const std::string& dsn, const std::string& name) {
  return pt::QueryValue(dsn, "SELECT phase FROM pgshift.migrations WHERE name = " + Lit(name));
}
std::string RunningStep(const std::string& dsn, const std::string& name) {
  return pt::QueryValue(dsn,
                        "SELECT coalesce(running_step, '') FROM pgshift.migrations WHERE name = " +
                            Lit(name));
}

// Everything a driver could change: the user schema and pgshift's rows.
std::string State(const std::string& dsn, const std::string& name) {
  std::string out = pt::CatalogSnapshot(dsn, "app");
  for (const char* sql :
       {"SELECT name, spec::text, checksum, phase, running_step, created_at, updated_at, "
        "last_error FROM pgshift.migrations ORDER BY name",
        "SELECT id, migration, step, driver, started_at, finished_at, ok, error, "
        "statements::text, lock_wait_ms, rows_touched FROM pgshift.history ORDER BY id",
        "SELECT migration, operation, last_key::text, rows_done, rows_estimate, done, updated_at "
        "FROM pgshift.checkpoints ORDER BY 1, 2"}) {
    for (const pt::Row& r : pt::Query(dsn, sql)) {
      for (const auto& v : r) out += v.value_or("NULL") + " | ";
      out += "\n";
    }
  }
  (void)name;
  return out;
}

// ---------------------------------------------------------------------------
// The backfill resumes from its checkpoint.

// Parameter: how the backfill walks the table ("key" or "pages").
class BackfillResume : public ::testing::TestWithParam<std::string> {
 protected:
  // app.big(id 1..rows, v = 'v' || id), renamed v -> w, advanced to
  // trigger_installed. fillfactor 25 leaves room on every page, so the
  // backfill's and the test's updates stay on the row's page (HOT): a row
  // "before the checkpoint" is before it whether the backfill walks the
  // primary key or the pages.
  void SetUpTable(int rows) {
    rows_ = rows;
    pt::Query(dsn(), "CREATE SCHEMA app;"
                     "CREATE TABLE app.big (id bigint PRIMARY KEY, v text NOT NULL) "
                     "WITH (fillfactor = 25);"
                     "INSERT INTO app.big SELECT g, 'v' || g FROM generate_series(1, " +
                         std::to_string(rows) + ") g; ANALYZE app.big;");
    file_ = pt::Spec(name_).Schema("app").RenameColumn("big", "v", "w").File();
    ASSERT_EQ(RunCli(dsn(), {"init"}).exit_code, 0);
    ASSERT_EQ(RunCli(dsn(), {"register", file_}).exit_code, 0);
    auto r = RunCli(dsn(), {"advance", name_, "--to", "trigger_installed"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  // Starts a slow backfill (50-row batches, 20 ms apart) and returns once
  // at least one batch has committed its checkpoint.
  std::unique_ptr<pt::ChildProcess> StartSlowBackfill() {
    auto p = std::make_unique<pt::ChildProcess>(CliArgv(
        dsn(), {"advance", name_, "--to", "backfilled", "--batch-rows", "50", "--batch-time", "1ms",
                "--batch-delay", "20ms", "--backfill-walk", GetParam()}));
    EXPECT_TRUE(pt::WaitUntil(
        [&] {
          return Int(dsn(), "SELECT coalesce(max(rows_done), 0) FROM pgshift.checkpoints") > 0 ||
                 !p->Running();
        },
        kWaitSeconds))
        << "gave up waiting for the first backfill checkpoint";
    return p;
  }

  // After the driver died mid-backfill: the checkpoint survived, the rows
  // done so far are consistent, and the phase did not move.
  void ExpectCheckpointSurvived() {
    EXPECT_TRUE(pt::WaitUntil([&] { return Int(dsn(), kDriverBackends) == 0; }, kWaitSeconds))
        << "gave up waiting for the killed driver's backend to end";
    pt::Rows cp = pt::Query(dsn(), "SELECT rows_done, done FROM pgshift.checkpoints "
                                   "WHERE migration = " + Lit(name_));
    ASSERT_EQ(cp.size(), 1u) << "the checkpoint row survives the crash";
    EXPECT_GT(std::stoll(*cp[0][0]), 0);
    EXPECT_EQ(cp[0][1], "f");
    const int64_t backfilled = Int(dsn(), "SELECT count(*) FROM app.big WHERE w IS NOT NULL");
    EXPECT_GT(backfilled, 0);
    EXPECT_LT(backfilled, rows_) << "the driver must die mid-backfill for this test to mean anything";
    EXPECT_EQ(Int(dsn(), "SELECT count(*) FROM app.big WHERE w IS NOT NULL AND w <> v"), 0);
    EXPECT_EQ(Phase(dsn(), name_), "trigger_installed") << "the phase moves only when the step commits";
    EXPECT_EQ(RunningStep(dsn(), name_), "backfilled") << "status shows the interrupted step";
    auto status = RunCli(dsn(), {"status", name_});
    EXPECT_EQ(status.exit_code, 0) << Describe(status);
    EXPECT_NE(status.out.find("interrupted"), std::string::npos) << status.out;
  }

  // Re-runs the backfill and proves it resumed rather than restarted: a
  // backfilled row made to disagree behind pgshift's back (triggers off) is
  // not looked at again, a row not reached yet is fixed, and the run updated
  // exactly the rows that needed it except the one before the checkpoint.
  void ExpectResumes() {
    below_ = Int(dsn(), "SELECT min(id) FROM app.big WHERE w IS NOT NULL");
    const int64_t above = Int(dsn(), "SELECT max(id) FROM app.big WHERE w IS NULL");
    const std::string page = "SELECT (ctid::text::point)[0] FROM app.big WHERE id = ";
    const std::string below_page = pt::QueryValue(dsn(), page + std::to_string(below_));
    pt::Query(dsn(), "SET session_replication_role = replica; UPDATE app.big SET w = 'tampered' "
                     "WHERE id IN (" + std::to_string(below_) + ", " + std::to_string(above) + ")");
    ASSERT_EQ(pt::QueryValue(dsn(), page + std::to_string(below_)), below_page)
        << "the tampered row must stay on its page (HOT) for the test to hold in page order";
    const int64_t needing_work = Int(dsn(), "SELECT count(*) FROM app.big WHERE w IS DISTINCT FROM v");

    auto r = RunCli(dsn(), {"advance", name_, "--to", "backfilled", "--backfill-walk", GetParam()});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(pt::QueryValue(dsn(), "SELECT w FROM app.big WHERE id = " + std::to_string(below_)),
              "tampered")
        << "a restarted backfill would have rewritten row " << below_ << " (before the checkpoint)";
    EXPECT_EQ(pt::QueryValue(dsn(), "SELECT w FROM app.big WHERE id = " + std::to_string(above)),
              "v" + std::to_string(above));
    EXPECT_EQ(Int(dsn(), "SELECT rows_touched FROM pgshift.history WHERE migration = " +
                             Lit(name_) + " AND step = 'backfilled' AND ok"),
              needing_work - 1)
        << "the second run updated the rows after the checkpoint and nothing before it";
    EXPECT_EQ(pt::QueryValue(dsn(), "SELECT done FROM pgshift.checkpoints WHERE migration = " +
                                        Lit(name_)),
              "t");
    EXPECT_EQ(Int(dsn(), "SELECT count(*) FROM pgshift.history WHERE migration = " + Lit(name_) +
                             " AND step = 'backfilled' AND ok IS NOT TRUE"),
              1)
        << "the interrupted attempt stays in the history (unfinished, or recorded as failed)";
    EXPECT_EQ(Phase(dsn(), name_), "backfilled");

    // Put the tampered row right and finish: the data is intact.
    pt::Query(dsn(), "SET session_replication_role = replica; UPDATE app.big SET w = v WHERE id = " +
                         std::to_string(below_));
    r = RunCli(dsn(), {"advance", name_, "--to", "contracted"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Int(dsn(), "SELECT count(*) FROM app.big"), rows_);
    EXPECT_EQ(Int(dsn(), "SELECT count(*) FROM app.big WHERE w IS DISTINCT FROM 'v' || id"), 0);
  }

  const std::string& dsn() const { return db_.dsn(); }

  pt::ScratchDatabase db_{"resume_backfill"};
  std::string name_ = "0001_rename_big_v";
  std::string file_;
  int rows_ = 0;
  int64_t below_ = 0;
};

TEST_P(BackfillResume, ProcessKilledMidBackfillResumesFromCheckpoint) {
  SetUpTable(50000);
  auto p = StartSlowBackfill();
  ASSERT_TRUE(p->Running()) << "the backfill finished before it could be killed";
  p->Kill(SIGKILL);
  pt::CliResult killed = p->Wait();
  EXPECT_EQ(killed.signal, SIGKILL) << Describe(killed);
  ExpectCheckpointSurvived();
  if (HasFatalFailure()) return;
  ExpectResumes();
}

TEST_P(BackfillResume, BackendTerminatedMidBackfillResumesFromCheckpoint) {
  SetUpTable(20000);
  auto p = StartSlowBackfill();
  ASSERT_TRUE(p->Running()) << "the backfill finished before it could be interrupted";
  TerminateDrivers(dsn());
  pt::CliResult r = p->Wait();
  EXPECT_EQ(r.exit_code, 1) << "lost connection: the step failed, state consistent\n" << Describe(r);
  EXPECT_NE(r.err.find("advance"), std::string::npos) << "says how to continue: " << r.err;
  ExpectCheckpointSurvived();
  if (HasFatalFailure()) return;
  ExpectResumes();
}

INSTANTIATE_TEST_SUITE_P(Walks, BackfillResume, ::testing::Values("key", "pages"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "key" ? std::string("PrimaryKeyWalk")
                                                      : std::string("PageWalk");
                         });

// ---------------------------------------------------------------------------
// Every step of every operation, interrupted while it waits for a lock the
// test holds (after whatever it did before that lock committed), is re-run
// and finishes.

struct OpSpec {
  std::string name;
  std::string setup;      // creates app.t (schema app exists)
  pt::Spec operations;    // on app.t; the test names the migration
  std::string bad_rows;   // after contract: SELECT count(*) of rows that are wrong
  // Steps that take no lock on the table (docs/architecture.md: no-op steps, and the
  // switch that only replaces the trigger function); every other step must
  // be caught waiting for the test's lock, or the test proves nothing.
  std::vector<std::string> lock_free_steps;
};

std::vector<OpSpec> Ops() {
  const std::string rows = "generate_series(1, 2000) g";
  return {
      {"rename_column",
       "CREATE TABLE app.t (id bigint PRIMARY KEY, v text NOT NULL CONSTRAINT t_v_key UNIQUE,"
       " note text); INSERT INTO app.t (id, v) SELECT g, 'v' || g FROM " + rows,
       pt::Spec().RenameColumn("t", "v", "w"),
       "SELECT count(*) FROM app.t WHERE w IS DISTINCT FROM 'v' || id", {"switched"}},
      {"set_not_null",
       "CREATE TABLE app.t (id bigint PRIMARY KEY, c integer); INSERT INTO app.t "
       "SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE g END FROM " + rows,
       pt::Spec().SetNotNull("t", "c", "0"),
       "SELECT count(*) FROM app.t WHERE c IS DISTINCT FROM CASE WHEN id % 3 = 0 THEN 0 ELSE id "
       "END",
       {"column_added"}},
      {"add_column",
       "CREATE TABLE app.t (id bigint PRIMARY KEY, name text); INSERT INTO app.t "
       "SELECT g, 'n' || g FROM " + rows,
       pt::Spec().AddColumn("t", "score", "integer").Default("0").NotNull().Up("id * 2"),
       "SELECT count(*) FROM app.t WHERE score IS DISTINCT FROM id * 2", {"switched"}},
      {"drop_column",
       "CREATE TABLE app.t (id bigint PRIMARY KEY, name text, legacy text NOT NULL); "
       "INSERT INTO app.t SELECT g, 'n' || g, 'l' || g FROM " + rows,
       pt::Spec().DropColumn("t", "legacy").Down("'x'"),
       "SELECT count(*) + (SELECT count(*) FROM pg_attribute WHERE attrelid = 'app.t'::regclass "
       "AND attname = 'legacy' AND NOT attisdropped) FROM app.t WHERE name IS DISTINCT FROM 'n' || id",
       {"column_added", "backfilled", "validated", "switched"}},
      {"change_type",
       "CREATE TABLE app.t (id bigint PRIMARY KEY, qty integer NOT NULL); "
       "CREATE INDEX t_qty_idx ON app.t (qty); INSERT INTO app.t SELECT g, g FROM " + rows,
       pt::Spec().ChangeType("t", "qty", "qty_big", "bigint", "qty::bigint", "qty_big::integer"),
       "SELECT count(*) FROM app.t WHERE qty_big IS DISTINCT FROM id", {"switched"}},
  };
}

const std::vector<std::string>& Steps() {
  static const std::vector<std::string> steps = {"column_added", "trigger_installed", "backfilled",
                                                 "validated",    "switched",          "contracted"};
  return steps;
}

struct StepParam {
  OpSpec op;
  size_t step;  // index into Steps()
  bool kill;    // SIGKILL the CLI; otherwise pg_terminate_backend its backend
};

void PrintTo(const StepParam& p, std::ostream* os) {
  *os << p.op.name << " step to " << Steps()[p.step] << (p.kill ? " (kill -9)" : " (terminate)");
}

std::vector<StepParam> StepParams() {
  std::vector<StepParam> out;
  for (const OpSpec& op : Ops()) {
    for (size_t i = 0; i < Steps().size(); ++i) out.push_back({op, i, (i % 2) == 0});
  }
  return out;
}

class InterruptedStep : public ::testing::TestWithParam<StepParam> {};

TEST_P(InterruptedStep, ReRunFinishesTheStepAndNothingIsLost) {
  const StepParam& param = GetParam();
  const std::string step = Steps()[param.step];
  const std::string previous = param.step == 0 ? "registered" : Steps()[param.step - 1];
  pt::ScratchDatabase db("resume_step_" + param.op.name);
  const std::string dsn = db.dsn();
  const std::string name = "0002_" + param.op.name;
  pt::Query(dsn, "CREATE SCHEMA app; " + param.op.setup + "; ANALYZE app.t;");
  ASSERT_EQ(RunCli(dsn, {"init"}).exit_code, 0);
  auto r = RunCli(dsn, {"register", pt::Spec(param.op.operations).Name(name).Schema("app").File()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  if (previous != "registered") {
    r = RunCli(dsn, {"advance", name, "--to", previous});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  // SHARE conflicts with every lock a step takes on the table except ACCESS
  // SHARE (reads): the step runs up to its first DDL or backfill batch, then
  // waits (lock_timeout, retry, wait again...).
  pt::Session blocker(dsn, "test lock holder");
  blocker.Exec("BEGIN; LOCK TABLE app.t IN SHARE MODE");
  pt::ChildProcess driver(CliArgv(dsn, {"advance", name, "--to", step, "--lock-timeout", "200ms"}));
  EXPECT_TRUE(pt::WaitUntil([&] { return Int(dsn, kDriversWaiting) > 0 || !driver.Running(); },
                            kWaitSeconds))
      << "gave up waiting for the step to wait for the test's lock";
  if (driver.Running()) {
    if (param.kill) {
      driver.Kill(SIGKILL);
      EXPECT_EQ(driver.Wait().signal, SIGKILL);
    } else {
      TerminateDrivers(dsn);
      pt::CliResult died = driver.Wait();
      EXPECT_EQ(died.exit_code, 1) << Describe(died);
    }
    blocker.Exec("COMMIT");
    EXPECT_TRUE(pt::WaitUntil([&] { return Int(dsn, kDriverBackends) == 0; }, kWaitSeconds))
        << "gave up waiting for the driver's backend to end";
    EXPECT_EQ(Phase(dsn, name), previous) << "the phase moves only once the step committed";
    EXPECT_EQ(RunningStep(dsn, name), step);
  } else {
    // The step never needed a lock on the table.
    const auto& free = param.op.lock_free_steps;
    EXPECT_NE(std::find(free.begin(), free.end(), step), free.end())
        << "the step to " << step << " finished without waiting for the test's SHARE lock";
    pt::CliResult done = driver.Wait();
    blocker.Exec("COMMIT");
    EXPECT_EQ(done.exit_code, 0) << Describe(done);
    EXPECT_EQ(Phase(dsn, name), step);
    RecordProperty("interrupted", "no: the step did not touch the table");
  }

  r = RunCli(dsn, {"advance", name, "--to", step});
  ASSERT_EQ(r.exit_code, 0) << "re-running the interrupted step\n" << Describe(r);
  EXPECT_EQ(Phase(dsn, name), step);
  EXPECT_EQ(RunningStep(dsn, name), "");
  r = RunCli(dsn, {"advance", name, "--to", "contracted"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Int(dsn, param.op.bad_rows), 0) << param.op.bad_rows;
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM app.t"), 2000);
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM pg_index WHERE indrelid = 'app.t'::regclass AND NOT "
                     "indisvalid"),
            0)
      << "no INVALID index left behind";
  const std::string catalog = pt::CatalogSnapshot(dsn, "app");
  EXPECT_EQ(catalog.find("pgshift"), std::string::npos) << catalog;
}

INSTANTIATE_TEST_SUITE_P(
    Ops, InterruptedStep, ::testing::ValuesIn(StepParams()),
    [](const ::testing::TestParamInfo<StepParam>& info) {
      return info.param.op.name + "_" + Steps()[info.param.step] +
             (info.param.kill ? "_Killed" : "_Terminated");
    });

// CREATE INDEX CONCURRENTLY interrupted half-way leaves an INVALID index; the
// re-run drops and rebuilds it.
TEST(InterruptedIndexBuild, InvalidIndexIsRebuiltOnReRun) {
  pt::ScratchDatabase db("resume_cic");
  const std::string dsn = db.dsn();
  const std::string name = "0003_rename_unique";
  pt::Query(dsn, "CREATE SCHEMA app; CREATE TABLE app.t (id bigint PRIMARY KEY, "
                 "v text NOT NULL CONSTRAINT t_v_key UNIQUE); "
                 "INSERT INTO app.t SELECT g, 'v' || g FROM generate_series(1, 2000) g;");
  ASSERT_EQ(RunCli(dsn, {"init"}).exit_code, 0);
  ASSERT_EQ(RunCli(dsn, {"register", RenameFile(name)}).exit_code, 0);
  auto r = RunCli(dsn, {"advance", name, "--to", "backfilled"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  // An open snapshot (on another table) makes CREATE INDEX CONCURRENTLY wait
  // for it after the index is already in the catalog, INVALID.
  pt::Session snapshot(dsn, "test snapshot holder");
  snapshot.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class");
  pt::ChildProcess driver(CliArgv(dsn, {"advance", name, "--to", "validated"}));
  EXPECT_TRUE(pt::WaitUntil(
      [&] {
        return Int(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                        "'pgshift %' AND query ILIKE '%INDEX CONCURRENTLY%' AND wait_event_type "
                        "= 'Lock' AND datname = current_database()") > 0 ||
               !driver.Running();
      },
      kWaitSeconds))
      << "gave up waiting for the index build to wait for the test's snapshot";
  ASSERT_TRUE(driver.Running()) << Describe(driver.Wait());
  TerminateDrivers(dsn);
  EXPECT_EQ(driver.Wait().exit_code, 1);
  snapshot.Exec("COMMIT");
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM pg_index WHERE indrelid = 'app.t'::regclass AND NOT "
                     "indisvalid"),
            1)
      << "the interrupted build leaves its INVALID index (what the re-run must recover from)";
  EXPECT_EQ(Phase(dsn, name), "backfilled");

  r = RunCli(dsn, {"advance", name, "--to", "validated"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM pg_index WHERE indrelid = 'app.t'::regclass AND NOT "
                     "indisvalid"),
            0);
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.t'::regclass AND "
                     "pg_get_constraintdef(oid) = 'UNIQUE (w)'"),
            1);
  r = RunCli(dsn, {"advance", name, "--to", "contracted"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(pt::QueryValue(dsn, "SELECT string_agg(pg_get_constraintdef(oid), ', ' ORDER BY "
                                "conname) FROM pg_constraint WHERE conrelid = 'app.t'::regclass"),
            "PRIMARY KEY (id), UNIQUE (w)");
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM app.t WHERE w IS DISTINCT FROM 'v' || id"), 0);
}

// ---------------------------------------------------------------------------
// One driver at a time.

class SecondDriver : public ::testing::Test {
 protected:
  void SetUp() override {
    pt::Query(dsn(), "CREATE SCHEMA app; CREATE TABLE app.t (id bigint PRIMARY KEY, v text);"
                     "INSERT INTO app.t SELECT g, 'v' || g FROM generate_series(1, 1000) g;");
    ASSERT_EQ(RunCli(dsn(), {"init"}).exit_code, 0);
    auto r = RunCli(dsn(), {"register", RenameFile(name_)});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    r = RunCli(dsn(), {"advance", name_, "--to", "column_added"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  // A second driver is refused with exit 4 naming `holder`, and changes
  // nothing; read-only commands still work.
  void ExpectBusy(const std::string& holder) {
    const std::string before = State(dsn(), name_);
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"advance", name_}, {"advance", name_, "--to", "contracted"},
          {"rollback", name_}}) {
      pt::CliResult r = RunCli(dsn(), args);
      EXPECT_EQ(r.exit_code, 4) << args[0] << ": " << Describe(r);
      EXPECT_NE(r.err.find("busy"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(holder), std::string::npos) << "names the holder " << holder << ": " << r.err;
    }
    pt::CliResult json = RunCli(dsn(), {"--json", "advance", name_});
    EXPECT_EQ(json.exit_code, 4) << Describe(json);
    EXPECT_NE(json.out.find("\"exit_code\":4"), std::string::npos) << json.out;
    pt::CliResult status = RunCli(dsn(), {"status", name_});
    EXPECT_EQ(status.exit_code, 0) << "status does not need the driver lock: " << Describe(status);
    pt::CliResult check = RunCli(dsn(), {"check", name_, "--at-least", "column_added"});
    EXPECT_EQ(check.exit_code, 0) << Describe(check);
    EXPECT_EQ(State(dsn(), name_), before) << "a refused driver changes nothing";
  }

  const std::string& dsn() const { return db_.dsn(); }
  pt::ScratchDatabase db_{"resume_busy"};
  std::string name_ = "0004_rename_t_v";
};

TEST_F(SecondDriver, WhileAnotherDriverIsMidStepGetsExit4NamingIt) {
  pt::Session blocker(dsn(), "test lock holder");
  blocker.Exec("BEGIN; LOCK TABLE app.t IN SHARE MODE");
  pt::ChildProcess first(CliArgv(dsn(), {"advance", name_, "--to", "trigger_installed"}));
  EXPECT_TRUE(pt::WaitUntil([&] { return Int(dsn(), kDriversWaiting) > 0 || !first.Running(); },
                            kWaitSeconds))
      << "gave up waiting for the first driver to wait mid-step";
  ASSERT_TRUE(first.Running()) << Describe(first.Wait());
  // The holder is named by its driver name, "<host>:<pid>" of the first CLI.
  ExpectBusy(":" + std::to_string(first.pid()));
  blocker.Exec("COMMIT");
  pt::CliResult done = first.Wait();
  EXPECT_EQ(done.exit_code, 0) << Describe(done);
  EXPECT_EQ(Phase(dsn(), name_), "trigger_installed");
}

TEST_F(SecondDriver, WhileTheMigrationLockIsHeldGetsExit4NamingTheHolder) {
  // Take the migration's driver lock the way a driver does (control.cc:
  // pg_try_advisory_lock(1885827944, hashtext('<control schema>.<name>'))).
  pt::Session holder(dsn(), "deploy-bot-7");
  holder.Exec("SELECT pg_advisory_lock(1885827944, hashtext('pgshift." + name_ + "'))");
  ExpectBusy("deploy-bot-7");
  holder.Exec("SELECT pg_advisory_unlock(1885827944, hashtext('pgshift." + name_ + "'))");
  auto r = RunCli(dsn(), {"advance", name_});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Phase(dsn(), name_), "trigger_installed");
}

// Advisory locks belong to one database: a driver of a migration with the
// same name in another database of the same server neither blocks this one
// nor shows up as its holder.
TEST_F(SecondDriver, SameMigrationNameInAnotherDatabaseIsNotTheHolder) {
  pt::ScratchDatabase other("resume_busy_other");
  pt::Session elsewhere(other.dsn(), "other-db-bot");
  elsewhere.Exec("SELECT pg_advisory_lock(1885827944, hashtext('pgshift." + name_ + "'))");

  auto r = RunCli(dsn(), {"status", name_});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out.find("other-db-bot"), std::string::npos)
      << "status names a session of another database as this migration's driver: " << r.out;
  r = RunCli(dsn(), {"status", name_, "--json"});
  EXPECT_NE(r.out.find("\"driver\":null"), std::string::npos) << r.out;

  // Held here too: the busy message names this database's holder.
  {
    pt::Session here(dsn(), "this-db-bot");
    here.Exec("SELECT pg_advisory_lock(1885827944, hashtext('pgshift." + name_ + "'))");
    for (int i = 0; i < 3; ++i) {
      r = RunCli(dsn(), {"advance", name_});
      EXPECT_EQ(r.exit_code, 4) << Describe(r);
      EXPECT_NE(r.err.find("this-db-bot"), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find("other-db-bot"), std::string::npos) << r.err;
    }
  }
  r = RunCli(dsn(), {"advance", name_});
  EXPECT_EQ(r.exit_code, 0) << "a lock in another database does not block\n" << Describe(r);
}

}  // namespace
