#include "lib/engine/executor.h"

#include <algorithm>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/backfill/backfill.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"
#include "pgshift/errors.h"

namespace pgshift::engine {

namespace {

std::string Ms(absl::Duration d) { return absl::StrCat(absl::ToInt64Milliseconds(d), "ms"); }

// Statuses worth retrying after a pause: the lock was not granted in time,
// a deadlock or serialization failure chose us as the victim.
bool Retryable(const absl::Status& s) { return absl::IsAborted(s); }

}  // namespace

std::string BackfillUpdateSql(const ops::BackfillSpec& b) { return backfill::PlanSql(b); }

Executor::Executor(pg::Connection& conn, const Options& options, Control& control)
    : conn_(conn), options_(options), control_(control) {}

absl::Status Executor::Run(const ops::Action& action, const std::string& migration, int op_index,
                           int64_t row_estimate, StepStats* stats) {
  switch (action.kind) {
    case ops::Action::Kind::kTransaction:
      return RunTransaction(action, stats);
    case ops::Action::Kind::kConcurrently:
      return RunConcurrently(action, stats);
    case ops::Action::Kind::kBackfill:
      return RunBackfill(action, migration, op_index, row_estimate, stats);
    case ops::Action::Kind::kAssert:
      return RunAssert(action, stats);
  }
  return absl::InternalError("unknown action kind");
}

std::string Executor::DescribeLockHolders(const std::string& table) {
  auto res = conn_.Exec(
      "SELECT DISTINCT a.pid, coalesce(a.state, 'unknown'), "
      "coalesce(extract(epoch FROM now() - a.xact_start)::bigint, 0), "
      "coalesce(a.application_name, ''), left(coalesce(a.query, ''), 200), l.mode "
      "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
      "WHERE l.locktype = 'relation' AND l.relation = to_regclass($1) AND l.granted "
      "AND a.pid <> pg_backend_pid() ORDER BY 1",
      {table});
  if (!res.ok() || res->rows() == 0) return "no session holds a lock on it now";
  std::vector<std::string> parts;
  for (int r = 0; r < res->rows() && r < 10; ++r) {
    parts.push_back(absl::StrCat("pid ", res->Get(r, 0), " (", res->Get(r, 1), ", transaction open ",
                                 res->Get(r, 2), " s, holds ", res->Get(r, 5),
                                 res->Get(r, 3).empty() ? "" : absl::StrCat(", application ", res->Get(r, 3)),
                                 "): ", res->Get(r, 4)));
  }
  return absl::StrJoin(parts, "; ");
}

absl::Status Executor::WithRetry(const std::string& table, const std::string& what,
                                 const std::function<absl::Status()>& attempt, StepStats* stats) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options_.retry_deadline;
  absl::Duration backoff = options_.retry_initial_backoff;
  absl::BitGen gen;
  int attempts = 0;
  while (true) {
    ++attempts;
    absl::Time t0 = absl::Now();
    absl::Status s = attempt();
    if (s.ok() || !Retryable(s)) return s;
    if (stats) stats->lock_wait_ms += absl::ToInt64Milliseconds(absl::Now() - t0);
    std::string holders = DescribeLockHolders(table);
    absl::Duration pause = absl::Milliseconds(
        absl::Uniform<double>(gen, 0.5, 1.0) * absl::ToDoubleMilliseconds(backoff));
    if (absl::Now() + pause >= deadline) {
      absl::Status out(
          absl::StatusCode::kDeadlineExceeded,
          absl::StrCat(what, ": gave up after ", attempts, " attempts in ",
                       absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Seconds(1))),
                       " (lock_timeout ", absl::FormatDuration(options_.lock_timeout),
                       ", retry deadline ", absl::FormatDuration(options_.retry_deadline),
                       "); last error: ", s.message(), ". Blocking sessions on ", table, ": ",
                       holders,
                       ". Nothing was left half-done: end those transactions or retry later"));
      out.SetPayload("pgshift/sqlstate", absl::Cord(SqlState(s).empty() ? "55P03" : SqlState(s)));
      return out;
    }
    absl::SleepFor(pause);
    backoff = std::min(backoff * 2, options_.retry_max_backoff);
  }
}

