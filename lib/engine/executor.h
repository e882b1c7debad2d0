// Runs the actions that operations plan (lib/ops/operation.h): short DDL
// transactions under lock_timeout with jittered exponential backoff, index
// builds outside transactions, the batched backfill with its checkpoints, and
// read-only checks.
#ifndef PGSHIFT_LIB_ENGINE_EXECUTOR_H_
#define PGSHIFT_LIB_ENGINE_EXECUTOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "lib/engine/control.h"
#include "lib/ops/operation.h"
#include "lib/pg/connection.h"
#include "pgshift/options.h"

namespace pgshift::engine {

// What a step did, for the history table.
struct StepStats {
  std::vector<std::string> statements;
  int64_t lock_wait_ms = 0;
  int64_t rows = 0;
};

class Executor {
 public:
  Executor(pg::Connection& conn, const Options& options, Control& control);

  // Runs `action` of operation `op_index` of migration `migration`.
  // Returns OK once its work has committed. Safe to call again after a crash.
  absl::Status Run(const ops::Action& action, const std::string& migration, int op_index,
                   int64_t row_estimate, StepStats* stats);

 private:
  absl::Status RunTransaction(const ops::Action& action, StepStats* stats);
  absl::Status RunConcurrently(const ops::Action& action, StepStats* stats);
  absl::Status RunBackfill(const ops::Action& action, const std::string& migration, int op_index,
                           int64_t row_estimate, StepStats* stats);
  absl::Status RunAssert(const ops::Action& action, StepStats* stats);

  // Retries `attempt` while it fails with a lock timeout / deadlock /
  // serialization failure, under options.retry_deadline.
  absl::Status WithRetry(const std::string& table, const std::string& what,
                         const std::function<absl::Status()>& attempt, StepStats* stats);
  // "pid 123 (idle in transaction, transaction open 45 s): UPDATE ..." for
  // every session holding a lock on `table`.
  std::string DescribeLockHolders(const std::string& table);

  pg::Connection& conn_;
  const Options& options_;
  Control& control_;
};

}  // namespace pgshift::engine

#endif  // PGSHIFT_LIB_ENGINE_EXECUTOR_H_

namespace pgshift::engine {
// The UPDATE one backfill batch runs ($1.. are the batch's key bounds, or its
// ctid range); see lib/backfill/backfill.h.
std::string BackfillUpdateSql(const ops::BackfillSpec& b);
}  // namespace pgshift::engine
