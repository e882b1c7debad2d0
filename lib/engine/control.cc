#include "lib/engine/control.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/pg/quote.h"
#include "lib/util/json.h"
#include "lib/util/status_macros.h"

namespace pgshift::engine {

namespace {
constexpr char kColumns[] =
    "name, phase, checksum, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), to_char(updated_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), coalesce(last_error, ''), coalesce(running_step, ''), "
    "spec::text, paused";
// Advisory lock key space: first key is constant "pgshift" (0x70677368).
constexpr char kLockKey[] = "1885827944";
}  // namespace

Control::Control(pg::Connection& conn, std::string schema) : conn_(conn), schema_(std::move(schema)) {}

std::string Control::Table(absl::string_view name) const { return pg::QuoteQualified(schema_, name); }

absl::Status Control::Init() {
  // Fast path: already at this version, nothing to create (and no CREATE
  // privilege needed).
  auto version = conn_.Exec(absl::StrCat("SELECT value FROM ", Table("meta"),
                                         " WHERE key = 'schema_version'"));
  if (version.ok() && version->rows() == 1 &&
      version->Get(0, 0) == std::to_string(kControlSchemaVersion)) {
    return absl::OkStatus();
  }
  const std::string s = pg::QuoteIdent(schema_);
  return conn_.Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(conn_.Run("SELECT pg_advisory_xact_lock(1885827944, 0)"));
    const std::string ddl[] = {
        absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", s),
        absl::StrCat("CREATE TABLE IF NOT EXISTS ", Table("meta"),
                     " (key text PRIMARY KEY, value text NOT NULL)"),
        absl::StrCat("CREATE TABLE IF NOT EXISTS ", Table("migrations"),
                     " (name text PRIMARY KEY,"
                     " spec jsonb NOT NULL,"
                     " checksum text NOT NULL,"
                     " phase text NOT NULL CHECK (phase IN ('registered', 'column_added',"
                     "   'trigger_installed', 'backfilled', 'validated', 'switched',"
                     "   'contracted', 'rolled_back')),"
                     " running_step text,"
                     " created_at timestamptz NOT NULL DEFAULT now(),"
                     " updated_at timestamptz NOT NULL DEFAULT now(),"
                     " last_error text)"),
        // v2: a pause request honoured by the backfill between batches
        // (Driver::Pause, or UPDATE ... SET paused = true by hand).
        absl::StrCat("ALTER TABLE ", Table("migrations"),
                     " ADD COLUMN IF NOT EXISTS paused boolean NOT NULL DEFAULT false"),
        absl::StrCat("CREATE TABLE IF NOT EXISTS ", Table("history"),
                     " (id bigserial PRIMARY KEY,"
                     " migration text NOT NULL,"
                     " step text NOT NULL,"
                     " driver text,"
                     " started_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
                     " finished_at timestamptz,"
                     " ok boolean,"
                     " error text,"
                     " statements jsonb NOT NULL DEFAULT '[]',"
                     " lock_wait_ms bigint NOT NULL DEFAULT 0,"
                     " rows_touched bigint NOT NULL DEFAULT 0)"),
        absl::StrCat("CREATE INDEX IF NOT EXISTS history_migration_idx ON ", Table("history"),
                     " (migration, id)"),
        absl::StrCat("CREATE TABLE IF NOT EXISTS ", Table("checkpoints"),
                     " (migration text NOT NULL,"
                     " operation int NOT NULL,"
                     " last_key jsonb,"
                     " rows_done bigint NOT NULL DEFAULT 0,"
                     " rows_estimate bigint NOT NULL DEFAULT 0,"
                     " done boolean NOT NULL DEFAULT false,"
                     " updated_at timestamptz NOT NULL DEFAULT now(),"
                     " PRIMARY KEY (migration, operation))"),
        absl::StrCat("INSERT INTO ", Table("meta"), " VALUES ('schema_version', '",
                     kControlSchemaVersion, "') ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"),
    };
    for (const std::string& stmt : ddl) RETURN_IF_ERROR(conn_.Run(stmt));
    return absl::OkStatus();
  });
}

