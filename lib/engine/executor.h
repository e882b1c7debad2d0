// Runs the actions that operations plan (lib/ops/operation.h): short DDL
// transactions under lock_timeout with jittered exponential backoff, index
// builds outside transactions, the batched backfill with its checkpoints, and
// read-only checks.
//
// Nothing here relies on session state surviving a transaction (so a
// transaction-pooling PgBouncer is fine): settings are SET LOCAL inside each
// transaction, and the statements that cannot run in a transaction (CREATE /
// DROP INDEX CONCURRENTLY) are bounded from the client, by a watcher on a
// second "monitor" connection that also names what they wait for.
#ifndef PGSHIFT_LIB_ENGINE_EXECUTOR_H_
#define PGSHIFT_LIB_ENGINE_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/engine/control.h"
#include "lib/ops/operation.h"
#include "lib/pg/connection.h"
#include "lib/pg/lock.h"
#include "pgshift/options.h"

namespace pgshift::engine {

// What a step did, for the history table.
struct StepStats {
  std::vector<std::string> statements;
  int64_t lock_wait_ms = 0;
  int64_t rows = 0;
  // JSON objects for history.report: one per failed lock attempt
  // {"action","attempt","waited_ms","sqlstate","blockers":[...]}, and one per
  // table a DDL transaction locks {"action","table","declared","taken"} (the
  // strongest lock it actually held on that table at commit).
  std::vector<std::string> lock_waits;
  std::vector<std::string> locks;
};

// Whether `guard` holds now (short-circuiting; each probe runs with its own
// parameters). An empty guard is false.
absl::StatusOr<bool> Evaluate(pg::Connection& conn, const ops::Guard& guard);

// OK unless `action` would scan or rewrite the table under an ACCESS
// EXCLUSIVE lock while the table holds more than options.max_locked_scan_rows
// rows (counted, reading at most that many + 1). FailedPrecondition naming
// the action, the table and what to do otherwise.
absl::Status CheckLockedScan(pg::Connection& conn, const ops::Action& action,
                             const Options& options);

class Executor {
 public:
  Executor(pg::Connection& conn, const Options& options, Control& control);

  // A second connection for watching the first one (blockers, index builds);
  // the function returns nullptr when it cannot be opened, and then pgshift
  // falls back to reading lock holders after the fact.
  void set_monitor(std::function<pg::Connection*()> monitor) { monitor_ = std::move(monitor); }

  // Whether the driver still holds its lease (lease.h): OK, or the error to
  // stop with. Asked before each action, before each lock retry, between
  // backfill batches, and by the watch thread while a long statement
  // (VALIDATE, CREATE INDEX CONCURRENTLY) runs, which it then cancels: a
  // driver that lost its lease stops within about one heartbeat. Called
  // from that thread too, so it must be thread-safe. Empty: never lost.
  void set_lease_check(std::function<absl::Status()> check) { lease_check_ = std::move(check); }

  // Runs `action` of the operation in `ctx`. Returns OK once its work has
  // committed. Safe to call again after a crash. The lease check's error
  // (Aborted) when the lease was lost before or while it ran.
  absl::Status Run(const ops::Action& action, const ops::Context& ctx, StepStats* stats);

 private:
  absl::Status RunAction(const ops::Action& action, const ops::Context& ctx, StepStats* stats);
  absl::Status LeaseCheck() const { return lease_check_ ? lease_check_() : absl::OkStatus(); }
  absl::Status RunTransaction(const ops::Action& action, const ops::Context& ctx, StepStats* stats);
  absl::Status RunConcurrently(const ops::Action& action, const ops::Context& ctx, StepStats* stats);
  // Whether the action's statement mark (ops::StatementMark) says to skip
  // it: recorded done already, or its list's `after` never ran.
  absl::StatusOr<bool> MarkSaysDone(const ops::Action& action, const ops::Context& ctx);
  absl::Status RunBackfill(const ops::Action& action, const ops::Context& ctx, StepStats* stats);
  absl::Status RunAssert(const ops::Action& action, StepStats* stats);

  // Retries `attempt` while it fails with a lock timeout / deadlock /
  // serialization failure, with jittered exponential backoff, until
  // options.retry_deadline has passed since the first attempt; then
  // DeadlineExceeded naming the sessions that blocked it (pg_blocking_pids
  // sampled during the attempt, else the holders of locks on `table` that
  // conflict with `lock_mode`).
  absl::Status WithRetry(const std::string& table, const std::string& what,
                         const std::function<absl::Status()>& attempt, StepStats* stats,
                         std::optional<pg::LockMode> lock_mode = std::nullopt);
  // "pid 123 (idle in transaction, transaction open 45 s, holds ...): UPDATE
  // ..." for every session holding a lock on `table` that conflicts with
  // `lock_mode` (any lock when none).
  std::string DescribeLockHolders(const std::string& table,
                                  std::optional<pg::LockMode> lock_mode = std::nullopt);

  // For kConcurrently CREATE INDEX: makes sure no half-built index of ours is
  // in the way. Returns true when a valid index of that name (ours) already
  // exists; drops an INVALID one of ours (waiting first while another
  // session, such as a killed driver's orphaned backend, still builds it);
  // refuses to touch an index that is not ours.
  absl::StatusOr<bool> PrepareIndex(const ops::Action& action, const std::string& prefix);
  // Runs one statement that cannot run in a transaction block, bounded from
  // the client: it is cancelled once it has waited for locks longer than
  // retry_deadline (or run longer than long_statement_timeout, when set).
  absl::Status RunOutsideTransaction(const ops::Action& action, const std::string& sql);
  // True when `conn_` goes through a pooler (its server pid changes between
  // transactions): then no session setting may be used.
  bool Pooled();

  pg::Connection& conn_;
  const Options& options_;
  Control& control_;
  std::function<pg::Connection*()> monitor_;
  std::function<absl::Status()> lease_check_;
  std::optional<bool> pooled_;
  // Blockers seen by the watcher during the current attempt.
  std::mutex blockers_mu_;
  std::vector<SessionInfo> attempt_blockers_;
};

}  // namespace pgshift::engine

#endif  // PGSHIFT_LIB_ENGINE_EXECUTOR_H_

