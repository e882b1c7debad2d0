#include "lib/engine/executor.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/backfill/backfill.h"
#include "lib/engine/sessions.h"
#include "lib/pg/quote.h"
#include "lib/util/json.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"
#include "pgshift/json.h"

namespace pgshift::engine {

namespace {

std::string Ms(absl::Duration d) { return absl::StrCat(absl::ToInt64Milliseconds(d), "ms"); }

// Statuses worth retrying after a pause: the lock was not granted in time,
// a deadlock or serialization failure chose us as the victim.
bool Retryable(const absl::Status& s) {
  const std::string state = util::SqlStateOf(s);
  return state == "55P03" || state == "40P01" || state == "40001";
}

std::string SqlStateOr(const absl::Status& s, absl::string_view otherwise) {
  const std::string state = util::SqlStateOf(s);
  return state.empty() ? std::string(otherwise) : state;
}

}  // namespace

absl::StatusOr<bool> Evaluate(pg::Connection& conn, const ops::Guard& guard) {
  switch (guard.op()) {
    case ops::Guard::Op::kNever:
      return false;
    case ops::Guard::Op::kProbe: {
      ASSIGN_OR_RETURN(pg::Result r, conn.Exec(guard.probe().sql, guard.probe().params));
      return r.rows() > 0 && r.GetBool(0, 0);
    }
    case ops::Guard::Op::kNot: {
      ASSIGN_OR_RETURN(bool v, Evaluate(conn, guard.children().front()));
      return !v;
    }
    case ops::Guard::Op::kAll:
      for (const ops::Guard& g : guard.children()) {
        ASSIGN_OR_RETURN(bool v, Evaluate(conn, g));
        if (!v) return false;
      }
      return true;
    case ops::Guard::Op::kAny:
      for (const ops::Guard& g : guard.children()) {
        ASSIGN_OR_RETURN(bool v, Evaluate(conn, g));
        if (v) return true;
      }
      return false;
  }
  return absl::InternalError("unknown guard");
}

Executor::Executor(pg::Connection& conn, const Options& options, Control& control)
    : conn_(conn), options_(options), control_(control) {}

absl::Status CheckLockedScan(pg::Connection& conn, const ops::Action& action,
                             const Options& options) {
  if (action.kind != ops::Action::Kind::kTransaction ||
      action.strongest_lock() < pg::LockMode::kAccessExclusive) {
    return absl::OkStatus();
  }
  if (!action.scans_table && !action.rewrites_table && !action.long_running) return absl::OkStatus();
  if (options.max_locked_scan_rows < 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(pg::Result n,
                   conn.Exec(absl::StrCat("SELECT count(*) FROM (SELECT FROM ", action.table(),
                                          " LIMIT $1::bigint + 1) s"),
                             {std::to_string(options.max_locked_scan_rows)}));
  if (n.GetInt(0, 0) <= options.max_locked_scan_rows) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      action.description, ": this would ", action.rewrites_table ? "rewrite" : "scan", " ",
      action.table(), " while holding an ACCESS EXCLUSIVE lock, blocking every query on it for the "
      "whole ", action.rewrites_table ? "rewrite" : "scan", ", and the table has more than ",
      options.max_locked_scan_rows,
      " rows (max_locked_scan_rows / --max-locked-scan-rows). Refused; nothing was changed. Use a "
      "server where this runs without the scan (see `pgshift plan`), or raise the limit if a "
      "blocking scan of this size is acceptable"));
}

absl::Status Executor::Run(const ops::Action& action, const ops::Context& ctx, StepStats* stats) {
  RETURN_IF_ERROR(LeaseCheck());
  absl::Status s = RunAction(action, ctx, stats);
  if (!s.ok()) {
    // Whatever failed after the lease was lost (a cancelled statement, a
    // connection gone with it) failed because of that.
    absl::Status lease = LeaseCheck();
    if (!lease.ok()) return lease;
  }
  return s;
}

