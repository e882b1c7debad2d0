// Options::interrupted, how an embedder stops a driver (Ctrl-C in Python):
// asked before a step it stops the call with nothing begun; asked between
// backfill batches it stops the step with the batches done kept, and the
// next call resumes from the checkpoint and loses nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "pgshift/pgshift.h"
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

TEST(Interrupted, BeforeAStepNothingIsBegun) {
  pt::ScratchDatabase db("interrupt_step");
  Prepare(db.dsn());
  Options o;
  o.interrupted = [] { return true; };
  auto d = Connect(db.dsn(), o);
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->Init().ok());
  ASSERT_TRUE(d->Register(Spec()).ok());
  absl::StatusOr<MigrationStatus> s = d->Advance("m", Phase::kContracted);
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
  auto d = Connect(db.dsn(), o);
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->Init().ok());
  ASSERT_TRUE(d->Register(Spec()).ok());
  absl::StatusOr<MigrationStatus> s = d->Advance("m", Phase::kContracted);
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

}  // namespace
}  // namespace pgshift
