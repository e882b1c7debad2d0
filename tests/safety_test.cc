// Operating safely (docs/runbook.md, docs/privileges.md): lock discipline and the bound on how long an
// application query waits behind pgshift, blockers named from
// pg_blocking_pids, preflight, plans that change nothing, the contract guard
// with application instances, a non-superuser driver and app role, secrets,
// two drivers, bad input. Real PostgreSQL throughout.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/engine/control.h"
#include "lib/engine/executor.h"
#include "lib/engine/sessions.h"
#include "lib/pg/connection.h"
#include "lib/pg/lock.h"
#include "pgshift/pgshift.h"
#include "tests/support/cli.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace pgshift {
namespace {

using ::pgshift::testing::CatalogSnapshot;
using ::pgshift::testing::ChildProcess;
using ::pgshift::testing::CliArgv;
using ::pgshift::testing::CliResult;
using ::pgshift::testing::Describe;
using ::pgshift::testing::Ident;
using ::pgshift::testing::Lit;
using ::pgshift::testing::Query;
using ::pgshift::testing::QueryValue;
using ::pgshift::testing::RunCli;
using ::pgshift::testing::ScratchDatabase;
using ::pgshift::testing::Session;
using ::pgshift::testing::Spec;
using ::pgshift::testing::WaitUntil;
using ::pgshift::testing::WriteTempFile;
using ::testing::HasSubstr;
using ::testing::Not;

using Clock = std::chrono::steady_clock;

// The context of operation 0 of migration `name`, for running actions
// through the executor directly.
ops::Context TestContext(const std::string& name) {
  ops::Context c;
  c.migration = name;
  c.names = ops::Names(name, 0);
  return c;
}

// A lock mode as history reports write it; kNone for an unknown name.
pg::LockMode Mode(const std::string& name) {
  return pg::ParseLockMode(name).value_or(pg::LockMode::kNone);
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

void MakeUsers(const std::string& dsn, int rows) {
  Query(dsn, absl::StrCat(
                 "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text);"
                 "CREATE INDEX users_name_idx ON users (name);"
                 "INSERT INTO users SELECT g, 'user ' || g, NULL FROM generate_series(1, ",
                 rows, ") g; ANALYZE users"));
}

Spec RenameSpec(const std::string& name) {
  return Spec(name).RenameColumn("users", "name", "full_name");
}

// init + register of the rename spec.
void Registered(const std::string& dsn, const std::string& name) {
  CliResult init = RunCli(dsn, {"init"});
  EXPECT_EQ(init.exit_code, 0) << Describe(init);
  CliResult reg = RunCli(dsn, {"register", RenameSpec(name).File()});
  EXPECT_EQ(reg.exit_code, 0) << Describe(reg);
}

std::string PhaseOf(const std::string& dsn, const std::string& name) {
  return QueryValue(dsn, absl::StrCat("SELECT phase FROM pgshift.migrations WHERE name = ",
                                      Lit(name)));
}

// ---------------------------------------------------------------------------
// Lock discipline

// While pgshift retries a DDL that a long transaction blocks, application
// queries on the table wait at most one lock_timeout each; on giving up the
// CLI exits 4 naming the blocker's pid, state and query; nothing changed.
TEST(LockDiscipline, AppQueriesWaitAtMostOneLockTimeoutAndGiveUpNamesTheBlocker) {
  ScratchDatabase db("lock_bound");
  MakeUsers(db.dsn(), 500);
  Registered(db.dsn(), "0001_rename");
  const std::string before = CatalogSnapshot(db.dsn(), "public");

  Session blocker(db.dsn());
  blocker.Exec("BEGIN");
  blocker.Exec("SELECT count(*) FROM users WHERE id < 10 /* the blocker */");

  ChildProcess cli(CliArgv(db.dsn(), {"--lock-timeout", "500ms", "--retry-deadline", "4s",
                                "--preflight", "off", "advance", "0001_rename"}));
  Session app(db.dsn());
  double worst_ms = 0;
  int queries = 0;
  while (cli.Running()) {
    auto t0 = Clock::now();
    app.Exec("SELECT count(*) FROM users");
    worst_ms = std::max(worst_ms, MsSince(t0));
    ++queries;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CliResult r = cli.Wait();
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  // The safety bound: one lock_timeout (500 ms) plus scheduling slack (the
  // retries go on for 4 s: without the bound a query would wait for seconds).
  EXPECT_LE(worst_ms, 500 + 350) << "an application query waited " << worst_ms << " ms";
  // The scenario really had queries queued behind pgshift's lock request.
  EXPECT_GE(worst_ms, 50) << queries << " queries, none waited: the test did not exercise the bound";
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("pid ", blocker.pid())));
  EXPECT_THAT(r.err, HasSubstr("idle in transaction"));
  EXPECT_THAT(r.err, HasSubstr("/* the blocker */"));
  EXPECT_THAT(r.err, HasSubstr("transaction open"));
  EXPECT_THAT(r.err, HasSubstr("retry deadline"));
  EXPECT_EQ(CatalogSnapshot(db.dsn(), "public"), before);
  EXPECT_EQ(PhaseOf(db.dsn(), "0001_rename"), "registered");
  // The failed attempt is in the history, with the blocker of each wait.
  EXPECT_EQ(QueryValue(db.dsn(),
                       absl::StrCat("SELECT count(*) > 0 FROM pgshift.history h, "
                                    "jsonb_array_elements(h.report->'lock_waits') w, "
                                    "jsonb_array_elements(w->'blockers') b WHERE NOT h.ok "
                                    "AND (b->>'pid')::int = ", blocker.pid())),
            "t");
  blocker.Exec("ROLLBACK");
}

TEST(LockDiscipline, RetriesUntilTheBlockerEndsAndRecordsWhoBlocked) {
  ScratchDatabase db("lock_retry");
  MakeUsers(db.dsn(), 200);
  Registered(db.dsn(), "0002_rename");
  Session blocker(db.dsn());
  blocker.Exec("BEGIN");
  blocker.Exec("SELECT 1 FROM users LIMIT 1");
  ChildProcess cli(CliArgv(db.dsn(), {"--lock-timeout", "200ms", "--retry-deadline", "60s",
                                "--preflight", "off", "advance", "0002_rename"}));
  ASSERT_TRUE(WaitUntil([&] {
    return QueryValue(db.dsn(), "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                "'Lock' AND query LIKE 'ALTER TABLE%users%' AND datname = current_database()") != "0";
  })) << cli.CurrentErr();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // at least one timed-out attempt
  blocker.Exec("COMMIT");
  CliResult r = cli.Wait();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf(db.dsn(), "0002_rename"), "column_added");
  EXPECT_EQ(QueryValue(db.dsn(),
                       absl::StrCat("SELECT count(*) > 0 FROM pgshift.history h, "
                                    "jsonb_array_elements(h.report->'lock_waits') w, "
                                    "jsonb_array_elements(w->'blockers') b WHERE h.ok AND "
                                    "h.step = 'column_added' AND (b->>'pid')::int = ",
                                    blocker.pid())),
            "t");
  EXPECT_NE(QueryValue(db.dsn(), "SELECT lock_wait_ms FROM pgshift.history WHERE step = 'column_added' AND ok"),
            "0");
}

// The lock_timeout budget covers the whole DDL transaction: a transaction
// that got its first lock late and then waits for a second one must not keep
// the application waiting for two lock_timeouts.
TEST(LockDiscipline, LockBudgetCoversTheWholeTransaction) {
  ScratchDatabase db("lock_budget");
  Query(db.dsn(), "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)");
  Session holder_a(db.dsn());
  holder_a.Exec("BEGIN");
  holder_a.Exec("SELECT * FROM a");
  Session holder_b(db.dsn());
  holder_b.Exec("BEGIN");
  holder_b.Exec("SELECT * FROM b /* holds b */");

  auto conn = pg::Connection::Open(db.dsn(), "pgshift budget test");
  ASSERT_TRUE(conn.ok()) << conn.status();
  Options options;
  options.lock_timeout = absl::Seconds(1);
  options.retry_deadline = absl::Milliseconds(1500);
  engine::Control control(**conn, "pgshift");
  engine::Executor executor(**conn, options, control);
  auto monitor = pg::Connection::Open(db.dsn(), "pgshift budget test monitor");
  ASSERT_TRUE(monitor.ok());
  executor.set_monitor([&] { return monitor->get(); });
  ops::Action action;
  action.kind = ops::Action::Kind::kTransaction;
  action.description = "lock a then b";
  action.locks = {{"\"public\".\"a\"", pg::LockMode::kAccessExclusive}};
  action.statements = {"LOCK TABLE a IN ACCESS EXCLUSIVE MODE", "LOCK TABLE b IN ACCESS EXCLUSIVE MODE"};

  absl::Status result;
  std::thread run([&] {
    engine::StepStats stats;
    result = executor.Run(action, TestContext("budget"), &stats);
  });
  // Once pgshift waits for `a`, an application query on `a` queues behind it.
  ASSERT_TRUE(WaitUntil([&] {
    return QueryValue(db.dsn(), "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                "'Lock' AND query LIKE 'LOCK TABLE a%' AND datname = current_database()") != "0";
  }));
  double app_wait_ms = 0;
  std::thread app([&] {
    Session s(db.dsn());
    auto t0 = Clock::now();
    s.Exec("SELECT count(*) FROM a");
    app_wait_ms = MsSince(t0);
  });
  // `a` is released 600 ms into the wait: pgshift gets it, then waits for b
  // only for what is left of its one-second budget.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  holder_a.Exec("COMMIT");
  app.join();
  run.join();
  // Without the budget it would wait ~1600 ms (600 for `a`, then 1000 for `b`).
  EXPECT_LE(app_wait_ms, 1000 + 350) << "the application waited " << app_wait_ms << " ms";
  EXPECT_EQ(result.code(), absl::StatusCode::kDeadlineExceeded) << result;
  EXPECT_THAT(std::string(result.message()), HasSubstr(absl::StrCat("pid ", holder_b.pid())));
  EXPECT_THAT(std::string(result.message()), HasSubstr("/* holds b */"));
  EXPECT_EQ(SqlState(result), "55P03");
  EXPECT_EQ(ExitCodeFor(result), 4);
}

// An action planned as long work under ACCESS EXCLUSIVE is never run.
TEST(LockDiscipline, LongWorkUnderAccessExclusiveIsRefused) {
  ScratchDatabase db("lock_long");
  Query(db.dsn(), "CREATE TABLE a (id int PRIMARY KEY)");
  auto conn = pg::Connection::Open(db.dsn(), "pgshift test");
  ASSERT_TRUE(conn.ok());
  Options options;
  engine::Control control(**conn, "pgshift");
  engine::Executor executor(**conn, options, control);
  ops::Action action;
  action.kind = ops::Action::Kind::kTransaction;
  action.description = "validate something";
  action.locks = {{"\"public\".\"a\"", pg::LockMode::kAccessExclusive}};
  action.long_running = true;
  action.statements = {"ALTER TABLE a ADD COLUMN x int"};
  engine::StepStats stats;
  absl::Status s = executor.Run(action, TestContext("m"), &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM pg_attribute WHERE attrelid = 'a'::regclass AND attname = 'x'"), "0");
}

// "Too big for an unbatched path": a scan or rewrite under ACCESS EXCLUSIVE
// is refused above max_locked_scan_rows, allowed below; catalog-only ACCESS
// EXCLUSIVE statements are fine at any size.
TEST(LockDiscipline, ScanUnderAccessExclusiveOfABigTableIsRefused) {
  ScratchDatabase db("locked_scan");
  Query(db.dsn(), "CREATE TABLE big (id int PRIMARY KEY, v int); "
                  "INSERT INTO big SELECT g, NULL FROM generate_series(1, 50) g");
  auto conn = pg::Connection::Open(db.dsn(), "pgshift test");
  ASSERT_TRUE(conn.ok());
  ops::Action scan;
  scan.kind = ops::Action::Kind::kTransaction;
  scan.description = "SET NOT NULL (scans on this server)";
  scan.locks = {{"\"public\".\"big\"", pg::LockMode::kAccessExclusive}};
  scan.scans_table = true;
  scan.statements = {"ALTER TABLE big ALTER COLUMN v SET NOT NULL"};
  Options options;
  options.max_locked_scan_rows = 10;
  absl::Status s = engine::CheckLockedScan(**conn, scan, options);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("ACCESS EXCLUSIVE"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("more than 10 rows"));
  options.max_locked_scan_rows = 50;
  EXPECT_TRUE(engine::CheckLockedScan(**conn, scan, options).ok());
  options.max_locked_scan_rows = 10;
  ops::Action instant = scan;
  instant.scans_table = false;
  EXPECT_TRUE(engine::CheckLockedScan(**conn, instant, options).ok());
  ops::Action weak = scan;
  weak.locks[0].mode = pg::LockMode::kShareUpdateExclusive;
  EXPECT_TRUE(engine::CheckLockedScan(**conn, weak, options).ok());
  // Through the executor, the refused action changes nothing.
  Options run_options;
  run_options.max_locked_scan_rows = 10;
  engine::Control control(**conn, "pgshift");
  engine::Executor executor(**conn, run_options, control);
  engine::StepStats stats;
  EXPECT_EQ(executor.Run(scan, TestContext("m"), &stats).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'big'::regclass AND attname = 'v'"), "f");
}

// Every DDL transaction of a whole migration took, on its table, no lock
// stronger than the one its plan declares (history.report.locks).
TEST(LockDiscipline, LocksTakenNeverExceedTheDeclaredOnes) {
  ScratchDatabase db("locks_declared");
  MakeUsers(db.dsn(), 300);
  Query(db.dsn(), "ALTER TABLE users ADD CONSTRAINT users_name_len CHECK (length(name) < 100)");
  Registered(db.dsn(), "0003_rename");
  CliResult r = RunCli(db.dsn(), {"advance", "0003_rename", "--to", "contracted"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  testing::Rows rows = Query(db.dsn(), "SELECT l->>'action', l->>'declared', l->>'taken' FROM "
                                       "pgshift.history h, jsonb_array_elements(h.report->'locks') l");
  ASSERT_GE(rows.size(), 5u);
  for (const auto& row : rows) {
    EXPECT_LE(Mode(*row[2]), Mode(*row[1]))
        << *row[0] << ": declared " << *row[1] << ", took " << *row[2];
  }
}

// Every operation at once: one migration with all five kinds on one table.
constexpr char kShopTable[] =
    "CREATE TABLE shop (id int PRIMARY KEY, a text NOT NULL, b int, d text NOT NULL, e text NOT NULL);"
    "CREATE INDEX shop_a_idx ON shop (a); CREATE INDEX shop_e_idx ON shop (e);"
    "INSERT INTO shop SELECT g, 'a' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE g END, 'd' || g, "
    "(g * 1.5)::text FROM generate_series(1, 1000) g; ANALYZE shop";

// JSON written by hand rather than with Spec: BadInput below passes it the
// expressions (and a smuggled statement) that pgshift must refuse.
std::string ShopSpec(const std::string& name, const std::string& fill = "-1",
                     const std::string& up_c = "id * 2", const std::string& down_d = "'gone'",
                     const std::string& up_e = "e::numeric", const std::string& down_e = "e2::text") {
  auto j = [](const std::string& s) { return absl::StrCat("\"", absl::StrReplaceAll(s, {{"\"", "\\\""}}), "\""); };
  return absl::StrCat(
      R"({"name": ")", name, R"(", "operations": [)",
      R"({"rename_column": {"table": "shop", "from": "a", "to": "a2"}},)",
      R"({"set_not_null": {"table": "shop", "column": "b", "fill": )", j(fill), "}},",
      R"({"add_column": {"table": "shop", "column": "c", "type": "int", "not_null": true, "up": )", j(up_c), "}},",
      R"({"drop_column": {"table": "shop", "column": "d", "down": )", j(down_d), "}},",
      R"({"change_type": {"table": "shop", "column": "e", "new_column": "e2", "type": "numeric", "up": )", j(up_e),
      R"(, "down": )", j(down_e), "}}]}");
}

TEST(LockDiscipline, EveryOperationKeepsLongWorkOffAccessExclusive) {
  ScratchDatabase db("all_ops_plan");
  Query(db.dsn(), kShopTable);
  auto d = Driver::Connect(db.dsn());
  ASSERT_TRUE(d.ok());
  for (const std::string& json :
       {ShopSpec("0020_all"),
        Spec("0021_instant").AddColumn("shop", "f", "text").Default("'x'").NotNull().Json()}) {
    auto spec = ParseMigrationJson(json);
    ASSERT_TRUE(spec.ok()) << spec.status();
    absl::StatusOr<Plan> plan = (*d)->PlanMigration(*spec);
    ASSERT_TRUE(plan.ok()) << plan.status();
    int access_exclusive = 0;
    for (const auto* steps : {&plan->steps, &plan->rollback}) {
      for (const PlannedStep& step : *steps) {
        for (const PlannedStatement& st : step.statements) {
          if (st.lock != "ACCESS EXCLUSIVE") continue;
          ++access_exclusive;
          EXPECT_TRUE(st.transactional) << st.sql;
          EXPECT_FALSE(st.scans_table) << st.sql;
          EXPECT_FALSE(st.rewrites_table) << st.sql;
          EXPECT_FALSE(st.batched) << st.sql;
        }
      }
    }
    EXPECT_GT(access_exclusive, 0);
  }
}

// A whole migration of every kind: each DDL transaction took, on its table,
// no lock stronger than declared; the data ends as expected.
TEST(LockDiscipline, EveryOperationTakesNoStrongerLockThanItsPlanSays) {
  ScratchDatabase db("all_ops_locks");
  Query(db.dsn(), kShopTable);
  const std::string spec = WriteTempFile(ShopSpec("0022_all"));
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"init"}, {"register", spec}, {"advance", "0022_all", "--to", "contracted"}}) {
    CliResult r = RunCli(db.dsn(), cmd);
    ASSERT_EQ(r.exit_code, 0) << cmd[0] << ": " << Describe(r);
  }
  testing::Rows rows = Query(db.dsn(), "SELECT l->>'action', l->>'declared', l->>'taken' FROM "
                                       "pgshift.history h, jsonb_array_elements(h.report->'locks') l");
  ASSERT_GE(rows.size(), 15u);
  for (const auto& row : rows) {
    EXPECT_LE(Mode(*row[2]), Mode(*row[1]))
        << *row[0] << ": declared " << *row[1] << ", took " << *row[2];
  }
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM shop WHERE a2 = 'a' || id AND b = CASE WHEN id % 3 = 0 "
                                 "THEN -1 ELSE id END AND c = id * 2 AND e2 = (id * 1.5)"),
            "1000");
}

// Expressions that do not parse or name unknown columns are bad input:
// plan and register exit 2 and nothing changes.
TEST(BadInput, ExpressionsThatDoNotParseOrNameUnknownColumns) {
  ScratchDatabase db("bad_exprs");
  Query(db.dsn(), kShopTable);
  ASSERT_EQ(RunCli(db.dsn(), {"init"}).exit_code, 0);
  const std::string before = CatalogSnapshot(db.dsn(), "public");
  struct Case {
    const char* what;
    std::string json;
  };
  const std::vector<Case> cases = {
      {"fill does not parse", ShopSpec("0023_a", "1 +")},
      {"fill names an unknown column", ShopSpec("0023_b", "no_such_column")},
      {"up does not parse", ShopSpec("0023_c", "-1", "id *")},
      {"up names an unknown column", ShopSpec("0023_d", "-1", "missing_col * 2")},
      {"down does not parse", ShopSpec("0023_e", "-1", "id * 2", "'x' ||")},
      {"change_type up does not parse", ShopSpec("0023_f", "-1", "id * 2", "'gone'", "e::numeric)")},
      {"change_type down names an unknown column", ShopSpec("0023_g", "-1", "id * 2", "'gone'", "e::numeric", "nope::text")},
      {"an expression smuggling a statement", ShopSpec("0023_h", "1); DROP TABLE shop; SELECT (1")},
      {"a default that does not parse",
       R"({"name": "0023_i", "operations": [{"add_column": {"table": "shop", "column": "f", "type": "int", "default": "1 +"}}]})"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string spec = WriteTempFile(c.json);
    CliResult plan = RunCli(db.dsn(), {"plan", spec});
    EXPECT_EQ(plan.exit_code, 2) << Describe(plan);
    CliResult reg = RunCli(db.dsn(), {"register", spec});
    EXPECT_EQ(reg.exit_code, 2) << Describe(reg);
    EXPECT_FALSE(reg.err.empty());
  }
  EXPECT_EQ(CatalogSnapshot(db.dsn(), "public"), before);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM pgshift.migrations"), "0");
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM shop"), "1000");
}

// ---------------------------------------------------------------------------
// Preflight

TEST(Preflight, RefuseNamesTheLongTransactionAndChangesNothing) {
  ScratchDatabase db("preflight_refuse");
  MakeUsers(db.dsn(), 100);
  Registered(db.dsn(), "0004_rename");
  const std::string before = CatalogSnapshot(db.dsn(), "public");
  Session old_tx(db.dsn());
  old_tx.Exec("BEGIN");
  old_tx.Exec("SELECT count(*) FROM users /* report query */");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // older than --long-transaction
  CliResult r = RunCli(db.dsn(), {"--preflight", "refuse", "--long-transaction", "200ms",
                                      "advance", "0004_rename"});
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("pid ", old_tx.pid())));
  EXPECT_THAT(r.err, HasSubstr("idle in transaction"));
  EXPECT_THAT(r.err, HasSubstr("/* report query */"));
  EXPECT_THAT(r.err, HasSubstr("refused"));
  EXPECT_EQ(CatalogSnapshot(db.dsn(), "public"), before);
  EXPECT_EQ(PhaseOf(db.dsn(), "0004_rename"), "registered");
  EXPECT_EQ(QueryValue(db.dsn(),
                       absl::StrCat("SELECT count(*) FROM pgshift.history h, "
                                    "jsonb_array_elements(h.report->'preflight') p, "
                                    "jsonb_array_elements(p->'sessions') s WHERE p->>'outcome' = "
                                    "'refused' AND (s->>'pid')::int = ", old_tx.pid())),
            "1");
  old_tx.Exec("ROLLBACK");
}

