#include "pgshift/driver.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/backfill/statements.h"
#include "lib/catalog/lint_catalog.h"
#include "lib/engine/control.h"
#include "lib/engine/control_schema.h"
#include "lib/engine/directory.h"
#include "lib/engine/executor.h"
#include "lib/engine/lease.h"
#include "lib/engine/lint.h"
#include "lib/engine/sessions.h"
#include "lib/ops/operation.h"
#include "lib/ops/registry.h"
#include "lib/pg/connection.h"
#include "lib/pg/quote.h"
#include "lib/spec/sql_migration.h"
#include "lib/util/json.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"
#include "pgshift/errors.h"
#include "pgshift/json.h"
#include "pgshift/migration.h"

namespace pgshift {

namespace {

using OpList = std::vector<std::unique_ptr<ops::Operation>>;

Phase Next(Phase p) { return static_cast<Phase>(static_cast<int>(p) + 1); }

// Codes that mean "bad input" at register time mean "the database is not in
// the state the step needs" once a step runs: exit 1, not 2.
absl::Status AsStepFailure(const absl::Status& s) {
  if (absl::IsInvalidArgument(s) || absl::IsNotFound(s) || absl::IsAlreadyExists(s)) {
    return util::WithCode(s, absl::StatusCode::kFailedPrecondition);
  }
  return s;
}

// An error from running a step's actions. Earlier steps, and earlier actions
// of this one, may have changed the schema already, so it is never "bad
// input; nothing changed" (exit 2): server errors that read so at register
// time become FailedPrecondition, a step that failed with the state
// consistent (exit 1), keeping their SQLSTATE. An SQL error also gets told
// how to continue.
absl::Status ActionFailure(const absl::Status& s, const std::string& name, Phase from, Phase to) {
  absl::Status out = AsStepFailure(s);
  if (util::SqlStateOf(out).empty() || ExitCodeFor(out) != 1 || absl::IsUnavailable(out)) return out;
  const std::string next =
      to == Phase::kRolledBack
          ? absl::StrCat(". The rollback stopped part-way (the phase is still ", PhaseName(from),
                         "; what it undid stays undone): remove the cause, then run `pgshift "
                         "rollback ", name, "` again to finish it")
          : absl::StrCat(". The phase is still ", PhaseName(from),
                         " (what this step completed is kept and skipped when it runs again): "
                         "remove the cause, then run `pgshift advance ", name,
                         "` again, or undo the migration with `pgshift rollback ", name, "`");
  absl::Status told(out.code(), absl::StrCat(out.message(), next));
  out.ForEachPayload([&told](absl::string_view url, const absl::Cord& p) { told.SetPayload(url, p); });
  return told;
}

// Whether the preflight looks at `lock`'s table before the action runs.
bool NeedsPreflight(const ops::Action& a, const ops::TableLock& lock) {
  return a.kind == ops::Action::Kind::kTransaction && lock.mode >= pg::LockMode::kAccessExclusive;
}

// The statements of `a` as `plan` shows them: exactly those `advance` runs
// (the backfill's from the same builder, for the walk `options` and
// `server_version` choose).
std::vector<PlannedStatement> Render(const ops::Action& a, const Options& options,
                                     int server_version) {
  std::vector<PlannedStatement> out;
  auto make = [&a](std::string sql, std::string when = "") {
    PlannedStatement p;
    p.sql = std::move(sql);
    p.lock = std::string(pg::LockModeName(a.strongest_lock()));
    for (const ops::TableLock& l : a.locks) {
      p.locks.push_back(PlannedLock{l.table, std::string(pg::LockModeName(l.mode))});
    }
    p.scans_table = a.scans_table;
    p.rewrites_table = a.rewrites_table;
    p.note = a.description;
    p.when = std::move(when);
    if (!a.done_if.empty()) p.skip_if = a.done_if.Describe();
    return p;
  };
  switch (a.kind) {
    case ops::Action::Kind::kTransaction:
      for (const auto& s : a.statements) out.push_back(make(s));
      break;
    case ops::Action::Kind::kConcurrently: {
      if (!a.drop_invalid.empty()) {  // a build (a DROP INDEX CONCURRENTLY has none)
        PlannedStatement drop = make(a.drop_invalid, "only when an INVALID index of that name, left by an "
                                                     "interrupted build of ours, is in the way");
        drop.transactional = false;
        drop.scans_table = false;
        out.push_back(std::move(drop));
      }
      PlannedStatement build = make(a.statements.at(0));
      build.transactional = false;
      out.push_back(std::move(build));
      break;
    }
    case ops::Action::Kind::kBackfill: {
      const backfill::Statements sql = backfill::BuildStatements(
          a.backfill, backfill::WalksByPages(a.backfill, options, server_version), server_version);
      for (const auto& shown : sql.All()) {
        PlannedStatement p = make(shown.sql, shown.when);
        p.batched = true;
        p.scans_table = true;
        out.push_back(std::move(p));
      }
      break;
    }
    case ops::Action::Kind::kAssert: {
      PlannedStatement settings =
          make(ops::AssertSpec::kSettingsSql, "first, in the check's own transaction");
      settings.scans_table = false;
      out.push_back(std::move(settings));
      out.push_back(make(a.assert_spec.CountSql()));
      out.push_back(make(a.assert_spec.SampleSql(), "only when the count is not 0: sample keys for the error"));
      break;
    }
  }
  return out;
}

}  // namespace

struct Driver::Impl {
  Impl(std::string d, std::unique_ptr<pg::Connection> c, Options o)
      : dsn(std::move(d)), conn(std::move(c)), options(std::move(o)),
        control(*conn, options.control_schema), executor(*conn, options, control) {
    executor.set_monitor([this] { return Monitor(); });
  }

  const std::string dsn;  // kept for the lease and monitor connections; never printed
  std::unique_ptr<pg::Connection> conn;
  Options options;
  engine::Control control;
  engine::Executor executor;
  std::unique_ptr<pg::Connection> monitor;

  std::string AppName() const { return absl::StrCat("pgshift ", options.driver_name); }

  // Every call starts with no interrupt seen, and on a live session: after
  // a server restart (or its backend was terminated) the driver connects
  // again rather than fail forever. Only here, between calls, where no
  // session state is relied on.
  absl::Status BeginCall() {
    interrupt_seen = false;
    if (conn->Alive()) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> fresh, pg::Connection::Open(dsn, AppName()));
    *conn = std::move(*fresh);  // control and executor keep their reference to *conn
    monitor.reset();
    return absl::OkStatus();
  }

  // The second connection the executor watches statements from; reopened
  // after a failure, nullptr when it cannot be opened.
  pg::Connection* Monitor() {
    if (monitor && monitor->ok()) return monitor.get();
    auto c = pg::Connection::Open(dsn, absl::StrCat(AppName(), " [monitor]"));
    monitor = c.ok() ? std::move(*c) : nullptr;
    return monitor.get();
  }

