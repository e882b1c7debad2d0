#include "lib/backfill/backfill.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/catalog/catalog.h"
#include "lib/ops/names.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift::backfill {

namespace {

std::string Ms(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)), "ms");
}

std::string Tid(int64_t page) { return absl::StrCat("(", page, ",0)"); }

// Lock timeout, deadlock, serialization failure: the batch was rolled back
// and can simply be tried again.
bool IsContention(const absl::Status& s) { return absl::IsAborted(s); }
}  // namespace

namespace {

bool IsStatementTimeout(const absl::Status& s) { return util::SqlStateOf(s) == "57014"; }
// The expression raised on some row: a data exception (class 22), or an
// error raised by a PL/pgSQL function it calls (class P0).
bool IsDataError(const absl::Status& s) {
  const std::string code = util::SqlStateOf(s);
  return code.rfind("22", 0) == 0 || code.rfind("P0", 0) == 0;
}

}  // namespace

// ---- BatchSizer ---------------------------------------------------------------

BatchSizer::BatchSizer(int64_t initial_rows, int64_t min_rows, int64_t max_rows,
                       absl::Duration target)
    : min_(std::max<int64_t>(1, min_rows)),
      max_(std::max(std::max<int64_t>(1, min_rows), max_rows)),
      target_(target > absl::ZeroDuration() ? target : absl::Milliseconds(1)) {
  rows_ = std::clamp(initial_rows, min_, max_);
}

void BatchSizer::Set(double rows) {
  if (!(rows >= 1)) rows = 1;  // also catches NaN
  rows = std::min(rows, static_cast<double>(max_));
  rows_ = std::clamp(static_cast<int64_t>(rows), min_, max_);
}

void BatchSizer::Observe(int64_t rows, absl::Duration took) {
  if (rows <= 0) return;
  double per_row = absl::ToDoubleSeconds(std::max(took, absl::Microseconds(1))) /
                   static_cast<double>(rows);
  // Smooth, but let a much slower batch (lock waits, TOAST, a busy server)
  // count fully at once: shrinking late holds row locks too long.
  if (per_row_seconds_ <= 0 || per_row > 2 * per_row_seconds_) {
    per_row_seconds_ = per_row;
  } else {
    per_row_seconds_ = 0.5 * per_row_seconds_ + 0.5 * per_row;
  }
  double want = absl::ToDoubleSeconds(target_) / per_row_seconds_;
  double current = static_cast<double>(rows_);
  want = std::clamp(want, current / 4, current * 2);
  if (rows < rows_) want = std::min(want, current);  // a short final batch proves nothing about more
  Set(want);
}

void BatchSizer::Contended() { Set(static_cast<double>(rows_) / 2); }
void BatchSizer::TimedOut() { Set(static_cast<double>(rows_) / 4); }

// ---- RateMeter ----------------------------------------------------------------

void RateMeter::Add(int64_t rows, absl::Duration busy) {
  if (busy <= absl::ZeroDuration()) return;
  samples_.emplace_back(rows, busy);
  rows_ += rows;
  busy_ += busy;
  // Keep the newest samples that still cover the window.
  while (samples_.size() > 1 && busy_ - samples_.front().second >= window_) {
    rows_ -= samples_.front().first;
    busy_ -= samples_.front().second;
    samples_.pop_front();
  }
}

double RateMeter::rows_per_second() const {
  double secs = absl::ToDoubleSeconds(busy_);
  return secs > 0 ? static_cast<double>(rows_) / secs : 0;
}

// ---- SQL ------------------------------------------------------------------------

