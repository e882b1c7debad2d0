#include "lib/engine/control.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/engine/control_schema.h"
#include "lib/engine/lease.h"
#include "lib/pg/quote.h"
#include "lib/util/json.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift::engine {

namespace {
constexpr char kColumns[] =
    "name, phase, checksum, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), to_char(updated_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), coalesce(last_error, ''), coalesce(running_step, ''), "
    "spec::text, paused, coalesce(source_file, ''), coalesce(source_checksum, ''), baselined";
}  // namespace

Control::Control(pg::Connection& conn, std::string schema) : conn_(conn), schema_(std::move(schema)) {}

std::string Control::Table(absl::string_view name) const { return pg::QuoteQualified(schema_, name); }

namespace {

// Why pgshift must not touch the control schema `layout` describes, or OK:
// tables it did not create, a version newer than it knows, or damage init
// cannot repair. Every refusal changes nothing.
absl::Status Refusal(const std::string& schema, const ControlLayout& layout) {
  const std::string s = pg::QuoteIdent(schema);
  if (!layout.foreign.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control schema ", s, " holds tables pgshift did not create: ", layout.foreign,
        ". pgshift knows its own by a marker on ", pg::QuoteQualified(schema, "meta"),
        " and leaves these untouched; give pgshift a schema of its own (--control-schema) or move "
        "them away. Nothing was changed"));
  }
  if (layout.version > kControlSchemaVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control schema ", s, " is at version ", layout.version, ", newer than this pgshift knows (",
        kControlSchemaVersion, "): a newer pgshift upgraded it. Upgrade pgshift to work with it; "
        "nothing was changed"));
  }
  if (!layout.damage.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control schema ", s, " is damaged: ", absl::StrJoin(layout.damage, "; "),
        ". pgshift cannot repair that without the state it held: restore the control schema from "
        "a backup (pg_dump -n ", schema, "), or, when no migration is in flight, drop it and run "
        "`pgshift init`. Nothing was changed"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Control::Init(absl::Duration lock_timeout) {
  // Fast path: pgshift's, at this version, nothing to create or repair (and
  // no CREATE privilege needed).
  ASSIGN_OR_RETURN(ControlLayout before, InspectControlSchema(conn_, schema_));
  RETURN_IF_ERROR(Refusal(schema_, before));
  if (!before.empty() && before.version == kControlSchemaVersion && before.repairable.empty()) {
    if (!before.marked) {
      // Made before pgshift marked its own: mark it, so that other control
      // schemas see its migrations (best effort: only its owner may).
      (void)conn_.Transaction([&]() -> absl::Status {
        RETURN_IF_ERROR(conn_.Run("SELECT set_config('lock_timeout', $1, true)",
                                  {absl::StrCat(absl::ToInt64Milliseconds(lock_timeout), "ms")}));
        return conn_.Run(absl::StrCat("COMMENT ON TABLE ", Table("meta"), " IS ", pg::QuoteLiteral(kControlMarker)));
      });
    }
    return absl::OkStatus();
  }
  absl::Status done = conn_.Transaction([&]() -> absl::Status {
    // Two init runs serialize on the advisory lock key reserved for it.
    RETURN_IF_ERROR(conn_.Run(absl::StrCat("SELECT pg_advisory_xact_lock(", kAdvisoryClassKey, ", 0)")));
    // An upgrade alters the control tables, which every startup check
    // reads: it never waits for their locks longer than lock_timeout, so
    // that no startup check queues behind it longer either.
    RETURN_IF_ERROR(conn_.Run("SELECT set_config('lock_timeout', $1, true)",
                              {absl::StrCat(absl::ToInt64Milliseconds(lock_timeout), "ms")}));
    // Another init may have finished while this one waited.
    ASSIGN_OR_RETURN(ControlLayout now, InspectControlSchema(conn_, schema_));
    RETURN_IF_ERROR(Refusal(schema_, now));
    for (const std::string& stmt : ControlSchemaDdl(schema_)) RETURN_IF_ERROR(conn_.Run(stmt));
    return absl::OkStatus();
  });
  if (util::SqlStateOf(done) == "55P03") {  // lock_not_available
    return util::WithCode(
        util::Annotate(done, absl::StrCat(
            "creating or upgrading control schema \"", schema_, "\" needs a brief lock on its tables, "
            "and another session held them for longer than lock_timeout (", absl::FormatDuration(lock_timeout),
            "): a long query or an open transaction on them (pg_dump, an idle transaction). Nothing was "
            "changed, and no startup check waited longer than that; run the command again once it is gone")),
        absl::StatusCode::kAborted);
  }
  return done;
}

absl::StatusOr<bool> Control::Exists() {
  ASSIGN_OR_RETURN(pg::Result r, conn_.Exec("SELECT to_regclass($1) IS NOT NULL",
                                            {Table("migrations")}));
  return r.GetBool(0, 0);
}

absl::Status Control::RequireInitialized() {
  ASSIGN_OR_RETURN(ControlLayout layout, InspectControlSchema(conn_, schema_));
  if (layout.empty()) {
    // Bad input rather than a state to continue from: most often the wrong
    // database or control schema name, else a database never initialized.
    return absl::NotFoundError(absl::StrCat(
        "control schema \"", schema_, "\" is not set up in this database; check --dsn and "
        "--control-schema, or run `pgshift init` first. Nothing was changed"));
  }
  RETURN_IF_ERROR(Refusal(schema_, layout));
  if (!layout.repairable.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "control schema \"", schema_, "\" is damaged: ", absl::StrJoin(layout.repairable, "; "),
        "; run `pgshift init` to repair it (it recreates them empty)"));
  }
  if (layout.version < kControlSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "control schema \"", schema_, "\" is at version ", layout.version, ", this pgshift needs version ",
        kControlSchemaVersion, "; run `pgshift init` to upgrade it (idempotent, keeps all data)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredMigration> Control::FromRow(const pg::Result& r, int row) {
  StoredMigration m;
  m.status.name = r.Get(row, 0);
  ASSIGN_OR_RETURN(m.status.phase, ParsePhase(r.Get(row, 1)));
  m.status.checksum = r.Get(row, 2);
  m.status.created_at = r.Get(row, 3);
  m.status.updated_at = r.Get(row, 4);
  m.status.last_error = r.Get(row, 5);
  m.status.running_step = r.Get(row, 6);
  m.spec_json = r.Get(row, 7);
  m.status.paused = r.GetBool(row, 8);
  m.status.file = r.Get(row, 9);
  m.status.file_checksum = r.Get(row, 10);
  m.status.baselined = r.GetBool(row, 11);
  ASSIGN_OR_RETURN(pg::Result cp,
                   conn_.Exec(absl::StrCat("SELECT operation, rows_done, rows_estimate, done, waiting, pace FROM ",
                                           Table("checkpoints"),
                                           " WHERE migration = $1 AND operation >= 0 ORDER BY operation"),
                              {m.status.name}));
  for (int i = 0; i < cp.rows(); ++i) {
    BackfillStatus b;
    b.operation = static_cast<int>(cp.GetInt(i, 0));
    b.rows_done = cp.GetInt(i, 1);
    b.rows_estimate = cp.GetInt(i, 2);
    b.done = cp.GetBool(i, 3);
    b.rows_estimated = !b.done;
    b.waiting = cp.Get(i, 4);
    if (!absl::SimpleAtod(cp.Get(i, 5), &b.pace)) b.pace = 1;
    m.status.backfill.push_back(b);
  }
  return m;
}