  absl::StatusOr<std::unique_ptr<engine::Lease>> TakeLease(const std::string& name) {
    ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> c,
                     pg::Connection::Open(dsn, absl::StrCat(AppName(), " [lease]")));
    return engine::Lease::Acquire(std::move(c), options.control_schema, name,
                                  options.lease_heartbeat);
  }

  absl::StatusOr<OpList> BuildOps(const v1::Migration& m) {
    OpList out;
    for (int i = 0; i < m.operations_size(); ++i) {
      ASSIGN_OR_RETURN(std::unique_ptr<ops::Operation> op,
                       ops::MakeOperation(m.operations(i), m, i, conn->server_version()));
      out.push_back(std::move(op));
    }
    return out;
  }

  // What `op` touches, a touch of an index (drop_index) made a touch of the
  // whole table the index is on (left as it is when there is no such index).
  absl::StatusOr<std::vector<ops::Touch>> ResolvedTouches(const v1::Operation& op, const std::string& schema) {
    std::vector<ops::Touch> out = ops::TouchesOf(op, schema);
    for (ops::Touch& t : out) {
      if (!t.index) continue;
      ASSIGN_OR_RETURN(pg::Result r,
                       conn->Exec("SELECT tn.nspname, tc.relname FROM pg_class c JOIN pg_namespace n ON "
                                  "n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid JOIN "
                                  "pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = "
                                  "tc.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                                  {t.schema, t.table}));
      if (r.rows() == 0) continue;
      t.schema = r.Get(0, 0);
      t.table = r.Get(0, 1);
      t.column.clear();
      t.index = false;
    }
    return out;
  }

  // Another active migration that changes a column (or a whole table) `m`
  // changes or reads too.
  struct Conflict {
    std::string other;       // its name
    std::string other_schema;  // its control schema: this driver's, or another pgshift's
    Phase phase;             // its phase
    std::string other_file;  // the directory file it was registered from, "" when by hand
    std::string message;     // "column ... is already being changed by active migration ..."
  };

  // InvalidArgument when `m` conflicts with another active migration.
  absl::Status CheckConflicts(const v1::Migration& m) {
    ASSIGN_OR_RETURN(std::vector<Conflict> c, FindConflicts(m));
    if (c.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(c[0].message, "; finish or roll back that migration first"));
  }

  // Every active migration `m` conflicts with, one entry each (the first
  // touch found), in the order of control.Active().
  // Active migrations of other control schemas in this database count too
  // (the same migration among them): the objects pgshift creates are named
  // after the migration, not the control schema, and one control schema
  // cannot see the other's phases, leases or instances.
  absl::StatusOr<std::vector<Conflict>> FindConflicts(const v1::Migration& m) {
    ASSIGN_OR_RETURN(std::vector<engine::StoredMigration> active, control.Active());
    std::vector<Conflict> out;
    for (const auto& other : active) {
      if (other.status.name == m.name()) continue;
      ASSIGN_OR_RETURN(std::optional<Conflict> c, ConflictWith(m, other, options.control_schema));
      if (c) out.push_back(std::move(*c));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> others, engine::OtherControlSchemas(*conn, options.control_schema));
    for (const std::string& schema : others) {
      engine::Control theirs(*conn, schema);
      absl::StatusOr<std::vector<engine::StoredMigration>> their_active = theirs.Active();
      if (!their_active.ok()) {
        return util::Annotate(their_active.status(),
                              absl::StrCat("control schema \"", schema, "\" (another pgshift's, in this database) "
                                           "cannot be read to check that none of its migrations changes the same "
                                           "tables; grant this role SELECT on its tables, or drive the migration "
                                           "from that control schema"));
      }
      for (const auto& other : *their_active) {
        ASSIGN_OR_RETURN(std::optional<Conflict> c, ConflictWith(m, other, schema));
        if (c) out.push_back(std::move(*c));
      }
    }
    return out;
  }

  // How `m` conflicts with the active migration `other`, if it does.
  absl::StatusOr<std::optional<Conflict>> ConflictWith(const v1::Migration& m,
                                                       const engine::StoredMigration& other,
                                                       const std::string& schema) {
    ASSIGN_OR_RETURN(v1::Migration spec, ParseMigrationJson(other.spec_json, other.status.name));
    for (const v1::Operation& mine : m.operations()) {
      ASSIGN_OR_RETURN(std::vector<ops::Touch> my_touches, ResolvedTouches(mine, m.schema()));
      for (const ops::Touch& x : my_touches) {
        for (const v1::Operation& theirs : spec.operations()) {
          ASSIGN_OR_RETURN(std::vector<ops::Touch> their_touches, ResolvedTouches(theirs, spec.schema()));
          for (const ops::Touch& y : their_touches) {
            if (!x.Conflicts(y)) continue;
            const ops::Touch& changed = x.read ? y : x;
            const std::string what =
                changed.column.empty()
                    ? absl::StrCat("table ", pg::QuoteQualified(x.schema, x.table))
                    : absl::StrCat("column ", pg::QuoteQualified(x.schema, x.table), ".",
                                   pg::QuoteIdent(changed.column));
            const std::string how = y.read ? "is read by the expressions (and so the triggers) of"
                                  : x.read ? "is read by this migration's expressions and is already being changed by"
                                           : "is already being changed by";
            const std::string where =
                schema == options.control_schema
                    ? ""
                    : absl::StrCat(" of control schema \"", schema,
                                   "\" (another pgshift's: one control schema at a time may change a table)");
            return Conflict{other.status.name, schema, other.status.phase, other.status.file,
                            absl::StrCat(what, " ", how, " active migration \"", other.status.name, "\"", where,
                                         " (phase ", PhaseName(other.status.phase), ")")};
          }
        }
      }
    }
    return std::optional<Conflict>();
  }

  // Every step of `ops`, inspected at registered. When an operation
  // rehearses (sql), all are inspected in one transaction rolled back at the
  // end, each after the ones before it were rehearsed: an operation after a
  // sql statement adding a column sees that column.
  absl::StatusOr<std::vector<std::unique_ptr<ops::Steps>>> InspectAll(OpList& ops) {
    std::vector<std::unique_ptr<ops::Steps>> out;
    const bool rehearse = std::any_of(ops.begin(), ops.end(), [](const auto& op) { return op->rehearses(); });
    if (!rehearse) {
      for (auto& op : ops) {
        ASSIGN_OR_RETURN(std::unique_ptr<ops::Steps> steps, op->Inspect(*conn, Phase::kRegistered));
        out.push_back(std::move(steps));
      }
      return out;
    }
    // A statement that could not take its lock within lock_timeout is tried
    // again, with backoff, until retry_deadline (as the executor does).
    const absl::Time give_up = absl::Now() + options.retry_deadline;
    absl::Duration backoff = std::max(options.retry_initial_backoff, absl::Milliseconds(1));
    absl::BitGen gen;
    while (true) {
      out.clear();
      absl::Status s = Rehearse(ops, out);
      if (s.ok()) return out;
      if (util::SqlStateOf(s) != "55P03" || absl::Now() + backoff >= give_up) return s;
      absl::SleepFor(absl::Milliseconds(absl::Uniform<double>(gen, 0.5, 1.0) * absl::ToDoubleMilliseconds(backoff)));
      backoff = std::min(backoff * 2, std::max(options.retry_max_backoff, absl::Milliseconds(1)));
    }
  }

  // One attempt of InspectAll's rehearsal.
  absl::Status Rehearse(OpList& ops, std::vector<std::unique_ptr<ops::Steps>>& out) {
    return conn->RolledBack([&]() -> absl::Status {
      // The app waits behind a rehearsed statement's lock at most one
      // lock_timeout; no statement runs longer than statement_timeout.
      RETURN_IF_ERROR(conn->Run("SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
                                {absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(options.lock_timeout)), "ms"),
                                 absl::StrCat(absl::ToInt64Milliseconds(options.statement_timeout), "ms")}));
      // From the first rehearsal on, locks are held until the rollback: the
      // rest takes at most one lock_timeout (each statement gets what is left).
      std::optional<absl::Time> deadline;
      for (auto& op : ops) {
        if (deadline) {
          const int64_t left = std::max<int64_t>(1, absl::ToInt64Milliseconds(*deadline - absl::Now()));
          RETURN_IF_ERROR(conn->Run("SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
                                    {absl::StrCat(left, "ms"), absl::StrCat(left + 250, "ms")}));
        }
        ASSIGN_OR_RETURN(std::unique_ptr<ops::Steps> steps, op->Inspect(*conn, Phase::kRegistered));
        out.push_back(std::move(steps));
        if (op->rehearses() && !deadline) deadline = absl::Now() + options.lock_timeout;
        RETURN_IF_ERROR(op->Rehearse(*conn, deadline.value_or(absl::Now())));
      }
      return conn->RolledBack([&]() -> absl::Status {
        for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
          RETURN_IF_ERROR((*it)->RehearseRollback(*conn, deadline.value_or(absl::Now())));
        }
        return absl::OkStatus();
      });
    });
  }

  // Every action of every step passes the locked-scan guard; InvalidArgument
  // (bad input: nothing changed) if not.
  absl::Status CheckLockedScans(const std::vector<std::unique_ptr<ops::Steps>>& steps) {
    for (Phase to : PhaseLadder()) {
      if (to == Phase::kRegistered) continue;
      for (const auto& st : steps) {
        ASSIGN_OR_RETURN(std::vector<ops::Action> actions, st->To(to));
        for (const ops::Action& a : actions) {
          absl::Status s = engine::CheckLockedScan(*conn, a, options);
          if (absl::IsFailedPrecondition(s)) return absl::InvalidArgumentError(s.message());
          RETURN_IF_ERROR(s);
        }
      }
    }
    return absl::OkStatus();
  }

  // What Register checks against the catalog (the conflict check aside):
  // every operation builds and inspects, and no step scans a big table
  // under ACCESS EXCLUSIVE. InvalidArgument (bad input) when not.
  absl::Status Validate(const v1::Migration& m) {
    ASSIGN_OR_RETURN(OpList ops, BuildOps(m));
    ASSIGN_OR_RETURN(std::vector<std::unique_ptr<ops::Steps>> steps, InspectAll(ops));
    return CheckLockedScans(steps);
  }

  // Whether migration `name` came from a migration directory, is at
  // switched, and has only operations whose contract only removes
  // pgshift's mark (OperationType::contract_only_unmarks).
  absl::StatusOr<bool> ContractOnlyUnmarks(const std::string& name) {
    ASSIGN_OR_RETURN(engine::StoredMigration stored, control.Load(name));
    if (stored.status.file.empty() || stored.status.phase != Phase::kSwitched) return false;
    ASSIGN_OR_RETURN(v1::Migration spec, StoredSpec(stored));
    for (const v1::Operation& op : spec.operations()) {
      const ops::OperationType* type = ops::FindOperationType(op.kind_case());
      if (type == nullptr || !type->contract_only_unmarks) return false;
    }
    return true;
  }

  void Event(const std::string& migration, const std::string& file, absl::string_view action,
             absl::string_view phase = "", std::string message = "") {
    if (!options.on_migrate) return;
    MigrateEvent e;
    e.migration = migration;
    e.file = file;
    e.action = std::string(action);
    e.phase = std::string(phase);
    e.message = std::move(message);
    options.on_migrate(e);
  }

  // The directory runner's lock (one Migrate or Baseline at a time per
  // database and control schema): waits for it while another holds it,
  // reporting once that it does, or Aborted at once naming the holder
  // without `wait`.
  absl::StatusOr<std::unique_ptr<engine::Lease>> TakeRunnerLock(bool wait) {
    ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> c,
                     pg::Connection::Open(dsn, absl::StrCat(AppName(), " [migrate]")));
    absl::Duration backoff = absl::Milliseconds(50);
    bool waited = false;
    while (true) {
      ASSIGN_OR_RETURN(std::unique_ptr<engine::Lease> lock,
                       engine::Lease::TryAcquireRunner(c, options.control_schema, options.lease_heartbeat));
      if (lock) {
        if (waited) Event("", "", "locked", "", "the other migrate finished; going on");
        return lock;
      }
      if (!waited) {
        ASSIGN_OR_RETURN(std::string who, engine::DescribeRunnerHolder(*conn, options.control_schema));
        if (who.empty()) who = "another session";
        const std::string what = absl::StrCat("another migrate (or baseline) is running on this database: ", who);
        if (!wait) {
          return absl::AbortedError(absl::StrCat(
              what, "; nothing was changed. Run again once it has finished (without --no-wait, "
                    "migrate waits for it)"));
        }
        Event("", "", "waiting", "", absl::StrCat(what, "; waiting for it to finish"));
        waited = true;
      }
      if (InterruptRequested()) {
        return absl::CancelledError("interrupted while waiting for another migrate (or baseline); nothing was changed");
      }
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
    }
  }

  absl::StatusOr<v1::Migration> StoredSpec(const engine::StoredMigration& stored) {
    return ParseMigrationJson(stored.spec_json, stored.status.name);
  }

  // How CheckOldInstances says to contract anyway when "pass --force" is not
  // what the caller's command takes (an early contract in Migrate); empty:
  // "pass --force".
  std::string force_advice;

  // FailedPrecondition listing the live instances that declared they need
  // the old shape of `name`, unless options.force_contract; `forced` gets
  // them when forced.
  absl::Status CheckOldInstances(const std::string& name, std::vector<engine::LiveInstance>* forced) {
    ASSIGN_OR_RETURN(std::vector<engine::LiveInstance> live, control.LiveInstances(name, "old", /*forget_expired=*/true));
    if (live.empty()) return absl::OkStatus();
    if (options.force_contract) {
      if (forced) *forced = live;
      return absl::OkStatus();
    }
    std::vector<std::string> items;
    for (const auto& i : live) {
      items.push_back(absl::StrCat("\"", i.instance_id, "\"",
                                   i.description.empty() ? "" : absl::StrCat(" (", i.description, ")"),
                                   ", last heartbeat ", i.heartbeat_at, ", counts for ",
                                   static_cast<int64_t>(i.expires_in_seconds + 0.5),
                                   " s more without one"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to contract \"", name, "\": ", live.size(),
        " application instance(s) declared they need the old shape and are live: ",
        absl::StrJoin(items, "; "),
        ". Contract removes what they use. Stop or upgrade them first (a stopped instance stops "
        "counting once its declaration expires), or ",
        force_advice.empty() ? "pass --force (Options::force_contract) to contract anyway"
                             : force_advice,
        ". Nothing was changed"));
  }

  // Before a step taking ACCESS EXCLUSIVE on `table`: looks for long
  // transactions holding locks on it; reports, then waits (while `lease`
  // holds) or refuses.
  absl::Status Preflight(const std::string& name, Phase to, const std::string& table,
                         const engine::Lease& lease, std::vector<std::string>* reports) {
    if (options.preflight == PreflightMode::kOff) return absl::OkStatus();
    const absl::Time deadline = absl::Now() + options.retry_deadline;
    std::vector<int> reported;  // pids of the last report
    auto report = [&](const std::vector<SessionInfo>& sessions, const std::string& outcome) {
      PreflightReport r;
      r.migration = name;
      r.step = std::string(PhaseName(to));
      r.table = table;
      r.sessions = sessions;
      r.outcome = outcome;
      if (reports->size() < 20) {
        reports->push_back(util::JsonObject()
                               .Str("table", table)
                               .Str("outcome", outcome)
                               .Str("at", absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()))
                               .Raw("sessions", ToJson(sessions))
                               .Build());
      }
      if (options.on_preflight) options.on_preflight(r);
    };
    while (true) {
      RETURN_IF_ERROR(lease.Check());
      RETURN_IF_ERROR(Interrupted(name, to));
      ASSIGN_OR_RETURN(std::vector<SessionInfo> sessions,
                       engine::SessionsOnTable(*conn, table, options.long_transaction));
      std::vector<int> pids;
      for (const auto& s : sessions) pids.push_back(s.pid);
      if (sessions.empty()) {
        if (!reported.empty()) report({}, "cleared");
        return absl::OkStatus();
      }
      const std::string who = absl::StrCat(
          sessions.size(), " session(s) have had a transaction open on ", table, " for ",
          absl::FormatDuration(options.long_transaction), " or more: ", DescribeSessions(sessions));
      if (options.preflight == PreflightMode::kRefuse) {
        report(sessions, "refused");
        return absl::AbortedError(absl::StrCat(
            "preflight before ", PhaseName(to), ": ", who,
            ". The step needs an ACCESS EXCLUSIVE lock on ", table,
            ", which would queue behind them (and every query on the table behind it); refused, "
            "nothing was changed. End those transactions, or run with --preflight=wait to wait "
            "for them"));
      }
      if (absl::Now() >= deadline) {
        report(sessions, "gave up");
        absl::Status out(absl::StatusCode::kDeadlineExceeded,
                         absl::StrCat("preflight before ", PhaseName(to), ": waited ",
                                      absl::FormatDuration(options.retry_deadline), " and ", who,
                                      ". Nothing was changed. End those transactions (e.g. SELECT "
                                      "pg_terminate_backend(", sessions.front().pid,
                                      ")), then run the command again"));
        return util::WithSqlState(out, "55P03");
      }
      if (pids != reported) {
        report(sessions, "waiting");
        reported = pids;
      }
      absl::SleepFor(absl::Milliseconds(500));
    }
  }

  // Records a failed attempt; on a fresh connection when ours is gone.
  void RecordFailure(const std::string& name, int64_t attempt, const absl::Status& status,
                     const engine::StepStats& stats, const std::string& report) {
    auto record = [&](engine::Control& c) {
      (void)c.FinishAttempt(attempt, false, std::string(status.message()), stats.statements,
                            stats.lock_wait_ms, stats.rows, report);
      (void)c.SetLastError(name, std::string(status.message()));
    };
    if (conn->ok()) {
      record(control);
      return;
    }
    auto fresh = pg::Connection::Open(dsn, AppName());
    if (!fresh.ok()) return;
    engine::Control c(**fresh, options.control_schema);
    record(c);
  }

  // Whether the caller's Options::interrupted asked to stop during this
  // call. Once it did, the answer stays yes until the call ends, whatever
  // the callback says next: a cancelled statement must never pass for a
  // finished one because the question was asked again.
  std::atomic<bool> interrupt_seen{false};
  bool InterruptRequested() {
    if (interrupt_seen.load()) return true;
    if (!options.interrupted || !options.interrupted()) return false;
    interrupt_seen = true;
    return true;
  }

  // CANCELLED when the caller's Options::interrupted says to stop.
  absl::Status Interrupted(const std::string& name, Phase to) {
    if (!InterruptRequested()) return absl::OkStatus();
    return absl::CancelledError(absl::StrCat(
        "interrupted while reaching ", PhaseName(to), " of \"", name,
        "\"; what committed is kept: run the same command again to continue"));
  }

  absl::Status RunStep(const std::string& name, OpList& ops, Phase from, Phase to,
                       engine::Lease& lease,
                       const std::vector<engine::LiveInstance>& forced = {}) {
    // Interrupted between steps: this one is not begun.
    RETURN_IF_ERROR(Interrupted(name, to));
    RETURN_IF_ERROR(lease.Check());
    RETURN_IF_ERROR(control.SetRunningStep(name, to));
    ASSIGN_OR_RETURN(int64_t attempt,
                     control.BeginAttempt(name, std::string(PhaseName(to)), options.driver_name));
    // The executor asks between backfill batches and while long statements
    // run, and stops (cancelling them) once the lease is lost or the
    // caller interrupts.
    executor.set_lease_check([this, &lease, &name, to] {
      RETURN_IF_ERROR(lease.Check());
      return Interrupted(name, to);
    });
    struct ForgetLease {
      engine::Executor& e;
      ~ForgetLease() { e.set_lease_check(nullptr); }
    } forget{executor};
    engine::StepStats stats;
    std::vector<std::string> preflight;
    absl::Status status = [&]() -> absl::Status {
      for (size_t i = 0; i < ops.size(); ++i) {
        auto& op = ops[i];
        std::vector<ops::Action> actions;
        if (to == Phase::kRolledBack) {
          absl::StatusOr<std::vector<ops::Action>> undo = op->Rollback(*conn);
          if (!undo.ok()) return AsStepFailure(undo.status());
          actions = std::move(*undo);
        } else {
          absl::StatusOr<std::unique_ptr<ops::Steps>> steps = op->Inspect(*conn, from);
          if (!steps.ok()) return AsStepFailure(steps.status());
          ASSIGN_OR_RETURN(actions, (*steps)->To(to));
        }
        std::vector<std::string> checked;
        for (const ops::Action& a : actions) {
          for (const ops::TableLock& l : a.locks) {
            if (!NeedsPreflight(a, l) ||
                std::find(checked.begin(), checked.end(), l.table) != checked.end()) {
              continue;
            }
            checked.push_back(l.table);
            RETURN_IF_ERROR(Preflight(name, to, l.table, lease, &preflight));
          }
        }
        for (const ops::Action& a : actions) {
          RETURN_IF_ERROR(lease.Check());
          absl::Status ran = executor.Run(a, op->context(), &stats);
          if (!ran.ok()) {
            return util::Annotate(ActionFailure(ran, name, from, to),
                                  absl::StrCat(op->Describe(), ": ", a.description));
          }
        }
      }
      return absl::OkStatus();
    }();
    util::JsonObject report;
    report.Raw("preflight", absl::StrCat("[", absl::StrJoin(preflight, ","), "]"))
        .Raw("lock_waits", absl::StrCat("[", absl::StrJoin(stats.lock_waits, ","), "]"))
        .Raw("locks", absl::StrCat("[", absl::StrJoin(stats.locks, ","), "]"));
    if (!forced.empty()) {
      std::vector<std::string> ids;
      for (const auto& f : forced) ids.push_back(f.instance_id);
      report.Raw("forced_past_old_instances", util::JsonStringArray(ids));
    }
    const std::string report_json = report.Build();
    if (status.ok()) {
      // The attempt's record and the phase commit together: fenced on the
      // lease, so a driver that lost it records nothing.
      status = conn->Transaction([&]() -> absl::Status {
        RETURN_IF_ERROR(control.FinishAttempt(attempt, true, "", stats.statements,
                                              stats.lock_wait_ms, stats.rows, report_json));
        if (to == Phase::kRolledBack) RETURN_IF_ERROR(control.ClearCheckpoints(name));
        return control.SetPhase(name, from, to, lease.holder_pid());
      });
      if (status.ok()) return status;
    }
    status = util::Annotate(status, absl::StrCat(to == Phase::kRolledBack ? "rolling back \"" : "advancing \"",
                                                 name, "\"", to == Phase::kRolledBack ? "" : " to ",
                                                 to == Phase::kRolledBack ? "" : PhaseName(to)));
    RecordFailure(name, attempt, status, stats, report_json);
    return status;
  }
};

