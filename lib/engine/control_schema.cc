#include "lib/engine/control_schema.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/engine/control.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::engine {

namespace {

struct ColumnDef {
  const char* name;
  const char* type;  // as format_type() spells it
  const char* ddl;   // everything after the name in CREATE TABLE / ADD COLUMN
  int since;         // the control schema version that added it
};

struct TableDef {
  const char* name;
  int since;
  std::vector<ColumnDef> columns;
  const char* constraints;  // after the columns in CREATE TABLE, or ""
};

const std::vector<TableDef>& Tables() {
  static const auto* tables = new std::vector<TableDef>{
      {"meta", 1, {{"key", "text", "text PRIMARY KEY", 1}, {"value", "text", "text NOT NULL", 1}}, ""},
      {"migrations",
       1,
       {{"name", "text", "text PRIMARY KEY", 1},
        {"spec", "jsonb", "jsonb NOT NULL", 1},
        {"checksum", "text", "text NOT NULL", 1},
        {"phase", "text",
         "text NOT NULL CHECK (phase IN ('registered', 'column_added', 'trigger_installed', "
         "'backfilled', 'validated', 'switched', 'contracted', 'rolled_back'))",
         1},
        {"running_step", "text", "text", 1},
        {"created_at", "timestamp with time zone", "timestamptz NOT NULL DEFAULT now()", 1},
        {"updated_at", "timestamp with time zone", "timestamptz NOT NULL DEFAULT now()", 1},
        {"last_error", "text", "text", 1},
        // Version 3: a pause request honoured by the backfill between
        // batches (Driver::Pause, or UPDATE ... SET paused = true by hand).
        {"paused", "boolean", "boolean NOT NULL DEFAULT false", 3},
        // Version 4: the file of a migration directory a migration was
        // registered from, its checksum then, and whether `baseline`
        // recorded it without running it.
        {"source_file", "text", "text", 4},
        {"source_checksum", "text", "text", 4},
        {"baselined", "boolean", "boolean NOT NULL DEFAULT false", 4}},
       ""},
      {"history",
       1,
       {{"id", "bigint", "bigserial PRIMARY KEY", 1},
        {"migration", "text", "text NOT NULL", 1},
        {"step", "text", "text NOT NULL", 1},
        {"driver", "text", "text", 1},
        {"started_at", "timestamp with time zone", "timestamptz NOT NULL DEFAULT clock_timestamp()", 1},
        {"finished_at", "timestamp with time zone", "timestamptz", 1},
        {"ok", "boolean", "boolean", 1},
        {"error", "text", "text", 1},
        {"statements", "jsonb", "jsonb NOT NULL DEFAULT '[]'", 1},
        {"lock_wait_ms", "bigint", "bigint NOT NULL DEFAULT 0", 1},
        {"rows_touched", "bigint", "bigint NOT NULL DEFAULT 0", 1},
        // Version 2: the step's report (locks waited for, preflight, ...).
        {"report", "jsonb", "jsonb NOT NULL DEFAULT '{}'", 2}},
       ""},
      {"checkpoints",
       1,
       {{"migration", "text", "text NOT NULL", 1},
        {"operation", "integer", "int NOT NULL", 1},
        {"last_key", "jsonb", "jsonb", 1},
        {"rows_done", "bigint", "bigint NOT NULL DEFAULT 0", 1},
        {"rows_estimate", "bigint", "bigint NOT NULL DEFAULT 0", 1},
        {"done", "boolean", "boolean NOT NULL DEFAULT false", 1},
        {"updated_at", "timestamp with time zone", "timestamptz NOT NULL DEFAULT now()", 1},
        // Version 5: why a backfill holds back now, and its pace (the
        // latency guard), for `status` from another process.
        {"waiting", "text", "text NOT NULL DEFAULT ''", 5},
        {"pace", "real", "real NOT NULL DEFAULT 1", 5}},
       "PRIMARY KEY (migration, operation)"},
      // Version 2: instances declaring the shape they need (contract guard).
      {"instances",
       2,
       {{"migration", "text", "text NOT NULL", 2},
        {"instance_id", "text", "text NOT NULL", 2},
        {"shape", "text", "text NOT NULL CHECK (shape IN ('old', 'new'))", 2},
        {"description", "text", "text NOT NULL DEFAULT ''", 2},
        {"declared_at", "timestamp with time zone", "timestamptz NOT NULL DEFAULT now()", 2},
        {"heartbeat_at", "timestamp with time zone", "timestamptz NOT NULL DEFAULT now()", 2},
        {"expires_at", "timestamp with time zone", "timestamptz NOT NULL", 2}},
       "PRIMARY KEY (migration, instance_id)"},
  };
  return *tables;
}

// The columns that tell pgshift's migrations table from anyone else's.
bool HasCoreMigrationColumns(const std::map<std::string, std::string>& columns) {
  for (const ColumnDef& c : Tables()[1].columns) {
    if (c.since != 1 || std::string(c.name) == "running_step") continue;
    auto it = columns.find(c.name);
    if (it == columns.end() || it->second != c.type) return false;
  }
  return true;
}

std::string Described(const std::map<std::string, std::string>& columns) {
  std::vector<std::string> out;
  for (const auto& [name, type] : columns) out.push_back(absl::StrCat(name, " ", type));
  return absl::StrJoin(out, ", ");
}

}  // namespace