TEST(Preflight, WaitReportsThenProceedsWhenTheTransactionEnds) {
  ScratchDatabase db("preflight_wait");
  MakeUsers(db.dsn(), 100);
  Registered(db.dsn(), "0005_rename");
  Session old_tx(db.dsn());
  old_tx.Exec("BEGIN");
  old_tx.Exec("SELECT count(*) FROM users");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ChildProcess cli(CliArgv(db.dsn(), {"--json", "--long-transaction", "200ms", "advance", "0005_rename"}));
  ASSERT_TRUE(WaitUntil([&] { return absl::StrContains(cli.CurrentErr(), "\"outcome\":\"waiting\""); }))
      << cli.CurrentErr();
  // Waiting, not queueing: the application is not blocked by pgshift meanwhile.
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"), "0");
  old_tx.Exec("COMMIT");
  CliResult r = cli.Wait();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("\"event\":\"preflight\""));
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("\"pid\":", old_tx.pid())));
  EXPECT_THAT(r.err, HasSubstr("\"outcome\":\"cleared\""));
  EXPECT_EQ(PhaseOf(db.dsn(), "0005_rename"), "column_added");
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT jsonb_array_length(report->'preflight') FROM pgshift.history "
                                 "WHERE step = 'column_added' AND ok"),
            "2");
}

