// The batched backfill (lib/backfill): resume after kill -9, tables without a
// primary key (ctid walk) under concurrent writes and rewrites, composite
// keys, adaptive batch bounds, pause requests, lock-contention backoff and
// progress reports.
#include "lib/backfill/backfill.h"
#include "lib/engine/control.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/pg/connection.h"
#include "pgshift/pgshift.h"
#include "tests/support/cli.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace pgshift {
namespace {

namespace pt = ::pgshift::testing;
constexpr auto Int = pt::QueryInt;

// ---- helpers ------------------------------------------------------------------

v1::Migration Rename(const std::string& name, const std::string& schema, const std::string& table,
                     const std::string& from, const std::string& to) {
  return pt::Spec(name).Schema(schema).RenameColumn(table, from, to).Migration();
}

Options SmallBatches(int64_t rows) {
  Options o;
  o.backfill_batch_rows = rows;
  o.backfill_min_batch_rows = rows;
  o.backfill_max_batch_rows = rows;
  o.backfill_poll_interval = absl::Milliseconds(20);
  return o;
}

std::unique_ptr<Driver> Connect(const std::string& dsn, Options options = {}) {
  absl::StatusOr<std::unique_ptr<Driver>> d = Driver::Connect(dsn, std::move(options));
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

// Registers `m` and advances it to trigger_installed.
void Prepare(const std::string& dsn, const v1::Migration& m) {
  auto d = Connect(dsn);
  ASSERT_TRUE(d->Init().ok());
  ASSERT_TRUE(d->Register(m).ok());
  absl::StatusOr<MigrationStatus> s = d->Advance(m.name(), Phase::kTriggerInstalled);
  ASSERT_TRUE(s.ok()) << s.status();
}

// Waits (polling) until `sql` returns true; fails the test after a minute
// instead of hanging. Not a timing assertion: the condition is what counts.
bool WaitFor(const std::string& dsn, const std::string& sql) {
  if (pt::WaitUntil([&] { return pt::QueryValue(dsn, sql) == "t"; }, 60)) return true;
  ADD_FAILURE() << "condition never became true: " << sql;
  return false;
}

// ---- pure parts -------------------------------------------------------------------

TEST(BatchSizer, GrowsAtMostTwofoldTowardTheTarget) {
  backfill::BatchSizer s(1000, 100, 100000, absl::Milliseconds(100));
  s.Observe(1000, absl::Milliseconds(1));  // 100x too fast
  EXPECT_EQ(s.rows(), 2000);
  s.Observe(2000, absl::Milliseconds(2));
  EXPECT_EQ(s.rows(), 4000);
}

TEST(BatchSizer, ConvergesToTargetOverPerRowCost) {
  backfill::BatchSizer s(1000, 1, 1000000, absl::Milliseconds(100));
  // 10 us per row plus 2 ms per batch: the fixed point is 9800 rows.
  for (int i = 0; i < 40; ++i) {
    s.Observe(s.rows(), absl::Microseconds(2000 + 10 * s.rows()));
  }
  EXPECT_NEAR(static_cast<double>(s.rows()), 9800, 200);
}

TEST(BatchSizer, ShrinksAtMostFourfoldAndStaysWithinBounds) {
  backfill::BatchSizer s(4000, 100, 5000, absl::Milliseconds(100));
  s.Observe(4000, absl::Seconds(10));  // 100x too slow
  EXPECT_EQ(s.rows(), 1000);
  for (int i = 0; i < 10; ++i) s.Observe(s.rows(), absl::Seconds(10));
  EXPECT_EQ(s.rows(), 100);
  for (int i = 0; i < 20; ++i) s.Observe(s.rows(), absl::Microseconds(1));
  EXPECT_EQ(s.rows(), 5000);
}

TEST(BatchSizer, InitialSizeIsClampedToBounds) {
  EXPECT_EQ(backfill::BatchSizer(10, 100, 200, absl::Milliseconds(1)).rows(), 100);
  EXPECT_EQ(backfill::BatchSizer(1000, 100, 200, absl::Milliseconds(1)).rows(), 200);
  // max below min: min wins.
  EXPECT_EQ(backfill::BatchSizer(1000, 300, 200, absl::Milliseconds(1)).rows(), 300);
}

TEST(BatchSizer, ContentionHalvesTimeoutQuarters) {
  backfill::BatchSizer s(1600, 100, 10000, absl::Milliseconds(100));
  s.Contended();
  EXPECT_EQ(s.rows(), 800);
  s.TimedOut();
  EXPECT_EQ(s.rows(), 200);
  s.Contended();
  s.Contended();
  EXPECT_EQ(s.rows(), 100);
}

TEST(BatchSizer, ShortFinalBatchNeverGrowsTheSize) {
  backfill::BatchSizer s(1000, 100, 10000, absl::Milliseconds(100));
  s.Observe(10, absl::Microseconds(1));
  EXPECT_EQ(s.rows(), 1000);
}

TEST(RateMeter, ForgetsOldBatchesBeyondTheWindow) {
  backfill::RateMeter m(absl::Seconds(10));
  EXPECT_EQ(m.rows_per_second(), 0);
  m.Add(100, absl::Seconds(1));  // a slow first batch
  EXPECT_DOUBLE_EQ(m.rows_per_second(), 100);
  for (int i = 0; i < 20; ++i) m.Add(1000, absl::Seconds(1));
  EXPECT_DOUBLE_EQ(m.rows_per_second(), 1000);
  m.Add(0, absl::ZeroDuration());  // ignored
  EXPECT_DOUBLE_EQ(m.rows_per_second(), 1000);
}

// ---- estimates ------------------------------------------------------------------

TEST(EstimateRows, UsesPlannerGuessForNeverAnalyzedTables) {
  pt::ScratchDatabase db("estimate");
  pt::Query(db.dsn(),
            "CREATE TABLE t (id int, a int, b text) WITH (autovacuum_enabled = false);"
            "INSERT INTO t SELECT g, g, 'row ' || g FROM generate_series(1, 20000) g;");
  ASSERT_EQ(pt::QueryValue(db.dsn(), "SELECT reltuples < 1 FROM pg_class WHERE relname = 't'"),
            "t");
  auto conn = pg::Connection::Open(db.dsn(), "test");
  ASSERT_TRUE(conn.ok());
  absl::StatusOr<int64_t> n = backfill::EstimateRows(**conn, "\"public\".\"t\"");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_GT(*n, 20000 / 4);
  EXPECT_LT(*n, 20000 * 4);

  pt::Query(db.dsn(), "ANALYZE t");
  n = backfill::EstimateRows(**conn, "\"public\".\"t\"");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_NEAR(static_cast<double>(*n), 20000, 2000);

  pt::Query(db.dsn(), "CREATE TABLE empty (id int)");
  n = backfill::EstimateRows(**conn, "\"public\".\"empty\"");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0);
}

// ---- kill -9 ----------------------------------------------------------------------

struct KillCase {
  std::string name;
  bool primary_key;  // the table has one
  std::string walk;  // --backfill-walk
};

class KillNineTest : public ::testing::TestWithParam<KillCase> {};

TEST_P(KillNineTest, ResumesFromLastCommittedBatchWithExactData) {
  const bool has_pk = GetParam().primary_key;
  const bool pk = has_pk && GetParam().walk == "key";  // the walk follows the key
  pt::ScratchDatabase db(absl::StrCat("kill9_", GetParam().name));
  const int kRows = 3000;
  pt::Query(db.dsn(), absl::StrCat("CREATE TABLE items (id int", has_pk ? " PRIMARY KEY" : "",
                                   ", qty int, note text);"
                                   "INSERT INTO items SELECT g, g * 7 % 1000, 'n' || g "
                                   "FROM generate_series(1, ",
                                   kRows, ") g; ANALYZE items;"));
  v1::Migration m = Rename("kill9", "public", "items", "qty", "quantity");
  Prepare(db.dsn(), m);

  // The CLI's stderr carries its JSON progress events.
  const std::vector<std::string> args = {
      "--json", "advance", "kill9", "--to", "backfilled",
      "--batch-rows", "40", "--batch-min-rows", "40", "--batch-max-rows", "40",
      "--batch-delay", "15ms", "--backfill-walk", GetParam().walk};
  const std::string cp = "SELECT coalesce((SELECT rows_done FROM pgshift.checkpoints "
                         "WHERE migration = 'kill9'), 0)";
  int64_t done_before = 0;
  for (int round = 1; round <= 3; ++round) {
    pt::ChildProcess cli(pt::CliArgv(db.dsn(), args));
    ASSERT_TRUE(WaitFor(db.dsn(), absl::StrCat(cp, " >= ", done_before + 400)));
    cli.Kill(SIGKILL);
    EXPECT_EQ(cli.Wait().signal, SIGKILL);
    // The killed driver's backend ends (rolling back any open batch).
    ASSERT_TRUE(WaitFor(db.dsn(), absl::StrCat("SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity "
                                               "WHERE application_name LIKE 'pgshift %:",
                                               cli.pid(), "')")));

    // Exactly the committed batches are done: nothing more, nothing less.
    const int64_t done = Int(db.dsn(), cp);
    EXPECT_GT(done, done_before);
    if (pk) {
      EXPECT_EQ(done % 40, 0) << "checkpoints cover whole batches";
      const int64_t last = Int(db.dsn(), "SELECT (last_key->>0)::int FROM pgshift.checkpoints "
                                         "WHERE migration = 'kill9'");
      EXPECT_EQ(done, last);  // ids 1..N, one row each
      EXPECT_EQ(Int(db.dsn(), absl::StrCat("SELECT count(*) FROM items WHERE id <= ", last,
                                           " AND quantity IS DISTINCT FROM qty")),
                0);
      EXPECT_EQ(Int(db.dsn(), absl::StrCat("SELECT count(*) FROM items WHERE id > ", last,
                                           " AND quantity IS NOT NULL")),
                0);
    } else {
      const int64_t page = Int(db.dsn(), "SELECT (last_key->>'page')::int FROM "
                                         "pgshift.checkpoints WHERE migration = 'kill9'");
      EXPECT_GT(page, 0);
      EXPECT_EQ(Int(db.dsn(), absl::StrCat("SELECT count(*) FROM items WHERE ctid < '(", page,
                                           ",0)'::tid AND quantity IS DISTINCT FROM qty")),
                0);
      // The old versions of rows done were replaced; nothing beyond the
      // walked pages was touched except the new versions themselves.
      EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM items WHERE quantity IS NOT NULL"),
                Int(db.dsn(), "SELECT count(*) FROM items WHERE quantity IS NOT DISTINCT FROM qty "
                              "AND quantity IS NOT NULL"));
    }
    done_before = done;
  }