absl::Status Executor::RunAction(const ops::Action& action, const ops::Context& ctx,
                                 StepStats* stats) {
  switch (action.kind) {
    case ops::Action::Kind::kTransaction:
      RETURN_IF_ERROR(CheckLockedScan(conn_, action, options_));
      return RunTransaction(action, ctx, stats);
    case ops::Action::Kind::kConcurrently:
      return RunConcurrently(action, ctx, stats);
    case ops::Action::Kind::kBackfill:
      return RunBackfill(action, ctx, stats);
    case ops::Action::Kind::kAssert:
      return RunAssert(action, stats);
  }
  return absl::InternalError("unknown action kind");
}

namespace {

// Runs `sample` on a background thread, first after `first`, then every
// `period`, until destroyed. Used to look at a statement from a second
// connection while the first one waits for it.
class Watch {
 public:
  Watch(absl::Duration first, absl::Duration period, std::function<void()> sample)
      : sample_(std::move(sample)) {
    thread_ = std::thread([this, first, period] {
      std::unique_lock<std::mutex> lock(mu_);
      auto wait = absl::ToChronoMilliseconds(first);
      while (!cv_.wait_for(lock, wait, [this] { return stop_; })) {
        lock.unlock();
        sample_();
        lock.lock();
        wait = absl::ToChronoMilliseconds(period);
      }
    });
  }
  ~Watch() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::function<void()> sample_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

pg::LockMode StrongestLock(const pg::Result& r) {
  pg::LockMode best = pg::LockMode::kNone;
  for (int i = 0; i < r.rows(); ++i) {
    best = std::max(best, pg::ParseLockMode(r.Get(i, 0)).value_or(pg::LockMode::kNone));
  }
  return best;
}

}  // namespace

bool Executor::Pooled() {
  if (!pooled_) {
    auto r = conn_.Exec("SELECT pg_backend_pid()");
    if (!r.ok()) return true;  // unknown: assume the careful case
    pooled_ = r->GetInt(0, 0) != conn_.backend_pid();
  }
  return *pooled_;
}

std::string Executor::DescribeLockHolders(const std::string& table,
                                          std::optional<pg::LockMode> lock_mode) {
  auto holders = SessionsOnTable(conn_, table, absl::ZeroDuration(), lock_mode);
  if (!holders.ok()) return absl::StrCat("(could not read pg_locks: ", holders.status().message(), ")");
  if (holders->empty()) return "";
  return pgshift::DescribeSessions(*holders);
}

absl::Status Executor::WithRetry(const std::string& table, const std::string& what,
                                 const std::function<absl::Status()>& attempt, StepStats* stats,
                                 std::optional<pg::LockMode> lock_mode) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options_.retry_deadline;
  absl::Duration backoff = std::max(options_.retry_initial_backoff, absl::Milliseconds(1));
  absl::BitGen gen;
  int attempts = 0;
  std::vector<SessionInfo> blockers;  // the latest non-empty sighting
  while (true) {
    RETURN_IF_ERROR(LeaseCheck());
    ++attempts;
    {
      std::lock_guard<std::mutex> lock(blockers_mu_);
      attempt_blockers_.clear();
    }
    const absl::Time t0 = absl::Now();
    absl::Status s = attempt();
    if (s.ok() || !Retryable(s)) return s;
    const absl::Duration waited = absl::Now() - t0;
    std::vector<SessionInfo> seen;
    {
      std::lock_guard<std::mutex> lock(blockers_mu_);
      seen = attempt_blockers_;
    }
    if (seen.empty() && conn_.ok()) {
      // Nobody sampled while we waited: who holds a conflicting lock now?
      auto now_holding = SessionsOnTable(conn_, table, absl::ZeroDuration(), lock_mode);
      if (now_holding.ok()) seen = *now_holding;
    }
    if (!seen.empty()) blockers = seen;
    if (stats) {
      stats->lock_wait_ms += absl::ToInt64Milliseconds(waited);
      if (stats->lock_waits.size() < 20) {
        stats->lock_waits.push_back(util::JsonObject()
                                        .Str("action", what)
                                        .Int("attempt", attempts)
                                        .Int("waited_ms", absl::ToInt64Milliseconds(waited))
                                        .Str("sqlstate", util::SqlStateOf(s))
                                        .Raw("blockers", ToJson(seen))
                                        .Build());
      }
    }
    const absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      std::string who =
          blockers.empty()
              ? "no blocking session was seen (they were short-lived); run the command again, or "
                "raise --retry-deadline"
              : absl::StrCat("blocked by ", pgshift::DescribeSessions(blockers),
                             ". End or wait for those transactions (e.g. SELECT "
                             "pg_terminate_backend(", blockers.front().pid,
                             ")), then run the command again");
      absl::Status out(
          absl::StatusCode::kDeadlineExceeded,
          absl::StrCat("gave up after ", attempts, " attempts in ",
                       absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(100))),
                       ": could not take its lock",
                       lock_mode ? absl::StrCat(" (", pg::LockModeName(*lock_mode), ")") : "", " on ", table,
                       " within the retry deadline (lock_timeout ",
                       absl::FormatDuration(options_.lock_timeout), " per attempt, retry deadline ",
                       absl::FormatDuration(options_.retry_deadline), "); last error: ", s.message(),
                       ". Nothing was left half-done (every attempt rolled back); ", who));
      return util::WithSqlState(out, SqlStateOr(s, "55P03"));
    }
    absl::Duration pause = absl::Milliseconds(absl::Uniform<double>(gen, 0.5, 1.0) *
                                              absl::ToDoubleMilliseconds(backoff));
    absl::SleepFor(std::min(pause, remaining));
    backoff = std::min(backoff * 2, std::max(options_.retry_max_backoff, absl::Milliseconds(1)));
  }
}