absl::StatusOr<int64_t> EstimateRows(pg::Connection& conn, const std::string& table) {
  ASSIGN_OR_RETURN(pg::Result r,
                   conn.Exec("SELECT c.reltuples::float8, c.relpages::bigint, "
                             "pg_relation_size(c.oid) / current_setting('block_size')::bigint "
                             "FROM pg_class c WHERE c.oid = $1::regclass",
                             {table}));
  if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("table ", table, " is gone"));
  double reltuples = 0;
  if (!absl::SimpleAtod(r.Get(0, 0), &reltuples)) reltuples = -1;
  const int64_t relpages = r.GetInt(0, 1);
  const int64_t pages = r.GetInt(0, 2);
  if (pages == 0) return 0;
  if (reltuples > 0 && relpages > 0) {
    // What the planner does: the density seen by the last ANALYZE/VACUUM,
    // scaled to the table's size now.
    return static_cast<int64_t>(std::llround(reltuples / static_cast<double>(relpages) *
                                              static_cast<double>(pages)));
  }
  // Never analyzed (reltuples -1 on PG 14+, 0 before): the planner's guess
  // from the table's size and the width of its row type.
  ASSIGN_OR_RETURN(catalog::Explained plan, catalog::Explain(conn, absl::StrCat("SELECT 1 FROM ", table)));
  return std::max<int64_t>(plan.plan_rows, 0);
}

namespace {

// The table's rows and pages now, for progress: the rows as honestly as is
// cheap. A small table is counted (at most kCountedPages pages read);
// otherwise the density of the last ANALYZE scaled to the table's size now
// (EstimateRows); a table never analyzed has the density of its first
// kCountedPages pages measured (a TID range scan, PostgreSQL 14+) rather
// than the planner's guess from its row width, which is all older servers
// get. A page walk then refines the density from the pages it walks.
struct TableSize {
  int64_t rows = 0;
  int64_t pages = 0;
};

constexpr int64_t kCountedPages = 128;  // 1 MB of 8 kB pages

absl::StatusOr<TableSize> MeasureTable(pg::Connection& conn, const std::string& table) {
  ASSIGN_OR_RETURN(pg::Result r,
                   conn.Exec("SELECT c.reltuples::float8 > 0 AND c.relpages > 0, "
                             "pg_relation_size(c.oid) / current_setting('block_size')::bigint "
                             "FROM pg_class c WHERE c.oid = $1::regclass",
                             {table}));
  if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("table ", table, " is gone"));
  TableSize out;
  out.pages = r.GetInt(0, 1);
  if (out.pages == 0) return out;
  if (out.pages <= kCountedPages) {
    ASSIGN_OR_RETURN(pg::Result n, conn.Exec(absl::StrCat("SELECT count(*) FROM ", table)));
    out.rows = n.GetInt(0, 0);
    return out;
  }
  if (r.GetBool(0, 0) || conn.server_version() < 140000) {
    ASSIGN_OR_RETURN(out.rows, EstimateRows(conn, table));
    return out;
  }
  ASSIGN_OR_RETURN(pg::Result n, conn.Exec(absl::StrCat("SELECT count(*) FROM ", table,
                                                        " WHERE ctid < $1::tid"),
                                           {Tid(kCountedPages)}));
  out.rows = static_cast<int64_t>(std::llround(static_cast<double>(n.GetInt(0, 0)) /
                                               static_cast<double>(kCountedPages) *
                                               static_cast<double>(out.pages)));
  return out;
}

}  // namespace

// ---- Backfill -------------------------------------------------------------------

// What one batch did; applied to the State only once its transaction has
// committed, so that a rolled-back attempt leaves no trace.
struct Batch {
  Position next;
  int64_t examined = 0;  // rows the batch covered
  int64_t updated = 0;   // rows it changed
  int64_t sized = 0;     // what the batch sizer learns from (rows, or pages for ctid)
  bool counted = true;   // `examined` was counted (else: pages times the density)
  bool restarted = false;  // ctid: the walk started again from page 0 (first batch, rewrite)
  int64_t estimate = 0;  // the total rows estimated once it committed
  bool finished = false;
  bool paused = false;   // a pause request was set when the batch committed
};

struct Backfill::State {
  bool ctid = false;
  Stats* stats = nullptr;

  // Committed state (the checkpoint row).
  Position pos;
  bool done = false;
  int64_t rows_done = 0;
  int64_t rows_estimate = 0;

  // Throttling: whether a pause request was last seen (true at first, so
  // that the first batch checks), and when replication lag is due a check.
  bool paused = true;
  absl::Time next_lag_check = absl::InfinitePast();
  absl::Time next_throttle_check = absl::InfinitePast();
  std::string recorded_waiting;  // what status shows now (SetWaiting / the checkpoint)

