// Runtime knobs of a pgshift driver, with their defaults.
//
// Example:
//   pgshift::Options options;
//   options.lock_timeout = absl::Milliseconds(500);
//   options.backfill_batch_rows = 5000;
#ifndef PGSHIFT_OPTIONS_H_
#define PGSHIFT_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"

namespace pgshift {

// One progress report of a long step (the backfill). Reports come after
// every committed batch, about once per poll interval while the backfill
// waits (paused or throttled), and once more with finished=true at the end.
// rows_done never decreases within one call, and continues from the
// checkpoint after a resume.
struct Progress {
  std::string migration;
  int operation = 0;           // index of the operation in the spec
  std::string step;            // phase being reached, e.g. "backfilled"
  int64_t rows_done = 0;       // rows covered so far (committed batches, across resumes)
  int64_t rows_estimate = 0;   // estimated total rows; equals rows_done once finished
  double rows_per_second = 0;  // recent rate, smoothed over the last seconds of work
  double eta_seconds = -1;     // -1 when unknown
  bool finished = false;       // last report of this operation's backfill
  int64_t rows_updated = 0;    // rows changed by this call (rows already in sync are skipped)
  int64_t batch_rows = 0;      // size of the next batch, in rows (adapts to the target time)
  int64_t lock_wait_ms = 0;    // time this call lost to lock timeouts and deadlocks
  // "" while working; otherwise why the backfill is waiting right now:
  // "paused" (pause requested), "replication_lag" or "lock_contention".
  std::string waiting;
};

using ProgressCallback = std::function<void(const Progress&)>;

struct Options {
  // Schema holding pgshift's control tables. Default "pgshift".
  std::string control_schema = "pgshift";

  // lock_timeout of every DDL transaction: how long an application query may
  // wait behind pgshift's lock request, at most. Default 1 s.
  absl::Duration lock_timeout = absl::Seconds(1);

  // statement_timeout of short DDL transactions and of each backfill batch
  // (a batch that hits it is retried at a quarter of the size). Default
  // 30 s. Long steps (VALIDATE, CREATE INDEX CONCURRENTLY) use
  // long_statement_timeout instead.
  absl::Duration statement_timeout = absl::Seconds(30);

  // statement_timeout of long statements; zero means none. Default none.
  absl::Duration long_statement_timeout = absl::ZeroDuration();

  // A DDL that cannot get its lock is retried with jittered exponential
  // backoff, from retry_initial_backoff up to retry_max_backoff, until
  // retry_deadline has passed since the first attempt. Defaults 200 ms, 5 s,
  // 2 min.
  absl::Duration retry_initial_backoff = absl::Milliseconds(200);
  absl::Duration retry_max_backoff = absl::Seconds(5);
  absl::Duration retry_deadline = absl::Minutes(2);

  // Backfill batch size in rows at start; it then adapts so that one batch
  // takes about backfill_target_batch_time (row locks are held that long, so
  // an application write to a row of the current batch waits at most about
  // that long), within [backfill_min_batch_rows, backfill_max_batch_rows].
  // Defaults 1000 rows, 100 ms, 100 .. 100000 rows.
  int64_t backfill_batch_rows = 1000;
  absl::Duration backfill_target_batch_time = absl::Milliseconds(100);
  int64_t backfill_min_batch_rows = 100;
  int64_t backfill_max_batch_rows = 100000;

  // lock_timeout of each backfill batch. A batch that waits longer for a row
  // or table lock is rolled back (releasing the rows it had locked), the
  // batch size halves and the batch is retried after a jittered exponential
  // backoff (retry_initial_backoff .. retry_max_backoff); the backfill gives
  // up with DeadlineExceeded when no batch commits for retry_deadline.
  // Default 200 ms.
  absl::Duration backfill_lock_timeout = absl::Milliseconds(200);

  // Pause between backfill batches, to leave the server some room. Default
  // none.
  absl::Duration backfill_batch_delay = absl::ZeroDuration();

  // Pause the backfill while any standby replays more than this far behind
  // (pg_stat_replication.replay_lag); zero disables. Reading other sessions'
  // lag needs the pg_monitor (or pg_read_all_stats) role: without it the
  // backfill refuses to run while standbys are attached, rather than
  // ignoring their lag. Default 10 s.
  absl::Duration max_replication_lag = absl::Seconds(10);

  // How often a paused or throttled backfill checks again (pause request,
  // replication lag). Default 1 s.
  absl::Duration backfill_poll_interval = absl::Seconds(1);

  // Stop after this many backfill batches in one call (0 = no limit); the
  // step is left unfinished and resumes from its checkpoint on the next call.
  // Used by tests and by tooling that wants bounded work per call.
  int64_t backfill_max_batches = 0;

  // Called with backfill progress (see Progress) on the calling thread.
  // Pausing: Driver::Pause / Driver::Resume, or
  //   UPDATE pgshift.migrations SET paused = true WHERE name = '...';
  // the backfill stops between batches until paused is false again.
  ProgressCallback on_progress;

  // Name recorded as the driver in history rows and shown to a second driver.
  // Default "<host>:<pid>".
  std::string driver_name;
};

}  // namespace pgshift

#endif  // PGSHIFT_OPTIONS_H_