namespace {
constexpr char kSpecChecksum[] = "encode(sha256(convert_to($2::jsonb::text, 'UTF8')), 'hex')";
}  // namespace

absl::StatusOr<StoredMigration> Control::Register(const std::string& name,
                                                  const std::string& spec_json,
                                                  const SourceFile& source) {
  const std::string checksum = kSpecChecksum;
  pg::Param file = source.file.empty() ? std::nullopt : pg::Param(source.file);
  pg::Param file_checksum = source.file.empty() ? std::nullopt : pg::Param(source.checksum);
  ASSIGN_OR_RETURN(pg::Result ins,
                   conn_.Exec(absl::StrCat("INSERT INTO ", Table("migrations"),
                                           " (name, spec, checksum, phase, source_file, source_checksum)"
                                           " VALUES ($1, $2::jsonb, ", checksum,
                                           ", 'registered', $3, $4) ON CONFLICT (name) DO NOTHING"),
                              {name, spec_json, file, file_checksum}));
  ASSIGN_OR_RETURN(pg::Result same,
                   conn_.Exec(absl::StrCat("SELECT checksum = ", checksum, ", checksum FROM ",
                                           Table("migrations"), " WHERE name = $1"),
                              {name, spec_json}));
  if (same.rows() == 0) return absl::InternalError("migration vanished while registering");
  if (!same.GetBool(0, 0)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "migration \"", name, "\" is already registered with a different spec (checksum ",
        same.Get(0, 1).substr(0, 12),
        "...); a registered migration cannot change: give the new spec a new name, or roll this "
        "one back and register it under a new name"));
  }
  return Load(name);
}