  // The latency guard, when on.
  std::optional<Pacer> pacer;
  double pace = 1;

  double rows_per_page = 1;  // ctid: the table's density, to count rows from pages
  // ctid: whether the server's scan counts can be read (track_counts), and
  // the pages walked and rows covered since the walk (re)started: their
  // ratio is the density the estimate of the rest uses.
  bool can_count = false;
  int64_t walk_pages = 0;
  int64_t walk_rows = 0;

  RateMeter meter;
  int64_t batch_rows = 0;  // size of the next batch, in rows, for reports
  int64_t rows_updated = 0;
};

Backfill::Backfill(pg::Connection& conn, const Options& options, CheckpointStore& store,
                   std::string migration, int operation,
                   std::function<std::string(const std::string&)> describe_lock_holders,
                   std::function<absl::Status()> keep_going,
                   std::function<pg::Connection*()> probe_connection)
    : conn_(conn),
      options_(options),
      store_(store),
      migration_(std::move(migration)),
      operation_(operation),
      describe_lock_holders_(std::move(describe_lock_holders)),
      keep_going_(std::move(keep_going)),
      probe_connection_(std::move(probe_connection)) {}

absl::Status Backfill::LoadCheckpoint(const ops::BackfillSpec& spec, State* st) {
  ASSIGN_OR_RETURN(std::optional<Checkpoint> cp, store_.Load());
  if (!cp) return absl::OkStatus();
  st->done = cp->done;
  st->rows_done = cp->rows_done;
  st->rows_estimate = cp->rows_estimate;
  // A checkpoint of the other walk (the table gained or lost its primary key
  // in between, or the walk option changed) is ignored: the walk starts
  // again, and the rows already done are skipped by needs_work.
  if (st->ctid && cp->position.have_range) {
    st->pos = cp->position;
    st->pos.last_key.clear();
  } else if (!st->ctid && cp->position.last_key.size() == spec.key.size()) {
    st->pos.last_key = cp->position.last_key;
  }
  return absl::OkStatus();
}

void Backfill::Report(const State& st, const std::string& waiting) {
  if (!options_.on_progress) return;
  Progress p;
  p.migration = migration_;
  p.operation = operation_;
  p.step = "backfilled";
  p.rows_done = st.rows_done;
  p.rows_estimate = st.done ? st.rows_done : std::max(st.rows_estimate, st.rows_done);
  p.rows_estimated = !st.done;
  p.rows_per_second = st.meter.rows_per_second();
  p.pace = st.pace;
  if (st.pacer) {
    p.probe_working_ms = st.pacer->working_ms();
    p.probe_resting_ms = st.pacer->resting_ms();
  }
  if (st.done) {
    p.eta_seconds = 0;
  } else if (p.rows_per_second > 0 && st.rows_estimate > st.rows_done) {
    // The rate counts the guard's rests (a batch's time runs from the end of
    // the one before): the ETA needs no correction for the pace.
    p.eta_seconds = static_cast<double>(st.rows_estimate - st.rows_done) / p.rows_per_second;
  }
  p.finished = st.done;
  p.rows_updated = st.rows_updated;
  p.batch_rows = st.batch_rows;
  p.lock_wait_ms = st.stats->lock_wait_ms;
  p.waiting = waiting;
  options_.on_progress(p);
}

namespace {
// The largest replay lag of the standbys, and how many of them this role
// cannot see (`state` is NULL for standbys whose details it may not read).
// A standby that has replayed everything counts as no lag: replay_lag keeps
// its last measured value for a while after a standby caught up while the
// primary was idle (which it is while we wait).
constexpr char kLagSql[] =
    "SELECT coalesce(max(CASE WHEN replay_lsn >= pg_current_wal_lsn() THEN 0 "
    "ELSE extract(epoch FROM replay_lag) END), 0)::float8, "
    "count(*) FILTER (WHERE state IS NULL) FROM pg_stat_replication";
}  // namespace

