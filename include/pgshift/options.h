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

// One progress report of a long step (the backfill).
struct Progress {
  std::string migration;
  int operation = 0;           // index of the operation in the spec
  std::string step;            // phase being reached, e.g. "backfilled"
  int64_t rows_done = 0;       // rows examined so far (committed batches)
  int64_t rows_estimate = 0;   // estimated total rows of the table
  double rows_per_second = 0;  // over the whole step so far
  double eta_seconds = -1;     // -1 when unknown
  bool finished = false;       // last report of this operation's backfill
};

using ProgressCallback = std::function<void(const Progress&)>;

struct Options {
  // Schema holding pgshift's control tables. Default "pgshift".
  std::string control_schema = "pgshift";

  // lock_timeout of every DDL transaction: how long an application query may
  // wait behind pgshift's lock request, at most. Default 1 s.
  absl::Duration lock_timeout = absl::Seconds(1);

  // statement_timeout of short DDL transactions. Default 30 s. Long steps
  // (backfill batches, VALIDATE, CREATE INDEX CONCURRENTLY) use
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
  // takes about backfill_target_batch_time, within [backfill_min_batch_rows,
  // backfill_max_batch_rows]. Defaults 1000 rows, 200 ms, 100 .. 50000 rows.
  int64_t backfill_batch_rows = 1000;
  absl::Duration backfill_target_batch_time = absl::Milliseconds(200);
  int64_t backfill_min_batch_rows = 100;
  int64_t backfill_max_batch_rows = 50000;

  // Pause between backfill batches. Default none.
  absl::Duration backfill_batch_delay = absl::ZeroDuration();

  // Pause the backfill while any standby replays more than this far behind
  // (pg_stat_replication.replay_lag); zero disables. Default 10 s.
  absl::Duration max_replication_lag = absl::Seconds(10);

  // Stop after this many backfill batches in one call (0 = no limit); the
  // step is left unfinished and resumes from its checkpoint on the next call.
  // Used by tests and by tooling that wants bounded work per call.
  int64_t backfill_max_batches = 0;

  // Called after every committed backfill batch and at the end of each
  // operation's backfill, on the calling thread.
  ProgressCallback on_progress;

  // Name recorded as the driver in history rows and shown to a second driver.
  // Default "<host>:<pid>".
  std::string driver_name;
};

}  // namespace pgshift

#endif  // PGSHIFT_OPTIONS_H_