absl::Status Control::RecordSource(const std::string& name, const SourceFile& source) {
  return conn_.Run(absl::StrCat("UPDATE ", Table("migrations"),
                                " SET source_file = $2, source_checksum = $3 WHERE name = $1"),
                   {name, source.file, source.checksum});
}

absl::StatusOr<bool> Control::Revive(const std::string& name, const std::string& spec_json,
                                     const SourceFile& source) {
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn_.Exec(absl::StrCat("UPDATE ", Table("migrations"), " SET spec = $2::jsonb, checksum = ",
                              kSpecChecksum,
                              ", phase = 'registered', running_step = NULL, last_error = NULL,"
                              " paused = false, baselined = false, source_file = $3,"
                              " source_checksum = $4, created_at = now(), updated_at = now()"
                              " WHERE name = $1 AND phase = 'rolled_back' RETURNING name"),
                 {name, spec_json, source.file, source.checksum}));
  if (r.rows() == 0) return false;
  RETURN_IF_ERROR(ClearCheckpoints(name));
  return true;
}

absl::StatusOr<bool> Control::RecordBaselined(const std::string& name, const std::string& spec_json,
                                              const SourceFile& source) {
  ASSIGN_OR_RETURN(pg::Result r,
                   conn_.Exec(absl::StrCat("INSERT INTO ", Table("migrations"),
                                           " (name, spec, checksum, phase, source_file, source_checksum,"
                                           " baselined) VALUES ($1, $2::jsonb, ", kSpecChecksum,
                                           ", 'contracted', $3, $4, true) ON CONFLICT (name) DO NOTHING"
                                           " RETURNING name"),
                              {name, spec_json, source.file, source.checksum}));
  return r.rows() == 1;
}

absl::Status PhaseReached(absl::string_view name, Phase p, Phase at_least) {
  if (PhaseAtLeast(p, at_least)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("migration \"", name, "\" is at ", PhaseName(p),
                                                    "; this version needs at least ",
                                                    PhaseName(at_least)));
}

absl::StatusOr<Phase> Control::CurrentPhase(const std::string& name) {
  auto r = conn_.Exec(absl::StrCat("SELECT phase FROM ", Table("migrations"), " WHERE name = $1"), {name});
  if (!r.ok()) {
    if (absl::IsNotFound(r.status())) {
      return absl::NotFoundError(absl::StrCat("migration \"", name,
                                              "\" is not registered: the control schema \"", schema_,
                                              "\" does not exist"));
    }
    return r.status();
  }
  if (r->rows() == 0) {
    return absl::NotFoundError(absl::StrCat("migration \"", name, "\" is not registered"));
  }
  return ParsePhase(r->Get(0, 0));
}