absl::StatusOr<bool> Executor::MarkSaysDone(const ops::Action& action, const ops::Context& ctx) {
  const ops::StatementMark& m = action.mark;
  if (m.list.empty()) return false;
  ASSIGN_OR_RETURN(int done, control_.StatementsDone(ctx.migration, ctx.index, m.list));
  if (done >= m.number) return true;
  if (m.after.empty()) return false;
  ASSIGN_OR_RETURN(int before, control_.StatementsDone(ctx.migration, ctx.index, m.after));
  return before == 0;
}

absl::Status Executor::RunTransaction(const ops::Action& action, const ops::Context& ctx,
                                      StepStats* stats) {
  if (action.long_running && action.strongest_lock() >= pg::LockMode::kAccessExclusive) {
    return absl::InternalError(absl::StrCat(
        action.description, ": planned as long work under an ACCESS EXCLUSIVE lock, which pgshift "
        "never runs (it would block every query on ", action.table(), "); this is a bug in the "
        "operation, please report it"));
  }
  // The app waits behind our lock request at most for what is left of one
  // lock_timeout: each later statement of the transaction gets only the rest
  // of it (a DDL that holds its table lock and then waits for another one,
  // e.g. on a referenced table, would otherwise stretch the app's wait).
  // Long-running actions take locks that never block application DML (SHARE
  // UPDATE EXCLUSIVE), so they may queue up to the retry deadline.
  const bool budgeted = !action.long_running;
  const absl::Duration lock_budget = budgeted ? options_.lock_timeout : options_.retry_deadline;
  bool skipped = false;
  std::vector<pg::LockMode> taken;  // per action.locks entry
  const std::string& table = action.table();
  auto attempt = [&]() -> absl::Status {
    skipped = false;
    taken.clear();
    return conn_.Transaction([&]() -> absl::Status {
      ASSIGN_OR_RETURN(
          pg::Result me,
          conn_.Exec("SELECT pg_backend_pid(), set_config('lock_timeout', $1, true), "
                     "set_config('statement_timeout', $2, true)",
                     {Ms(std::max(lock_budget, absl::Milliseconds(1))),
                      Ms(action.long_running ? options_.long_statement_timeout
                                             : options_.statement_timeout)}));
      const int backend = static_cast<int>(me.GetInt(0, 0));
      ASSIGN_OR_RETURN(bool done, Evaluate(conn_, action.done_if));
      if (!done) {
        ASSIGN_OR_RETURN(done, MarkSaysDone(action, ctx));
      }
      if (done) {
        skipped = true;
        return absl::OkStatus();
      }
      pg::Connection* monitor = monitor_ ? monitor_() : nullptr;
      std::optional<Watch> watch;
      // Long work (VALIDATE) is cancelled when the lease is lost.
      const bool watch_lease = lease_check_ && action.long_running;
      if ((monitor != nullptr && !table.empty()) || watch_lease) {
        const absl::Duration first =
            std::clamp(lock_budget / 2, absl::Milliseconds(10), absl::Milliseconds(500));
        auto cancelled = std::make_shared<bool>(false);
        watch.emplace(first, absl::Milliseconds(500), [this, monitor, backend, &table, watch_lease, cancelled] {
          if (watch_lease && !*cancelled && !LeaseCheck().ok()) {
            *cancelled = true;
            conn_.Cancel();
            return;
          }
          if (monitor == nullptr || table.empty()) return;
          auto b = BlockersOf(*monitor, backend, table);
          if (b.ok() && !b->empty()) {
            std::lock_guard<std::mutex> lock(blockers_mu_);
            attempt_blockers_ = *b;
          }
        });
      }
      // The relations the declared tables name before the statements run: a
      // table the action drops (or renames) is found by that OID at commit,
      // one it creates by its name then.
      std::vector<std::string> relations;
      for (const ops::TableLock& l : action.locks) {
        ASSIGN_OR_RETURN(pg::Result rel, conn_.Exec("SELECT to_regclass($1)::oid", {l.table}));
        relations.push_back(rel.IsNull(0, 0) ? "" : rel.Get(0, 0));
      }
      const absl::Time budget_end = absl::Now() + lock_budget;
      for (size_t i = 0; i < action.statements.size(); ++i) {
        if (i > 0 && budgeted) {
          absl::Duration left = std::max(budget_end - absl::Now(), absl::Milliseconds(1));
          RETURN_IF_ERROR(conn_.Run("SELECT set_config('lock_timeout', $1, true)", {Ms(left)}));
        }
        RETURN_IF_ERROR(conn_.Run(action.statements[i]));
      }
      if (!action.mark.list.empty()) {
        RETURN_IF_ERROR(control_.RecordStatementDone(ctx.migration, ctx.index, action.mark.list,
                                                     action.mark.number));
      }
      watch.reset();
      for (size_t i = 0; i < action.locks.size(); ++i) {
        ASSIGN_OR_RETURN(pg::Result held,
                         conn_.Exec("SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND "
                                    "locktype = 'relation' AND granted AND relation = "
                                    "coalesce(nullif($2, '')::oid, to_regclass($1))",
                                    {action.locks[i].table, relations[i]}));
        taken.push_back(StrongestLock(held));
      }
      return absl::OkStatus();
    });
  };
  std::optional<pg::LockMode> mode;
  if (!action.locks.empty()) mode = action.locks.front().mode;
  RETURN_IF_ERROR(WithRetry(table, action.description, attempt, stats, mode));
  if (!skipped) {
    for (const auto& s : action.statements) stats->statements.push_back(s);
    for (size_t i = 0; i < action.locks.size() && i < taken.size(); ++i) {
      stats->locks.push_back(util::JsonObject()
                                 .Str("action", action.description)
                                 .Str("table", action.locks[i].table)
                                 .Str("declared", pg::LockModeName(action.locks[i].mode))
                                 .Str("taken", pg::LockModeName(taken[i]))
                                 .Build());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Executor::PrepareIndex(const ops::Action& action, const std::string& prefix) {
  const std::string qualified = pg::QuoteQualified(action.index_schema, action.index_name);
  const absl::Time deadline = absl::Now() + options_.retry_deadline;
  while (true) {
    RETURN_IF_ERROR(LeaseCheck());
    ASSIGN_OR_RETURN(
        pg::Result ix,
        conn_.Exec("SELECT c.oid, i.indisvalid, i.indrelid = to_regclass($3), "
                   "coalesce((SELECT string_agg(p.pid::text, ', ') FROM "
                   "  pg_stat_progress_create_index p WHERE p.index_relid = c.oid "
                   "  AND p.pid <> pg_backend_pid()), '') "
                   "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                   "JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE n.nspname = $1 AND c.relname = $2",
                   {action.index_schema, action.index_name, action.table()}));
    if (ix.rows() == 0) return false;
    if (!absl::StartsWith(action.index_name, prefix) || !ix.GetBool(0, 2)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "index ", qualified, " already exists and is not the one pgshift builds for this "
          "operation (pgshift's are on ", action.table(), " and named ", prefix,
          "_...); pgshift does not touch it. Drop or rename it, then run the command again"));
    }
    const std::string busy = ix.Get(0, 3);
    if (!busy.empty()) {
      // Typically the backend of a driver that was killed while it built
      // this index: it finishes (or fails) on its own.
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "index ", qualified, " is still being built by backend ", busy,
            " (the session of an earlier, interrupted driver?) after waiting ",
            absl::FormatDuration(options_.retry_deadline),
            "; wait for it to finish or cancel it (SELECT pg_cancel_backend(pid)), then run the "
            "command again"));
      }
      absl::SleepFor(absl::Milliseconds(250));
      continue;
    }
    if (ix.GetBool(0, 1)) return true;  // built by an earlier run
    // INVALID and ours: left by an interrupted CREATE INDEX CONCURRENTLY.
    RETURN_IF_ERROR(RunOutsideTransaction(action, action.drop_invalid));
  }
}