TEST(Preflight, OffSkipsTheCheckAndWaitGivesUpAtTheDeadline) {
  ScratchDatabase db("preflight_deadline");
  MakeUsers(db.dsn(), 100);
  Registered(db.dsn(), "0006_rename");
  Session old_tx(db.dsn());
  old_tx.Exec("BEGIN");
  old_tx.Exec("SELECT count(*) FROM users");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CliResult wait = RunCli(db.dsn(), {"--long-transaction", "200ms", "--retry-deadline", "1s",
                                         "advance", "0006_rename"});
  EXPECT_EQ(wait.exit_code, 4) << Describe(wait);
  EXPECT_THAT(wait.err, HasSubstr("preflight before column_added: waited"));
  EXPECT_THAT(wait.err, HasSubstr(absl::StrCat("pid ", old_tx.pid())));
  // With the check off, the lock retry loop meets the same blocker.
  CliResult off = RunCli(db.dsn(), {"--preflight", "off", "--lock-timeout", "100ms",
                                        "--retry-deadline", "500ms", "advance", "0006_rename"});
  EXPECT_EQ(off.exit_code, 4) << Describe(off);
  EXPECT_THAT(off.err, Not(HasSubstr("preflight")));
  EXPECT_THAT(off.err, HasSubstr("could not take its lock"));
  EXPECT_EQ(PhaseOf(db.dsn(), "0006_rename"), "registered");
  old_tx.Exec("ROLLBACK");
}

