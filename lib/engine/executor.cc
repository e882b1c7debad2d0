#include "lib/engine/executor.h"

#include <algorithm>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/pg/quote.h"
#include "lib/util/json.h"
#include "lib/util/status_macros.h"
#include "pgshift/errors.h"

namespace pgshift::engine {

namespace {

std::string Ms(absl::Duration d) { return absl::StrCat(absl::ToInt64Milliseconds(d), "ms"); }

// Statuses worth retrying after a pause: the lock was not granted in time,
// a deadlock or serialization failure chose us as the victim.
bool Retryable(const absl::Status& s) { return absl::IsAborted(s); }

std::string KeyList(const std::vector<std::string>& key) {
  std::vector<std::string> q;
  for (const auto& k : key) q.push_back(pg::QuoteIdent(k));
  return absl::StrJoin(q, ", ");
}

// ($1::int, $2::text) with parameters numbered from `first`.
std::string KeyParams(const std::vector<std::string>& types, int first) {
  std::vector<std::string> q;
  for (size_t i = 0; i < types.size(); ++i) q.push_back(absl::StrCat("$", first + i, "::", types[i]));
  return absl::StrJoin(q, ", ");
}

}  // namespace

std::string BackfillUpdateSql(const ops::BackfillSpec& b) {
  const std::string key_cols = KeyList(b.key);
  return absl::StrCat("UPDATE ", b.table, " SET ", b.set_clause, " WHERE (", key_cols, ") > (",
                      KeyParams(b.key_types, 1), ") AND (", key_cols, ") <= (",
                      KeyParams(b.key_types, static_cast<int>(b.key.size()) + 1), ") AND (",
                      b.needs_work, ")");
}

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

absl::Status Executor::ThrottleForReplicationLag() {
  if (options_.max_replication_lag <= absl::ZeroDuration()) return absl::OkStatus();
  while (true) {
    ASSIGN_OR_RETURN(pg::Result lag,
                     conn_.Exec("SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 "
                                "FROM pg_stat_replication"));
    double seconds = std::stod(lag.Get(0, 0));
    if (absl::Seconds(seconds) <= options_.max_replication_lag) return absl::OkStatus();
    absl::SleepFor(absl::Seconds(1));
  }
}

absl::Status Executor::RunBackfill(const ops::Action& action, const std::string& migration,
                                   int op_index, int64_t row_estimate, StepStats* stats) {
  const ops::BackfillSpec& b = action.backfill;
  const std::string cp_table = control_.Table("checkpoints");
  const std::string mig_param = migration, op_param = std::to_string(op_index);

  // Where the last committed batch ended.
  ASSIGN_OR_RETURN(pg::Result cp,
                   conn_.Exec(absl::StrCat("SELECT done, rows_done FROM ", cp_table,
                                           " WHERE migration = $1 AND operation = $2"),
                              {mig_param, op_param}));
  if (cp.rows() > 0 && cp.GetBool(0, 0)) return absl::OkStatus();
  int64_t rows_done = cp.rows() > 0 ? cp.GetInt(0, 1) : 0;
  std::vector<std::string> last_key;
  if (cp.rows() > 0) {
    ASSIGN_OR_RETURN(pg::Result keys,
                     conn_.Exec(absl::StrCat("SELECT k.v FROM ", cp_table,
                                             " c, jsonb_array_elements_text(c.last_key) "
                                             "WITH ORDINALITY AS k(v, ord) WHERE c.migration = $1 "
                                             "AND c.operation = $2 ORDER BY k.ord"),
                                {mig_param, op_param}));
    for (int r = 0; r < keys.rows(); ++r) last_key.push_back(keys.Get(r, 0));
  }

  const size_t nk = b.key.size();
  const std::string key_cols = KeyList(b.key);
  std::vector<std::string> order_cols;
  for (const auto& k : b.key) order_cols.push_back(absl::StrCat(b.table, ".", pg::QuoteIdent(k)));
  const std::string order = absl::StrJoin(order_cols, ", ");
  stats->statements.push_back(BackfillUpdateSql(b));

  int64_t batch = std::clamp(options_.backfill_batch_rows, options_.backfill_min_batch_rows,
                             options_.backfill_max_batch_rows);
  const absl::Time started = absl::Now();
  int64_t rows_this_call = 0;
  int64_t batches = 0;
  bool done = false;
  while (!done) {
    if (options_.backfill_max_batches > 0 && batches >= options_.backfill_max_batches) {
      return absl::CancelledError(absl::StrCat(
          "backfill stopped after ", batches, " batches (", rows_done,
          " rows done) as asked; run advance again to resume from the checkpoint"));
    }
    RETURN_IF_ERROR(ThrottleForReplicationLag());
    std::vector<std::string> end_key;
    int64_t examined = 0;
    int64_t updated = 0;
    absl::Time t0 = absl::Now();
    auto attempt = [&]() -> absl::Status {
      end_key.clear();
      return conn_.Transaction([&]() -> absl::Status {
        RETURN_IF_ERROR(conn_.Run(
            "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true), "
            "set_config('pgshift.backfill', 'on', true)",
            {Ms(options_.lock_timeout), Ms(options_.statement_timeout)}));
        pg::Params params;
        std::string lower;
        if (!last_key.empty()) {
          lower = absl::StrCat("(", key_cols, ") > (", KeyParams(b.key_types, 1), ")");
          for (const auto& k : last_key) params.push_back(k);
        }
        std::vector<std::string> casts;
        // Aliased: ORDER BY must see the typed key, not its text.
        for (size_t i = 0; i < nk; ++i) {
          casts.push_back(absl::StrCat(pg::QuoteIdent(b.key[i]), "::text AS pgshift_k", i));
        }
        ASSIGN_OR_RETURN(
            pg::Result end,
            conn_.Exec(absl::StrCat("SELECT ", absl::StrJoin(casts, ", "), " FROM ", b.table,
                                    lower.empty() ? "" : absl::StrCat(" WHERE ", lower),
                                    " ORDER BY ", order, " OFFSET ", batch - 1, " LIMIT 1"),
                       params));
        std::string where = lower;
        pg::Params uparams = params;
        if (end.rows() > 0) {
          for (size_t i = 0; i < nk; ++i) {
            end_key.push_back(end.Get(0, static_cast<int>(i)));
            uparams.push_back(end_key.back());
          }
          std::string upper = absl::StrCat("(", key_cols, ") <= (",
                                           KeyParams(b.key_types, static_cast<int>(params.size()) + 1),
                                           ")");
          where = where.empty() ? upper : absl::StrCat(where, " AND ", upper);
          examined = batch;
        } else {
          ASSIGN_OR_RETURN(pg::Result rest,
                           conn_.Exec(absl::StrCat("SELECT count(*) FROM ", b.table,
                                                   lower.empty() ? "" : absl::StrCat(" WHERE ", lower)),
                                      params));
          examined = rest.GetInt(0, 0);
        }
        ASSIGN_OR_RETURN(
            pg::Result upd,
            conn_.Exec(absl::StrCat("UPDATE ", b.table, " SET ", b.set_clause, " WHERE ",
                                    where.empty() ? "" : absl::StrCat(where, " AND "), "(",
                                    b.needs_work, ")"),
                       uparams));
        updated = upd.Affected();
        bool finished = end.rows() == 0;
        std::string key_json = util::JsonStringArray(finished ? last_key : end_key);
        return conn_.Run(
            absl::StrCat("INSERT INTO ", cp_table,
                         " (migration, operation, last_key, rows_done, rows_estimate, done, updated_at)"
                         " VALUES ($1, $2, $3::jsonb, $4, $5, $6, now())"
                         " ON CONFLICT (migration, operation) DO UPDATE SET last_key = EXCLUDED.last_key,"
                         " rows_done = EXCLUDED.rows_done, rows_estimate = EXCLUDED.rows_estimate,"
                         " done = EXCLUDED.done, updated_at = now()"),
            {mig_param, op_param, (finished && last_key.empty()) ? std::nullopt : pg::Param(key_json),
             std::to_string(rows_done + examined), std::to_string(std::max(row_estimate, rows_done + examined)),
             finished ? "true" : "false"});
      });
    };
    RETURN_IF_ERROR(WithRetry(b.table, action.description, attempt, stats));
    absl::Duration took = absl::Now() - t0;
    ++batches;
    rows_done += examined;
    rows_this_call += examined;
    stats->rows += updated;
    done = end_key.empty();
    if (!done) last_key = end_key;

    // Adapt the batch to the target duration, at most doubling or halving.
    double ratio = absl::FDivDuration(options_.backfill_target_batch_time,
                                      std::max(took, absl::Milliseconds(1)));
    ratio = std::clamp(ratio, 0.5, 2.0);
    batch = std::clamp(static_cast<int64_t>(static_cast<double>(batch) * ratio),
                       options_.backfill_min_batch_rows, options_.backfill_max_batch_rows);

    if (options_.on_progress) {
      Progress p;
      p.migration = migration;
      p.operation = op_index;
      p.step = "backfilled";
      p.rows_done = rows_done;
      p.rows_estimate = std::max(row_estimate, rows_done);
      double secs = absl::ToDoubleSeconds(absl::Now() - started);
      p.rows_per_second = secs > 0 ? static_cast<double>(rows_this_call) / secs : 0;
      p.eta_seconds = done ? 0
                      : p.rows_per_second > 0
                          ? static_cast<double>(p.rows_estimate - rows_done) / p.rows_per_second
                          : -1;
      p.finished = done;
      options_.on_progress(p);
    }
    if (!done && options_.backfill_batch_delay > absl::ZeroDuration()) {
      absl::SleepFor(options_.backfill_batch_delay);
    }
  }
  return absl::OkStatus();
}

}  // namespace pgshift::engine