absl::Status Executor::RunOutsideTransaction(const ops::Action& action, const std::string& sql) {
  // On our own session (no pooler) the role's defaults are neutralised so
  // that only the client-side bounds below apply; behind a pooler a session
  // setting could leak to other clients, so none is made.
  const bool pooled = Pooled();
  if (!pooled) {
    RETURN_IF_ERROR(conn_.Run("SELECT set_config('lock_timeout', '0', false), "
                              "set_config('statement_timeout', '0', false)"));
  }
  struct Seen {
    std::mutex mu;
    absl::Time waiting_since = absl::InfiniteFuture();
    std::vector<SessionInfo> blockers;
    std::string cancelled;  // why we cancelled it, or ""
  } seen;
  const absl::Time started = absl::Now();
  absl::Status s;
  {
    pg::Connection* monitor = monitor_ ? monitor_() : nullptr;
    std::optional<Watch> watch;
    if (monitor != nullptr || lease_check_) {
      watch.emplace(absl::Milliseconds(200), absl::Milliseconds(250), [&, monitor] {
        if (!LeaseCheck().ok()) {
          // The driver lost its lease: the statement is nobody's any more.
          std::lock_guard<std::mutex> lock(seen.mu);
          if (seen.cancelled.empty()) {
            seen.cancelled = "lease";
            conn_.Cancel();
          }
          return;
        }
        if (monitor == nullptr) return;
        // Our statement's backend, found by its text (behind a pooler its pid
        // is not ours to know in advance).
        auto r = monitor->Exec(
            "SELECT a.pid, coalesce(a.wait_event_type, '') = 'Lock' FROM pg_stat_activity a "
            "WHERE a.state = 'active' AND a.pid <> pg_backend_pid() AND length(a.query) > 0 "
            "AND starts_with($1, a.query) LIMIT 1",
            {sql});
        if (!r.ok() || r->rows() == 0) return;
        const int pid = static_cast<int>(r->GetInt(0, 0));
        const bool waiting = r->GetBool(0, 1);
        std::lock_guard<std::mutex> lock(seen.mu);
        if (!seen.cancelled.empty()) return;
        const absl::Time now = absl::Now();
        if (!waiting) {
          seen.waiting_since = absl::InfiniteFuture();
        } else {
          if (seen.waiting_since == absl::InfiniteFuture()) seen.waiting_since = now;
          auto b = BlockersOf(*monitor, pid, action.table());
          if (b.ok() && !b->empty()) seen.blockers = *b;
          if (now - seen.waiting_since >= options_.retry_deadline) {
            seen.cancelled = "lock";
            conn_.Cancel();
            return;
          }
        }
        if (options_.long_statement_timeout > absl::ZeroDuration() &&
            now - started >= options_.long_statement_timeout) {
          seen.cancelled = "time";
          conn_.Cancel();
        }
      });
    }
    s = conn_.Run(sql);
  }
  if (!pooled && conn_.ok()) {
    (void)conn_.Run("RESET lock_timeout");
    (void)conn_.Run("RESET statement_timeout");
  }
  if (s.ok()) return s;
  std::lock_guard<std::mutex> lock(seen.mu);
  if (seen.cancelled == "lease") return LeaseCheck();  // its INVALID index is rebuilt by the next run
  if (seen.cancelled == "lock") {
    absl::Status out(
        absl::StatusCode::kDeadlineExceeded,
        absl::StrCat(sql.substr(0, sql.find(' ', 20)), " ... waited for "
                     "other transactions longer than the retry deadline (",
                     absl::FormatDuration(options_.retry_deadline), ") and was cancelled; ",
                     seen.blockers.empty() ? "the blocking sessions were not seen"
                                           : absl::StrCat("blocked by ", pgshift::DescribeSessions(seen.blockers)),
                     ". Its half-built (INVALID) index, if any, is pgshift's and is dropped and "
                     "rebuilt by the next run. End those transactions, then run the command again"));
    return out;  // no SQLSTATE: not a retryable lock timeout, the wait is over
  }
  if (seen.cancelled == "time") {
    return absl::DeadlineExceededError(absl::StrCat(
        sql.substr(0, sql.find(' ', 20)), " ... cancelled after long_statement_timeout (",
        absl::FormatDuration(options_.long_statement_timeout),
        "); its INVALID index, if any, is dropped and rebuilt by the next run"));
  }
  if (pooled && (util::SqlStateOf(s) == "57014" || util::SqlStateOf(s) == "55P03")) {
    auto limits = conn_.Exec("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')");
    if (limits.ok()) {
      return util::Annotate(
          s, absl::StrCat("through a connection pooler pgshift cannot change the session's "
                          "lock_timeout (", limits->Get(0, 0), ") or statement_timeout (",
                          limits->Get(0, 1), ") for statements that run outside a transaction; "
                          "give the driver role no such limits (ALTER ROLE ... SET "
                          "statement_timeout = 0) or connect directly"));
    }
  }
  return s;
}