// ---------------------------------------------------------------------------
// Plan

TEST(Plan, ChangesNothingAndWorksWithoutInit) {
  ScratchDatabase db("plan_readonly");
  MakeUsers(db.dsn(), 100);
  const std::string spec = RenameSpec("0007_rename").File();
  const std::string before = CatalogSnapshot(db.dsn(), "public");
  CliResult text = RunCli(db.dsn(), {"plan", spec});
  ASSERT_EQ(text.exit_code, 0) << Describe(text);
  CliResult json = RunCli(db.dsn(), {"--json", "plan", spec});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  EXPECT_EQ(CatalogSnapshot(db.dsn(), "public"), before);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgshift'"), "0");

  // With the control schema: its tables are unchanged too.
  ASSERT_EQ(RunCli(db.dsn(), {"init"}).exit_code, 0);
  auto control_rows = [&] {
    return QueryValue(db.dsn(), "SELECT (SELECT count(*) FROM pgshift.migrations) || '/' || "
                                "(SELECT count(*) FROM pgshift.history) || '/' || "
                                "(SELECT count(*) FROM pgshift.checkpoints) || '/' || "
                                "(SELECT count(*) FROM pgshift.instances)");
  };
  const std::string control_before = control_rows() + CatalogSnapshot(db.dsn(), "pgshift");
  ASSERT_EQ(RunCli(db.dsn(), {"plan", spec}).exit_code, 0);
  EXPECT_EQ(control_rows() + CatalogSnapshot(db.dsn(), "pgshift"), control_before);
  EXPECT_EQ(CatalogSnapshot(db.dsn(), "public"), before);
}

TEST(Plan, ShowsEveryStatementWithLockScanRowsAndHazards) {
  ScratchDatabase db("plan_content");
  MakeUsers(db.dsn(), 1000);
  auto d = Driver::Connect(db.dsn());
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<Plan> plan = (*d)->PlanMigration(RenameSpec("0008_rename").Migration());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->server_version, (*d)->server_version());
  bool saw_cic = false, saw_backfill = false, saw_irreversible = false, saw_removed = false;
  bool saw_validate_scan = false;
  for (const PlannedStep& step : plan->steps) {
    for (const PlannedStatement& st : step.statements) {
      EXPECT_FALSE(st.sql.empty());
      EXPECT_FALSE(st.lock.empty());
      if (absl::StartsWith(st.sql, "CREATE INDEX CONCURRENTLY")) {
        saw_cic = true;
        EXPECT_FALSE(st.transactional);
        EXPECT_EQ(st.lock, "SHARE UPDATE EXCLUSIVE");
        EXPECT_EQ(st.rows_estimate, 1000);
      }
      if (st.batched) {
        saw_backfill = true;
        EXPECT_EQ(st.rows_estimate, 1000);
        EXPECT_EQ(step.rows_estimate, 1000);
      }
      if (absl::StrContains(st.sql, "VALIDATE CONSTRAINT")) {
        saw_validate_scan = st.scans_table && st.lock == "SHARE UPDATE EXCLUSIVE";
      }
      // Long work never under ACCESS EXCLUSIVE.
      if (st.lock == "ACCESS EXCLUSIVE") {
        EXPECT_FALSE(st.scans_table || st.rewrites_table || st.batched || !st.transactional) << st.sql;
      }
    }
    for (const std::string& h : step.hazards) {
      saw_irreversible |= absl::StartsWith(h, "irreversible");
      saw_removed |= absl::StrContains(h, "data removed: column \"name\"");
    }
  }
  EXPECT_TRUE(saw_cic && saw_backfill && saw_irreversible && saw_removed && saw_validate_scan);
  bool version_note = false;
  for (const auto& n : plan->notes) {
    version_note |= absl::StrContains(n, absl::StrCat("server_version_num ", plan->server_version));
  }
  EXPECT_TRUE(version_note);
  EXPECT_FALSE(plan->rollback.empty());
}

// ---------------------------------------------------------------------------
// Contract guard

