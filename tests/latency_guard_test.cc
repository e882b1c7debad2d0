// Holding the backfill back: the latency guard's pacing (lib/backfill/guard.h,
// pure arithmetic), and the throttle query against a real server — it stops
// the batches while it returns true, lets them go on once it returns false,
// runs read-only, and is refused or reported when it is not a query that
// only reads. Timing targets are in bench/e2e_bench, not here.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/backfill/guard.h"
#include "pgshift/pgshift.h"
#include "tests/support/cli.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace pgshift {
namespace {

namespace pt = ::pgshift::testing;
using backfill::Pacer;
using backfill::ProbeSample;
using ::testing::HasSubstr;

std::vector<ProbeSample> Samples(double ms, bool working, int n) {
  return std::vector<ProbeSample>(static_cast<size_t>(n), ProbeSample{ms, working});
}
// Enough working samples for one decision.
const int kBatch = static_cast<int>(Pacer::kMinSamples);

// ---- the pacer ------------------------------------------------------------------------

TEST(Pacer, KeepsFullSpeedWhileWorkingDoesNotSlowTheProbe) {
  Pacer p(1.5);
  p.Add(Samples(0.2, false, 60));  // the baseline before the first batch
  for (int batch = 0; batch < 20; ++batch) {
    p.Add(Samples(0.25, true, kBatch));  // 1.25x: within the ratio
    EXPECT_EQ(p.After(absl::Milliseconds(100)), absl::ZeroDuration());
    EXPECT_EQ(p.pace(), 1);
    EXPECT_FALSE(p.hurting());
  }
}

TEST(Pacer, RestsMoreWhileWorkingSlowsTheProbeDownToTheFloor) {
  Pacer p(1.5);
  p.Add(Samples(0.2, false, 60));
  p.Add(Samples(0.9, true, kBatch));  // 4.5x
  absl::Duration rest = p.After(absl::Milliseconds(100));
  EXPECT_TRUE(p.hurting());
  EXPECT_DOUBLE_EQ(p.pace(), 0.7);
  // Working 70% of the time: 100 ms of work, then 100 * 0.3 / 0.7 ms of rest.
  EXPECT_NEAR(absl::ToDoubleMilliseconds(rest), 100 * 0.3 / 0.7, 0.01);
  double last = p.pace();
  for (int batch = 0; batch < 30; ++batch) {
    p.Add(Samples(0.9, true, kBatch));
    rest = p.After(absl::Milliseconds(100));
    EXPECT_LE(p.pace(), last);
    last = p.pace();
  }
  EXPECT_DOUBLE_EQ(p.pace(), Pacer::kMinPace);
  EXPECT_NEAR(absl::ToDoubleMilliseconds(rest), 100 * (1 - Pacer::kMinPace) / Pacer::kMinPace, 0.01);
}

TEST(Pacer, SpeedsBackUpOnceTheProbeIsCalm) {
  Pacer p(1.5);
  p.Add(Samples(0.2, false, 60));
  for (int batch = 0; batch < 10; ++batch) {
    p.Add(Samples(1.0, true, kBatch));
    p.After(absl::Milliseconds(100));
  }
  ASSERT_LT(p.pace(), 0.1);
  // The load is gone: working and resting probe alike again.
  int batches = 0;
  while (p.pace() < 1 && batches < 100) {
    p.Add(Samples(0.2, false, kBatch));
    p.Add(Samples(0.22, true, static_cast<int>(Pacer::kWindow)));
    p.After(absl::Milliseconds(100));
    ++batches;
  }
  EXPECT_EQ(p.pace(), 1);
  EXPECT_FALSE(p.hurting());
  EXPECT_EQ(p.After(absl::Milliseconds(100)), absl::ZeroDuration());
  EXPECT_GT(batches, 5);  // additive: it climbs back step by step, not at once
}

TEST(Pacer, ComparesWithRecentRestsSoALoadThatGrewIsNotBlamedOnTheBackfill) {
  Pacer p(1.5);
  p.Add(Samples(0.2, false, 60));
  // The application got busier on its own: the probe is slow whether the
  // backfill works or rests. The reference follows the rests.
  p.Add(Samples(1.0, false, 60));
  p.Add(Samples(1.1, true, kBatch));
  EXPECT_EQ(p.After(absl::Milliseconds(100)), absl::ZeroDuration());
  EXPECT_FALSE(p.hurting());
  EXPECT_NEAR(p.resting_ms(), 1.0, 1e-9);
}

TEST(Pacer, FullSpeedWhileNoOtherSessionIsActive) {
  Pacer p(1.5);
  p.Add(Samples(0.2, false, 60));
  p.Add(Samples(0.9, true, kBatch));  // the backfill's own writing slows the probe
  EXPECT_EQ(p.After(absl::Milliseconds(100), /*others_active=*/false), absl::ZeroDuration());
  EXPECT_EQ(p.pace(), 1);
  EXPECT_FALSE(p.hurting());
  // Someone connects and works: now it counts.
  p.Add(Samples(0.9, true, kBatch));
  EXPECT_GT(p.After(absl::Milliseconds(100), /*others_active=*/true), absl::ZeroDuration());
  EXPECT_LT(p.pace(), 1);
  // They are gone again: back to full speed at once.
  EXPECT_EQ(p.After(absl::Milliseconds(100), /*others_active=*/false), absl::ZeroDuration());
  EXPECT_EQ(p.pace(), 1);
}

TEST(Pacer, DecidesNothingOnTooFewSamples) {
  Pacer p(1.5);
  p.Add(Samples(0.2, true, kBatch));  // no resting reference yet
  EXPECT_EQ(p.After(absl::Milliseconds(100)), absl::ZeroDuration());
  EXPECT_EQ(p.pace(), 1);
  p.Add(Samples(0.2, false, 60));
  p.After(absl::Milliseconds(100));  // uses those working samples
  p.Add(Samples(5.0, true, kBatch - 1));
  EXPECT_EQ(p.After(absl::Milliseconds(100)), absl::ZeroDuration());
  EXPECT_EQ(p.pace(), 1);
  p.Add(Samples(5.0, true, kBatch));
  EXPECT_GT(p.After(absl::Milliseconds(100)), absl::ZeroDuration());
  EXPECT_LT(p.pace(), 1);
}

// ---- against a server -----------------------------------------------------------------

std::unique_ptr<Driver> Connect(const std::string& dsn, Options options = {}) {
  absl::StatusOr<std::unique_ptr<Driver>> d = Driver::Connect(dsn, std::move(options));
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

// A table of `rows` rows, and a change_type migration of it advanced to
// trigger_installed.
void Prepare(const std::string& dsn, const std::string& name, int rows) {
  pt::Query(dsn, absl::StrCat("CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL);"
                              "INSERT INTO t SELECT g, g FROM generate_series(1, ", rows, ") g;"
                              "ANALYZE t; CREATE TABLE gate (closed boolean);"
                              "CREATE SEQUENCE s;"));
  auto d = Connect(dsn);
  ASSERT_TRUE(d->Init().ok());
  ASSERT_TRUE(d->Register(pt::Spec(name).ChangeType("t", "a", "a_new", "bigint", "a::bigint", "a_new::int").Migration()).ok());
  absl::StatusOr<MigrationStatus> s = d->Advance(name, Phase::kTriggerInstalled);
  ASSERT_TRUE(s.ok()) << s.status();
}

Options Small() {
  Options o;
  o.backfill_batch_rows = o.backfill_min_batch_rows = o.backfill_max_batch_rows = 100;
  o.backfill_poll_interval = absl::Milliseconds(20);
  o.backfill_walk = BackfillWalk::kPrimaryKey;  // exact rows_done
  return o;
}

TEST(ThrottleQuery, HoldsTheBackfillWhileTrueAndLetsItGoOnOnceFalse) {
  pt::ScratchDatabase db("throttle");
  Prepare(db.dsn(), "throttle", 2000);
  pt::Query(db.dsn(), "INSERT INTO gate VALUES (false)");
  auto observer = Connect(db.dsn());
  Options o = Small();
  o.throttle_query = "SELECT closed FROM gate";
  int held = 0, batches = 0;
  int64_t rows_when_held = -1;
  bool reopened = false, closed = false;
  o.on_progress = [&](const Progress& p) {
    if (p.waiting == "throttle_query") {
      // Nothing moves while the query says wait, and status says why.
      if (rows_when_held < 0) rows_when_held = p.rows_done;
      EXPECT_EQ(p.rows_done, rows_when_held);
      EXPECT_EQ(pt::QueryInt(db.dsn(), "SELECT count(*) FROM t WHERE a_new IS NOT NULL"), rows_when_held);
      absl::StatusOr<MigrationStatus> st = observer->Status("throttle");
      EXPECT_TRUE(st.ok()) << st.status();
      if (st.ok() && !st->backfill.empty()) EXPECT_EQ(st->backfill[0].waiting, "throttle_query");
      if (++held == 5) {
        pt::Query(db.dsn(), "UPDATE gate SET closed = false");
        reopened = true;
      }
      return;
    }
    if (!p.waiting.empty() || p.finished) return;
    // After a few batches, the gate closes; the backfill stops within a
    // poll interval.
    if (++batches == 3 && !closed) {
      pt::Query(db.dsn(), "UPDATE gate SET closed = true");
      closed = true;
    }
    if (reopened) EXPECT_GT(p.rows_done, rows_when_held);
  };
  auto d = Connect(db.dsn(), o);
  absl::StatusOr<MigrationStatus> s = d->Advance("throttle", Phase::kBackfilled);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(held, 5);
  EXPECT_TRUE(reopened);
  EXPECT_GT(rows_when_held, 0);
  EXPECT_LT(rows_when_held, 2000);
  EXPECT_EQ(pt::QueryInt(db.dsn(), "SELECT count(*) FROM t WHERE a_new IS DISTINCT FROM a::bigint"), 0);
  absl::StatusOr<MigrationStatus> st = observer->Status("throttle");
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->backfill.size(), 1u);
  EXPECT_EQ(st->backfill[0].waiting, "");  // the last batch cleared it
}

TEST(ThrottleQuery, RunsReadOnlyAndAFailureStopsTheStepResumably) {
  pt::ScratchDatabase db("throttle_fail");
  Prepare(db.dsn(), "throttle_fail", 500);
  // nextval() writes: refused by the read-only transaction, not run.
  Options o = Small();
  o.throttle_query = "SELECT nextval('s') > 100";
  auto d = Connect(db.dsn(), o);
  absl::StatusOr<MigrationStatus> s = d->Advance("throttle_fail", Phase::kBackfilled);
  ASSERT_FALSE(s.ok());
  // A step that failed, resumable (exit 1), as any failure once a step runs.
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("throttle query"));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("read-only transaction"));
  EXPECT_EQ(pt::QueryInt(db.dsn(), "SELECT last_value FROM s"), 1);
  EXPECT_FALSE(pt::QueryValue(db.dsn(), "SELECT is_called FROM s") == "t");
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT phase FROM pgshift.migrations WHERE name = 'throttle_fail'"),
            "trigger_installed");
  // A query that does not return one boolean.
  o.throttle_query = "SELECT 1, 2";
  d = Connect(db.dsn(), o);
  s = d->Advance("throttle_fail", Phase::kBackfilled);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("must return one boolean"));
  // Without it, the step runs to the end.
  d = Connect(db.dsn(), Small());
  s = d->Advance("throttle_fail", Phase::kBackfilled);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(pt::QueryInt(db.dsn(), "SELECT count(*) FROM t WHERE a_new IS DISTINCT FROM a::bigint"), 0);
}

