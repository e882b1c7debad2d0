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
#include <vector>

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

// A session that holds (or waits for) a lock on a table pgshift is about to
// lock, as seen in pg_locks + pg_stat_activity.
struct SessionInfo {
  int pid = 0;
  std::string state;               // "active", "idle in transaction", ...
  std::string user;
  std::string application;
  std::string client;              // client address, or "local"
  double transaction_seconds = 0;  // how long its transaction has been open
  double state_seconds = 0;        // how long it has been in `state`
  std::string locks;               // lock modes it holds on the table
  std::string query;               // its current or last query (first 300 chars)
};

// "pid 4242 (idle in transaction, transaction open 45 s, holds
// AccessShareLock, user app, application psql): SELECT ..."
std::string DescribeSession(const SessionInfo& session);

// When pgshift should check for long transactions before a step that takes
// an ACCESS EXCLUSIVE lock (see Options::preflight).
enum class PreflightMode {
  kWait,    // report them, then wait (up to retry_deadline) until they are gone
  kRefuse,  // report them and refuse the step (Aborted, CLI exit 4)
  kOff,     // do not check; the lock_timeout retries still apply
};

// What the preflight check found before a step (one report per table and
// step; only sent when it found sessions, and once more when they cleared).
struct PreflightReport {
  std::string migration;
  std::string step;    // phase being reached
  std::string table;   // quoted qualified table
  std::vector<SessionInfo> sessions;  // empty when the wait is over
  std::string outcome;  // "waiting", "cleared", "refused", "gave up"
};

using PreflightCallback = std::function<void(const PreflightReport&)>;

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

  // Before a step that takes an ACCESS EXCLUSIVE lock on a table, look for
  // sessions holding a lock on that table whose transaction has been open for
  // at least long_transaction (long queries, idle-in-transaction sessions):
  // they would make every lock attempt wait and fail. kWait (default) reports
  // them and waits for them to end, up to retry_deadline; kRefuse reports them
  // and stops with Aborted; kOff skips the check. Defaults kWait, 5 s.
  PreflightMode preflight = PreflightMode::kWait;
  absl::Duration long_transaction = absl::Seconds(5);

  // Called with every preflight report, on the calling thread. The reports
  // are also stored in the step's history row.
  PreflightCallback on_preflight;

  // Contract even while application instances that declared they need the
  // old shape (check.h, DeclareInstance) are live. Default false: Advance
  // refuses to reach contracted with FailedPrecondition listing them.
  bool force_contract = false;

  // An action that would scan or rewrite the whole table while holding an
  // ACCESS EXCLUSIVE lock (e.g. SET NOT NULL without a usable CHECK on
  // PostgreSQL < 12) blocks every query on the table for the length of the
  // scan. pgshift refuses such an action when the table holds more than
  // this many rows (estimate). Default 10000; negative disables the check.
  int64_t max_locked_scan_rows = 10000;

  // How often the driver lease (the one-driver-per-migration lock) is
  // refreshed on its own connection. Default 5 s.
  absl::Duration lease_heartbeat = absl::Seconds(5);
};

}  // namespace pgshift

#endif  // PGSHIFT_OPTIONS_H_