absl::Status Executor::RunConcurrently(const ops::Action& action, const ops::Context& ctx,
                                       StepStats* stats) {
  bool skipped = false;
  auto attempt = [&]() -> absl::Status {
    skipped = false;
    ASSIGN_OR_RETURN(bool marked, MarkSaysDone(action, ctx));
    if (marked) {
      skipped = true;
      return absl::OkStatus();
    }
    if (!action.index_name.empty()) {
      ASSIGN_OR_RETURN(bool built, PrepareIndex(action, ctx.names.prefix()));
      if (built) {
        skipped = true;
        return absl::OkStatus();
      }
    }
    ASSIGN_OR_RETURN(bool done, Evaluate(conn_, action.done_if));
    if (done) {
      skipped = true;
      return absl::OkStatus();
    }
    // CREATE/DROP INDEX CONCURRENTLY take SHARE UPDATE EXCLUSIVE, which never
    // blocks application reads or writes; they may wait for it (and for
    // older transactions) up to the retry deadline.
    RETURN_IF_ERROR(RunOutsideTransaction(action, action.statements.at(0)));
    // Recorded after it: a kill in between runs it again (docs/operations/sql.md).
    if (!action.mark.list.empty()) {
      return control_.RecordStatementDone(ctx.migration, ctx.index, action.mark.list,
                                          action.mark.number);
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(WithRetry(action.table(), action.description, attempt, stats,
                            pg::LockMode::kShareUpdateExclusive));
  if (!skipped) stats->statements.push_back(action.statements.at(0));
  return absl::OkStatus();
}

absl::Status Executor::RunAssert(const ops::Action& action, StepStats* stats) {
  ASSIGN_OR_RETURN(bool skip, Evaluate(conn_, action.done_if));
  if (skip) return absl::OkStatus();
  const ops::AssertSpec& a = action.assert_spec;
  int64_t n = 0;
  std::vector<std::string> samples;
  // In one transaction with row_security off (AssertSpec::kSettingsSql).
  RETURN_IF_ERROR(conn_.Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(conn_.Run(ops::AssertSpec::kSettingsSql));
    stats->statements.push_back(ops::AssertSpec::kSettingsSql);
    const std::string count_sql = a.CountSql();
    ASSIGN_OR_RETURN(pg::Result count, conn_.Exec(count_sql));
    stats->statements.push_back(count_sql);
    n = count.GetInt(0, 0);
    if (n == 0) return absl::OkStatus();
    const std::string sample_sql = a.SampleSql();
    ASSIGN_OR_RETURN(pg::Result rows, conn_.Exec(sample_sql));
    stats->statements.push_back(sample_sql);
    for (int r = 0; r < rows.rows(); ++r) samples.push_back(rows.Get(r, 0));
    return absl::OkStatus();
  }));
  if (n == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(a.failure, ": ", n, " row(s)",
                   samples.empty() ? "" : absl::StrCat(", e.g. ", a.sample_label.empty() ? "primary key" : a.sample_label, " ",
                                                                 absl::StrJoin(samples, ", ")),
                   ". The phase did not change and no data was modified"));
}