absl::StatusOr<StoredMigration> Control::Load(const std::string& name) {
  ASSIGN_OR_RETURN(pg::Result r, conn_.Exec(absl::StrCat("SELECT ", kColumns, " FROM ",
                                                         Table("migrations"), " WHERE name = $1"),
                                            {name}));
  if (r.rows() == 0) {
    return absl::NotFoundError(absl::StrCat("migration \"", name,
                                            "\" is not registered; run `pgshift register FILE`"));
  }
  return FromRow(r, 0);
}

absl::StatusOr<std::vector<StoredMigration>> Control::LoadAll() {
  ASSIGN_OR_RETURN(pg::Result r, conn_.Exec(absl::StrCat("SELECT ", kColumns, " FROM ",
                                                         Table("migrations"),
                                                         " ORDER BY created_at, name")));
  std::vector<StoredMigration> out;
  for (int i = 0; i < r.rows(); ++i) {
    ASSIGN_OR_RETURN(StoredMigration m, FromRow(r, i));
    out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<std::vector<StoredMigration>> Control::Active() {
  ASSIGN_OR_RETURN(std::vector<StoredMigration> all, LoadAll());
  std::vector<StoredMigration> out;
  for (auto& m : all) {
    if (m.status.phase != Phase::kContracted && m.status.phase != Phase::kRolledBack) {
      out.push_back(std::move(m));
    }
  }
  return out;
}

absl::Status Control::SetRunningStep(const std::string& name, std::optional<Phase> step) {
  return conn_.Run(absl::StrCat("UPDATE ", Table("migrations"),
                                " SET running_step = $2, updated_at = now() WHERE name = $1"),
                   {name, step ? pg::Param(std::string(PhaseName(*step))) : std::nullopt});
}

absl::Status Control::SetPhase(const std::string& name, Phase from, Phase to, int lease_pid) {
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn_.Exec(absl::StrCat("UPDATE ", Table("migrations"),
                              " SET phase = $2, running_step = NULL, last_error = NULL, "
                              "updated_at = now() WHERE name = $1 AND phase = $3 AND EXISTS ("
                              "SELECT 1 FROM pg_locks l WHERE ", LeaseLockCondition("l", 4),
                              " AND l.pid = $5::int) RETURNING 1"),
                 {name, std::string(PhaseName(to)), std::string(PhaseName(from)),
                  LeaseKeyText(schema_, name), std::to_string(lease_pid)}));
  if (r.rows() == 1) return absl::OkStatus();
  ASSIGN_OR_RETURN(StoredMigration now, Load(name));
  if (now.status.phase != from) {
    return absl::AbortedError(absl::StrCat(
        "migration \"", name, "\" moved to ", PhaseName(now.status.phase),
        " while this driver was reaching ", PhaseName(to), " from ", PhaseName(from),
        " (another driver?); recorded nothing. Run `pgshift status ", name, "` and continue from there"));
  }
  return absl::AbortedError(absl::StrCat(
      "lost the driver lease of migration \"", name, "\" before recording phase ", PhaseName(to),
      " (its connection was ended); the step's work is kept and recorded nothing. Run the command "
      "again to finish it"));
}

absl::Status Control::SetLastError(const std::string& name, const std::string& error) {
  return conn_.Run(absl::StrCat("UPDATE ", Table("migrations"),
                                " SET last_error = $2, updated_at = now() WHERE name = $1"),
                   {name, error});
}

absl::StatusOr<int64_t> Control::BeginAttempt(const std::string& name, const std::string& step,
                                              const std::string& driver) {
  ASSIGN_OR_RETURN(pg::Result r,
                   conn_.Exec(absl::StrCat("INSERT INTO ", Table("history"),
                                           " (migration, step, driver) VALUES ($1, $2, $3) "
                                           "RETURNING id"),
                              {name, step, driver}));
  return r.GetInt(0, 0);
}

absl::Status Control::FinishAttempt(int64_t id, bool ok, const std::string& error,
                                    const std::vector<std::string>& statements,
                                    int64_t lock_wait_ms, int64_t rows,
                                    const std::string& report_json) {
  return conn_.Run(absl::StrCat("UPDATE ", Table("history"),
                                " SET finished_at = clock_timestamp(), ok = $2, error = $3, "
                                "statements = $4::jsonb, lock_wait_ms = $5, rows_touched = $6, "
                                "report = $7::jsonb WHERE id = $1"),
                   {std::to_string(id), ok ? "true" : "false",
                    error.empty() ? std::nullopt : pg::Param(error),
                    util::JsonStringArray(statements), std::to_string(lock_wait_ms),
                    std::to_string(rows), report_json.empty() ? "{}" : report_json});
}

absl::Status Control::DeclareInstance(const std::string& name, const std::string& id,
                                      absl::string_view shape, const std::string& description,
                                      absl::Duration ttl) {
  if (shape == "new") {
    absl::StatusOr<Phase> phase = CurrentPhase(name);
    if (!phase.ok() && !absl::IsNotFound(phase.status())) return phase.status();
    if (!phase.ok() || !PhaseAtLeast(*phase, Phase::kSwitched) || *phase == Phase::kRolledBack) {
      return absl::FailedPreconditionError(absl::StrCat(
          "instance \"", id, "\" declares the new shape of migration \"", name, "\", which is ",
          phase.ok() ? absl::StrCat("at ", PhaseName(*phase)) : "not registered",
          ": new app versions may run from switched on (before, the sync trigger would overwrite a "
          "NULL they write to the new column). Gate the start with `pgshift check ", name,
          " --at-least switched` (RequirePhase)"));
    }
  }
  return conn_.Run(absl::StrCat("INSERT INTO ", Table("instances"),
                                " (migration, instance_id, shape, description, declared_at, heartbeat_at, "
                                "expires_at) VALUES ($1, $2, $3, $4, now(), now(), "
                                "now() + make_interval(secs => $5::float8)) "
                                "ON CONFLICT (migration, instance_id) DO UPDATE SET shape = EXCLUDED.shape, "
                                "description = EXCLUDED.description, heartbeat_at = now(), "
                                "expires_at = EXCLUDED.expires_at"),
                   {name, id, std::string(shape), description, absl::StrCat(absl::ToDoubleSeconds(ttl))});
}

absl::Status Control::WithdrawInstance(const std::string& name, const std::string& id) {
  return conn_.Run(absl::StrCat("DELETE FROM ", Table("instances"),
                                " WHERE migration = $1 AND instance_id = $2"),
                   {name, id});
}

absl::StatusOr<std::vector<LiveInstance>> Control::LiveInstances(const std::string& name,
                                                                 const std::string& shape,
                                                                 bool forget_expired) {
  // Best effort: a role that may read but not delete still gets the list.
  if (forget_expired) (void)conn_.Run(absl::StrCat("DELETE FROM ", Table("instances"),
                               " WHERE migration = $1 AND expires_at < now() - interval '1 day'"),
                  {name});
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn_.Exec(absl::StrCat("SELECT instance_id, shape, description, "
                              "to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                              "extract(epoch FROM expires_at - now())::float8 FROM ",
                              Table("instances"),
                              " WHERE migration = $1 AND expires_at > now() "
                              "AND ($2 = '' OR shape = $2) ORDER BY shape DESC, instance_id"),
                 {name, shape}));
  std::vector<LiveInstance> out;
  for (int i = 0; i < r.rows(); ++i) {
    LiveInstance li;
    li.instance_id = r.Get(i, 0);
    li.shape = r.Get(i, 1);
    li.description = r.Get(i, 2);
    li.heartbeat_at = r.Get(i, 3);
    li.expires_in_seconds = std::strtod(r.Get(i, 4).c_str(), nullptr);
    out.push_back(std::move(li));
  }
  return out;
}