absl::Status Executor::RunTransaction(const ops::Action& action, StepStats* stats) {
  bool skipped = false;
  auto attempt = [&]() -> absl::Status {
    return conn_.Transaction([&]() -> absl::Status {
      RETURN_IF_ERROR(conn_.Run("SELECT set_config('lock_timeout', $1, true), "
                                "set_config('statement_timeout', $2, true)",
                                {Ms(action.long_running ? options_.retry_deadline : options_.lock_timeout),
                                 Ms(action.long_running ? options_.long_statement_timeout
                                                        : options_.statement_timeout)}));
      if (!action.done_if.empty()) {
        ASSIGN_OR_RETURN(pg::Result done, conn_.Exec(action.done_if, action.done_if_params));
        if (done.rows() > 0 && done.GetBool(0, 0)) {
          skipped = true;
          return absl::OkStatus();
        }
      }
      for (const std::string& sql : action.statements) RETURN_IF_ERROR(conn_.Run(sql));
      return absl::OkStatus();
    });
  };
  RETURN_IF_ERROR(WithRetry(action.table, action.description, attempt, stats));
  if (!skipped) {
    for (const auto& s : action.statements) stats->statements.push_back(s);
  }
  return absl::OkStatus();
}

absl::Status Executor::RunConcurrently(const ops::Action& action, StepStats* stats) {
  auto attempt = [&]() -> absl::Status {
    if (!action.index_name.empty()) {
      ASSIGN_OR_RETURN(pg::Result ix,
                       conn_.Exec("SELECT i.indisvalid FROM pg_index i "
                                  "JOIN pg_class c ON c.oid = i.indexrelid "
                                  "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE n.nspname = $1 AND c.relname = $2",
                                  {action.index_schema, action.index_name}));
      if (ix.rows() > 0) {
        if (ix.GetBool(0, 0)) return absl::OkStatus();  // built by an earlier run
        // INVALID: ours, left by an interrupted CREATE INDEX CONCURRENTLY.
        RETURN_IF_ERROR(conn_.Run(absl::StrCat("DROP INDEX CONCURRENTLY IF EXISTS ",
                                               pg::QuoteQualified(action.index_schema,
                                                                  action.index_name))));
      }
    }
    if (!action.done_if.empty()) {
      ASSIGN_OR_RETURN(pg::Result done, conn_.Exec(action.done_if, action.done_if_params));
      if (done.rows() > 0 && done.GetBool(0, 0)) return absl::OkStatus();
    }
    // These take SHARE UPDATE EXCLUSIVE, which never blocks application DML,
    // so they may wait for their lock up to the retry deadline.
    RETURN_IF_ERROR(conn_.Run("SELECT set_config('lock_timeout', $1, false), "
                              "set_config('statement_timeout', $2, false)",
                              {Ms(options_.retry_deadline), Ms(options_.long_statement_timeout)}));
    absl::Status s = conn_.Run(action.statements.at(0));
    absl::Status reset = conn_.Run("RESET lock_timeout");
    if (s.ok()) s = reset;
    (void)conn_.Run("RESET statement_timeout");
    return s;
  };
  RETURN_IF_ERROR(WithRetry(action.table, action.description, attempt, stats));
  stats->statements.push_back(action.statements.at(0));
  return absl::OkStatus();
}

absl::Status Executor::RunAssert(const ops::Action& action, StepStats* stats) {
  const ops::AssertSpec& a = action.assert_spec;
  ASSIGN_OR_RETURN(pg::Result count, conn_.Exec(a.count_sql));
  stats->statements.push_back(a.count_sql);
  int64_t n = count.GetInt(0, 0);
  if (n == 0) return absl::OkStatus();
  std::vector<std::string> samples;
  if (!a.sample_sql.empty()) {
    ASSIGN_OR_RETURN(pg::Result rows, conn_.Exec(a.sample_sql));
    for (int r = 0; r < rows.rows(); ++r) samples.push_back(rows.Get(r, 0));
  }
  return absl::FailedPreconditionError(
      absl::StrCat(a.failure, ": ", n, " row(s)",
                   samples.empty() ? "" : absl::StrCat(", e.g. primary key ", absl::StrJoin(samples, ", ")),
                   ". The phase did not change and no data was modified"));
}

absl::Status Executor::RunBackfill(const ops::Action& action, const std::string& migration,
                                   int op_index, int64_t row_estimate, StepStats* stats) {
  backfill::Target target;
  target.checkpoints_table = control_.Table("checkpoints");
  target.migrations_table = control_.Table("migrations");
  target.migration = migration;
  target.operation = op_index;
  backfill::Backfill runner(conn_, options_, std::move(target),
                            [this](const std::string& table) { return DescribeLockHolders(table); });
  stats->statements.push_back(backfill::PlanSql(action.backfill));
  backfill::Stats bs;
  absl::Status s = runner.Run(action.backfill, &bs);
  stats->rows += bs.rows_updated;
  stats->lock_wait_ms += bs.lock_wait_ms;
  return s;
}

}  // namespace pgshift::engine