  // Resume to the end (the wait above guarantees the old driver's advisory
  // lock is gone, so no "busy").
  const int64_t left = Int(db.dsn(), "SELECT count(*) FROM items WHERE quantity IS DISTINCT FROM qty");
  const pt::CliResult resumed = pt::RunCli(db.dsn(), args);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const std::string& events = resumed.err;
  // The first report of the resumed run starts from the checkpoint.
  std::string first = events.substr(0, events.find('\n'));
  EXPECT_NE(first.find(absl::StrCat("\"rows_done\":", done_before, ",")), std::string::npos)
      << first;
  EXPECT_NE(events.find("\"finished\":true"), std::string::npos);
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM items WHERE quantity IS DISTINCT FROM qty"), 0);
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM items"), kRows);
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT done FROM pgshift.checkpoints WHERE migration = 'kill9'"),
            "t");
  // The last run updated exactly the rows the killed runs had not committed.
  EXPECT_EQ(Int(db.dsn(), "SELECT rows_touched FROM pgshift.history WHERE migration = 'kill9' "
                          "AND ok ORDER BY id DESC LIMIT 1"),
            left);
  ASSERT_EQ(pt::QueryValue(db.dsn(), "SELECT phase FROM pgshift.migrations WHERE name = 'kill9'"),
            "backfilled");
  auto d = Connect(db.dsn());
  absl::StatusOr<MigrationStatus> s = d->Advance("kill9", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s.status();
}