absl::Status Control::SetPaused(const std::string& name, bool paused) {
  ASSIGN_OR_RETURN(pg::Result r,
                   conn_.Exec(absl::StrCat("UPDATE ", Table("migrations"),
                                           " SET paused = $2, updated_at = now() WHERE name = $1"),
                              {name, paused ? "true" : "false"}));
  if (r.Affected() == 0) {
    return absl::NotFoundError(absl::StrCat("migration \"", name,
                                            "\" is not registered; run `pgshift register FILE`"));
  }
  return absl::OkStatus();
}

namespace {

// Checkpoints rows: last_key is a JSON array of the last key's text values
// (key walk) or an object {"page", "end_page", "filenode"} (page walk).
class ControlCheckpoints : public backfill::CheckpointStore {
 public:
  ControlCheckpoints(pg::Connection& conn, std::string checkpoints, std::string migrations,
                     std::string name, int operation)
      : conn_(conn), checkpoints_(std::move(checkpoints)), migrations_(std::move(migrations)),
        name_(std::move(name)), operation_(operation) {}

  absl::StatusOr<std::optional<backfill::Checkpoint>> Load() override {
    const pg::Params key = {name_, std::to_string(operation_)};
    ASSIGN_OR_RETURN(
        pg::Result cp,
        conn_.Exec(absl::StrCat("SELECT done, rows_done, rows_estimate, jsonb_typeof(last_key), "
                                "last_key->>'page', last_key->>'end_page', last_key->>'filenode' "
                                "FROM ", checkpoints_, " WHERE migration = $1 AND operation = $2"),
                   key));
    if (cp.rows() == 0) return std::optional<backfill::Checkpoint>();
    backfill::Checkpoint out;
    out.done = cp.GetBool(0, 0);
    out.rows_done = cp.GetInt(0, 1);
    out.rows_estimate = cp.GetInt(0, 2);
    const std::string kind = cp.Get(0, 3);
    if (kind == "object") {
      int64_t page = 0, end_page = 0;
      if (absl::SimpleAtoi(cp.Get(0, 4), &page) && absl::SimpleAtoi(cp.Get(0, 5), &end_page) &&
          !cp.IsNull(0, 6)) {
        out.position.have_range = true;
        out.position.page = page;
        out.position.end_page = end_page;
        out.position.filenode = cp.Get(0, 6);
      }
    } else if (kind == "array") {
      ASSIGN_OR_RETURN(pg::Result keys,
                       conn_.Exec(absl::StrCat("SELECT k.v FROM ", checkpoints_,
                                               " c, jsonb_array_elements_text(c.last_key) "
                                               "WITH ORDINALITY AS k(v, ord) WHERE c.migration = $1 "
                                               "AND c.operation = $2 ORDER BY k.ord"),
                                  key));
      for (int r = 0; r < keys.rows(); ++r) out.position.last_key.push_back(keys.Get(r, 0));
    }
    return std::optional<backfill::Checkpoint>(std::move(out));
  }

