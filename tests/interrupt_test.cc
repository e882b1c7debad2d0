// Options::interrupted, how an embedder stops a driver (Ctrl-C in Python):
// asked before a step it stops the call with nothing begun; asked between
// backfill batches it stops the step with the batches done kept, and the
// next call resumes from the checkpoint and loses nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "pgshift/pgshift.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace pgshift {
namespace {

namespace pt = ::pgshift::testing;

constexpr int kRows = 3000;

void Prepare(const std::string& dsn) {
  pt::Query(dsn, absl::StrCat("CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL);"
                              "INSERT INTO t SELECT g, g FROM generate_series(1, ", kRows, ") g; ANALYZE t"));
}

v1::Migration Spec() {
  return pt::Spec("m").ChangeType("t", "a", "a_new", "bigint", "a::bigint", "a_new::int").Migration();
}

std::unique_ptr<Driver> Connect(const std::string& dsn, Options o) {
  o.backfill_batch_rows = o.backfill_min_batch_rows = o.backfill_max_batch_rows = 100;
  o.backfill_walk = BackfillWalk::kPrimaryKey;
  o.latency_guard = 0;
  auto d = Driver::Connect(dsn, std::move(o));
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

// Init, register `spec` and advance it to contracted with `o`: the
// advance's result.
absl::StatusOr<MigrationStatus> AdvanceAll(const std::string& dsn, const Options& o,
                                           const v1::Migration& spec = Spec()) {
  auto d = Connect(dsn, o);
  if (d == nullptr) return absl::InternalError("no driver");
  if (absl::Status s = d->Init(); !s.ok()) return s;
  if (auto r = d->Register(spec); !r.ok()) return r.status();
  return d->Advance(spec.name(), Phase::kContracted);
}

TEST(Interrupted, BeforeAStepNothingIsBegun) {
  pt::ScratchDatabase db("interrupt_step");
  Prepare(db.dsn());
  Options o;
  o.interrupted = [] { return true; };
  absl::StatusOr<MigrationStatus> s = AdvanceAll(db.dsn(), o);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kCancelled) << s.status();
  EXPECT_NE(s.status().message().find("run the same command again"), absl::string_view::npos);
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT phase || '/' || coalesce(running_step, '') FROM pgshift.migrations"),
            "registered/");
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT count(*) FROM pgshift.history"), "0");
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT count(*) FROM information_schema.columns WHERE column_name = 'a_new'"),
            "0");
}

TEST(Interrupted, BetweenBatchesTheStepStopsAndResumes) {
  pt::ScratchDatabase db("interrupt_batches");
  Prepare(db.dsn());
  std::atomic<int> reports{0};
  Options o;
  o.on_progress = [&reports](const Progress&) { ++reports; };
  o.interrupted = [&reports] { return reports.load() >= 3; };
  absl::StatusOr<MigrationStatus> s = AdvanceAll(db.dsn(), o);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kCancelled) << s.status();
  EXPECT_EQ(reports.load(), 3) << "stopped at the first question after the third report";
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT phase || '/' || running_step FROM pgshift.migrations"),
            "trigger_installed/backfilled");
  // The batches that committed are kept, and the checkpoint says so.
  const int64_t done = pt::QueryInt(db.dsn(), "SELECT rows_done FROM pgshift.checkpoints WHERE operation = 0");
  EXPECT_GE(done, 100);
  EXPECT_LE(done, 300);
  EXPECT_EQ(pt::QueryInt(db.dsn(), "SELECT count(*) FROM t WHERE a_new IS NOT NULL"), done);

  // A driver that is not interrupted goes on from the checkpoint.
  auto again = Connect(db.dsn(), Options());
  ASSERT_NE(again, nullptr);
  s = again->Advance("m", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->phase, Phase::kContracted);
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT count(*) FROM t WHERE a_new = id"), std::to_string(kRows));
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                     "WHERE attrelid = 't'::regclass AND attname = 'a_new'"),
            "bigint");
}

// A running CREATE INDEX CONCURRENTLY is cancelled by an interrupt, and a
// callback that answers true only once (it consumed a flag) still stops the
// call: the driver remembers the answer, so the cancelled build is not taken
// for a finished one when it asks again. The build waits for a snapshot the
// test holds, so it is surely running when the interrupt comes.
TEST(Interrupted, AnIndexBuildCancelledByAnInterruptAnsweredOnceIsNotTakenForDone) {
  pt::ScratchDatabase db("interrupt_index");
  Prepare(db.dsn());
  pt::Session snapshot(db.dsn());
  snapshot.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t");
  std::atomic<bool> armed{false}, flag{false};
  std::thread watcher([&] {
    for (int i = 0; i < 6000 && !armed; ++i) {
      armed = pt::QueryValue(db.dsn(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                       "'%CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()") != "0";
      if (armed) flag = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  Options o;
  o.interrupted = [&flag] { return flag.exchange(false); };
  absl::StatusOr<MigrationStatus> s =
      AdvanceAll(db.dsn(), o, pt::Spec("ix").CreateIndex("t", "t_a_idx", {"a"}).Migration());
  watcher.join();
  snapshot.Exec("COMMIT");
  ASSERT_TRUE(armed.load()) << "the build never waited";
  ASSERT_EQ(s.status().code(), absl::StatusCode::kCancelled) << s.status();
  EXPECT_NE(pt::QueryValue(db.dsn(), "SELECT phase FROM pgshift.migrations"), "validated");
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                     "WHERE c.relname = 't_a_idx' AND i.indisvalid"),
            "0");
  // An uninterrupted driver finishes it.
  auto again = Connect(db.dsn(), Options());
  ASSERT_NE(again, nullptr);
  s = again->Advance("ix", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                     "WHERE c.relname = 't_a_idx' AND i.indisvalid"),
            "1");
}

// A callback that answers true once (it consumed a flag) still stops the
// call: the driver remembers the answer for the rest of the call, so that
// nothing it cancelled passes for done when it asks again.
TEST(Interrupted, AnInterruptAnsweredOnlyOnceStillStopsTheCall) {
  pt::ScratchDatabase db("interrupt_once");
  Prepare(db.dsn());
  std::atomic<int> reports{0};
  std::atomic<bool> flag{false};
  Options o;
  o.on_progress = [&](const Progress&) {
    if (++reports == 2) flag = true;
  };
  o.interrupted = [&flag] { return flag.exchange(false); };
  absl::StatusOr<MigrationStatus> s = AdvanceAll(db.dsn(), o);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kCancelled) << s.status();
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT phase || '/' || running_step FROM pgshift.migrations"),
            "trigger_installed/backfilled");
}

}  // namespace
}  // namespace pgshift