std::vector<std::string> ControlSchemaDdl(const std::string& schema) {
  auto table = [&schema](const char* name) { return pg::QuoteQualified(schema, name); };
  std::vector<std::string> out = {absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", pg::QuoteIdent(schema))};
  for (const TableDef& t : Tables()) {
    std::vector<std::string> defs;
    for (const ColumnDef& c : t.columns) defs.push_back(absl::StrCat(pg::QuoteIdent(c.name), " ", c.ddl));
    if (*t.constraints) defs.push_back(t.constraints);
    out.push_back(absl::StrCat("CREATE TABLE IF NOT EXISTS ", table(t.name), " (", absl::StrJoin(defs, ", "), ")"));
  }
  out.push_back(absl::StrCat("CREATE INDEX IF NOT EXISTS history_migration_idx ON ", table("history"),
                             " (migration, id)"));
  // A table of an older version gets the columns added since; a later
  // column dropped by hand comes back with its default.
  for (const TableDef& t : Tables()) {
    std::vector<std::string> adds;
    for (const ColumnDef& c : t.columns) {
      if (c.since > t.since) adds.push_back(absl::StrCat("ADD COLUMN IF NOT EXISTS ", pg::QuoteIdent(c.name), " ", c.ddl));
    }
    if (!adds.empty()) out.push_back(absl::StrCat("ALTER TABLE ", table(t.name), " ", absl::StrJoin(adds, ", ")));
  }
  out.push_back(absl::StrCat("COMMENT ON TABLE ", table("meta"), " IS ", pg::QuoteLiteral(kControlMarker)));
  out.push_back(absl::StrCat("INSERT INTO ", table("meta"), " VALUES ('schema_version', '",
                             kControlSchemaVersion,
                             "') ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"));
  return out;
}

absl::StatusOr<std::vector<std::string>> OtherControlSchemas(pg::Connection& conn, const std::string& own) {
  ASSIGN_OR_RETURN(pg::Result r,
                   conn.Exec("SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                             " WHERE c.relname = 'meta' AND c.relkind = 'r' AND n.nspname <> $1"
                             " AND obj_description(c.oid, 'pg_class') = $2 ORDER BY 1",
                             {own, kControlMarker}));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Get(i, 0));
  return out;
}