Driver::Driver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Driver::~Driver() = default;

absl::StatusOr<std::unique_ptr<Driver>> Driver::Connect(const std::string& dsn, Options options) {
  ASSIGN_OR_RETURN(options, SanitizeOptions(std::move(options)));
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn,
                   pg::Connection::Open(dsn, absl::StrCat("pgshift ", options.driver_name)));
  if (conn->server_version() < 110000) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL ", conn->server_version(), " is too old; pgshift needs PostgreSQL 11 or later"));
  }
  return std::unique_ptr<Driver>(
      new Driver(std::make_unique<Impl>(dsn, std::move(conn), std::move(options))));
}

int Driver::server_version() const { return impl_->conn->server_version(); }

absl::Status Driver::Init() {
  RETURN_IF_ERROR(impl_->BeginCall());
  return impl_->control.Init(impl_->options.lock_timeout);
}

absl::StatusOr<Plan> Driver::PlanMigration(const v1::Migration& migration) {
  RETURN_IF_ERROR(impl_->BeginCall());
  Impl& d = *impl_;
  ASSIGN_OR_RETURN(OpList ops, d.BuildOps(migration));
  Plan plan;
  plan.migration = migration.name();
  plan.server_version = d.conn->server_version();
  ASSIGN_OR_RETURN(bool initialized, d.control.Exists());
  if (initialized) RETURN_IF_ERROR(d.CheckConflicts(migration));
  ASSIGN_OR_RETURN(std::vector<std::unique_ptr<ops::Steps>> steps, d.InspectAll(ops));

  const Options& o = d.options;
  plan.notes.push_back(absl::StrCat(
      "every transactional statement runs in a short transaction with SET LOCAL lock_timeout = ",
      absl::FormatDuration(o.lock_timeout), " (for the whole transaction: no application query waits "
      "longer behind it) and statement_timeout = ", absl::FormatDuration(o.statement_timeout),
      "; a lock not granted is retried with jittered exponential backoff for up to ",
      absl::FormatDuration(o.retry_deadline), ", then the command exits 4 naming the blocking sessions"));
  plan.notes.push_back(
      "long work (backfill batches, VALIDATE CONSTRAINT, CREATE INDEX CONCURRENTLY) never runs "
      "under an ACCESS EXCLUSIVE lock");
  if (o.preflight != PreflightMode::kOff) {
    plan.notes.push_back(absl::StrCat(
        "before each step that takes ACCESS EXCLUSIVE, sessions with a transaction open on the "
        "table for ", absl::FormatDuration(o.long_transaction), " or more are reported and ",
        o.preflight == PreflightMode::kWait ? "waited for" : "make the step refuse"));
  }
  const int v = plan.server_version;
  plan.notes.push_back(v >= 120000
      ? absl::StrCat("server_version_num ", v, " >= 120000: SET NOT NULL uses a validated CHECK "
                     "(col IS NOT NULL) and does not scan the table")
      : absl::StrCat("server_version_num ", v, " < 120000: SET NOT NULL scans the whole table "
                     "under ACCESS EXCLUSIVE even after the CHECK was validated; refused on tables "
                     "over ", o.max_locked_scan_rows, " rows"));
  plan.notes.push_back(absl::StrCat(
      "server_version_num ", v, " >= 110000: ADD COLUMN with a non-volatile DEFAULT is a catalog-only "
      "change (no rewrite), at any table size"));

  auto render_step = [&](const ops::Operation& op, int64_t rows, Phase to,
                         const std::vector<ops::Action>& actions) {
    PlannedStep step;
    step.to = to;
    step.operation = op.Describe();
    for (const auto& a : actions) {
      for (auto& s : Render(a, d.options, d.conn->server_version())) {
        if (s.scans_table || s.rewrites_table || s.batched) s.rows_estimate = rows;
        step.statements.push_back(std::move(s));
      }
      if (a.kind == ops::Action::Kind::kBackfill) step.rows_estimate = rows;
      for (const std::string& h : a.hazards) step.hazards.push_back(h);
      if (a.irreversible) {
        step.hazards.push_back(absl::StrCat(
            "irreversible: ", a.description, "; rollback is impossible after this step",
            a.drops_data.empty() ? ""
                                 : absl::StrCat("; data removed: ", absl::StrJoin(a.drops_data, ", "))));
      }
      if (a.kind == ops::Action::Kind::kTransaction &&
          a.strongest_lock() >= pg::LockMode::kAccessExclusive && (a.scans_table || a.rewrites_table)) {
        absl::Status guard = engine::CheckLockedScan(*d.conn, a, o);
        step.hazards.push_back(absl::StrCat(
            "blocks every query on ", a.table(), " while it ", a.rewrites_table ? "rewrites" : "scans",
            " ~", rows, " rows under ACCESS EXCLUSIVE",
            guard.ok() ? "" : absl::StrCat("; REFUSED at this table size: ", guard.message())));
      }
    }
    return step;
  };
  for (Phase to : PhaseLadder()) {
    if (to == Phase::kRegistered) continue;
    for (size_t i = 0; i < ops.size(); ++i) {
      ASSIGN_OR_RETURN(std::vector<ops::Action> actions, steps[i]->To(to));
      plan.steps.push_back(render_step(*ops[i], steps[i]->RowEstimate(), to, actions));
    }
  }
  for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
    ASSIGN_OR_RETURN(std::vector<ops::Action> actions, (*it)->Rollback(*d.conn));
    plan.rollback.push_back(render_step(**it, 0, Phase::kRolledBack, actions));
  }
  return plan;
}