INSTANTIATE_TEST_SUITE_P(Walks, KillNineTest,
                         ::testing::Values(KillCase{"primary_key", true, "key"},
                                           KillCase{"primary_key_pages", true, "pages"},
                                           KillCase{"no_primary_key", false, "auto"}),
                         [](const auto& info) { return info.param.name; });

// ---- tables without a primary key --------------------------------------------------

// Random application writes of an old app version (it knows only `a`):
// updates that move rows (with and without changing `a`), inserts with ids
// from *next_insert, deletes. Existing ids are picked from 1..max_id.
void RandomWrites(pg::Connection& conn, std::mt19937& rng, int n, int max_id, int* next_insert) {
  for (int i = 0; i < n; ++i) {
    const std::string id = std::to_string(std::uniform_int_distribution<int>(1, max_id)(rng));
    const std::string v = std::to_string(std::uniform_int_distribution<int>(0, 99999)(rng));
    absl::Status s;
    switch (std::uniform_int_distribution<int>(0, 5)(rng)) {
      case 0:  // moves the row (new version elsewhere), `a` unchanged
      case 1:
        s = conn.Run("UPDATE t SET b = b || 'x' WHERE id = $1", {id});
        break;
      case 2:
        s = conn.Run("UPDATE t SET a = $2 WHERE id = $1", {id, v});
        break;
      case 3:
        s = conn.Run("INSERT INTO t (id, a, b) VALUES ($1, $2, 'new')",
                     {std::to_string((*next_insert)++), v});
        break;
      case 4:
        s = conn.Run("DELETE FROM t WHERE id = $1", {id});
        break;
      case 5:
        s = conn.Run("UPDATE t SET a = NULL WHERE id = $1", {id});
        break;
    }
    ASSERT_TRUE(s.ok()) << s;
  }
}

void CreateNoKeyTable(const std::string& dsn, int rows) {
  // Deleting every 5th row and vacuuming leaves free space in every page,
  // so updates move rows backwards as well as forwards.
  pt::Query(dsn, absl::StrCat("CREATE TABLE t (id int, a int, b text) WITH (autovacuum_enabled = off);"
                              "INSERT INTO t SELECT g, g, repeat('b', 40) FROM generate_series(1, ",
                              rows, ") g; DELETE FROM t WHERE id % 5 = 0;"));
  pt::Query(dsn, "VACUUM ANALYZE t");
}

