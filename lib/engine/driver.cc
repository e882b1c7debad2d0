#include "pgshift/driver.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/engine/control.h"
#include "lib/engine/executor.h"
#include "lib/ops/common.h"
#include "lib/ops/operation.h"
#include "lib/pg/connection.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"
#include "pgshift/migration.h"

namespace pgshift {

namespace {

using OpList = std::vector<std::unique_ptr<ops::Operation>>;

std::string DefaultDriverName() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] ? host : "localhost", ":", getpid());
}

Phase Next(Phase p) { return static_cast<Phase>(static_cast<int>(p) + 1); }

// Codes that mean "bad input" at register time mean "the database is not in
// the state the step needs" once a step runs: exit 1, not 2.
absl::Status AsStepFailure(const absl::Status& s) {
  if (absl::IsInvalidArgument(s) || absl::IsNotFound(s) || absl::IsAlreadyExists(s)) {
    absl::Status out(absl::StatusCode::kFailedPrecondition, s.message());
    s.ForEachPayload([&out](absl::string_view url, const absl::Cord& p) { out.SetPayload(url, p); });
    return out;
  }
  return s;
}

std::vector<PlannedStatement> Render(const ops::Action& a) {
  std::vector<PlannedStatement> out;
  auto make = [&a](std::string sql) {
    PlannedStatement p;
    p.sql = std::move(sql);
    p.lock = a.lock;
    p.scans_table = a.scans_table;
    p.rewrites_table = a.rewrites_table;
    p.note = a.description;
    return p;
  };
  switch (a.kind) {
    case ops::Action::Kind::kTransaction:
      for (const auto& s : a.statements) out.push_back(make(s));
      break;
    case ops::Action::Kind::kConcurrently: {
      PlannedStatement p = make(a.statements.at(0));
      p.transactional = false;
      out.push_back(p);
      break;
    }
    case ops::Action::Kind::kBackfill: {
      PlannedStatement p = make(engine::BackfillUpdateSql(a.backfill));
      p.batched = true;
      p.scans_table = true;
      out.push_back(p);
      break;
    }
    case ops::Action::Kind::kAssert:
      out.push_back(make(a.assert_spec.count_sql));
      break;
  }
  return out;
}

}  // namespace

struct Driver::Impl {
  Impl(std::unique_ptr<pg::Connection> c, Options o)
      : conn(std::move(c)), options(std::move(o)), control(*conn, options.control_schema),
        executor(*conn, options, control) {}

  std::unique_ptr<pg::Connection> conn;
  Options options;
  engine::Control control;
  engine::Executor executor;

  absl::StatusOr<OpList> BuildOps(const v1::Migration& m) {
    OpList out;
    for (int i = 0; i < m.operations_size(); ++i) {
      ops::Context ctx;
      ctx.migration = m.name();
      ctx.prefix = ops::ObjectPrefix(m.name(), i);
      ctx.index = i;
      ctx.server_version = conn->server_version();
      ASSIGN_OR_RETURN(std::unique_ptr<ops::Operation> op,
                       ops::MakeOperation(m.operations(i), m.schema(), ctx));
      out.push_back(std::move(op));
    }
    return out;
  }

