// Runtime knobs of a pgshift driver, with their defaults, and the one place
// that checks them: Driver::Connect runs SanitizeOptions, and every surface
// (the CLI's flags, the C API's pgshift_options_set, Python's keyword
// arguments) sets options through SetOption, so that all of them accept the
// same values and reject bad ones with the same message.
//
// Example:
//   pgshift::Options options;
//   options.lock_timeout = absl::Milliseconds(500);
//   options.backfill_batch_rows = 5000;
//   absl::Status s = pgshift::SetOption(options, "backfill_walk", "pages");
//   absl::StatusOr<pgshift::Options> checked = pgshift::SanitizeOptions(options);
//
// Thread-safety: the functions here are; an Options is a plain value.
#ifndef PGSHIFT_OPTIONS_H_
#define PGSHIFT_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
  // Rows covered so far (committed batches, across resumes): exact when
  // walking the primary key, and when walking pages on PostgreSQL 14+ (the
  // rows each page range holds, as its scan counted them); before 14, the
  // pages walked times the table's density (never below the rows changed).
  int64_t rows_done = 0;
  // Total rows: an estimate until finished (then it equals rows_done),
  // from the table's size and density now (counted when it is small),
  // refined while walking pages by the density of the pages walked so far.
  int64_t rows_estimate = 0;
  double rows_per_second = 0;  // recent rate, smoothed over the last seconds of work
  double eta_seconds = -1;     // -1 when unknown
  bool finished = false;       // last report of this operation's backfill
  int64_t rows_updated = 0;    // rows changed by this call (rows already in sync are skipped)
  int64_t batch_rows = 0;      // size of the next batch, in rows (adapts to the target time)
  int64_t lock_wait_ms = 0;    // time this call lost to lock timeouts and deadlocks
  // "" while working; otherwise why the backfill is waiting right now:
  // "paused" (pause requested), "replication_lag", "lock_contention",
  // "throttle_query" (the throttle query returned true), or "latency" (the
  // latency guard rests between batches: see pace).
  std::string waiting;
  // Share of time the backfill works: 1 at full speed, lower while the
  // latency guard holds it back (Options::latency_guard).
  double pace = 1;
  // The latency guard's probe (95th percentile, ms) while batches ran and
  // while the backfill rested (or before it started); 0 when the guard is
  // off or has no samples yet.
  double probe_working_ms = 0;
  double probe_resting_ms = 0;
  // True while rows_estimate is an estimate (until finished): shown as
  // "~12000" by the CLI.
  bool rows_estimated = true;
};

using ProgressCallback = std::function<void(const Progress&)>;

// What Driver::Migrate is doing (one event per change of what it does).
struct MigrateEvent {
  std::string migration;  // "" for events about the whole directory
  std::string file;
  // "waiting" (another migrate holds the directory lock; `message` names
  // it), "locked" (got it after waiting), "register", "advance" (to `phase`), "reached"
  // (`phase`), "contract", "skip" (nothing to do; `message` says why),
  // "stop" (`message` says why and what to do), "baseline" (recorded as
  // applied by Driver::Baseline).
  std::string action;
  std::string phase;      // the phase reached or aimed at, "" when none
  std::string message;
};

using MigrateCallback = std::function<void(const MigrateEvent&)>;

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
// Several of them, "; "-separated, at most `max` (then "and N more").
std::string DescribeSessions(const std::vector<SessionInfo>& sessions, size_t max = 10);