TEST(NoPrimaryKey, CtidWalkInterleavedWithWritesMissesNoRow) {
  pt::ScratchDatabase db("nopk_interleaved");
  CreateNoKeyTable(db.dsn(), 6000);
  v1::Migration m = Rename("nopk", "public", "t", "a", "a_new");
  Prepare(db.dsn(), m);

  Options o = SmallBatches(150);
  o.backfill_max_batches = 2;
  auto d = Connect(db.dsn(), o);
  auto app = pg::Connection::Open(db.dsn(), "app");
  ASSERT_TRUE(app.ok());
  std::mt19937 rng(42);
  int next_id = 6001;
  int calls = 0;
  while (true) {
    absl::StatusOr<MigrationStatus> s = d->Advance("nopk", Phase::kBackfilled);
    if (s.ok()) break;
    ASSERT_TRUE(absl::IsCancelled(s.status())) << s.status();
    ++calls;
    RandomWrites(**app, rng, 60, 6000, &next_id);
  }
  EXPECT_GT(calls, 5);
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM t WHERE a IS DISTINCT FROM a_new"), 0);
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT jsonb_typeof(last_key) FROM pgshift.checkpoints"),
            "object");
  absl::StatusOr<MigrationStatus> s = d->Advance("nopk", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s.status();
}

TEST(NoPrimaryKey, CtidWalkUnderConcurrentWritersMissesNoRow) {
  pt::ScratchDatabase db("nopk_concurrent");
  CreateNoKeyTable(db.dsn(), 8000);
  v1::Migration m = Rename("nopk2", "public", "t", "a", "a_new");
  Prepare(db.dsn(), m);

  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w]() {
      auto app = pg::Connection::Open(db.dsn(), "app");
      ASSERT_TRUE(app.ok());
      std::mt19937 rng(7 + w);
      int next_insert = 100000 * (w + 1);  // each writer inserts its own ids
      while (!stop.load()) {
        RandomWrites(**app, rng, 10, 8000, &next_insert);
        writes += 10;
      }
    });
  }
  Options o = SmallBatches(100);
  o.backfill_batch_delay = absl::Milliseconds(5);
  auto d = Connect(db.dsn(), o);
  absl::StatusOr<MigrationStatus> s = d->Advance("nopk2", Phase::kBackfilled);
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(writes.load(), 0);
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM t WHERE a IS DISTINCT FROM a_new"), 0);
  s = d->Advance("nopk2", Phase::kValidated);
  ASSERT_TRUE(s.ok()) << s.status();
}

TEST(NoPrimaryKey, CtidWalkStartsOverAfterTableRewrite) {
  pt::ScratchDatabase db("nopk_rewrite");
  pt::Query(db.dsn(), "CREATE TABLE t (id int, a int, b text) WITH (autovacuum_enabled = off);"
                      "INSERT INTO t SELECT g, g, repeat('b', 40) FROM generate_series(1, 6000) g;"
                      "ANALYZE t;");
  v1::Migration m = Rename("rewrite", "public", "t", "a", "a_new");
  Prepare(db.dsn(), m);
  Options o = SmallBatches(200);
  o.backfill_max_batches = 6;
  auto d = Connect(db.dsn(), o);
  absl::StatusOr<MigrationStatus> s = d->Advance("rewrite", Phase::kBackfilled);
  ASSERT_TRUE(absl::IsCancelled(s.status())) << s.status();
  const int64_t page = Int(db.dsn(), "SELECT (last_key->>'page')::int FROM pgshift.checkpoints");
  ASSERT_GT(page, 0);
  // The walked pages now hold only dead versions (the new ones went to the
  // end of the table). VACUUM FULL compacts: rows not yet walked move into
  // pages below the checkpoint.
  pt::Query(db.dsn(), "VACUUM FULL t");
  ASSERT_GT(Int(db.dsn(), absl::StrCat("SELECT count(*) FROM t WHERE ctid < '(", page,
                                       ",0)'::tid AND a_new IS NULL")),
            0)
      << "the rewrite should have moved unsynced rows into walked pages";

  o.backfill_max_batches = 0;
  auto d2 = Connect(db.dsn(), o);
  s = d2->Advance("rewrite", Phase::kBackfilled);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM t WHERE a IS DISTINCT FROM a_new"), 0);
}

// ---- composite keys ------------------------------------------------------------------