absl::Status Backfill::Waiting(State* st, const std::string& waiting) {
  if (waiting != st->recorded_waiting) {
    RETURN_IF_ERROR(store_.SetWaiting(waiting, st->pace, st->rows_estimate));
    st->recorded_waiting = waiting;
  }
  Report(*st, waiting);
  return absl::OkStatus();
}

absl::StatusOr<bool> Backfill::ThrottleQuery() {
  bool wait = false;
  // Read-only, bounded, and rolled back: a throttle query that writes, hangs
  // or changes session settings (set_config(..., false)) must not hold the
  // backfill hostage nor leave anything on its session. Its timeout is
  // statement_timeout, or 30 s when that is 0 (none).
  const absl::Duration timeout =
      options_.statement_timeout > absl::ZeroDuration() ? options_.statement_timeout : absl::Seconds(30);
  absl::Status s = conn_.RolledBack([&]() -> absl::Status {
    RETURN_IF_ERROR(conn_.Run("SELECT set_config('transaction_read_only', 'on', true), "
                              "set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)",
                              {Ms(timeout), Ms(options_.lock_timeout)}));
    ASSIGN_OR_RETURN(pg::Result r, conn_.Exec(options_.throttle_query));
    if (r.rows() > 1 || r.cols() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "it returned ", r.rows(), " row(s) of ", r.cols(), " column(s); it must return one boolean"));
    }
    if (r.rows() == 0 || r.IsNull(0, 0)) return absl::OkStatus();  // nothing to say: go on
    const std::string v = r.Get(0, 0);
    if (v != "t" && v != "f") {
      return absl::InvalidArgumentError(absl::StrCat("it returned \"", v, "\", not a boolean"));
    }
    wait = v == "t";
    return absl::OkStatus();
  });
  if (!s.ok()) {
    // The step stops (FailedPrecondition once the engine has it, exit 1:
    // batches may have committed), resumable once the query is fixed.
    return util::WithCode(
        util::Annotate(s, "the throttle query (--throttle-query, Options::throttle_query) failed; "
                          "fix it or leave it out"),
        absl::StatusCode::kFailedPrecondition);
  }
  return wait;
}

absl::Status Backfill::WaitWhileThrottled(State* st) {
  const bool lag_limit = options_.max_replication_lag > absl::ZeroDuration();
  const bool throttle_query = !options_.throttle_query.empty();
  while (true) {
    if (keep_going_) RETURN_IF_ERROR(keep_going_());
    // The pause request comes back with every checkpoint write; the lag and
    // the throttle query are asked at most once per poll interval
    // (pg_stat_replication is not free, the user's query may not be).
    const absl::Time now = absl::Now();
    const bool check_lag = lag_limit && now >= st->next_lag_check;
    const bool check_throttle = throttle_query && now >= st->next_throttle_check;
    if (!st->paused && !check_lag && !check_throttle) return absl::OkStatus();
    if (st->paused) {
      ASSIGN_OR_RETURN(st->paused, store_.PauseRequested());
    }
    if (st->paused) {
      RETURN_IF_ERROR(Waiting(st, "paused"));
      absl::SleepFor(options_.backfill_poll_interval);
      continue;
    }
    if (check_throttle) {
      ASSIGN_OR_RETURN(bool wait, ThrottleQuery());
      st->next_throttle_check = absl::Now() + options_.backfill_poll_interval;
      if (wait) {
        RETURN_IF_ERROR(Waiting(st, "throttle_query"));
        absl::SleepFor(options_.backfill_poll_interval);
        continue;
      }
    }
    if (check_lag) {
      ASSIGN_OR_RETURN(pg::Result r, conn_.Exec(kLagSql));
      st->next_lag_check = absl::Now() + options_.backfill_poll_interval;
      if (r.GetInt(0, 1) > 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot read the replication lag of ", r.GetInt(0, 1),
            " standby(s): this role needs pg_monitor (or pg_read_all_stats) to see "
            "pg_stat_replication; grant it, or turn the lag limit off with "
            "--max-replication-lag 0 (Options::max_replication_lag = 0). The backfill resumes "
            "from its checkpoint"));
      }
      double seconds = 0;
      if (!absl::SimpleAtod(r.Get(0, 0), &seconds)) seconds = 0;
      if (absl::Seconds(seconds) > options_.max_replication_lag) {
        RETURN_IF_ERROR(Waiting(st, "replication_lag"));
        absl::SleepFor(options_.backfill_poll_interval);
        st->next_lag_check = absl::InfinitePast();
        continue;
      }
    }
    return absl::OkStatus();
  }
}