// How the backfill walks a table (Options::backfill_walk).
enum class BackfillWalk {
  kAuto,        // kPages on PostgreSQL 14+, else kPrimaryKey; kPages without a primary key
  kPrimaryKey,  // keyset batches in primary-key order (kPages when there is none)
  kPages,       // ctid page ranges in physical order
};

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
  // replication lag, throttle query). Default 1 s.
  absl::Duration backfill_poll_interval = absl::Seconds(1);

  // The latency guard (docs/performance.md): while the backfill runs, a
  // second connection times a trivial query every few milliseconds; when the
  // query is more than this many times slower while a batch runs than while
  // the backfill rests, the backfill is hurting the application, and it
  // rests between batches (working as little as 5% of the time), speeding
  // back up once the probe is calm again. While no other client session
  // (one not named "pgshift ...") has been active in the last two seconds it
  // holds nothing back: it does not slow a backfill on an idle server. 0 turns it off (full speed whatever the load). Backfills of
  // fewer than ten initial batches (backfill_batch_rows) run unguarded.
  // Default 1.5.
  double latency_guard = 1.5;

  // SQL returning one boolean: while it returns true, the backfill waits
  // (gh-ost's throttle query), asked before the first batch and then at most
  // once per backfill_poll_interval, in a read-only transaction under
  // statement_timeout. One SELECT; empty for none. Default none.
  std::string throttle_query;

  // Stop after this many backfill batches in one call (0 = no limit); the
  // step is left unfinished and resumes from its checkpoint on the next call.
  // Used by tests and by tooling that wants bounded work per call.
  int64_t backfill_max_batches = 0;

  // How the backfill walks the table. Pages (ctid ranges, a TID range scan
  // on PostgreSQL 14+) read the table in physical order like a plain UPDATE
  // and never read the index the batch is inserting into; walking the
  // primary key costs ~40% more server CPU per row (measured, see
  // docs/performance.md) but has exact row counts. Before PostgreSQL 14 a
  // ctid range is a sequential scan per batch, so kAuto walks the primary
  // key there. Tables without a primary key are always walked by pages.
  // Default kAuto.
  BackfillWalk backfill_walk = BackfillWalk::kAuto;

  // Called with backfill progress (see Progress) on the calling thread.
  // Pausing: Driver::Pause / Driver::Resume, or
  //   UPDATE pgshift.migrations SET paused = true WHERE name = '...';
  // the backfill stops between batches until paused is false again.
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

  // Called with every event of Driver::Migrate, on the calling thread.
  MigrateCallback on_migrate;

  // Asked before every step and every action of a step, between backfill
  // batches and while a backfill rests or waits, and while a long statement
  // (VALIDATE, CREATE INDEX CONCURRENTLY) runs, which it then cancels: when
  // it returns true, Advance, Rollback, Migrate and Baseline stop there
  // with CANCELLED, keeping everything that committed (the step is
  // interrupted and the next call resumes it). How an embedder stops a
  // driver on Ctrl-C (the Python binding raises KeyboardInterrupt); it may
  // be called from another thread of the driver than the caller's.
  std::function<bool()> interrupted;

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

// Checks `options` and settles what is derived, the same for every surface:
// an empty driver_name gets its default, while an empty control_schema is
// an error (its default is already in Options, so empty means it was set
// empty, e.g. --control-schema ''); durations are not negative, and
// lock_timeout, the batch time, the batch lock timeout, the poll interval
// and the lease heartbeat are positive; batch sizes are at least 1;
// retry_max_backoff >= retry_initial_backoff. The batch sizes settle into
// min <= initial <= max: a bound left at its default gives way
// (a smaller max lowers the default min, a smaller initial size lowers the
// min, a larger one raises the default max), a max that was set caps the
// initial size, and a min set above a max is an error. InvalidArgument
// naming the option (and its CLI flag) and what it accepts when a value is
// out of range. Driver::Connect calls it.
absl::StatusOr<Options> SanitizeOptions(Options options);

// The options that have a text form: every field of Options but the
// callbacks. Each surface is built from this list (the CLI's flags and
// --help, pgshift_options_set in C, keyword arguments in Python), so that
// none of them can miss one.
struct OptionInfo {
  const char* name;  // the Options field: "lock_timeout" (also the C and Python name)
  const char* flag;  // the CLI flag without "--": "lock-timeout"
  // "duration" (500ms, 1.5s, 2m; Python also takes seconds as a number),
  // "integer", "text", "bool" (true/false; a CLI flag without a value), or
  // "choice" (one of `choices`).
  const char* kind;
  const char* help;  // one line, with the default
  std::vector<const char*> choices;
};
const std::vector<OptionInfo>& OptionList();

// Sets option `name` of `options` from its text form. InvalidArgument
// naming the option when there is no such option or the text is not of its
// kind ("lock_timeout (--lock-timeout): \"soon\" is not a duration like 500ms,
// 1.5s or 2m"). Ranges are SanitizeOptions' business.
absl::Status SetOption(Options& options, absl::string_view name, absl::string_view value);

// The text form of option `name` in `options`, as SetOption reads it back
// (durations in the shortest exact form, e.g. "1.5s"). NotFound when there
// is no such option.
absl::StatusOr<std::string> GetOption(const Options& options, absl::string_view name);

}  // namespace pgshift

#endif  // PGSHIFT_OPTIONS_H_