  absl::StatusOr<bool> Save(const backfill::Checkpoint& c) override {
    const backfill::Position& p = c.position;
    pg::Param last_key;
    if (p.have_range) {
      last_key = util::JsonObject()
                     .Int("page", p.page)
                     .Int("end_page", p.end_page)
                     .Str("filenode", p.filenode)
                     .Build();
    } else if (!p.last_key.empty()) {
      last_key = util::JsonStringArray(p.last_key);
    }
    // RETURNING reads the pause request too: no extra round trip per batch.
    ASSIGN_OR_RETURN(
        pg::Result r,
        conn_.Exec(absl::StrCat(
                       "INSERT INTO ", checkpoints_,
                       " (migration, operation, last_key, rows_done, rows_estimate, done, waiting,"
                       " pace, updated_at)"
                       " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, now())"
                       " ON CONFLICT (migration, operation) DO UPDATE SET last_key = EXCLUDED.last_key,"
                       " rows_done = EXCLUDED.rows_done, rows_estimate = EXCLUDED.rows_estimate,"
                       " done = EXCLUDED.done, waiting = EXCLUDED.waiting, pace = EXCLUDED.pace,"
                       " updated_at = now()"
                       " RETURNING (SELECT paused FROM ", migrations_, " WHERE name = $1)"),
                   {name_, std::to_string(operation_), last_key, std::to_string(c.rows_done),
                    std::to_string(c.rows_estimate), c.done ? "true" : "false", c.waiting,
                    absl::StrCat(c.pace)}));
    return r.rows() > 0 && r.GetBool(0, 0);
  }