absl::StatusOr<MigrationStatus> Driver::Register(const v1::Migration& migration) {
  RETURN_IF_ERROR(impl_->BeginCall());
  Impl& d = *impl_;
  RETURN_IF_ERROR(d.control.RequireInitialized());
  const std::string json = CanonicalJson(migration);
  auto existing = d.control.Load(migration.name());
  if (existing.ok()) {
    ASSIGN_OR_RETURN(engine::StoredMigration m, d.control.Register(migration.name(), json));
    return m.status;
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  ASSIGN_OR_RETURN(OpList ops, d.BuildOps(migration));
  RETURN_IF_ERROR(d.CheckConflicts(migration));
  ASSIGN_OR_RETURN(std::vector<std::unique_ptr<ops::Steps>> steps, d.InspectAll(ops));
  RETURN_IF_ERROR(d.CheckLockedScans(steps));
  ASSIGN_OR_RETURN(engine::StoredMigration m, d.control.Register(migration.name(), json));
  return m.status;
}

absl::StatusOr<MigrationStatus> Driver::Advance(const std::string& name, std::optional<Phase> to) {
  RETURN_IF_ERROR(impl_->BeginCall());
  Impl& d = *impl_;
  RETURN_IF_ERROR(d.control.RequireInitialized());
  ASSIGN_OR_RETURN(engine::StoredMigration stored, d.control.Load(name));
  if (to && *to == Phase::kRolledBack) {
    return absl::InvalidArgumentError("use rollback, not advance, to reach rolled_back");
  }
  auto target_of = [&to](Phase p) { return to ? *to : Next(p); };
  // Refuse early, before taking the lease or changing anything.
  if (stored.status.phase != Phase::kContracted && stored.status.phase != Phase::kRolledBack &&
      target_of(stored.status.phase) == Phase::kContracted) {
    RETURN_IF_ERROR(d.CheckOldInstances(name, nullptr));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Lease> lease, d.TakeLease(name));
  ASSIGN_OR_RETURN(stored, d.control.Load(name));  // may have moved while we waited
  Phase phase = stored.status.phase;
  if (stored.status.running_step == PhaseName(Phase::kRolledBack) && phase != Phase::kRolledBack) {
    // Some operations may be undone already: going on would contract the
    // others next to them.
    return absl::FailedPreconditionError(absl::StrCat(
        "a rollback of \"", name, "\" stopped part-way (the phase is still ", PhaseName(phase),
        ", some operations may be undone already); run `pgshift rollback ", name,
        "` to finish it. Advancing is refused; nothing was changed"));
  }
  if (phase == Phase::kRolledBack || phase == Phase::kContracted) {
    if (to && *to == phase) return stored.status;
    return absl::FailedPreconditionError(absl::StrCat("migration \"", name, "\" is ",
                                                      PhaseName(phase), "; there is nothing to advance"));
  }
  Phase target = target_of(phase);
  if (static_cast<int>(target) < static_cast<int>(phase)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "migration \"", name, "\" is already at ", PhaseName(phase), ", past ", PhaseName(target),
        "; phases only move forward (use rollback to undo)"));
  }
  ASSIGN_OR_RETURN(v1::Migration spec, d.StoredSpec(stored));
  ASSIGN_OR_RETURN(OpList ops, d.BuildOps(spec));
  while (phase != target) {
    Phase next = Next(phase);
    std::vector<engine::LiveInstance> forced;
    if (next == Phase::kContracted) RETURN_IF_ERROR(d.CheckOldInstances(name, &forced));
    RETURN_IF_ERROR(d.RunStep(name, ops, phase, next, *lease, forced));
    phase = next;
  }
  ASSIGN_OR_RETURN(stored, d.control.Load(name));
  return stored.status;
}