TEST(CompositeKey, KeysetWalkSplitsWithinLeadingColumnAndResumes) {
  pt::ScratchDatabase db("composite");
  pt::Query(db.dsn(), R"sql(
    CREATE SCHEMA "Sales Data";
    CREATE TABLE "Sales Data"."Order Lines" (
      "Tenant" int, "line key" text, "Amount" numeric, "select" int,
      PRIMARY KEY ("Tenant", "line key"));
    INSERT INTO "Sales Data"."Order Lines"
      SELECT g % 5, 'k' || (g / 5), g * 1.5, g FROM generate_series(1, 2500) g;
    ANALYZE "Sales Data"."Order Lines";
  )sql");
  v1::Migration m = Rename("composite", "Sales Data", "Order Lines", "Amount", "Total Amount");
  Prepare(db.dsn(), m);
  Options o = SmallBatches(75);
  o.backfill_walk = BackfillWalk::kPrimaryKey;
  o.backfill_max_batches = 5;
  auto d = Connect(db.dsn(), o);
  absl::StatusOr<MigrationStatus> s = d->Advance("composite", Phase::kBackfilled);
  ASSERT_TRUE(absl::IsCancelled(s.status())) << s.status();
  EXPECT_EQ(Int(db.dsn(), "SELECT rows_done FROM pgshift.checkpoints"), 375);
  EXPECT_EQ(Int(db.dsn(), "SELECT jsonb_array_length(last_key) FROM pgshift.checkpoints"), 2);
  // Exactly the first 375 rows in key order are done.
  EXPECT_EQ(Int(db.dsn(), R"sql(
      SELECT count(*) FROM (SELECT * FROM "Sales Data"."Order Lines"
                            ORDER BY "Tenant", "line key" LIMIT 375) f
      WHERE "Total Amount" IS DISTINCT FROM "Amount")sql"),
            0);
  EXPECT_EQ(Int(db.dsn(), R"sql(SELECT count(*) FROM "Sales Data"."Order Lines"
                                WHERE "Total Amount" IS NOT NULL)sql"),
            375);
  o.backfill_max_batches = 0;
  auto d2 = Connect(db.dsn(), o);
  s = d2->Advance("composite", Phase::kBackfilled);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Int(db.dsn(), R"sql(SELECT count(*) FROM "Sales Data"."Order Lines"
                                WHERE "Total Amount" IS DISTINCT FROM "Amount")sql"),
            0);
  EXPECT_EQ(Int(db.dsn(), "SELECT rows_done FROM pgshift.checkpoints"), 2500);
}

// ---- batch size bounds ----------------------------------------------------------------

std::vector<Progress> RunCollecting(const std::string& dsn, const std::string& name, Options o) {
  std::vector<Progress> events;
  o.on_progress = [&events](const Progress& p) { events.push_back(p); };
  auto d = Connect(dsn, o);
  absl::StatusOr<MigrationStatus> s = d->Advance(name, Phase::kBackfilled);
  EXPECT_TRUE(s.ok()) << s.status();
  return events;
}

TEST(AdaptiveBatches, SizeStaysWithinBoundsAndReachesThem) {
  pt::ScratchDatabase db("bounds");
  pt::Query(db.dsn(), "CREATE TABLE a (id int PRIMARY KEY, v int);"
                      "INSERT INTO a SELECT g, g FROM generate_series(1, 4000) g;"
                      "CREATE TABLE b (LIKE a INCLUDING ALL); INSERT INTO b SELECT * FROM a;"
                      "ANALYZE a; ANALYZE b;");
  Prepare(db.dsn(), Rename("grow", "public", "a", "v", "w"));
  Prepare(db.dsn(), Rename("shrink", "public", "b", "v", "w"));
  Options o;
  o.backfill_walk = BackfillWalk::kPrimaryKey;  // bounds are exact in rows
  o.backfill_batch_rows = 60;
  o.backfill_min_batch_rows = 50;
  o.backfill_max_batch_rows = 200;

  o.backfill_target_batch_time = absl::Hours(1);  // every batch is "too fast"
  std::vector<Progress> grow = RunCollecting(db.dsn(), "grow", o);
  o.backfill_target_batch_time = absl::Nanoseconds(1);  // every batch is "too slow"
  std::vector<Progress> shrink = RunCollecting(db.dsn(), "shrink", o);
  ASSERT_GE(grow.size(), 3u);
  ASSERT_GE(shrink.size(), 3u);
  for (const auto& p : grow) {
    EXPECT_GE(p.batch_rows, 50);
    EXPECT_LE(p.batch_rows, 200);
  }
  for (const auto& p : shrink) {
    EXPECT_GE(p.batch_rows, 50);
    EXPECT_LE(p.batch_rows, 200);
  }
  EXPECT_EQ(grow.back().batch_rows, 200);
  EXPECT_EQ(shrink.back().batch_rows, 50);
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM a WHERE w IS DISTINCT FROM v"), 0);
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM b WHERE w IS DISTINCT FROM v"), 0);
}

// ---- pause --------------------------------------------------------------------------