  absl::Status SetWaiting(const std::string& waiting, double pace, int64_t rows_estimate) override {
    return conn_.Run(absl::StrCat("INSERT INTO ", checkpoints_,
                                  " (migration, operation, rows_estimate, waiting, pace, updated_at)"
                                  " VALUES ($1, $2, $3, $4, $5, now())"
                                  " ON CONFLICT (migration, operation) DO UPDATE SET"
                                  " waiting = EXCLUDED.waiting, pace = EXCLUDED.pace, updated_at = now()"),
                     {name_, std::to_string(operation_), std::to_string(rows_estimate), waiting,
                      absl::StrCat(pace)});
  }

  absl::StatusOr<bool> PauseRequested() override {
    ASSIGN_OR_RETURN(pg::Result r, conn_.Exec(absl::StrCat("SELECT paused FROM ", migrations_,
                                                           " WHERE name = $1"),
                                              {name_}));
    return r.rows() > 0 && r.GetBool(0, 0);
  }

 private:
  pg::Connection& conn_;
  const std::string checkpoints_, migrations_, name_;
  const int operation_;
};

}  // namespace

std::unique_ptr<backfill::CheckpointStore> Control::Checkpoints(const std::string& name, int operation) {
  return std::make_unique<ControlCheckpoints>(conn_, Table("checkpoints"), Table("migrations"), name,
                                              operation);
}

absl::Status Control::ClearCheckpoints(const std::string& name) {
  return conn_.Run(absl::StrCat("DELETE FROM ", Table("checkpoints"), " WHERE migration = $1"),
                   {name});
}

absl::StatusOr<int> Control::StatementsDone(const std::string& name, int op, const std::string& list) {
  ASSIGN_OR_RETURN(pg::Result r,
                   conn_.Exec(absl::StrCat("SELECT coalesce((last_key->>$3)::int, 0) FROM ",
                                           Table("checkpoints"),
                                           " WHERE migration = $1 AND operation = $2"),
                              {name, std::to_string(-(op + 1)), list}));
  return r.rows() == 0 ? 0 : static_cast<int>(r.GetInt(0, 0));
}

absl::Status Control::RecordStatementDone(const std::string& name, int op, const std::string& list,
                                          int number) {
  return conn_.Run(
      absl::StrCat("INSERT INTO ", Table("checkpoints"),
                   " AS c (migration, operation, last_key, done, updated_at)"
                   " VALUES ($1, $2, jsonb_build_object($3::text, $4::int), true, now())"
                   " ON CONFLICT (migration, operation) DO UPDATE SET"
                   " last_key = coalesce(c.last_key, '{}'::jsonb) || EXCLUDED.last_key, updated_at = now()"),
      {name, std::to_string(-(op + 1)), list, std::to_string(number)});
}

}  // namespace pgshift::engine