absl::StatusOr<MigrationStatus> Driver::Rollback(const std::string& name) {
  RETURN_IF_ERROR(impl_->BeginCall());
  Impl& d = *impl_;
  RETURN_IF_ERROR(d.control.RequireInitialized());
  ASSIGN_OR_RETURN(engine::StoredMigration stored, d.control.Load(name));
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Lease> lease, d.TakeLease(name));
  ASSIGN_OR_RETURN(stored, d.control.Load(name));
  if (stored.status.phase == Phase::kRolledBack) return stored.status;
  if (stored.status.phase == Phase::kContracted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "migration \"", name, "\" is contracted: the old shape is gone and cannot be rolled back; "
        "write a new migration to change it back"));
  }
  ASSIGN_OR_RETURN(v1::Migration spec, d.StoredSpec(stored));
  // Hand-written statements without a down cannot be undone: refused
  // before anything is, once some of them ran.
  for (int i = 0; i < spec.operations_size(); ++i) {
    if (!spec.operations(i).has_sql() || !spec.operations(i).sql().down().empty()) continue;
    ASSIGN_OR_RETURN(int ran, d.control.StatementsDone(name, i, "up"));
    if (ran == 0) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "migration \"", name, "\" cannot be rolled back: operations[", i, "] (sql) ran ", ran,
        " statement(s) as written and has no down to undo them",
        stored.status.file.empty() ? "" : absl::StrCat(" (a `-- pgshift:down` section in ", stored.status.file, ")"),
        ". Nothing was rolled back. Undo them by hand and take the migration forward with a new "
        "one, or advance it (`pgshift advance ", name, "`)"));
  }
  ASSIGN_OR_RETURN(OpList ops, d.BuildOps(spec));
  std::reverse(ops.begin(), ops.end());
  RETURN_IF_ERROR(d.RunStep(name, ops, stored.status.phase, Phase::kRolledBack, *lease));
  ASSIGN_OR_RETURN(stored, d.control.Load(name));
  return stored.status;
}