class ContractGuard : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<ScratchDatabase>("contract_guard");
    MakeUsers(db_->dsn(), 100);
    Registered(db_->dsn(), kName);
    CliResult r = RunCli(db_->dsn(), {"advance", kName, "--to", "switched"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  const std::string& dsn() { return db_->dsn(); }
  static constexpr char kName[] = "0009_rename";
  std::unique_ptr<ScratchDatabase> db_;
};

TEST_F(ContractGuard, RefusedWhileAnOldShapeInstanceIsLive) {
  InstanceOptions o;
  o.instance_id = "api-1";
  o.description = "api v41";
  auto old_app = InstanceRegistration::Start(dsn(), kName, Shape::kOld, o);
  ASSERT_TRUE(old_app.ok()) << old_app.status();
  InstanceOptions n;
  n.instance_id = "api-2";
  ASSERT_TRUE(DeclareInstance(dsn(), kName, Shape::kNew, n).ok());
  const std::string before = CatalogSnapshot(dsn(), "public");

  CliResult r = RunCli(dsn(), {"advance", kName, "--to", "contracted"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("\"api-1\" (api v41)"));
  EXPECT_THAT(r.err, Not(HasSubstr("api-2")));
  EXPECT_THAT(r.err, HasSubstr("--force"));
  EXPECT_EQ(CatalogSnapshot(dsn(), "public"), before);
  EXPECT_EQ(PhaseOf(dsn(), kName), "switched");

  auto d = Driver::Connect(dsn());
  ASSERT_TRUE(d.ok());
  auto adv = (*d)->Advance(kName, Phase::kContracted);
  EXPECT_EQ(adv.status().code(), absl::StatusCode::kFailedPrecondition) << adv.status();
  auto status = (*d)->Status(kName);
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->instances.size(), 2u);
  CliResult shown = RunCli(dsn(), {"status", kName});
  EXPECT_THAT(shown.out, HasSubstr("instance api-1 needs the old shape"));

  // The instance shuts down cleanly: its declaration goes with it.
  old_app->reset();
  CliResult ok = RunCli(dsn(), {"advance", kName, "--to", "contracted"});
  EXPECT_EQ(ok.exit_code, 0) << Describe(ok);
  EXPECT_EQ(PhaseOf(dsn(), kName), "contracted");
}

TEST_F(ContractGuard, ForceContractsAndRecordsWhoWasOverridden) {
  InstanceOptions o;
  o.instance_id = "worker-7";
  ASSERT_TRUE(DeclareInstance(dsn(), kName, Shape::kOld, o).ok());
  CliResult r = RunCli(dsn(), {"advance", kName, "--force"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf(dsn(), kName), "contracted");
  EXPECT_EQ(QueryValue(dsn(), "SELECT report->'forced_past_old_instances'->>0 FROM pgshift.history "
                              "WHERE step = 'contracted' AND ok"),
            "worker-7");
}

TEST_F(ContractGuard, AnInstanceThatDiedStopsCountingWithoutCleanUp) {
  InstanceOptions o;
  o.instance_id = "crashed-pod";
  o.ttl = absl::Milliseconds(500);
  ASSERT_TRUE(DeclareInstance(dsn(), kName, Shape::kOld, o).ok());  // then never refreshed
  EXPECT_EQ(RunCli(dsn(), {"advance", kName}).exit_code, 1);
  ASSERT_TRUE(WaitUntil([&] {
    return QueryValue(dsn(), "SELECT count(*) FROM pgshift.instances WHERE expires_at > now()") == "0";
  }));
  CliResult r = RunCli(dsn(), {"advance", kName});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf(dsn(), kName), "contracted");
}

TEST_F(ContractGuard, ARegistrationKeepsItselfLive) {
  InstanceOptions o;
  o.instance_id = "long-lived";
  o.ttl = absl::Milliseconds(1200);
  auto reg = InstanceRegistration::Start(dsn(), kName, Shape::kOld, o);
  ASSERT_TRUE(reg.ok());
  // Two ttls later it is still live, refreshed by its thread.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_TRUE((*reg)->last_refresh().ok()) << (*reg)->last_refresh();
  EXPECT_EQ(RunCli(dsn(), {"advance", kName}).exit_code, 1);
  EXPECT_EQ(PhaseOf(dsn(), kName), "switched");
}

// A control schema made by an older pgshift (version 1: no instances table,
// no history.report, no migrations.paused) is refused until `init` upgrades
// it, keeping its data;
// startup checks keep working meanwhile.
TEST(ControlSchema, VersionOneIsUpgradedByInit) {
  ScratchDatabase db("control_v1");
  MakeUsers(db.dsn(), 50);
  Registered(db.dsn(), "0015_rename");
  Query(db.dsn(), "DROP TABLE pgshift.instances; ALTER TABLE pgshift.history DROP COLUMN report;"
                  "ALTER TABLE pgshift.migrations DROP COLUMN paused, DROP COLUMN source_file,"
                  " DROP COLUMN source_checksum, DROP COLUMN baselined;"
                  "UPDATE pgshift.meta SET value = '1' WHERE key = 'schema_version'");
  CliResult refused = RunCli(db.dsn(), {"advance", "0015_rename"});
  EXPECT_EQ(refused.exit_code, 1) << Describe(refused);
  EXPECT_THAT(refused.err, HasSubstr("run `pgshift init` to upgrade"));
  EXPECT_EQ(RunCli(db.dsn(), {"check", "0015_rename", "--at-least", "registered"}).exit_code, 0);
  InstanceOptions o;
  o.instance_id = "x";
  EXPECT_EQ(DeclareInstance(db.dsn(), "0015_rename", Shape::kOld, o).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(RunCli(db.dsn(), {"init"}).exit_code, 0);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT value FROM pgshift.meta WHERE key = 'schema_version'"), "5");
  EXPECT_EQ(PhaseOf(db.dsn(), "0015_rename"), "registered");
  CliResult r = RunCli(db.dsn(), {"advance", "0015_rename"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(DeclareInstance(db.dsn(), "0015_rename", Shape::kOld, o).ok());
}

// An upgrade (migrate runs it in deploy pipelines) alters the control
// tables every startup check reads: behind a session holding them it gives
// up after lock_timeout (exit 4, nothing changed) instead of queueing, with
// every startup check queued behind it, for as long as that session lasts.
TEST(ControlSchema, AnUpgradeBehindAReaderGivesUpAfterLockTimeout) {
  ScratchDatabase db("control_upgrade_lock");
  MakeUsers(db.dsn(), 10);
  Registered(db.dsn(), "0016_rename");
  Query(db.dsn(), "ALTER TABLE pgshift.migrations DROP COLUMN source_file, DROP COLUMN source_checksum,"
                  " DROP COLUMN baselined;"
                  "UPDATE pgshift.meta SET value = '3' WHERE key = 'schema_version'");
  pgshift::testing::Session reader(db.dsn(), "pg_dump-like reader");
  reader.Exec("BEGIN; SELECT count(*) FROM pgshift.migrations");
  CliResult r = pgshift::testing::RunCli(db.dsn(), {"--lock-timeout", "200ms", "init"});
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("lock_timeout (200ms)")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("Nothing was changed")) << Describe(r);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT value FROM pgshift.meta WHERE key = 'schema_version'"), "3");
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                 "'pgshift.migrations'::regclass AND attname = 'source_file'"),
            "0");
  // The startup check still answers meanwhile.
  EXPECT_EQ(pgshift::testing::RunCli(db.dsn(), {"check", "0016_rename", "--at-least", "registered"}).exit_code, 0);
  reader.Exec("COMMIT");
  r = pgshift::testing::RunCli(db.dsn(), {"init"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT value FROM pgshift.meta WHERE key = 'schema_version'"), "5");
}

// A table of someone else's that happens to sit where pgshift's control
// tables go is refused (exit 2) and left exactly as it was, by init and by
// every other command; pgshift knows its own by a marker, not by the name.
TEST(ControlSchema, AForeignTableIsRefusedAndLeftUntouched) {
  ScratchDatabase db("control_foreign");
  Query(db.dsn(), "CREATE SCHEMA pgshift; CREATE TABLE pgshift.migrations (id int PRIMARY KEY,"
                  " version text, applied_at timestamptz); INSERT INTO pgshift.migrations VALUES (1, 'v1', now())");
  const std::string before = pgshift::testing::CatalogSnapshot(db.dsn(), "pgshift");
  const std::string dir = pgshift::testing::TempPath("foreign_dir");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  MakeUsers(db.dsn(), 10);
  {
    std::ofstream f(dir + "/0001_rename.json");
    f << Spec("0001_rename").RenameColumn("users", "name", "full_name").Json();
  }
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"init"}, {"status"}, {"advance", "m"}, {"migrate", dir}}) {
    SCOPED_TRACE(cmd[0]);
    CliResult r = RunCli(db.dsn(), cmd);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_THAT(r.err, HasSubstr("holds tables pgshift did not create: \"pgshift\".\"migrations\"")) << Describe(r);
  }
  std::filesystem::remove_all(dir);
  EXPECT_EQ(pgshift::testing::CatalogSnapshot(db.dsn(), "pgshift"), before);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT to_regclass('pgshift.meta') IS NULL"), "t");
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT version FROM pgshift.migrations"), "v1");
  // Another schema is pgshift's own.
  EXPECT_EQ(RunCli(db.dsn(), {"--control-schema", "deploy", "init"}).exit_code, 0);
}