absl::Status Executor::RunBackfill(const ops::Action& action, const ops::Context& ctx,
                                   StepStats* stats) {
  std::unique_ptr<backfill::CheckpointStore> store = control_.Checkpoints(ctx.migration, ctx.index);
  backfill::Backfill runner(conn_, options_, *store, ctx.migration, ctx.index,
                            [this](const std::string& table) { return DescribeLockHolders(table); },
                            [this] { return LeaseCheck(); },
                            [this] { return monitor_ ? monitor_() : nullptr; });
  const backfill::Statements sql = backfill::BuildStatements(
      action.backfill, backfill::WalksByPages(action.backfill, options_, conn_.server_version()),
      conn_.server_version());
  for (const auto& shown : sql.All()) stats->statements.push_back(shown.sql);
  backfill::Stats bs;
  absl::Status s = runner.Run(action.backfill, &bs);
  stats->rows += bs.rows_updated;
  stats->lock_wait_ms += bs.lock_wait_ms;
  if (bs.retries > 0) {
    // One summary for the history report: batches rolled back and retried
    // (lock timeout, deadlock, statement timeout) and the time they cost.
    stats->lock_waits.push_back(util::JsonObject()
                                    .Str("action", action.description)
                                    .Int("batches_retried", bs.retries)
                                    .Int("waited_ms", bs.lock_wait_ms)
                                    .Int("batches", bs.batches)
                                    .Build());
  }
  return s;
}

}  // namespace pgshift::engine