TEST(Pause, RequestStopsBatchesUntilResume) {
  pt::ScratchDatabase db("pause");
  pt::Query(db.dsn(), "CREATE TABLE p (id int PRIMARY KEY, v int);"
                      "INSERT INTO p SELECT g, g FROM generate_series(1, 2000) g; ANALYZE p;");
  Prepare(db.dsn(), Rename("pause", "public", "p", "v", "w"));
  auto controller = Connect(db.dsn());
  ASSERT_TRUE(controller->Pause("pause").ok());
  EXPECT_TRUE(controller->Status("pause")->paused);
  EXPECT_TRUE(absl::IsNotFound(controller->Pause("no_such_migration")));

  // The callback runs on the driver's thread between batches: it checks that
  // nothing moves while paused, then resumes through another connection.
  Options o = SmallBatches(100);
  o.backfill_walk = BackfillWalk::kPrimaryKey;  // exact rows_done
  int paused_reports = 0;
  int64_t rows_at_pause = -1;
  int batches_after_resume = 0;
  bool resumed = false;
  std::vector<Progress> events;
  o.on_progress = [&](const Progress& p) {
    events.push_back(p);
    if (p.waiting == "paused") {
      if (rows_at_pause < 0) rows_at_pause = p.rows_done;
      EXPECT_EQ(p.rows_done, rows_at_pause);
      EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM p WHERE w IS NOT NULL"), rows_at_pause);
      if (++paused_reports % 3 == 0) {
        ASSERT_TRUE(controller->Resume("pause").ok());
        resumed = true;
      }
      return;
    }
    if (resumed && p.waiting.empty()) {
      // Pause again mid-way, once, after two more batches.
      if (++batches_after_resume == 3 && paused_reports == 3) {
        ASSERT_TRUE(controller->Pause("pause").ok());
        rows_at_pause = -1;
        resumed = false;
      }
    }
  };
  auto d = Connect(db.dsn(), o);
  absl::StatusOr<MigrationStatus> s = d->Advance("pause", Phase::kBackfilled);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(paused_reports, 6);  // three before the first batch, three mid-way
  EXPECT_FALSE(s->paused);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().rows_done, 0);
  EXPECT_TRUE(events.back().finished);
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM p WHERE w IS DISTINCT FROM v"), 0);
}

// ---- lock contention -------------------------------------------------------------------

TEST(LockContention, BacksOffShrinksAndGivesUpNamingTheHolder) {
  pt::ScratchDatabase db("contention");
  pt::Query(db.dsn(), "CREATE TABLE c (id int PRIMARY KEY, v int);"
                      "INSERT INTO c SELECT g, g FROM generate_series(1, 1000) g; ANALYZE c;");
  Prepare(db.dsn(), Rename("contention", "public", "c", "v", "w"));
  // An application transaction holds a lock on the first row: no batch can commit.
  auto app = pg::Connection::Open(db.dsn(), "blocking app");
  ASSERT_TRUE(app.ok());
  ASSERT_TRUE((*app)->Run("BEGIN").ok());
  ASSERT_TRUE((*app)->Run("SELECT * FROM c WHERE id = 1 FOR UPDATE").ok());

  Options o;
  o.backfill_walk = BackfillWalk::kPrimaryKey;  // row-exact batch sizes
  o.backfill_batch_rows = 400;
  o.backfill_min_batch_rows = 25;
  o.backfill_lock_timeout = absl::Milliseconds(30);
  o.retry_initial_backoff = absl::Milliseconds(5);
  o.retry_max_backoff = absl::Milliseconds(20);
  o.retry_deadline = absl::Milliseconds(600);
  std::vector<Progress> events;
  o.on_progress = [&events](const Progress& p) { events.push_back(p); };
  auto d = Connect(db.dsn(), o);
  absl::StatusOr<MigrationStatus> s = d->Advance("contention", Phase::kBackfilled);
  ASSERT_TRUE(absl::IsDeadlineExceeded(s.status())) << s.status();
  EXPECT_NE(s.status().message().find(std::to_string((*app)->backend_pid())), std::string::npos)
      << s.status();
  EXPECT_EQ(SqlState(s.status()), "55P03");
  bool saw_contention = false;
  int64_t smallest = 1 << 30;
  for (const auto& p : events) {
    if (p.waiting == "lock_contention") {
      saw_contention = true;
      EXPECT_GT(p.lock_wait_ms, 0);
    }
    smallest = std::min(smallest, p.batch_rows);
  }
  EXPECT_TRUE(saw_contention);
  EXPECT_EQ(smallest, 25);  // halved down to the minimum
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM c WHERE w IS NOT NULL"), 0);

  ASSERT_TRUE((*app)->Run("COMMIT").ok());
  auto d2 = Connect(db.dsn());
  s = d2->Advance("contention", Phase::kBackfilled);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM c WHERE w IS DISTINCT FROM v"), 0);
}

// ---- fallback set clause ---------------------------------------------------------

class FallbackTest : public ::testing::TestWithParam<bool> {};

TEST_P(FallbackTest, PlainExpressionFirstFallbackOnlyWhereItRaises) {
  const bool pk = GetParam();
  pt::ScratchDatabase db(pk ? "fallback_pk" : "fallback_ctid");
  ASSERT_TRUE(Connect(db.dsn())->Init().ok());
  pt::Query(db.dsn(), absl::StrCat(
      "CREATE TABLE f (id int", pk ? " PRIMARY KEY" : "", ", t text, n int);"
      "INSERT INTO f SELECT g, CASE WHEN g % 1000 = 0 THEN 'bad' || g ELSE g::text END "
      "FROM generate_series(1, 3000) g; ANALYZE f;"
      "CREATE FUNCTION lenient(v text) RETURNS int LANGUAGE plpgsql AS "
      "$$ BEGIN RETURN v::int; EXCEPTION WHEN others THEN RETURN NULL; END $$;"));
  ops::BackfillSpec spec;
  spec.table = "\"public\".\"f\"";
  if (pk) {
    spec.key = {"id"};
    spec.key_types = {"integer"};
  }
  spec.set_clause = "\"n\" = (\"t\")::int";
  spec.fallback_set_clause = "\"n\" = lenient(\"t\")";
  spec.needs_work = "\"n\" IS NULL";
  Options o = SmallBatches(100);
  o.backfill_walk = pk ? BackfillWalk::kPrimaryKey : BackfillWalk::kAuto;
  auto conn = pg::Connection::Open(db.dsn(), "test");
  ASSERT_TRUE(conn.ok());
  engine::Control control(**conn, "pgshift");
  std::unique_ptr<backfill::CheckpointStore> store = control.Checkpoints("fallback", 0);
  backfill::Backfill runner(**conn, o, *store, "fallback", 0, nullptr);
  backfill::Stats stats;
  absl::Status s = runner.Run(spec, &stats);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM f WHERE n IS DISTINCT FROM lenient(t)"), 0);
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM f WHERE n IS NULL"), 3);
  EXPECT_GE(stats.fallback_batches, 3);
  EXPECT_LT(stats.fallback_batches, stats.batches);  // clean batches ran the plain expression
  EXPECT_EQ(stats.rows_updated, 3000);  // the bad rows too (to NULL)
}