// A control schema a newer pgshift upgraded is refused (exit 2, "upgrade
// pgshift") by init, which must not write its own version over it, and by
// every command that would work on a layout it does not know.
TEST(ControlSchema, ANewerVersionIsRefusedNotDowngraded) {
  ScratchDatabase db("control_newer");
  MakeUsers(db.dsn(), 10);
  Registered(db.dsn(), "0017_rename");
  Query(db.dsn(), "UPDATE pgshift.meta SET value = '99' WHERE key = 'schema_version'");
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"init"}, {"status"}, {"status", "0017_rename"}, {"advance", "0017_rename"},
           {"rollback", "0017_rename"}}) {
    SCOPED_TRACE(cmd[0]);
    CliResult r = RunCli(db.dsn(), cmd);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_THAT(r.err, HasSubstr("at version 99, newer than this pgshift knows")) << Describe(r);
    EXPECT_THAT(r.err, HasSubstr("Upgrade pgshift")) << Describe(r);
  }
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT value FROM pgshift.meta WHERE key = 'schema_version'"), "99");
  EXPECT_EQ(PhaseOf(db.dsn(), "0017_rename"), "registered");
}

// Damage by hand: a table whose loss costs no state (history) is recreated
// by init, and every other command says to run it; a column holding state
// (migrations.phase) is reported exactly, by init and the others, and
// nothing is changed.
TEST(ControlSchema, DamageIsRepairedOrReportedExactly) {
  ScratchDatabase db("control_damaged");
  MakeUsers(db.dsn(), 10);
  Registered(db.dsn(), "0018_rename");
  Query(db.dsn(), "DROP TABLE pgshift.history");
  CliResult r = RunCli(db.dsn(), {"status", "0018_rename"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("table \"pgshift\".\"history\" is missing; run `pgshift init` to repair"));
  ASSERT_EQ(RunCli(db.dsn(), {"init"}).exit_code, 0);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT to_regclass('pgshift.history') IS NOT NULL"), "t");
  r = RunCli(db.dsn(), {"advance", "0018_rename"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM pgshift.history WHERE ok"), "1");

  // checkpoints, with a migration in flight: which of its statements ran,
  // where its backfill stands. Not recreated empty.
  {
    const std::string saved = CatalogSnapshot(db.dsn(), "pgshift");
    Query(db.dsn(), "ALTER TABLE pgshift.checkpoints RENAME TO checkpoints_aside");
    for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
             {"init"}, {"status"}, {"rollback", "0018_rename"}}) {
      SCOPED_TRACE(cmd[0]);
      r = RunCli(db.dsn(), cmd);
      EXPECT_EQ(r.exit_code, 2) << Describe(r);
      EXPECT_THAT(r.err, HasSubstr("table \"pgshift\".\"checkpoints\" is missing while 1 migration(s) are in flight"))
          << Describe(r);
    }
    EXPECT_EQ(PhaseOf(db.dsn(), "0018_rename"), "column_added");
    Query(db.dsn(), "ALTER TABLE pgshift.checkpoints_aside RENAME TO checkpoints");
    EXPECT_EQ(CatalogSnapshot(db.dsn(), "pgshift"), saved);
  }

  Query(db.dsn(), "ALTER TABLE pgshift.migrations DROP COLUMN phase; ALTER TABLE pgshift.checkpoints ALTER COLUMN rows_done TYPE numeric");
  const std::string before = pgshift::testing::CatalogSnapshot(db.dsn(), "pgshift");
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"init"}, {"status"}, {"advance", "0018_rename"}}) {
    SCOPED_TRACE(cmd[0]);
    r = RunCli(db.dsn(), cmd);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_THAT(r.err, HasSubstr("is damaged: table \"pgshift\".\"migrations\" lacks column \"phase\" (text)"))
        << Describe(r);
    EXPECT_THAT(r.err, HasSubstr("column \"rows_done\" of \"pgshift\".\"checkpoints\" is numeric, not bigint"))
        << Describe(r);
  }
  EXPECT_EQ(pgshift::testing::CatalogSnapshot(db.dsn(), "pgshift"), before);
}

