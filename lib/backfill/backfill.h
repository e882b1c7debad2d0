// The batched backfill: brings every pre-existing row of a table to the new
// shape (ops::BackfillSpec) in many short transactions, each of which commits
// its batch together with its checkpoint, so that a driver killed at any
// moment resumes from the last committed batch.
//
// Two ways to walk the table (Options::backfill_walk):
//   - ctid page ranges: `ctid >= '(p,0)' AND ctid < '(p+n,0)'`, a TID range
//     scan on PostgreSQL 14+ (older servers run the same statement as a
//     sequential scan per batch: correct, slow). It reads the table in
//     physical order as a plain UPDATE does; the default on 14+, and the only
//     way for tables without a primary key;
//   - keyset: on the primary key (composite keys included), `(k1, k2) > last
//     AND (k1, k2) <= end` where `end` is the key `batch` rows further on.
//     Exact row counts, but the index scan reads the very index pages the
//     batch inserts the new row versions' entries into (~40% more CPU).
//
// Why no row is skipped by the page walk: the backfill runs after the sync
// trigger is installed, and CREATE TRIGGER waited for every writing
// transaction, so every row inserted or updated since then went through the
// trigger and is already in sync, wherever it lives. Only rows that existed
// before and were never written since need the backfill, and such a row has
// not moved: a tuple changes its ctid only when it is updated (then the
// trigger synced it) or when the table is rewritten (VACUUM FULL, CLUSTER,
// pg_repack). The walk covers pages [0, end_page) where end_page is the size
// of the table when the backfill started (rows beyond it were written later),
// and it records the relation's filenode: when a rewrite changed it, the
// walk starts again from page 0 (rows already done are skipped by the
// needs_work predicate, so a restart costs reads, not writes). Each batch
// takes its ROW EXCLUSIVE lock before it reads the filenode, so no rewrite
// can slip in between the check and the UPDATE.
//
// The statements it runs come from statements.h, as the plan shows them; its
// state lives in a CheckpointStore (the control schema's checkpoints table,
// lib/engine/control.h), written in each batch's transaction.
//
// Throttling between batches: an explicit pause request (the `paused` column
// of the control schema's migrations table, set by Driver::Pause or by SQL),
// replication lag above Options::max_replication_lag, lock contention (a
// batch that hits backfill_lock_timeout or a deadlock is rolled back, the
// batch size halves and the next attempt waits with jittered exponential
// backoff), the throttle query (Options::throttle_query), the latency guard
// (guard.h: rests between batches while they slow other sessions' queries)
// and Options::backfill_batch_delay.
//
// Not thread-safe: one Backfill per connection.
#ifndef PGSHIFT_LIB_BACKFILL_BACKFILL_H_
#define PGSHIFT_LIB_BACKFILL_BACKFILL_H_

#include <cstdint>
#include <deque>
#include <utility>
#include <functional>
#include <string>

#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/backfill/guard.h"
#include "lib/backfill/statements.h"
#include "lib/ops/action.h"
#include "lib/pg/connection.h"
#include "pgshift/options.h"

namespace pgshift::backfill {

// Chooses the size of the next batch so that one batch takes about `target`:
// it keeps a smoothed cost per row (which includes the fixed cost of a batch,
// so the size converges to (target - fixed) / per-row), grows by at most 2x
// and shrinks by at most 4x per batch, and always stays within
// [min_rows, max_rows]. Pure arithmetic, no clock.
class BatchSizer {
 public:
  BatchSizer(int64_t initial_rows, int64_t min_rows, int64_t max_rows, absl::Duration target);

  // Rows the next batch should cover.
  int64_t rows() const { return rows_; }
  int64_t min_rows() const { return min_; }
  int64_t max_rows() const { return max_; }

  // A committed batch covered `rows` rows in `took`. A short final batch
  // (rows < rows()) teaches the cost per row but never grows the size.
  void Observe(int64_t rows, absl::Duration took);
  // A batch was rolled back after a lock timeout or deadlock: halve.
  void Contended();
  // A batch ran into statement_timeout: quarter.
  void TimedOut();

 private:
  void Set(double rows);
  int64_t rows_;
  int64_t min_, max_;
  absl::Duration target_;
  double per_row_seconds_ = 0;  // smoothed; 0 until the first observation
};

// Recent throughput: rows over busy time across the most recent batches that
// together span at least `window` of work (all of them at first), so the
// rate neither clings to a slow first batch nor counts time spent paused or
// throttled.
class RateMeter {
 public:
  explicit RateMeter(absl::Duration window = absl::Seconds(10)) : window_(window) {}
  void Add(int64_t rows, absl::Duration busy);
  double rows_per_second() const;