absl::StatusOr<LintReport> Driver::Lint(absl::string_view sql, absl::string_view origin,
                                        const LintOptions& options) {
  RETURN_IF_ERROR(impl_->BeginCall());
  return engine::Lint(impl_->conn.get(), sql, origin, options);
}

absl::StatusOr<v1::Migration> Driver::ConvertSql(absl::string_view sql, absl::string_view origin,
                                                 const std::string& name) {
  RETURN_IF_ERROR(impl_->BeginCall());
  catalog::ServerLintCatalog lint_catalog(*impl_->conn);
  return ConvertSqlMigration(sql, origin, name, lint_catalog);
}

absl::Status Driver::Pause(const std::string& name) {
  RETURN_IF_ERROR(impl_->BeginCall());
  RETURN_IF_ERROR(impl_->control.RequireInitialized());
  return impl_->control.SetPaused(name, true);
}

absl::Status Driver::Resume(const std::string& name) {
  RETURN_IF_ERROR(impl_->BeginCall());
  RETURN_IF_ERROR(impl_->control.RequireInitialized());
  return impl_->control.SetPaused(name, false);
}

absl::StatusOr<MigrationStatus> Driver::Status(const std::string& name) {
  RETURN_IF_ERROR(impl_->BeginCall());
  RETURN_IF_ERROR(impl_->control.RequireInitialized());
  ASSIGN_OR_RETURN(engine::StoredMigration stored, impl_->control.Load(name));
  ASSIGN_OR_RETURN(stored.status.driver,
                   engine::DescribeLeaseHolder(*impl_->conn, impl_->options.control_schema, name));
  ASSIGN_OR_RETURN(std::vector<engine::LiveInstance> live, impl_->control.LiveInstances(name));
  for (const auto& l : live) {
    InstanceStatus i;
    i.instance_id = l.instance_id;
    i.shape = l.shape == "old" ? Shape::kOld : Shape::kNew;
    i.description = l.description;
    i.heartbeat_at = l.heartbeat_at;
    i.expires_in_seconds = l.expires_in_seconds;
    stored.status.instances.push_back(std::move(i));
  }
  return stored.status;
}

absl::StatusOr<std::vector<MigrationStatus>> Driver::List() {
  RETURN_IF_ERROR(impl_->BeginCall());
  RETURN_IF_ERROR(impl_->control.RequireInitialized());
  ASSIGN_OR_RETURN(std::vector<engine::StoredMigration> all, impl_->control.LoadAll());
  std::vector<MigrationStatus> out;
  for (auto& m : all) out.push_back(std::move(m.status));
  return out;
}

absl::StatusOr<Phase> Driver::CurrentPhase(const std::string& name) {
  RETURN_IF_ERROR(impl_->BeginCall());
  return impl_->control.CurrentPhase(name);
}

absl::Status Driver::RequirePhase(const std::string& name, Phase at_least) {
  RETURN_IF_ERROR(impl_->BeginCall());
  ASSIGN_OR_RETURN(Phase p, CurrentPhase(name));
  return engine::PhaseReached(name, p, at_least);
}


// ---- Migration directories --------------------------------------------------

namespace {

bool Before(Phase a, Phase b) { return static_cast<int>(a) < static_cast<int>(b); }

// `s` with `prefix` and `suffix` around its message, same code and payloads.
absl::Status Reword(const absl::Status& s, absl::string_view prefix, absl::string_view suffix) {
  absl::Status out(s.code(), absl::StrCat(prefix, s.message(), suffix));
  s.ForEachPayload([&out](absl::string_view url, const absl::Cord& p) { out.SetPayload(url, p); });
  return out;
}

// "; before it, this run took 0001_a to switched, 0002_b to switched" or "".
std::string DoneSoFar(const MigrateReport& report) {
  std::vector<std::string> done;
  for (const auto& m : report.migrations) {
    done.push_back(absl::StrCat(m.name, " ", m.registered ? "registered and taken " : "from ",
                                m.registered ? "" : absl::StrCat(PhaseName(m.from), " "), "to ",
                                PhaseName(m.to)));
  }
  if (done.empty()) return "";
  return absl::StrCat(". Before it, this run took ", absl::StrJoin(done, ", "));
}

}  // namespace

