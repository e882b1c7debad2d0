// The latency guard: keeps the backfill from hurting the application.
//
// A backfill that runs batch after batch keeps one server core busy. On a
// server with cores to spare nobody notices; where CPU is tight (two cores,
// measured in docs/performance.md) the application's queries queue behind
// it and their tail latency rises several-fold. A fixed pause between
// batches is the wrong tool: it slows an idle run as much as a busy one. The
// guard paces the backfill only while the server is actually serving others
// worse because of it.
//
// How it sees that: a Prober on a second connection times a trivial query
// (`SELECT 1`, a round trip through the server's scheduler like any
// application query) every few milliseconds, and tags each sample with
// whether a batch was running at that moment. The Pacer compares the recent
// samples taken while the backfill worked with those taken while it rested
// (at first, a baseline taken before the first batch): when working makes
// the probe's 95th percentile slower than `ratio` times resting, the
// backfill is hurting
// others, and its pace (the share of time it works) drops multiplicatively;
// when it does not, the pace climbs back additively, to full speed. After a
// batch that worked for t, the backfill rests t * (1 - pace) / pace.
//
// Nobody to protect, nothing to hold back for: while no other client session
// (one not named "pgshift ...") has been active in the last two seconds, the
// pace is 1 whatever the probe says (on a small server the backfill's own
// WAL and page writing slow the probe down too). And on an idle server
// working and resting probe alike anyway: the guard does not slow an idle run. The pace never drops below
// Pacer::kMinPace, so a backfill under constant load still finishes (in at
// most 1 / kMinPace times as long); an explicit pause (Driver::Pause) or a
// throttle query stops it outright.
//
// Pacer is pure arithmetic (tested without a server); Prober owns a thread.
#ifndef PGSHIFT_LIB_BACKFILL_GUARD_H_
#define PGSHIFT_LIB_BACKFILL_GUARD_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "lib/pg/connection.h"

namespace pgshift::backfill {

// One probe: how long the trivial query took, and whether the backfill was
// working during all of it.
struct ProbeSample {
  double ms = 0;
  bool working = false;
};

class Pacer {
 public:
  // Lowest share of time the backfill works while it is holding back.
  static constexpr double kMinPace = 0.05;
  // Samples kept per kind (working / resting): about 1.5 s of probes each.
  // The guard decides on their 95th percentiles: application latency
  // suffers first in its tail, and a median would not see it.
  static constexpr size_t kWindow = 300;
  // Fewer working samples than this since the last decision: no decision
  // (too few to say anything new).
  static constexpr size_t kMinSamples = 40;

  // `ratio` > 1: how much slower than resting the probe may be while the
  // backfill works.
  explicit Pacer(double ratio) : ratio_(ratio) {}

  // Adds samples (from Prober::Take).
  void Add(const std::vector<ProbeSample>& samples);
  // Whether there is a resting reference to compare with.
  bool has_baseline() const { return !resting_.empty(); }

  // Decides after a batch that worked for `worked`, knowing whether other
  // sessions were active lately: returns how long to rest before the next
  // one (zero at full pace).
  absl::Duration After(absl::Duration worked, bool others_active = true);

  double pace() const { return pace_; }
  // Whether the last decision found the probe too slow while working.
  bool hurting() const { return hurting_; }
  // 95th percentiles of the recent working and resting samples (ms); 0 when
  // there are none.
  double working_ms() const { return P95(working_); }
  double resting_ms() const { return P95(resting_); }

 private:
  static double P95(const std::deque<double>& xs);
  double ratio_;
  double pace_ = 1;
  bool hurting_ = false;
  size_t fresh_ = 0;  // working samples since the last decision
  std::deque<double> working_, resting_;
};

// Times `SELECT 1` on `conn` (a connection nothing else uses meanwhile)
// every `interval`, on a thread, until destroyed. The backfill says when it
// works (SetWorking) and takes the samples (Take). A sample that straddles a
// change between working and resting is dropped.
class Prober {
 public:
  // `backfill_pid`: the backend of the backfill, not an "other" session.
  Prober(pg::Connection& conn, absl::Duration interval, int backfill_pid);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  void SetWorking(bool working) { working_.store(working); }
  // Probes every `interval` from the next one on.
  void SetInterval(absl::Duration interval) { interval_us_.store(absl::ToInt64Microseconds(interval)); }
  // The samples since the last Take. Empty once the probe connection
  // failed (the guard then has nothing to go by: see failed()).
  std::vector<ProbeSample> Take();
  bool failed() const { return failed_.load(); }
  // Whether a client session other than pgshift's own was active (or
  // changed state) in the last two seconds, as last looked (every 250 ms).
  // True when it cannot tell (the look failed): then the guard guards.
  bool others_active() const { return others_active_.load(); }

 private:
  void Loop();
  pg::Connection& conn_;
  std::atomic<int64_t> interval_us_;
  std::atomic<bool> working_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> others_active_{true};
  int backfill_pid_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<ProbeSample> samples_;
  static constexpr int kWarmUp = 5;
  int probes_ = 0;
  std::thread thread_;
};

}  // namespace pgshift::backfill

#endif  // PGSHIFT_LIB_BACKFILL_GUARD_H_