  // InvalidArgument when another active migration changes a column that
  // `m` changes too.
  absl::Status CheckConflicts(const v1::Migration& m, const OpList& mine) {
    ASSIGN_OR_RETURN(std::vector<engine::StoredMigration> active, control.Active());
    for (const auto& other : active) {
      if (other.status.name == m.name()) continue;
      ASSIGN_OR_RETURN(v1::Migration spec, ParseMigrationJson(other.spec_json, other.status.name));
      ASSIGN_OR_RETURN(OpList theirs, BuildOps(spec));
      for (const auto& a : mine) {
        for (const ops::Touch& x : a->Touches()) {
          for (const auto& b : theirs) {
            for (const ops::Touch& y : b->Touches()) {
              if (x.schema == y.schema && x.table == y.table && x.column == y.column) {
                return absl::InvalidArgumentError(absl::StrCat(
                    "column ", pg::QuoteQualified(x.schema, x.table), ".", pg::QuoteIdent(x.column),
                    " is already being changed by active migration \"", other.status.name,
                    "\" (phase ", PhaseName(other.status.phase),
                    "); finish or roll back that migration first"));
              }
            }
          }
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<v1::Migration> StoredSpec(const engine::StoredMigration& stored) {
    return ParseMigrationJson(stored.spec_json, stored.status.name);
  }

  absl::Status RunStep(const std::string& name, OpList& ops, Phase from, Phase to) {
    RETURN_IF_ERROR(control.SetRunningStep(name, to));
    ASSIGN_OR_RETURN(int64_t attempt,
                     control.BeginAttempt(name, std::string(PhaseName(to)), options.driver_name));
    engine::StepStats stats;
    absl::Status status = [&]() -> absl::Status {
      for (size_t i = 0; i < ops.size(); ++i) {
        auto& op = ops[i];
        if (to == Phase::kRolledBack) {
          RETURN_IF_ERROR(op->InspectForRollback(*conn));
        } else {
          RETURN_IF_ERROR(AsStepFailure(op->Inspect(*conn, from)));
        }
        ASSIGN_OR_RETURN(std::vector<ops::Action> actions,
                         to == Phase::kRolledBack ? op->Rollback() : op->StepTo(to));
        for (const ops::Action& a : actions) {
          RETURN_IF_ERROR(util::Annotate(
              executor.Run(a, name, static_cast<int>(i), op->RowEstimate(), &stats),
              absl::StrCat(op->Describe(), ": ", a.description)));
        }
      }
      return absl::OkStatus();
    }();
    if (!status.ok()) {
      status = util::Annotate(status, absl::StrCat("advancing \"", name, "\" to ", PhaseName(to)));
      if (conn->ok()) {
        (void)control.FinishAttempt(attempt, false, std::string(status.message()), stats.statements,
                                    stats.lock_wait_ms, stats.rows);
        (void)control.SetLastError(name, std::string(status.message()));
      }
      return status;
    }
    RETURN_IF_ERROR(control.FinishAttempt(attempt, true, "", stats.statements, stats.lock_wait_ms,
                                          stats.rows));
    if (to == Phase::kRolledBack) RETURN_IF_ERROR(control.ClearCheckpoints(name));
    return control.SetPhase(name, to);
  }

  // Holds the migration's driver lock for the lifetime of the guard.
  struct LockGuard {
    engine::Control* control;
    std::string name;
    ~LockGuard() {
      if (control) (void)control->Unlock(name);
    }
  };
};

Driver::Driver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Driver::~Driver() = default;

absl::StatusOr<std::unique_ptr<Driver>> Driver::Connect(const std::string& dsn, Options options) {
  if (options.driver_name.empty()) options.driver_name = DefaultDriverName();
  if (options.control_schema.empty()) options.control_schema = "pgshift";
  RETURN_IF_ERROR(pg::CheckIdentifier(options.control_schema, "control schema"));
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn,
                   pg::Connection::Open(dsn, absl::StrCat("pgshift ", options.driver_name)));
  if (conn->server_version() < 110000) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL ", conn->server_version(), " is too old; pgshift needs PostgreSQL 11 or later"));
  }
  return std::unique_ptr<Driver>(new Driver(std::make_unique<Impl>(std::move(conn), std::move(options))));
}

int Driver::server_version() const { return impl_->conn->server_version(); }

absl::Status Driver::Init() { return impl_->control.Init(); }

absl::StatusOr<Plan> Driver::PlanMigration(const v1::Migration& migration) {
  Impl& d = *impl_;
  ASSIGN_OR_RETURN(OpList ops, d.BuildOps(migration));
  Plan plan;
  plan.migration = migration.name();
  plan.server_version = d.conn->server_version();
  if (d.control.RequireInitialized().ok()) RETURN_IF_ERROR(d.CheckConflicts(migration, ops));
  for (auto& op : ops) RETURN_IF_ERROR(op->Inspect(*d.conn, Phase::kRegistered));
  for (Phase to : PhaseLadder()) {
    if (to == Phase::kRegistered) continue;
    for (auto& op : ops) {
      ASSIGN_OR_RETURN(std::vector<ops::Action> actions, op->StepTo(to));
      PlannedStep step;
      step.to = to;
      step.operation = op->Describe();
      for (const auto& a : actions) {
        for (auto& s : Render(a)) step.statements.push_back(std::move(s));
        if (a.kind == ops::Action::Kind::kBackfill) step.rows_estimate = op->RowEstimate();
        if (a.irreversible) {
          step.hazards.push_back(absl::StrCat("irreversible: ", a.description,
                                              "; rollback is impossible after this step"));
        }
      }
      plan.steps.push_back(std::move(step));
    }
  }
  for (auto& op : ops) {
    RETURN_IF_ERROR(op->InspectForRollback(*d.conn));
    ASSIGN_OR_RETURN(std::vector<ops::Action> actions, op->Rollback());
    PlannedStep step;
    step.to = Phase::kRolledBack;
    step.operation = op->Describe();
    for (const auto& a : actions) {
      for (auto& s : Render(a)) step.statements.push_back(std::move(s));
    }
    plan.rollback.push_back(std::move(step));
  }
  return plan;
}

absl::StatusOr<MigrationStatus> Driver::Register(const v1::Migration& migration) {
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
  RETURN_IF_ERROR(d.CheckConflicts(migration, ops));
  for (auto& op : ops) RETURN_IF_ERROR(op->Inspect(*d.conn, Phase::kRegistered));
  ASSIGN_OR_RETURN(engine::StoredMigration m, d.control.Register(migration.name(), json));
  return m.status;
}

absl::StatusOr<MigrationStatus> Driver::Advance(const std::string& name, std::optional<Phase> to) {
  Impl& d = *impl_;
  RETURN_IF_ERROR(d.control.RequireInitialized());
  ASSIGN_OR_RETURN(engine::StoredMigration stored, d.control.Load(name));
  if (to && *to == Phase::kRolledBack) {
    return absl::InvalidArgumentError("use rollback, not advance, to reach rolled_back");
  }
  RETURN_IF_ERROR(d.control.Lock(name));
  Impl::LockGuard guard{&d.control, name};
  ASSIGN_OR_RETURN(stored, d.control.Load(name));  // may have moved while we waited
  Phase phase = stored.status.phase;
  if (phase == Phase::kRolledBack || phase == Phase::kContracted) {
    if (to && *to == phase) return stored.status;
    return absl::FailedPreconditionError(absl::StrCat("migration \"", name, "\" is ",
                                                      PhaseName(phase), "; there is nothing to advance"));
  }
  Phase target = to ? *to : Next(phase);
  if (static_cast<int>(target) < static_cast<int>(phase)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "migration \"", name, "\" is already at ", PhaseName(phase), ", past ", PhaseName(target),
        "; phases only move forward (use rollback to undo)"));
  }
  ASSIGN_OR_RETURN(v1::Migration spec, d.StoredSpec(stored));
  ASSIGN_OR_RETURN(OpList ops, d.BuildOps(spec));
  while (phase != target) {
    Phase next = Next(phase);
    RETURN_IF_ERROR(d.RunStep(name, ops, phase, next));
    phase = next;
  }
  ASSIGN_OR_RETURN(stored, d.control.Load(name));
  return stored.status;
}