absl::StatusOr<DirectoryReport> Driver::DirectoryStatus(const std::string& dir) {
  RETURN_IF_ERROR(impl_->BeginCall());
  Impl& d = *impl_;
  catalog::ServerLintCatalog lint_catalog(*d.conn);
  ASSIGN_OR_RETURN(engine::DirectoryScan scan, engine::ScanDirectory(dir, &lint_catalog));
  std::vector<engine::StoredMigration> stored;
  ASSIGN_OR_RETURN(bool initialized, d.control.Exists());
  if (initialized) {
    RETURN_IF_ERROR(d.control.RequireInitialized());
    ASSIGN_OR_RETURN(stored, d.control.LoadAll());
  }
  DirectoryReport report = engine::Compare(scan, stored);
  // A step under way is interrupted, or being driven right now: say which.
  for (DirectoryFile& f : report.files) {
    if (!f.migration || f.migration->running_step.empty()) continue;
    ASSIGN_OR_RETURN(f.migration->driver,
                     engine::DescribeLeaseHolder(*d.conn, d.options.control_schema, f.name));
  }
  return report;
}

absl::StatusOr<MigrateReport> Driver::Migrate(const std::string& dir, const MigrateOptions& mo) {
  RETURN_IF_ERROR(impl_->BeginCall());
  Impl& d = *impl_;
  if (mo.contract && mo.to) {
    return absl::InvalidArgumentError(
        "--to does not go with --contract: migrate --contract takes migrations from switched to "
        "contracted");
  }
  if (mo.to && *mo.to == Phase::kRolledBack) {
    return absl::InvalidArgumentError(
        "migrate takes migrations forward; to undo one, use `pgshift rollback NAME`");
  }
  catalog::ServerLintCatalog lint_catalog(*d.conn);
  ASSIGN_OR_RETURN(engine::DirectoryScan scan, engine::ScanDirectory(dir, &lint_catalog));
  auto refuse = [&dir](const std::vector<std::string>& refusals) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to migrate \"", dir, "\": ", absl::StrJoin(refusals, "; "),
        ". Nothing was changed; `pgshift status ", dir, "` shows every file"));
  };
  // What is wrong in the files themselves is refused before connecting
  // anything up.
  // --contract stops at the first pending file, out of order or not: only
  // what is wrong with the files themselves stops it before it starts.
  const bool allow_out_of_order = mo.allow_out_of_order || mo.contract;
  // (A .sql file is judged once the control schema says it is pending.)
  std::vector<std::string> refusals =
      engine::Refusals(engine::Compare(scan, {}, /*judge_sql=*/false), allow_out_of_order);
  if (!refusals.empty()) return refuse(refusals);
  RETURN_IF_ERROR(d.control.Init(d.options.lock_timeout));
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Lease> runner, d.TakeRunnerLock(mo.wait));
  ASSIGN_OR_RETURN(std::vector<engine::StoredMigration> stored, d.control.LoadAll());
  const DirectoryReport now = engine::Compare(scan, stored);
  refusals = engine::Refusals(now, allow_out_of_order);
  if (!refusals.empty()) return refuse(refusals);

  std::map<std::string, const engine::MigrationFile*> files;
  for (const auto& f : scan.files) files[f.file] = &f;
  MigrateReport report;
  report.directory = dir;
  auto stopped = [&](const DirectoryFile& e, const absl::Status& s, absl::string_view then,
                     absl::string_view kind) {
    d.Event(e.name, e.file, "stop", "", std::string(s.message()));
    return util::WithMigrateStop(
        Reword(s, absl::StrCat("migrate stopped at \"", e.name, "\" (", e.file, "): "),
               absl::StrCat(then, DoneSoFar(report))),
        e.name, kind);
  };
  const std::string again = absl::StrCat(" Running `pgshift migrate ", dir, "` again continues from there");

  for (const DirectoryFile& e : now.files) {
    RETURN_IF_ERROR(runner->Check());
    const engine::MigrationFile& f = *files.at(e.file);
    const engine::SourceFile source{e.file, e.checksum};
    const bool registered = e.state != "pending";
    if (registered && e.recorded_checksum.empty()) {
      RETURN_IF_ERROR(d.control.RecordSource(e.name, source));  // registered by hand: adopt it
    }
    if (e.state == "baselined") continue;
    MigratedFile moved;
    moved.name = e.name;
    moved.file = e.file;
    Phase phase = registered ? e.migration->phase : Phase::kRegistered;
    // A rolled-back one is registered again from rolled_back.
    moved.from = !registered && e.migration ? Phase::kRolledBack : phase;

    if (mo.contract) {
      if (phase == Phase::kContracted) continue;
      if (!registered || phase != Phase::kSwitched) {
        report.stopped_at = e.name;
        report.stop_reason =
            !registered && e.out_of_order
                ? absl::StrCat("\"", e.name, "\" is pending and sorts before an applied file; run `pgshift migrate ",
                               dir, " --allow-out-of-order` (before the deploy) first, then contract after it",
                               e.migration ? ", or remove its file if the rolled-back migration should not run again"
                                           : "")
            : !registered
                ? absl::StrCat("\"", e.name, "\" is pending; run `pgshift migrate ", dir,
                               "` (before the deploy) first, then contract after it")
                : absl::StrCat("\"", e.name, "\" is at ", PhaseName(phase),
                               ", not switched; run `pgshift migrate ", dir, "` first");
        d.Event(e.name, e.file, "stop", registered ? PhaseName(phase) : "", report.stop_reason);
        return report;
      }
      d.Event(e.name, e.file, "contract", PhaseName(Phase::kContracted));
      absl::StatusOr<MigrationStatus> s = Advance(e.name, Phase::kContracted);
      if (!s.ok()) return stopped(e, s.status(), "", "failed");
      moved.to = s->phase;
      d.Event(e.name, e.file, "reached", PhaseName(moved.to));
      report.migrations.push_back(moved);
      continue;
    }

    const Phase target = mo.to.value_or(Phase::kSwitched);
    if (!registered) {
      // A .sql file is judged again against the catalog as the files
      // before it left it (a table one of them created is in use now).
      absl::StatusOr<v1::Migration> judged = f.spec;
      if (f.sql) judged = ConvertSqlMigration(f.text, f.file, f.name, lint_catalog);
      if (!judged.ok()) {
        absl::Status refused = judged.status();
        if (!report.migrations.empty()) refused = util::WithCode(refused, absl::StatusCode::kFailedPrecondition);
        return stopped(e, refused,
                       absl::StrCat(" Nothing of \"", e.name, "\" was run; fix the file (it is not "
                                    "applied yet, so it may change) and run `pgshift migrate ", dir,
                                    "` again"),
                       "refused");
      }
      const v1::Migration& spec = *judged;
      ASSIGN_OR_RETURN(std::vector<Impl::Conflict> conflicts, d.FindConflicts(spec));
      // An earlier migration of the directory at switched whose contract
      // only removes pgshift's mark (a table, index or constraint it built)
      // is contracted now: old app versions see no difference. Only when
      // this run takes migrations to switched at least, when every migration
      // the file conflicts with is such a one, and when the file fits the
      // catalog; else the run stops at the file having contracted nothing
      // (those migrations may still be rolled back).
      const Impl::Conflict* blocking = nullptr;
      for (const Impl::Conflict& c : conflicts) {
        if (c.other_schema != d.options.control_schema) {  // not this run's to contract
          blocking = &c;
          break;
        }
        ASSIGN_OR_RETURN(bool early, d.ContractOnlyUnmarks(c.other));
        if (!early) {
          blocking = &c;
          break;
        }
      }
      // Below switched, a run contracts nothing early.
      const bool only_below = blocking == nullptr && !conflicts.empty() && Before(target, Phase::kSwitched);
      if (only_below) blocking = &conflicts[0];
      if (blocking != nullptr) {
        const Impl::Conflict& c = *blocking;
        const std::string how =
            c.other_schema != d.options.control_schema
                ? absl::StrCat("finish \"", c.other, "\" from control schema \"", c.other_schema,
                               "\" (`pgshift --control-schema ", c.other_schema, " ...`) or roll it back there, "
                               "then run `pgshift migrate ", dir, "` again")
            : !c.other_file.empty()
                ? absl::StrCat("contract \"", c.other, "\" after the old app version is gone (`pgshift migrate ",
                               dir, " --contract` after the deploy), then run `pgshift migrate ", dir,
                               "` again",
                               only_below ? absl::StrCat(" (its contract only removes pgshift's mark: `pgshift migrate ",
                                                         dir, "` without --to contracts it early and goes on)")
                                          : "")
                : absl::StrCat("\"", c.other, "\" was not registered from a file of this directory, so `pgshift migrate ",
                               dir, " --contract` leaves it alone: contract it once the old app version is gone "
                               "(`pgshift advance ", c.other, " --to contracted`), or roll it back (`pgshift rollback ",
                               c.other, "`), then run `pgshift migrate ", dir, "` again");
        return stopped(e,
                       absl::FailedPreconditionError(absl::StrCat(
                           c.message, ", which is not contracted yet: ", how, ". Nothing of \"", e.name,
                           "\" was run")),
                       "", "conflict");
      }
      absl::Status valid = d.Validate(spec);
      if (absl::IsDeadlineExceeded(valid) || absl::IsAborted(valid)) {
        return stopped(e, valid,
                       absl::StrCat(" Nothing of \"", e.name, "\" was run.", again), "failed");
      }
      if (!valid.ok()) {
        // Refused against the catalog: bad input, but once earlier files ran
        // something has changed.
        if (!report.migrations.empty()) valid = util::WithCode(valid, absl::StatusCode::kFailedPrecondition);
        return stopped(e, valid,
                       absl::StrCat(". Nothing of \"", e.name, "\" was run; fix the file (it is not "
                                    "applied yet, so it may change) and run `pgshift migrate ", dir,
                                    "` again"),
                       "refused");
      }
      for (const Impl::Conflict& c : conflicts) {
        d.Event(c.other, c.other_file, "contract", PhaseName(Phase::kContracted),
                absl::StrCat("early: its contract only removes pgshift's mark, and \"", e.name,
                             "\" changes what it built"));
        // A run to below contracted does not take --force: say what does.
        if (target != Phase::kContracted) {
          d.force_advice = absl::StrCat(
              "contract it anyway with `pgshift advance ", c.other,
              " --to contracted --force` (its contract only removes pgshift's mark, which old "
              "versions do not see), then run `pgshift migrate ", dir, "` again");
        }
        absl::StatusOr<MigrationStatus> s = Advance(c.other, Phase::kContracted);
        d.force_advice.clear();
        if (!s.ok()) return stopped(e, s.status(), "", "failed");
        MigratedFile contracted;
        contracted.name = c.other;
        contracted.file = s->file;
        contracted.from = Phase::kSwitched;
        contracted.to = s->phase;
        report.migrations.push_back(contracted);
        d.Event(c.other, s->file, "reached", PhaseName(s->phase));
      }
      const std::string json = CanonicalJson(spec);
      if (e.migration) {  // rolled back: pending again
        ASSIGN_OR_RETURN(bool revived, d.control.Revive(e.name, json, source));
        if (!revived) {
          return absl::AbortedError(absl::StrCat("migration \"", e.name,
                                                 "\" changed while migrate ran; run migrate again"));
        }
      } else {
        RETURN_IF_ERROR(d.control.Register(e.name, json, source).status());
      }
      moved.registered = true;
      d.Event(e.name, e.file, "register", PhaseName(Phase::kRegistered));
    }
    if (phase != Phase::kRolledBack && Before(phase, target)) {
      d.Event(e.name, e.file, "advance", PhaseName(target));
      absl::StatusOr<MigrationStatus> s = Advance(e.name, target);
      if (!s.ok()) return stopped(e, s.status(), absl::StrCat(".", again), "failed");
      phase = s->phase;
      d.Event(e.name, e.file, "reached", PhaseName(phase));
    } else if (!moved.registered) {
      d.Event(e.name, e.file, "skip", PhaseName(phase),
              absl::StrCat("at ", PhaseName(phase), " already"));
    }
    moved.to = phase;
    if (moved.registered || moved.from != moved.to) report.migrations.push_back(moved);
  }
  return report;
}