absl::Status Control::RequireInitialized() {
  ASSIGN_OR_RETURN(pg::Result r, conn_.Exec("SELECT to_regclass($1) IS NOT NULL",
                                            {Table("migrations")}));
  if (!r.GetBool(0, 0)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "control schema \"", schema_, "\" is not set up in this database; run `pgshift init` first"));
  }
  ASSIGN_OR_RETURN(pg::Result v, conn_.Exec(absl::StrCat("SELECT value FROM ", Table("meta"),
                                                         " WHERE key = 'schema_version'")));
  int version = 0;
  if (v.rows() == 0 || !absl::SimpleAtoi(v.Get(0, 0), &version) ||
      version < kControlSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "control schema \"", schema_, "\" is at version ", v.rows() ? v.Get(0, 0) : "unknown",
        " and this pgshift needs version ", kControlSchemaVersion,
        "; run `pgshift init` to upgrade it (idempotent, keeps every migration)"));
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
  ASSIGN_OR_RETURN(pg::Result cp,
                   conn_.Exec(absl::StrCat("SELECT operation, rows_done, rows_estimate, done FROM ",
                                           Table("checkpoints"),
                                           " WHERE migration = $1 ORDER BY operation"),
                              {m.status.name}));
  for (int i = 0; i < cp.rows(); ++i) {
    BackfillStatus b;
    b.operation = static_cast<int>(cp.GetInt(i, 0));
    b.rows_done = cp.GetInt(i, 1);
    b.rows_estimate = cp.GetInt(i, 2);
    b.done = cp.GetBool(i, 3);
    m.status.backfill.push_back(b);
  }
  return m;
}

absl::StatusOr<StoredMigration> Control::Register(const std::string& name,
                                                  const std::string& spec_json) {
  const std::string checksum = "encode(sha256(convert_to($2::jsonb::text, 'UTF8')), 'hex')";
  ASSIGN_OR_RETURN(pg::Result ins,
                   conn_.Exec(absl::StrCat("INSERT INTO ", Table("migrations"),
                                           " (name, spec, checksum, phase) VALUES ($1, $2::jsonb, ",
                                           checksum, ", 'registered') ON CONFLICT (name) DO NOTHING"),
                              {name, spec_json}));
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

absl::Status Control::SetPhase(const std::string& name, Phase phase) {
  return conn_.Run(absl::StrCat("UPDATE ", Table("migrations"),
                                " SET phase = $2, running_step = NULL, last_error = NULL, "
                                "updated_at = now() WHERE name = $1"),
                   {name, std::string(PhaseName(phase))});
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
                                    int64_t lock_wait_ms, int64_t rows) {
  return conn_.Run(absl::StrCat("UPDATE ", Table("history"),
                                " SET finished_at = clock_timestamp(), ok = $2, error = $3, "
                                "statements = $4::jsonb, lock_wait_ms = $5, rows_touched = $6 "
                                "WHERE id = $1"),
                   {std::to_string(id), ok ? "true" : "false",
                    error.empty() ? std::nullopt : pg::Param(error),
                    util::JsonStringArray(statements), std::to_string(lock_wait_ms),
                    std::to_string(rows)});
}

absl::Status Control::Lock(const std::string& name) {
  const std::string key = absl::StrCat(kLockKey, ", hashtext($1)");
  ASSIGN_OR_RETURN(pg::Result r,
                   conn_.Exec(absl::StrCat("SELECT pg_try_advisory_lock(", key, ")"),
                              {absl::StrCat(schema_, ".", name)}));
  if (r.GetBool(0, 0)) return absl::OkStatus();
  ASSIGN_OR_RETURN(
      pg::Result who,
      conn_.Exec(absl::StrCat(
                     "SELECT a.pid, coalesce(a.application_name, ''), "
                     "coalesce(host(a.client_addr), 'local'), "
                     "coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', "
                     "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') "
                     "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                     "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ",
                     kLockKey, "::oid AND l.objid = hashtext($1)::oid AND l.objsubid = 2"),
                 {absl::StrCat(schema_, ".", name)}));
  std::string holder = "another session";
  if (who.rows() > 0) {
    holder = absl::StrCat("driver \"", who.Get(0, 1), "\" (backend pid ", who.Get(0, 0), " from ",
                          who.Get(0, 2), ", connected since ", who.Get(0, 3), ")");
  }
  absl::Status busy = absl::AbortedError(absl::StrCat(
      "migration \"", name, "\" is busy: ", holder,
      " is driving it; wait for it to finish (or stop it), then run the command again"));
  return busy;
}

absl::Status Control::Unlock(const std::string& name) {
  return conn_.Run(absl::StrCat("SELECT pg_advisory_unlock(", kLockKey, ", hashtext($1))"),
                   {absl::StrCat(schema_, ".", name)});
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

absl::Status Control::ClearCheckpoints(const std::string& name) {
  return conn_.Run(absl::StrCat("DELETE FROM ", Table("checkpoints"), " WHERE migration = $1"),
                   {name});
}

}  // namespace pgshift::engine