absl::StatusOr<MigrationStatus> Driver::Rollback(const std::string& name) {
  Impl& d = *impl_;
  RETURN_IF_ERROR(d.control.RequireInitialized());
  ASSIGN_OR_RETURN(engine::StoredMigration stored, d.control.Load(name));
  RETURN_IF_ERROR(d.control.Lock(name));
  Impl::LockGuard guard{&d.control, name};
  ASSIGN_OR_RETURN(stored, d.control.Load(name));
  if (stored.status.phase == Phase::kRolledBack) return stored.status;
  if (stored.status.phase == Phase::kContracted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "migration \"", name, "\" is contracted: the old shape is gone and cannot be rolled back; "
        "write a new migration to change it back"));
  }
  ASSIGN_OR_RETURN(v1::Migration spec, d.StoredSpec(stored));
  ASSIGN_OR_RETURN(OpList ops, d.BuildOps(spec));
  std::reverse(ops.begin(), ops.end());
  RETURN_IF_ERROR(d.RunStep(name, ops, stored.status.phase, Phase::kRolledBack));
  ASSIGN_OR_RETURN(stored, d.control.Load(name));
  return stored.status;
}

absl::Status Driver::Pause(const std::string& name) {
  RETURN_IF_ERROR(impl_->control.RequireInitialized());
  return impl_->control.SetPaused(name, true);
}

absl::Status Driver::Resume(const std::string& name) {
  RETURN_IF_ERROR(impl_->control.RequireInitialized());
  return impl_->control.SetPaused(name, false);
}

absl::StatusOr<MigrationStatus> Driver::Status(const std::string& name) {
  RETURN_IF_ERROR(impl_->control.RequireInitialized());
  ASSIGN_OR_RETURN(engine::StoredMigration stored, impl_->control.Load(name));
  return stored.status;
}

absl::StatusOr<std::vector<MigrationStatus>> Driver::List() {
  RETURN_IF_ERROR(impl_->control.RequireInitialized());
  ASSIGN_OR_RETURN(std::vector<engine::StoredMigration> all, impl_->control.LoadAll());
  std::vector<MigrationStatus> out;
  for (auto& m : all) out.push_back(std::move(m.status));
  return out;
}

absl::StatusOr<Phase> Driver::CurrentPhase(const std::string& name) {
  auto r = impl_->conn->Exec(absl::StrCat("SELECT phase FROM ", impl_->control.Table("migrations"),
                                          " WHERE name = $1"),
                             {name});
  if (!r.ok()) {
    if (absl::IsNotFound(r.status())) {
      return absl::NotFoundError(absl::StrCat("migration \"", name, "\" is not registered (no control schema \"",
                                              impl_->options.control_schema, "\")"));
    }
    return r.status();
  }
  if (r->rows() == 0) {
    return absl::NotFoundError(absl::StrCat("migration \"", name, "\" is not registered"));
  }
  return ParsePhase(r->Get(0, 0));
}

absl::Status Driver::RequirePhase(const std::string& name, Phase at_least) {
  ASSIGN_OR_RETURN(Phase p, CurrentPhase(name));
  if (PhaseAtLeast(p, at_least)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("migration \"", name, "\" is at ", PhaseName(p),
                                                    "; this version needs at least ",
                                                    PhaseName(at_least)));
}

}  // namespace pgshift