 private:
  absl::Duration window_;
  std::deque<std::pair<int64_t, absl::Duration>> samples_;
  int64_t rows_ = 0;
  absl::Duration busy_;
};

// Where a walk stands: what a checkpoint holds.
struct Position {
  std::vector<std::string> last_key;  // key walk: key of the last row done; empty = start
  bool have_range = false;            // page walk: page/end_page/filenode are known
  int64_t page = 0;                   // page walk: next page to do
  int64_t end_page = 0;               // page walk: pages of the table when the walk started
  std::string filenode;               // page walk: pg_relation_filenode when the walk started
};

struct Checkpoint {
  Position position;
  bool done = false;
  int64_t rows_done = 0;
  int64_t rows_estimate = 0;
  std::string waiting;  // why the backfill holds back ("" while working), for status
  double pace = 1;      // share of time it works (the latency guard)
};

// Where one backfill keeps its checkpoint and reads pause requests.
class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;
  // The last committed checkpoint; none before the first batch.
  virtual absl::StatusOr<std::optional<Checkpoint>> Load() = 0;
  // Records `checkpoint` in the caller's open transaction (the batch's, so
  // that both commit together) and returns whether a pause is requested.
  virtual absl::StatusOr<bool> Save(const Checkpoint& checkpoint) = 0;
  // Whether a pause is requested now.
  virtual absl::StatusOr<bool> PauseRequested() = 0;
  // Records, in a transaction of its own, why the backfill waits now (see
  // Progress::waiting) and its pace, for status read by other processes.
  // `rows_estimate` fills a checkpoint written before the first batch.
  virtual absl::Status SetWaiting(const std::string& waiting, double pace, int64_t rows_estimate) = 0;
};

// What one Run did.
struct Stats {
  int64_t rows_updated = 0;  // rows the batches changed
  int64_t batches = 0;       // batches committed
  int64_t retries = 0;       // batches rolled back (lock timeout, deadlock, statement timeout)
  int64_t lock_wait_ms = 0;  // time spent in rolled-back attempts
  int64_t fallback_batches = 0;  // batches run with spec.fallback_set_clause
};

// Estimated number of rows of `table` (quoted qualified name) now: reltuples
// scaled to the table's current size like the planner does, or, when the
// table was never analyzed, the planner's own guess from its size and row
// width (EXPLAIN). Cheap: no table scan.
absl::StatusOr<int64_t> EstimateRows(pg::Connection& conn, const std::string& table);

struct Batch;  // one batch's outcome (backfill.cc)

class Backfill {
 public:
  // The backfill of operation `operation` of migration `migration` (for
  // progress reports), keeping its state in `store`.
  // `describe_lock_holders(table)` says who holds locks on the table, for the
  // message given when lock contention outlasts options.retry_deadline.
  // `keep_going()` is asked before every batch and while the backfill
  // waits: once it is not OK (the driver lost its lease) the backfill stops
  // with its error; empty: always OK. `probe_connection()` gives the
  // connection the latency guard probes on (guard.h; one nothing else uses
  // while the backfill runs); empty or null: no guard.
  Backfill(pg::Connection& conn, const Options& options, CheckpointStore& store,
           std::string migration, int operation,
           std::function<std::string(const std::string&)> describe_lock_holders,
           std::function<absl::Status()> keep_going = nullptr,
           std::function<pg::Connection*()> probe_connection = nullptr);

  // Runs `spec` from its checkpoint to the end. Returns OK once every batch
  // has committed (the checkpoint then says done); Cancelled when
  // options.backfill_max_batches stopped it early; DeadlineExceeded when lock
  // contention lasted longer than options.retry_deadline without a batch
  // committing; keep_going's error when it stopped being OK. Safe to call
  // again after any failure or crash.
  absl::Status Run(const ops::BackfillSpec& spec, Stats* stats);

 private:
  struct State;
  absl::Status LoadCheckpoint(const ops::BackfillSpec& spec, State* st);
  absl::Status WaitWhileThrottled(State* st);
  // Runs the throttle query (Options::throttle_query): whether to wait.
  absl::StatusOr<bool> ThrottleQuery();
  // Reports `waiting` and, when it changed, records it for status.
  absl::Status Waiting(State* st, const std::string& waiting);
  // One batch inside the caller's transaction, with the `plain` or the
  // `fallback` updates of `sql`; `out` is applied to the state only after
  // COMMIT.
  absl::Status RunKeysetBatch(const Statements& sql, const Updates& updates, const State& st,
                              int64_t rows, Batch* out);
  absl::Status RunCtidBatch(const Statements& sql, const Updates& updates, const ops::BackfillSpec& spec,
                            const State& st, int64_t pages, Batch* out);
  absl::Status BatchSettings(const Statements& sql);
  absl::Status SaveCheckpoint(const State& st, Batch* batch);
  // The rows of the whole walk, estimated once `batch` commits: the rows
  // done, plus (walking pages) the pages left times the density of the pages
  // walked so far, or (walking the key) the estimate made at the start.
  static int64_t EstimateAfter(const State& st, const Batch& batch);
  void Report(const State& st, const std::string& waiting);

  pg::Connection& conn_;
  const Options& options_;
  CheckpointStore& store_;
  std::string migration_;
  int operation_;
  std::function<std::string(const std::string&)> describe_lock_holders_;
  std::function<absl::Status()> keep_going_;
  std::function<pg::Connection*()> probe_connection_;
};

}  // namespace pgshift::backfill

#endif  // PGSHIFT_LIB_BACKFILL_BACKFILL_H_