absl::StatusOr<ControlLayout> InspectControlSchema(pg::Connection& conn, const std::string& schema) {
  std::vector<std::string> names;
  for (const TableDef& t : Tables()) names.push_back(t.name);
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn.Exec("SELECT c.relname::text, c.relkind::text, coalesce(obj_description(c.oid, 'pg_class'), ''),"
                " a.attname::text, format_type(a.atttypid, a.atttypmod)"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
                " WHERE n.nspname = $1 AND c.relname = ANY (string_to_array($2, ','))",
                {schema, absl::StrJoin(names, ",")}));
  ControlLayout out;
  for (int i = 0; i < r.rows(); ++i) {
    const std::string table = r.Get(i, 0);
    out.kinds[table] = r.Get(i, 1);
    auto& columns = out.tables[table];
    if (!r.IsNull(i, 3)) columns[r.Get(i, 3)] = r.Get(i, 4);
    if (table == "meta" && r.Get(i, 2) == kControlMarker) out.marked = true;
  }
  if (out.empty()) return out;
  const auto meta = out.tables.find("meta");
  const bool meta_shaped = meta != out.tables.end() && out.kinds["meta"] == "r" &&
                           meta->second.count("key") && meta->second.at("key") == "text" &&
                           meta->second.count("value") && meta->second.at("value") == "text";
  if (meta_shaped) {
    ASSIGN_OR_RETURN(pg::Result v, conn.Exec(absl::StrCat("SELECT value FROM ", pg::QuoteQualified(schema, "meta"),
                                                          " WHERE key = 'schema_version'")));
    if (v.rows() == 0 || !absl::SimpleAtoi(v.Get(0, 0), &out.version) || out.version < 1) out.version = 0;
  }
  const auto migrations = out.tables.find("migrations");
  const bool migrations_ours = migrations != out.tables.end() && out.kinds["migrations"] == "r" &&
                               HasCoreMigrationColumns(migrations->second);
  // pgshift's: marked, or laid out as a pgshift from before the marker
  // left it (meta with a version, and pgshift's migrations table).
  const bool ours = (out.marked && meta_shaped) ||
                    (meta_shaped && out.version > 0 && (migrations == out.tables.end() || migrations_ours)) ||
                    (meta == out.tables.end() && migrations_ours);
  if (!ours) {
    std::vector<std::string> seen;
    for (const auto& [table, columns] : out.tables) {
      seen.push_back(absl::StrCat(pg::QuoteQualified(schema, table),
                                  out.kinds[table] == "r" ? "" : absl::StrCat(" (relkind ", out.kinds[table], ")"),
                                  " (", Described(columns), ")"));
    }
    out.foreign = absl::StrJoin(seen, "; ");
    return out;
  }
  // Damage, judged against the version the schema says it is at (the
  // current one when meta is gone): a table of a version it has not
  // reached yet is an upgrade, not damage.
  const int version = out.version > 0 ? out.version : kControlSchemaVersion;
  // Migrations in flight: checkpoints holds their backfill positions and
  // which statements of a sql operation or an index build ran (a rollback
  // runs `down` only after them), instances the declarations the contract
  // guard waits for. Lost while one is in flight, that is damage; with
  // none, an empty table is all they need.
  int64_t in_flight = 0;
  if (migrations_ours) {
    ASSIGN_OR_RETURN(pg::Result a, conn.Exec(absl::StrCat("SELECT count(*) FROM ", pg::QuoteQualified(schema, "migrations"),
                                                          " WHERE phase NOT IN ('contracted', 'rolled_back')")));
    in_flight = a.GetInt(0, 0);
  }
  for (const TableDef& t : Tables()) {
    const std::string qualified = pg::QuoteQualified(schema, t.name);
    auto it = out.tables.find(t.name);
    if (it == out.tables.end()) {
      if (t.since > version) continue;
      const std::string name = t.name;
      if (name == "migrations") {
        out.damage.push_back(absl::StrCat("table ", qualified, " is missing (every migration's phase was in it)"));
      } else if ((name == "checkpoints" || name == "instances") && in_flight > 0) {
        out.damage.push_back(absl::StrCat(
            "table ", qualified, " is missing while ", in_flight, " migration(s) are in flight (",
            name == "checkpoints" ? "their backfill positions and which of their statements ran"
                                  : "the application instances their contract waits for",
            " were in it)"));
      } else {
        out.repairable.push_back(absl::StrCat("table ", qualified, " is missing"));
      }
      continue;
    }
    for (const ColumnDef& c : t.columns) {
      auto col = it->second.find(c.name);
      if (col == it->second.end()) {
        if (c.since > version) continue;
        const std::string what = absl::StrCat("table ", qualified, " lacks column ", pg::QuoteIdent(c.name), " (", c.type, ")");
        // A column the table was created with holds state nothing can
        // restore; a later one comes back with its default.
        (c.since > t.since ? out.repairable : out.damage).push_back(what);
      } else if (col->second != c.type) {
        out.damage.push_back(absl::StrCat("column ", pg::QuoteIdent(c.name), " of ", qualified, " is ", col->second,
                                          ", not ", c.type));
      }
    }
  }
  return out;
}

}  // namespace pgshift::engine