absl::Status Backfill::BatchSettings(const Statements& sql) {
  // SET LOCAL, in every batch's transaction: nothing may outlive it on the
  // session (behind a transaction-pooling PgBouncer the next transaction on
  // this server connection may be an application's, and pgshift.backfill
  // would make the sync trigger skip its writes). pgshift.backfill names
  // this operation: only its own trigger skips the batch.
  return conn_.Run(sql.settings, {Ms(options_.backfill_lock_timeout), Ms(options_.statement_timeout),
                                  ops::Names(migration_, operation_).prefix()});
}

absl::Status Backfill::SaveCheckpoint(const State& st, Batch* batch) {
  Checkpoint cp;
  cp.position = batch->next;
  cp.done = batch->finished;
  cp.rows_done = st.rows_done + batch->examined;
  batch->estimate = EstimateAfter(st, *batch);
  cp.rows_estimate = batch->estimate;
  // What status shows until the next report: the guard's state as the last
  // batch left it (waiting is cleared: this batch is working).
  cp.pace = batch->finished ? 1 : st.pace;
  cp.waiting = !batch->finished && st.pace < 1 ? "latency" : "";
  ASSIGN_OR_RETURN(batch->paused, store_.Save(cp));
  return absl::OkStatus();
}

int64_t Backfill::EstimateAfter(const State& st, const Batch& b) {
  const int64_t done = st.rows_done + b.examined;
  if (b.finished) return done;
  if (!st.ctid) return std::max(st.rows_estimate, done);
  const int64_t pages = (b.restarted ? 0 : st.walk_pages) + b.sized;
  const int64_t rows = (b.restarted ? 0 : st.walk_rows) + b.examined;
  const double density = b.counted && pages > 0 ? static_cast<double>(rows) / static_cast<double>(pages)
                                                : st.rows_per_page;
  const int64_t left = std::max<int64_t>(0, b.next.end_page - b.next.page);
  return done + static_cast<int64_t>(std::llround(static_cast<double>(left) * density));
}

absl::Status Backfill::RunKeysetBatch(const Statements& sql, const Updates& updates,
                                      const State& st, int64_t rows, Batch* out) {
  const bool first = st.pos.last_key.empty();
  pg::Params params;
  for (const auto& k : st.pos.last_key) params.push_back(k);
  RETURN_IF_ERROR(BatchSettings(sql));
  pg::Params end_params = params;
  end_params.push_back(std::to_string(std::max<int64_t>(0, rows - 1)));
  ASSIGN_OR_RETURN(pg::Result end, conn_.Exec(first ? sql.first_end : sql.next_end, end_params));
  out->next = st.pos;
  if (end.rows() > 0) {
    std::vector<std::string> end_key;
    pg::Params uparams = params;
    for (int i = 0; i < end.cols(); ++i) {
      end_key.push_back(end.Get(0, i));
      uparams.push_back(end_key.back());
    }
    ASSIGN_OR_RETURN(pg::Result upd, conn_.Exec(first ? updates.first : updates.next, uparams));
    out->examined = rows;
    out->updated = upd.Affected();
    out->finished = false;
    out->next.last_key = std::move(end_key);
  } else {
    // The tail: fewer than `rows` rows are left.
    ASSIGN_OR_RETURN(pg::Result tail, conn_.Exec(first ? updates.first_last : updates.last, params));
    out->updated = tail.GetInt(0, 0);
    out->examined = tail.GetInt(0, 1);
    out->finished = true;
  }
  out->sized = out->examined;
  return SaveCheckpoint(st, out);
}