absl::StatusOr<DirectoryReport> Driver::Baseline(const std::string& dir, const std::string& through) {
  RETURN_IF_ERROR(impl_->BeginCall());
  Impl& d = *impl_;
  ASSIGN_OR_RETURN(engine::DirectoryScan scan, engine::ScanDirectory(dir));
  const engine::MigrationFile* last = nullptr;
  for (const auto& f : scan.files) {
    if (f.name == through || f.file == through) last = &f;
  }
  if (last == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", through, "\" is not a migration file of \"", dir,
        "\"; give the name (or file name) of the last file to record as applied. Nothing was changed"));
  }
  auto refuse = [&dir](const std::vector<std::string>& refusals) {
    return absl::InvalidArgumentError(absl::StrCat("refusing to baseline \"", dir, "\": ",
                                                   absl::StrJoin(refusals, "; "),
                                                   ". Nothing was changed"));
  };
  // A baselined .sql file is never run, so never judged: it is recorded as
  // its statements (RecordedSqlMigration).
  std::vector<std::string> refusals =
      engine::Refusals(engine::Compare(scan, {}, /*judge_sql=*/false), false, last->file);
  if (!refusals.empty()) return refuse(refusals);
  RETURN_IF_ERROR(d.control.Init(d.options.lock_timeout));
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Lease> runner, d.TakeRunnerLock(true));
  ASSIGN_OR_RETURN(std::vector<engine::StoredMigration> stored, d.control.LoadAll());
  refusals = engine::Refusals(engine::Compare(scan, stored, /*judge_sql=*/false), false, last->file);
  if (!refusals.empty()) return refuse(refusals);
  std::map<std::string, const MigrationStatus*> registered;
  for (const auto& m : stored) registered[m.status.name] = &m.status;
  std::vector<const engine::MigrationFile*> recorded;
  RETURN_IF_ERROR(d.conn->Transaction([&]() -> absl::Status {
    recorded.clear();
    for (const auto& f : scan.files) {
      if (f.file > last->file) break;
      if (registered.count(f.name)) continue;
      v1::Migration spec;
      if (f.sql) {
        ASSIGN_OR_RETURN(spec, RecordedSqlMigration(f.text, f.file, f.name));
      } else {
        spec = *f.spec;
      }
      ASSIGN_OR_RETURN(bool inserted, d.control.RecordBaselined(f.name, CanonicalJson(spec),
                                                                {f.file, f.checksum}));
      if (inserted) recorded.push_back(&f);
    }
    return absl::OkStatus();
  }));
  // Told once committed: a callback never runs inside the transaction.
  for (const engine::MigrationFile* f : recorded) {
    d.Event(f->name, f->file, "baseline", PhaseName(Phase::kContracted));
  }
  // And every file up to `through` it left as it was, with why. A
  // rolled-back one is not recorded: what it did is undone, and `migrate`
  // runs it again.
  for (const auto& f : scan.files) {
    if (f.file > last->file) break;
    auto it = registered.find(f.name);
    if (it == registered.end()) continue;
    const MigrationStatus& m = *it->second;
    d.Event(f.name, f.file, "skip", PhaseName(m.phase),
            m.phase == Phase::kRolledBack ? "rolled back: not recorded as applied; migrate runs it again"
            : m.baselined                 ? "baselined already"
                                          : absl::StrCat("registered already (", PhaseName(m.phase), ")"));
  }
  ASSIGN_OR_RETURN(stored, d.control.LoadAll());
  return engine::Compare(scan, stored);
}

}  // namespace pgshift