TEST(ThrottleQuery, LeavesNothingOnTheBackfillsSession) {
  pt::ScratchDatabase db("throttle_session");
  Prepare(db.dsn(), "throttle_session", 500);
  // A session-level setting made by the query (set_config(..., false))
  // would make every later batch fail in a read-only transaction, were it
  // kept: the query's transaction is rolled back.
  Options o = Small();
  o.throttle_query = "SELECT set_config('default_transaction_read_only', 'on', false) = 'x'";
  auto d = Connect(db.dsn(), o);
  absl::StatusOr<MigrationStatus> s = d->Advance("throttle_session", Phase::kBackfilled);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(pt::QueryInt(db.dsn(), "SELECT count(*) FROM t WHERE a_new IS DISTINCT FROM a::bigint"), 0);
}

TEST(ThrottleQuery, OnlyAQueryThatReadsIsAcceptedInEverySurface) {
  for (const char* bad : {"DELETE FROM gate", "SELECT 1; SELECT 2", "SELECT * FROM gate FOR UPDATE",
                          "WITH x AS (DELETE FROM gate RETURNING 1) SELECT true", "SELECT 1 INTO y",
                          "SELEC 1"}) {
    SCOPED_TRACE(bad);
    Options o;
    o.throttle_query = bad;
    absl::StatusOr<Options> sane = SanitizeOptions(o);
    ASSERT_FALSE(sane.ok());
    EXPECT_EQ(sane.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(sane.status().message()), HasSubstr("throttle_query (--throttle-query)"));
    // The CLI refuses it before connecting (no server at this address).
    pt::CliResult r = pt::RunCli("host=127.0.0.1 port=1 connect_timeout=1",
                                 {"--throttle-query", bad, "advance", "m"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr("throttle"));
  }
  Options good;
  good.throttle_query = "SELECT count(*) > 10 FROM pg_stat_activity WHERE state = 'active'";
  EXPECT_TRUE(SanitizeOptions(good).ok());
}

TEST(LatencyGuard, ProbesAndReportsItsFiguresAndOffMeansNoProbe) {
  pt::ScratchDatabase db("guard");
  Prepare(db.dsn(), "guard", 3000);  // 30 batches of 100 rows: long enough to be guarded
  Options o = Small();
  std::vector<Progress> events;
  o.on_progress = [&](const Progress& p) { events.push_back(p); };
  auto d = Connect(db.dsn(), o);
  absl::StatusOr<MigrationStatus> s = d->Advance("guard", Phase::kBackfilled);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(pt::QueryInt(db.dsn(), "SELECT count(*) FROM t WHERE a_new IS DISTINCT FROM a::bigint"), 0);
  ASSERT_FALSE(events.empty());
  bool probed = false;
  for (const Progress& p : events) {
    probed = probed || (p.probe_resting_ms > 0 && p.probe_working_ms > 0);
    EXPECT_GE(p.pace, Pacer::kMinPace);
    EXPECT_LE(p.pace, 1);
    if (p.waiting == "latency") EXPECT_LT(p.pace, 1);
  }
  EXPECT_TRUE(probed);
  EXPECT_TRUE(events.back().finished);

  // Off: no probe figures, full pace throughout.
  pt::ScratchDatabase off("guard_off");
  Prepare(off.dsn(), "guard_off", 3000);
  events.clear();
  o.latency_guard = 0;
  d = Connect(off.dsn(), o);
  s = d->Advance("guard_off", Phase::kBackfilled);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_FALSE(events.empty());
  for (const Progress& p : events) {
    EXPECT_EQ(p.pace, 1);
    EXPECT_EQ(p.probe_resting_ms, 0);
    EXPECT_EQ(p.probe_working_ms, 0);
    EXPECT_EQ(p.waiting, "");
  }
}

TEST(LatencyGuard, RatioOptionIsCheckedInTheLibraryAndTheCli) {
  for (const char* bad : {"1", "0.5", "-2", "fast", "1001"}) {
    SCOPED_TRACE(bad);
    Options o;
    EXPECT_EQ(SetOption(o, "latency_guard", bad).code(), absl::StatusCode::kInvalidArgument);
    pt::CliResult r = pt::RunCli("host=127.0.0.1 port=1 connect_timeout=1",
                                 {"--latency-guard", bad, "status"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr("latency_guard (--latency-guard)"));
  }
  Options o;
  ASSERT_TRUE(SetOption(o, "latency_guard", "off").ok());
  EXPECT_EQ(o.latency_guard, 0);
  EXPECT_EQ(GetOption(o, "latency_guard").value(), "off");
  ASSERT_TRUE(SetOption(o, "latency_guard", "2.5").ok());
  EXPECT_EQ(o.latency_guard, 2.5);
  EXPECT_EQ(GetOption(Options(), "latency_guard").value(), "1.5");
  o.latency_guard = 0.5;  // set directly in C++: refused at connect
  EXPECT_EQ(SanitizeOptions(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pgshift