absl::Status Backfill::RunCtidBatch(const Statements& sql, const Updates& updates,
                                    const ops::BackfillSpec& spec, const State& st, int64_t pages,
                                    Batch* out) {
  RETURN_IF_ERROR(BatchSettings(sql));
  // The table lock first: from here to COMMIT no rewrite (VACUUM FULL,
  // CLUSTER) can change where rows live.
  RETURN_IF_ERROR(conn_.Run(sql.lock));
  ASSIGN_OR_RETURN(pg::Result rel, conn_.Exec(sql.position, {spec.table}));
  out->next = st.pos;
  Position& next = out->next;
  const std::string filenode = rel.Get(0, 0);
  if (!next.have_range || filenode != next.filenode) {
    // First batch, or the table was rewritten since the walk started: rows
    // may have moved to pages already walked, so walk again from page 0.
    next.have_range = true;
    next.page = 0;
    next.end_page = rel.GetInt(0, 1);
    next.filenode = filenode;
    out->restarted = true;
  }
  const int64_t lo = next.page;
  const int64_t hi = std::min(next.end_page, lo + std::max<int64_t>(1, pages));
  if (lo < hi) {
    ASSIGN_OR_RETURN(pg::Result r, conn_.Exec(updates.next, {Tid(lo), Tid(hi)}));
    out->updated = r.Affected();
    // The rows the range holds: what the UPDATE's TID range scan returned,
    // from the server's own count (counting them in the statement would
    // cost ~25% more CPU). Without it, the pages walked times the density,
    // never below the rows changed. A row that an earlier batch moved to a
    // page not walked yet (no room on its own page) is met again there: the
    // sum is the rows examined, a little above the row count on a full table.
    int64_t counted = -1;
    if (sql.counts_rows) {
      ASSIGN_OR_RETURN(pg::Result seen, conn_.Exec(sql.rows_seen, {spec.table}));
      counted = seen.GetInt(0, 0) - rel.GetInt(0, 2);
    }
    out->counted = st.can_count && counted >= out->updated;
    out->examined = out->counted ? counted
                                 : std::max(out->updated,
                                            static_cast<int64_t>(std::llround(
                                                static_cast<double>(hi - lo) * st.rows_per_page)));
  } else {
    out->counted = st.can_count;
  }
  out->sized = hi - lo;
  out->finished = hi >= next.end_page;
  next.page = hi;
  return SaveCheckpoint(st, out);
}