// The same migration (or any touching the same table) under a second
// control schema is refused while the first has it active: the second would
// otherwise take its own lease and contract under the first's feet. Other
// tables are free, and once the first is done the second may go on.
TEST(ControlSchema, ASecondControlSchemaRefusesATableAnotherIsChanging) {
  ScratchDatabase db("control_second");
  MakeUsers(db.dsn(), 50);
  Query(db.dsn(), "CREATE TABLE orders (id int PRIMARY KEY, note text)");
  const std::string file = Spec("0020_rename").RenameColumn("users", "name", "full_name").File();
  ASSERT_EQ(RunCli(db.dsn(), {"init"}).exit_code, 0);
  ASSERT_EQ(RunCli(db.dsn(), {"register", file}).exit_code, 0);
  ASSERT_EQ(RunCli(db.dsn(), {"advance", "0020_rename", "--to", "validated"}).exit_code, 0);
  ASSERT_EQ(RunCli(db.dsn(), {"--control-schema", "other", "init"}).exit_code, 0);
  const std::string touching = Spec("0021_display").RenameColumn("users", "name", "display").File();
  for (const std::string& f : {file, touching}) {
    for (const char* cmd : {"plan", "register"}) {
      SCOPED_TRACE(std::string(cmd) + " " + f);
      CliResult r = RunCli(db.dsn(), {"--control-schema", "other", cmd, f});
      EXPECT_EQ(r.exit_code, 2) << Describe(r);
      EXPECT_THAT(r.err, HasSubstr("active migration \"0020_rename\" of control schema \"pgshift\"")) << Describe(r);
    }
  }
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM other.migrations"), "0");
  // A directory run under the second schema stops there too, naming it.
  const std::string dir = pgshift::testing::TempPath("second_dir");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  {
    std::ofstream f(dir + "/0020_rename.json");
    f << Spec("0020_rename").RenameColumn("users", "name", "full_name").Json();
  }
  CliResult r = RunCli(db.dsn(), {"--control-schema", "other", "migrate", dir});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("from control schema \"pgshift\"")) << Describe(r);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM other.migrations"), "0");
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                                 "AND column_name = 'name'"),
            "1");
  // Another table is free.
  r = RunCli(db.dsn(), {"--control-schema", "other", "register",
                        Spec("0022_orders").RenameColumn("orders", "note", "remark").File()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  // Once the first is finished, the table is free again.
  ASSERT_EQ(RunCli(db.dsn(), {"advance", "0020_rename", "--to", "contracted"}).exit_code, 0);
  r = RunCli(db.dsn(), {"--control-schema", "other", "register",
                        Spec("0023_display").RenameColumn("users", "full_name", "display").File()});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  std::filesystem::remove_all(dir);
}

// A control schema made before pgshift marked its own (no comment on meta)
// is still pgshift's: init upgrades it and marks it.
TEST(ControlSchema, AnUnmarkedSchemaOfAnOlderPgshiftIsAdopted) {
  ScratchDatabase db("control_unmarked");
  MakeUsers(db.dsn(), 10);
  Registered(db.dsn(), "0019_rename");
  Query(db.dsn(), "COMMENT ON TABLE pgshift.meta IS NULL;"
                  "ALTER TABLE pgshift.checkpoints DROP COLUMN waiting, DROP COLUMN pace;"
                  "UPDATE pgshift.meta SET value = '4' WHERE key = 'schema_version'");
  CliResult r = RunCli(db.dsn(), {"init"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT value FROM pgshift.meta WHERE key = 'schema_version'"), "5");
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT obj_description('pgshift.meta'::regclass, 'pg_class') LIKE 'pgshift control schema%'"), "t");
  EXPECT_EQ(PhaseOf(db.dsn(), "0019_rename"), "registered");
}

// ---------------------------------------------------------------------------
// No superuser

constexpr auto WithUser = ::pgshift::testing::DsnWithUser;

TEST(Privileges, NonSuperuserDriverAndAnAppRoleThatOnlyChecks) {
  ScratchDatabase db("privileges");
  const std::string suffix = std::to_string(getpid());
  const std::string drv = "pgshift_drv_" + suffix, app = "pgshift_app_" + suffix,
                    checker = "pgshift_chk_" + suffix;
  for (const auto& role : {drv, app, checker}) {
    Query(db.dsn(), absl::StrCat("DROP ROLE IF EXISTS ", role, "; CREATE ROLE ", role, " LOGIN"));
  }
  // Exactly the grants of docs/privileges.md.
  Query(db.dsn(), absl::StrCat(
      "GRANT CREATE ON DATABASE ", db.name(), " TO ", drv, ";"
      "CREATE SCHEMA shop; GRANT USAGE, CREATE ON SCHEMA shop TO ", drv, ";"
      "CREATE TABLE shop.users (id int PRIMARY KEY, name text NOT NULL);"
      "CREATE INDEX users_name_idx ON shop.users (name);"
      "INSERT INTO shop.users SELECT g, 'u' || g FROM generate_series(1, 300) g;"
      "ALTER TABLE shop.users OWNER TO ", drv, ";"
      "GRANT USAGE ON SCHEMA shop TO ", app, ";"
      "GRANT SELECT, INSERT, UPDATE ON shop.users TO ", app));
  const std::string drv_dsn = WithUser(db.dsn(), drv), app_dsn = WithUser(db.dsn(), app),
                    chk_dsn = WithUser(db.dsn(), checker);
  ASSERT_EQ(QueryValue(drv_dsn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"), "f");

  const std::string spec = Spec("0010_priv").Schema("shop").RenameColumn("users", "name", "full_name").File();
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"init"}, {"plan", spec}, {"register", spec},
           {"advance", "0010_priv", "--to", "switched"}}) {
    CliResult r = RunCli(drv_dsn, cmd);
    ASSERT_EQ(r.exit_code, 0) << cmd[0] << ": " << Describe(r);
  }
  Query(drv_dsn, absl::StrCat(
      "GRANT USAGE ON SCHEMA pgshift TO ", app, ", ", checker, ";"
      "GRANT SELECT ON pgshift.migrations TO ", app, ", ", checker, ";"
      "GRANT SELECT, INSERT, UPDATE, DELETE ON pgshift.instances TO ", app));

  // The check-only role: phases yes, declarations no.
  EXPECT_EQ(RunCli(chk_dsn, {"check", "0010_priv", "--at-least", "switched"}).exit_code, 0);
  EXPECT_EQ(RunCli(chk_dsn, {"check", "0010_priv", "--at-least", "contracted"}).exit_code, 3);
  InstanceOptions io;
  io.instance_id = "app-1";
  EXPECT_EQ(DeclareInstance(chk_dsn, "0010_priv", Shape::kNew, io).code(),
            absl::StatusCode::kPermissionDenied);
  // The app role declares its shape and cannot drive.
  EXPECT_TRUE(DeclareInstance(app_dsn, "0010_priv", Shape::kOld, io).ok());
  CliResult refused = RunCli(drv_dsn, {"advance", "0010_priv"});
  EXPECT_EQ(refused.exit_code, 1) << Describe(refused);
  EXPECT_THAT(refused.err, HasSubstr("app-1"));
  EXPECT_TRUE(WithdrawInstance(app_dsn, "0010_priv", "app-1").ok());
  CliResult app_drives = RunCli(app_dsn, {"advance", "0010_priv"});
  EXPECT_NE(app_drives.exit_code, 0);
  EXPECT_EQ(PhaseOf(db.dsn(), "0010_priv"), "switched");

  CliResult done = RunCli(drv_dsn, {"advance", "0010_priv"});
  EXPECT_EQ(done.exit_code, 0) << Describe(done);
  EXPECT_EQ(QueryValue(app_dsn, "SELECT string_agg(full_name, ',' ORDER BY id) FROM shop.users WHERE id <= 3"),
            "u1,u2,u3");
  Query(db.dsn(), absl::StrCat("DROP SCHEMA pgshift CASCADE; DROP SCHEMA shop CASCADE; REVOKE ALL ON "
                               "DATABASE ", db.name(), " FROM ", drv));
  for (const auto& role : {drv, app, checker}) Query(db.dsn(), absl::StrCat("DROP ROLE ", role));
}

// ---------------------------------------------------------------------------
// Secrets

TEST(Secrets, ThePasswordNeverAppearsInOutputErrorsOrControlTables) {
  ScratchDatabase db("secrets");
  MakeUsers(db.dsn(), 100);
  const std::string secret = "Sup3rS3cr3tPw";
  // The test cluster trusts local connections: the password is accepted and ignored.
  const std::string dsn = absl::StrCat(db.dsn(), " password=", secret);
  const std::string spec = RenameSpec("0011_secret").File();
  const std::string changed = Spec("0011_secret").RenameColumn("users", "name", "fullname").File();
  std::vector<CliResult> results;
  for (const bool json : {false, true}) {
    auto run = [&](const std::string& d, std::vector<std::string> cmd) {
      if (json) cmd.insert(cmd.begin(), "--json");
      results.push_back(RunCli(d, cmd));
    };
    run(dsn, {"init"});
    run(dsn, {"plan", spec});
    run(dsn, {"register", spec});
    run(dsn, {"register", changed});        // exit 2
    run(dsn, {"advance", "0011_secret"});
    run(dsn, {"advance", "no_such_migration"});    // exit 2
    run(dsn, {"status"});
    run(dsn, {"check", "0011_secret", "--at-least", "contracted"});
    // Connection failures echo the connection string: redacted.
    run(absl::StrCat("host=127.0.0.1 port=1 dbname=x user=u password=", secret), {"status"});
    run(absl::StrCat("postgresql://u:", secret, "@127.0.0.1:1/x"), {"status"});
  }
  bool saw_redacted = false;
  for (const CliResult& r : results) {
    EXPECT_THAT(r.out + r.err, Not(HasSubstr(secret))) << Describe(r);
    saw_redacted |= absl::StrContains(r.err + r.out, "password=********");
  }
  EXPECT_TRUE(saw_redacted);
  // The driver API's errors.
  auto bad = Driver::Connect(absl::StrCat("host=127.0.0.1 port=1 password=", secret));
  EXPECT_THAT(std::string(bad.status().message()), Not(HasSubstr(secret)));
  // Nothing stored holds it.
  EXPECT_EQ(QueryValue(db.dsn(), absl::StrCat(
                "SELECT (SELECT count(*) FROM pgshift.migrations m WHERE row_to_json(m)::text LIKE '%",
                secret, "%') + (SELECT count(*) FROM pgshift.history h WHERE row_to_json(h)::text LIKE '%",
                secret, "%') + (SELECT count(*) FROM pgshift.checkpoints c WHERE row_to_json(c)::text LIKE '%",
                secret, "%') + (SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%",
                secret, "%')")),
            "0");
}

// ---------------------------------------------------------------------------
// Two drivers, changed files, odd identifiers

TEST(TwoDrivers, TheSecondIsBusyNamesTheFirstAndChangesNothing) {
  ScratchDatabase db("two_drivers");
  MakeUsers(db.dsn(), 2000);
  Registered(db.dsn(), "0012_rename");
  ChildProcess first(CliArgv(db.dsn(), {"--batch-rows", "50", "--batch-delay", "50ms", "advance",
                                  "0012_rename", "--to", "validated"}));
  ASSERT_TRUE(WaitUntil([&] {
    return QueryValue(db.dsn(), "SELECT count(*) FROM pgshift.checkpoints WHERE rows_done > 0") != "0";
  })) << first.CurrentErr();
  const std::string history_before = QueryValue(db.dsn(), "SELECT count(*) FROM pgshift.history");
  ChildProcess second_proc(CliArgv(db.dsn(), {"advance", "0012_rename", "--to", "validated"}));
  CliResult second = second_proc.Wait();
  EXPECT_EQ(second.exit_code, 4) << Describe(second);
  EXPECT_THAT(second.err, HasSubstr("is busy"));
  EXPECT_THAT(second.err, HasSubstr(absl::StrCat(":", first.pid())));  // the driver name host:pid
  EXPECT_THAT(second.err, HasSubstr("backend pid"));
  CliResult status = RunCli(db.dsn(), {"status", "0012_rename"});
  EXPECT_THAT(status.out, HasSubstr("being driven now by"));
  EXPECT_THAT(status.out, HasSubstr(absl::StrCat(":", first.pid())));
  EXPECT_EQ(QueryValue(db.dsn(), absl::StrCat("SELECT count(*) FROM pgshift.history WHERE driver LIKE '%:",
                                              second_proc.pid(), "'")),
            "0");
  EXPECT_LE(std::stoi(QueryValue(db.dsn(), "SELECT count(*) FROM pgshift.history")),
            std::stoi(history_before) + 1);  // at most the first driver's next step
  CliResult r = first.Wait();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(PhaseOf(db.dsn(), "0012_rename"), "validated");
  // Once the first is done, the lease is free again.
  EXPECT_EQ(RunCli(db.dsn(), {"advance", "0012_rename"}).exit_code, 0);
}

TEST(BadInput, AMigrationFileChangedAfterRegistrationIsRefused) {
  ScratchDatabase db("changed_file");
  MakeUsers(db.dsn(), 10);
  Registered(db.dsn(), "0013_rename");
  const std::string changed = Spec("0013_rename").RenameColumn("users", "name", "display_name").File();
  const std::string before = CatalogSnapshot(db.dsn(), "public");
  CliResult r = RunCli(db.dsn(), {"register", changed});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("different spec"));
  EXPECT_THAT(r.err, HasSubstr("checksum"));
  EXPECT_EQ(CatalogSnapshot(db.dsn(), "public"), before);
  // The stored spec is what advance runs.
  ASSERT_EQ(RunCli(db.dsn(), {"advance", "0013_rename"}).exit_code, 0);
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass "
                                 "AND attname = 'full_name'"),
            "1");
}

