#include "lib/backfill/guard.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/util/advisory_keys.h"

namespace pgshift::backfill {

// ---- Pacer --------------------------------------------------------------------

double Pacer::P95(const std::deque<double>& xs) {
  if (xs.empty()) return 0;
  std::vector<double> v(xs.begin(), xs.end());
  const size_t k = (v.size() * 95) / 100;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(std::min(k, v.size() - 1)), v.end());
  return v[std::min(k, v.size() - 1)];
}

void Pacer::Add(const std::vector<ProbeSample>& samples) {
  for (const ProbeSample& s : samples) {
    std::deque<double>& into = s.working ? working_ : resting_;
    into.push_back(s.ms);
    if (into.size() > kWindow) into.pop_front();
    if (s.working) ++fresh_;
  }
}

absl::Duration Pacer::After(absl::Duration worked, bool others_active) {
  if (!others_active) {
    // Nobody to hold back for.
    hurting_ = false;
    pace_ = 1;
    fresh_ = 0;
  } else if (resting_.empty() || fresh_ < kMinSamples) {
    // Nothing new to judge by: keep the pace.
  } else {
    fresh_ = 0;
    // A floor of 50 µs on the reference: below it the comparison would be
    // timer noise.
    const double reference = std::max(P95(resting_), 0.05);
    hurting_ = P95(working_) > ratio_ * reference;
    if (hurting_) {
      pace_ = std::max(kMinPace, pace_ * 0.7);
    } else {
      pace_ = std::min(1.0, pace_ + 0.05);
    }
  }
  if (pace_ >= 1) return absl::ZeroDuration();
  return worked * ((1 - pace_) / pace_);
}

// ---- Prober -------------------------------------------------------------------

Prober::Prober(pg::Connection& conn, absl::Duration interval, int backfill_pid)
    : conn_(conn), interval_us_(absl::ToInt64Microseconds(interval)), backfill_pid_(backfill_pid) {
  thread_ = std::thread([this] { Loop(); });
}

Prober::~Prober() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::vector<ProbeSample> Prober::Take() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ProbeSample> out;
  out.swap(samples_);
  return out;
}

namespace {
// Client sessions other than this one, the backfill's and pgshift's own,
// active or changing state lately. pgshift's own: named "pgshift ..." (its
// default application name), or holding a pgshift lease or runner lock
// (whatever name the user's DSN gave them). A session of another role
// shows no state without pg_read_all_stats: it counts as active.
const std::string& OthersSql() {
  static const std::string* sql = new std::string(absl::StrCat(
      "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'client backend' "
      "AND pid <> pg_backend_pid() AND pid <> $1 "
      "AND coalesce(application_name, '') NOT LIKE 'pgshift %' "
      "AND pid NOT IN (SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
      "AND l.objsubid = 2 AND l.classid IN (",
      util::kAdvisoryClassKey, "::oid, ", util::kRunnerClassKey, "::oid)) "
      "AND (state IS NULL OR state <> 'idle' OR state_change > now() - interval '2 seconds')"));
  return *sql;
}
}  // namespace

void Prober::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  absl::Time next_look = absl::InfinitePast();
  while (!cv_.wait_for(lock, std::chrono::microseconds(interval_us_.load()), [this] { return stop_; })) {
    lock.unlock();
    if (absl::Now() >= next_look) {
      next_look = absl::Now() + absl::Milliseconds(250);
      auto r = conn_.Exec(OthersSql(), {std::to_string(backfill_pid_)});
      others_active_.store(!r.ok() || r->GetBool(0, 0));
    }
    const bool before = working_.load();
    const absl::Time t0 = absl::Now();
    const bool ok = conn_.RunSimple("SELECT 1").ok();
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    const bool after = working_.load();
    lock.lock();
    if (!ok) {
      failed_.store(true);
      return;
    }
    // The first few probes of a fresh session are slow (caches warming up):
    // not a measure of the server.
    if (before == after && ++probes_ > kWarmUp) samples_.push_back({ms, before});
  }
}

}  // namespace pgshift::backfill