absl::Status Backfill::Run(const ops::BackfillSpec& spec, Stats* stats) {
  State st;
  st.ctid = WalksByPages(spec, options_, conn_.server_version());
  const Statements sql = BuildStatements(spec, st.ctid, conn_.server_version());
  st.stats = stats;
  RETURN_IF_ERROR(LoadCheckpoint(spec, &st));
  if (st.done) {
    Report(st, "");
    return absl::OkStatus();
  }
  // The estimate is made afresh on every run, from the table as it is now.
  ASSIGN_OR_RETURN(TableSize size, MeasureTable(conn_, spec.table));

  // Sizes are in rows for keyset walks and in pages for ctid walks (the row
  // bounds turned into pages with the table's density).
  double scale = 1;
  if (st.ctid) {
    if (sql.counts_rows) {
      ASSIGN_OR_RETURN(pg::Result tc, conn_.Exec("SELECT current_setting('track_counts')::bool"));
      st.can_count = tc.GetBool(0, 0);
    }
    int64_t rows = size.rows, n = size.pages;
    if (st.pos.have_range && st.pos.page > 0) {
      // A resumed walk: the density of the pages it walked (rows done are
      // counted), else the one when it started.
      st.walk_pages = st.pos.page;
      st.walk_rows = st.rows_done;
      if (st.can_count) {
        rows = st.rows_done;
        n = st.pos.page;
      } else if (st.pos.end_page > 0) {
        n = st.pos.end_page;
        rows = st.rows_estimate > 0 ? st.rows_estimate : rows;
      }
    }
    scale = n > 0 && rows > 0 ? std::max(1.0, static_cast<double>(rows) / static_cast<double>(n)) : 50.0;
    st.rows_per_page = scale;
    st.rows_estimate =
        st.pos.have_range
            ? st.rows_done + static_cast<int64_t>(std::llround(
                                 static_cast<double>(std::max<int64_t>(0, st.pos.end_page - st.pos.page)) *
                                 scale))
            : size.rows;
  } else {
    st.rows_estimate = std::max(size.rows, st.rows_done);
  }
  auto to_units = [scale](int64_t rows) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(static_cast<double>(rows) / scale)));
  };
  BatchSizer sizer(to_units(options_.backfill_batch_rows), to_units(options_.backfill_min_batch_rows),
                   to_units(options_.backfill_max_batch_rows), options_.backfill_target_batch_time);
  auto batch_rows = [&]() {
    return static_cast<int64_t>(static_cast<double>(sizer.rows()) * scale);
  };
  st.batch_rows = batch_rows();
  Report(st, "");

  // The latency guard, for backfills long enough to matter (ten initial
  // batches or more): a baseline of the probe before the first batch (60
  // quick probes: ~1% of a one-million-row backfill on an idle server), then
  // a decision after every batch.
  std::optional<Prober> prober;
  pg::Connection* probe = nullptr;
  if (options_.latency_guard > 0 && probe_connection_ &&
      st.rows_estimate - st.rows_done >= 10 * options_.backfill_batch_rows) {
    probe = probe_connection_();
  }
  if (probe != nullptr) {
    constexpr absl::Duration kProbeInterval = absl::Milliseconds(5);
    constexpr absl::Duration kBaselineInterval = absl::Milliseconds(1);
    constexpr absl::Duration kBaseline = absl::Milliseconds(60);
    prober.emplace(*probe, kBaselineInterval, conn_.backend_pid());
    st.pacer.emplace(options_.latency_guard);
    absl::SleepFor(kBaseline);
    prober->SetInterval(kProbeInterval);
    st.pacer->Add(prober->Take());
  }

  // After the plain set clause fails on a batch, this many batches use the
  // fallback before the plain one is tried again.
  constexpr int kFallbackBatches = 8;
  const bool has_fallback = !spec.fallback_set_clause.empty();
  int fallback_left = 0;

  absl::BitGen gen;
  absl::Duration backoff = options_.retry_initial_backoff;
  absl::Time last_commit = absl::Now();
  absl::Time busy_since = absl::Now();
  int64_t batches = 0;
  while (true) {
    if (options_.backfill_max_batches > 0 && batches >= options_.backfill_max_batches) {
      return absl::CancelledError(absl::StrCat(
          "backfill stopped after ", batches, " batches (", st.rows_done,
          " rows done) as asked; run advance again to resume from the checkpoint"));
    }
    // Before every batch: a driver that lost its lease stops here, within a
    // batch (and a heartbeat) of losing it.
    if (keep_going_) RETURN_IF_ERROR(keep_going_());
    absl::Time before_wait = absl::Now();
    RETURN_IF_ERROR(WaitWhileThrottled(&st));
    if (absl::Now() - before_wait > absl::Milliseconds(50)) busy_since = absl::Now();

    const int64_t units = sizer.rows();
    const absl::Time t0 = absl::Now();
    const bool fallback = fallback_left > 0;
    Batch batch;
    if (prober) prober->SetWorking(true);
    absl::Status s = conn_.Transaction([&]() -> absl::Status {
      batch = Batch();
      const Updates& updates = fallback ? sql.fallback : sql.plain;
      return st.ctid ? RunCtidBatch(sql, updates, spec, st, units, &batch)
                     : RunKeysetBatch(sql, updates, st, units, &batch);
    });
    const absl::Time t1 = absl::Now();
    if (prober) prober->SetWorking(false);
    if (!s.ok() && !fallback && has_fallback && IsDataError(s)) {
      // The plain expression raised on some row of this batch: the same
      // batch (and the next few) with the fallback clause.
      fallback_left = kFallbackBatches;
      continue;
    }
    if (!s.ok()) {
      const bool timeout = IsStatementTimeout(s);
      if (!IsContention(s) && !(timeout && units > sizer.min_rows())) {
        if (timeout) {
          return util::Annotate(
              s, absl::StrCat("a backfill batch of the smallest size (", batch_rows(),
                              " rows) ran into statement_timeout (",
                              absl::FormatDuration(options_.statement_timeout),
                              "); raise --statement-timeout or lower --batch-min-rows"));
        }
        return s;
      }
      ++stats->retries;
      stats->lock_wait_ms += absl::ToInt64Milliseconds(t1 - t0);
      if (timeout) {
        sizer.TimedOut();
      } else {
        sizer.Contended();
      }
      st.batch_rows = batch_rows();
      if (t1 - last_commit >= options_.retry_deadline) {
        absl::Status out(
            absl::StatusCode::kDeadlineExceeded,
            absl::StrCat("backfill of ", spec.table, ": no batch could commit for ",
                         absl::FormatDuration(absl::Trunc(t1 - last_commit, absl::Seconds(1))),
                         " (retry deadline ", absl::FormatDuration(options_.retry_deadline),
                         ", batch lock_timeout ",
                         absl::FormatDuration(options_.backfill_lock_timeout), "); last error: ",
                         s.message(), ". Sessions holding locks on ", spec.table, ": ",
                         describe_lock_holders_ ? describe_lock_holders_(spec.table) : "unknown",
                         ". Committed batches are kept: run advance again to resume"));
        return util::WithSqlState(out, util::SqlStateOf(s).empty() ? "55P03" : util::SqlStateOf(s));
      }
      RETURN_IF_ERROR(Waiting(&st, "lock_contention"));
      absl::Duration pause = absl::Milliseconds(absl::Uniform<double>(gen, 0.5, 1.0) *
                                                absl::ToDoubleMilliseconds(backoff));
      absl::SleepFor(pause);
      backoff = std::min(backoff * 2, options_.retry_max_backoff);
      busy_since = absl::Now();
      continue;
    }

    ++batches;
    ++stats->batches;
    if (fallback) {
      ++stats->fallback_batches;
      --fallback_left;
    }
    stats->rows_updated += batch.updated;
    st.rows_updated += batch.updated;
    st.rows_done += batch.examined;
    st.rows_estimate = batch.estimate;
    if (batch.restarted) st.walk_pages = st.walk_rows = 0;
    if (st.ctid) {
      st.walk_pages += batch.sized;
      st.walk_rows += batch.examined;
    }
    st.done = batch.finished;
    st.paused = batch.paused;
    st.pos = std::move(batch.next);
    backoff = options_.retry_initial_backoff;
    last_commit = t1;
    sizer.Observe(batch.sized, t1 - t0);
    st.batch_rows = batch_rows();
    st.meter.Add(batch.examined, t1 - busy_since);
    busy_since = t1;
    st.recorded_waiting = st.pace < 1 ? "latency" : "";  // what the checkpoint recorded
    absl::Duration rest;
    if (st.pacer && !st.done) {
      if (prober->failed()) {
        // The probe connection is gone (the server will tell the batches
        // soon enough): nothing to pace by, so full speed.
        st.pacer.reset();
        st.pace = 1;
      } else {
        st.pacer->Add(prober->Take());
        // A rest never exceeds 20 target batch times (2 s by default),
        // whatever one slow batch took.
        rest = std::min(st.pacer->After(t1 - t0, prober->others_active()),
                        20 * options_.backfill_target_batch_time);
        st.pace = st.pacer->pace();
      }
    }
    Report(st, rest > absl::ZeroDuration() ? "latency" : "");
    if (st.done) return absl::OkStatus();
    // No rest when the batch limit stops the loop next; a rest is slept in
    // slices that notice a lost lease.
    if (options_.backfill_max_batches > 0 && batches >= options_.backfill_max_batches) continue;
    for (absl::Time until = absl::Now() + rest; absl::Now() < until;) {
      absl::SleepFor(std::min(until - absl::Now(), options_.backfill_poll_interval));
      if (keep_going_) RETURN_IF_ERROR(keep_going_());
    }
    if (options_.backfill_batch_delay > absl::ZeroDuration()) {
      absl::SleepFor(options_.backfill_batch_delay);
    }
  }
}

}  // namespace pgshift::backfill