INSTANTIATE_TEST_SUITE_P(Walks, FallbackTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "keyset" : "ctid"; });

// ---- replication lag (a primary and a streaming standby of our own) ----------------

// Runs `cmd` with sh; returns its stdout, trailing newlines removed; *rc its
// exit status.
std::string Shell(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *rc = -1;
    return out;
  }
  char buf[512];
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  *rc = pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// A throwaway primary (scripts/pgtemp.sh) and a streaming standby of it, so
// that pausing replay cannot disturb other tests' servers.
class PrimaryAndStandby {
 public:
  ~PrimaryAndStandby() {
    int rc = 0;
    if (!standby_data_.empty()) {
      Shell(absl::StrCat(AsOwner(), "'", bindir_, "/pg_ctl' -D '", standby_data_,
                         "' -m immediate -w stop >/dev/null 2>&1"),
            &rc);
    }
    if (!dir_.empty()) {
      Shell(absl::StrCat("bash '", PGSHIFT_SOURCE_DIR, "/scripts/pgtemp.sh' stop '", dir_,
                         "/primary' >/dev/null 2>&1; rm -rf '", dir_, "'"),
            &rc);
    }
  }

  // Empty on success, else what failed.
  std::string Start() {
    char tmpl[] = "/tmp/pgshift-lag.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);  // the postgres user must reach its directories
    int rc = 0;
    primary_ = Shell(absl::StrCat("PGTEMP_WATCH_PID=", getpid(), " bash '", PGSHIFT_SOURCE_DIR,
                                  "/scripts/pgtemp.sh' start '", dir_, "/primary'"),
                     &rc);
    if (rc != 0) return "scripts/pgtemp.sh start failed";
    bindir_ = Shell(absl::StrCat("bash -c 'source \"", PGSHIFT_SOURCE_DIR,
                                 "/scripts/pgtemp.sh\" && pgtemp_bindir'"),
                    &rc);
    if (rc != 0 || bindir_.empty()) return "cannot find the PostgreSQL binaries";
    const std::string port = pt::QueryValue(primary_, "SELECT current_setting('port')");
    const std::string sdir = absl::StrCat(dir_, "/standby");
    Shell(absl::StrCat("mkdir -p '", sdir, "'", getuid() == 0 ? absl::StrCat(" && chown postgres '", sdir, "'") : ""),
          &rc);
    Shell(absl::StrCat("cd /tmp && ", AsOwner(), "'", bindir_, "/pg_basebackup' -h 127.0.0.1 -p ", port,
                       " -U postgres -D '", sdir, "/data' -R -X stream >'", sdir,
                       "/basebackup.log' 2>&1"),
          &rc);
    if (rc != 0) return "pg_basebackup failed (see the standby directory's basebackup.log)";
    for (int p = std::stoi(port) + 200; p < std::stoi(port) + 260 && standby_data_.empty(); ++p) {
      Shell(absl::StrCat("cd /tmp && ", AsOwner(), "'", bindir_, "/pg_ctl' -D '", sdir,
                         "/data' -o '-p ", p, " -c listen_addresses=127.0.0.1 -c unix_socket_directories=",
                         sdir, "' -l '", sdir, "/log' -w -t 60 start >/dev/null 2>&1"),
            &rc);
      if (rc == 0) {
        standby_data_ = absl::StrCat(sdir, "/data");
        standby_ = absl::StrCat("host=127.0.0.1 port=", p, " user=postgres dbname=postgres");
      }
    }
    if (standby_data_.empty()) return "the standby did not start";
    for (int i = 0; i < 600; ++i) {
      if (pt::QueryValue(primary_, "SELECT count(*) FROM pg_stat_replication WHERE state = "
                                   "'streaming'") == "1") {
        return "";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "the standby never streamed";
  }

  const std::string& primary() const { return primary_; }
  const std::string& standby() const { return standby_; }

 private:
  static std::string AsOwner() { return getuid() == 0 ? "runuser -u postgres -- " : ""; }
  std::string dir_, bindir_, primary_, standby_, standby_data_;
};

TEST(ReplicationLag, BackfillWaitsWhileAStandbyLagsAndGoesOnOnceItCatchesUp) {
  PrimaryAndStandby servers;
  const std::string why = servers.Start();
  ASSERT_EQ(why, "");
  const std::string& dsn = servers.primary();
  pt::Query(dsn, "CREATE TABLE lagged (id int PRIMARY KEY, v int);"
                 "INSERT INTO lagged SELECT g, g FROM generate_series(1, 2000) g;"
                 "CREATE TABLE wal_maker (x int);");
  Prepare(dsn, Rename("lag", "public", "lagged", "v", "w"));

  // Replay paused on the standby while the primary writes: replay_lag grows.
  pt::Query(servers.standby(), "SELECT pg_wal_replay_pause()");
  bool lagging = false;
  for (int i = 0; i < 600 && !lagging; ++i) {
    pt::Query(dsn, "INSERT INTO wal_maker SELECT generate_series(1, 100)");
    lagging = pt::QueryValue(dsn, "SELECT coalesce(max(replay_lag) > interval '1.5 s', false) "
                                  "FROM pg_stat_replication") == "t";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(lagging);

  std::mutex mu;
  std::vector<Progress> events;
  Options o = SmallBatches(200);
  o.max_replication_lag = absl::Seconds(1);
  o.on_progress = [&](const Progress& p) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(p);
  };
  absl::StatusOr<MigrationStatus> result = absl::UnknownError("not run");
  std::thread driver([&]() {
    auto d = Connect(dsn, o);
    result = d->Advance("lag", Phase::kBackfilled);
  });
  auto waited = [&]() {
    std::lock_guard<std::mutex> lock(mu);
    int n = 0;
    for (const auto& p : events) n += p.waiting == "replication_lag";
    return n;
  };
  for (int i = 0; i < 3000 && waited() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(waited(), 3);
  // Nothing was written while the standby lagged.
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM lagged WHERE w IS NOT NULL"), 0);
  pt::Query(servers.standby(), "SELECT pg_wal_replay_resume()");
  driver.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(Int(dsn, "SELECT count(*) FROM lagged WHERE w IS DISTINCT FROM v"), 0);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().finished);
  for (const auto& p : events) {
    if (p.waiting == "replication_lag") EXPECT_EQ(p.rows_done, 0);
  }
}

// ---- progress -----------------------------------------------------------------------

class ProgressTest : public ::testing::TestWithParam<BackfillWalk> {};

TEST_P(ProgressTest, MonotoneAndEndsFinished) {
  const bool by_key = GetParam() == BackfillWalk::kPrimaryKey;
  pt::ScratchDatabase db(by_key ? "progress_key" : "progress_pages");
  pt::Query(db.dsn(), "CREATE TABLE g (id bigint PRIMARY KEY, v text) WITH (autovacuum_enabled = off);"
                      "INSERT INTO g SELECT g, 'v' || g FROM generate_series(1, 3333) g;");
  // Walking the key: never analyzed, the estimate comes from the table's
  // size. Walking pages, rows are counted from pages and the density.
  if (!by_key) pt::Query(db.dsn(), "ANALYZE g");
  Prepare(db.dsn(), Rename("progress", "public", "g", "v", "w"));
  Options o = SmallBatches(250);
  o.backfill_walk = GetParam();
  std::vector<Progress> events = RunCollecting(db.dsn(), "progress", o);
  ASSERT_GE(events.size(), 3u);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GE(events[i].rows_done, events[i - 1].rows_done);
    EXPECT_FALSE(events[i - 1].finished);
  }
  EXPECT_EQ(events.front().rows_done, 0);
  EXPECT_GT(events.front().rows_estimate, 0);
  const Progress& last = events.back();
  EXPECT_TRUE(last.finished);
  EXPECT_EQ(last.rows_estimate, last.rows_done);
  EXPECT_EQ(last.rows_updated, 3333);
  EXPECT_EQ(last.eta_seconds, 0);
  EXPECT_GT(last.rows_per_second, 0);
  EXPECT_EQ(last.migration, "progress");
  EXPECT_EQ(last.step, "backfilled");
  if (by_key) {
    EXPECT_EQ(last.rows_done, 3333);  // exact
  } else {
    // Pages walked times the density: about the row count.
    EXPECT_GE(last.rows_done, 3333);
    EXPECT_LT(last.rows_done, 3333 * 11 / 10);
  }
  EXPECT_EQ(Int(db.dsn(), "SELECT count(*) FROM g WHERE w IS DISTINCT FROM v"), 0);
}

INSTANTIATE_TEST_SUITE_P(Walks, ProgressTest,
                         ::testing::Values(BackfillWalk::kPrimaryKey, BackfillWalk::kPages),
                         [](const auto& info) {
                           return info.param == BackfillWalk::kPrimaryKey ? "key" : "pages";
                         });

}  // namespace
}  // namespace pgshift