TEST(BadInput, IdentifiersFullOfQuotesSemicolonsSpacesAndUnicode) {
  ScratchDatabase db("weird_idents");
  const std::string schema = "sch\"ema; DROP TABLE x; --";
  const std::string table = "t\"a'b;le ✓";
  const std::string from = "na\"me; DELETE FROM \"t\"", to = "nöm \"neu\"; --";
  const std::string qt = absl::StrCat(Ident(schema), ".", Ident(table));
  Query(db.dsn(), absl::StrCat("CREATE SCHEMA ", Ident(schema), "; CREATE TABLE ", qt, " (\"id;\" int PRIMARY KEY, ",
                               Ident(from), " text NOT NULL); CREATE INDEX ON ", qt, " (", Ident(from), ");",
                               "INSERT INTO ", qt, " SELECT g, 'v''' || g FROM generate_series(1, 200) g"));
  auto json = [](const std::string& s) {
    return absl::StrCat("\"", absl::StrReplaceAll(s, {{"\\", "\\\\"}, {"\"", "\\\""}}), "\"");
  };
  const std::string name = "0014 \"odd\"; name ☃";
  // JSON written by hand: these names reach pgshift exactly as a user's file spells them.
  const std::string spec = WriteTempFile(absl::StrCat("{\"name\": ", json(name), ", \"schema\": ", json(schema),
                                                      ", \"operations\": [{\"rename_column\": {\"table\": ", json(table),
                                                      ", \"from\": ", json(from), ", \"to\": ", json(to), "}}]}"));
  const std::string before = CatalogSnapshot(db.dsn(), schema);
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"init"}, {"plan", spec}, {"register", spec}, {"advance", name, "--to", "switched"},
           {"rollback", name}}) {
    CliResult r = RunCli(db.dsn(), cmd);
    ASSERT_EQ(r.exit_code, 0) << cmd[0] << ": " << Describe(r);
  }
  EXPECT_EQ(CatalogSnapshot(db.dsn(), schema), before);
  // A second migration name for the full run (the rolled-back one keeps its name).
  const std::string name2 = name + " again";
  const std::string spec2 = WriteTempFile(absl::StrReplaceAll(testing::ReadFile(spec), {{json(name), json(name2)}}));
  ASSERT_EQ(RunCli(db.dsn(), {"register", spec2}).exit_code, 0);
  CliResult r = RunCli(db.dsn(), {"advance", name2, "--to", "contracted"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(QueryValue(db.dsn(), absl::StrCat("SELECT ", Ident(to), " FROM ", qt, " WHERE \"id;\" = 7")), "v'7");
  EXPECT_EQ(QueryValue(db.dsn(), absl::StrCat("SELECT count(*) FROM ", qt)), "200");
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT to_regclass('x') IS NULL"), "t");
}

}  // namespace
}  // namespace pgshift
