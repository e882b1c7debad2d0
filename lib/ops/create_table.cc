// create_table {table, columns[]{name, type, default?, not_null?},
// primary_key[]} (docs/operations/create_table.md): column_added creates the
// table, marked as pgshift's by a comment so that re-runs and rollback know
// it; contract removes the comment. Rollback drops the table only while it
// is empty (checked under the ACCESS EXCLUSIVE lock of the DROP): rows in it
// were written by new app versions, and pgshift never drops them silently.
//
// Every name is quoted, every type is the parser's canonical type name,
// every default the deparser's canonical expression (lib/sql). At register
// the whole definition is tried on a temporary table in a transaction that is
// rolled back, so that a type that does not resolve, a default that does not
// fit its column or a key the server cannot build is refused up front.
#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/ops/guards.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

struct ColumnDef {
  std::string name;
  sql::TypeName type;
  std::optional<sql::Expression> default_value;
  bool not_null = false;
};

// `body` between dollar quotes whose tag does not occur in it.
std::string DollarQuoted(const std::string& body) {
  std::string tag = "$pgshift$";
  for (int i = 0; body.find(tag) != std::string::npos; ++i) tag = absl::StrCat("$pgshift", i, "$");
  return absl::StrCat(tag, body, tag);
}

// The table as the Transaction builders need it: its qualified name.
catalog::Table Named(const std::string& schema, const std::string& name) {
  catalog::Table t;
  t.schema = schema;
  t.name = name;
  return t;
}

// True when table `name` of `schema` is missing or does not carry `comment`.
Guard TableNotOurs(const std::string& schema, const std::string& name, const std::string& comment) {
  return Guard::Of({absl::StrCat("table ", pg::QuoteQualified(schema, name), " is missing or not pgshift's"),
                    "SELECT coalesce((SELECT obj_description(c.oid, 'pg_class') IS DISTINCT FROM $3 "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'), true)",
                    {schema, name, comment},
                    absl::StrCat("table ", pg::QuoteQualified(schema, name), " is pgshift's")});
}

class CreateTableSteps : public Steps {
 public:
  CreateTableSteps(std::string create_sql, const Context& ctx, std::string table)
      : create_sql_(std::move(create_sql)), ctx_(ctx), table_(std::move(table)) {}

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    const catalog::Table t = Named(ctx_.schema, table_);
    switch (to) {
      case Phase::kColumnAdded:
        return std::vector<Action>{Transaction(
            t, absl::StrCat("create table ", t.Qualified(), ", marked as pgshift's until contract"),
            {create_sql_,
             absl::StrCat("COMMENT ON TABLE ", t.Qualified(), " IS ",
                          pg::QuoteLiteral(ctx_.names.owner_comment()))},
            pg::LockMode::kAccessExclusive, TableExists(ctx_.schema, table_))};
      case Phase::kContracted:
        return std::vector<Action>{Transaction(
            t, absl::StrCat("remove pgshift's mark (its comment) from ", t.Qualified()),
            {absl::StrCat("COMMENT ON TABLE ", t.Qualified(), " IS NULL")},
            pg::LockMode::kShareUpdateExclusive, TableNotOurs(ctx_.schema, table_, ctx_.names.owner_comment()))};
      default:
        return std::vector<Action>{};
    }
  }

 private:
  std::string create_sql_;
  Context ctx_;
  std::string table_;
};

class CreateTable : public Operation {
 public:
  CreateTable(v1::CreateTable spec, std::vector<ColumnDef> columns, Context ctx)
      : Operation(std::move(ctx)), spec_(std::move(spec)), columns_(std::move(columns)) {}

  std::string Describe() const override {
    return absl::StrCat("create_table ", pg::QuoteQualified(ctx_.schema, spec_.table()));
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    const std::string t = pg::QuoteQualified(ctx_.schema, spec_.table());
    ASSIGN_OR_RETURN(pg::Result ns, conn.Exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", {ctx_.schema}));
    if (ns.rows() == 0) {
      return absl::NotFoundError(
          absl::StrCat("create_table: schema \"", ctx_.schema, "\" does not exist"));
    }
    // What holds the name now: a relation (and its kind) or a type, and
    // whether it is the table this operation created.
    ASSIGN_OR_RETURN(
        pg::Result held,
        conn.Exec("SELECT (SELECT c.relkind::text FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = $2), "
                  "  (SELECT obj_description(c.oid, 'pg_class') = $3 FROM pg_class c "
                  "   WHERE c.relnamespace = n.oid AND c.relname = $2 AND c.relkind = 'r'), "
                  "  EXISTS (SELECT 1 FROM pg_type ty WHERE ty.typnamespace = n.oid AND ty.typname = $2) "
                  "FROM pg_namespace n WHERE n.nspname = $1",
                  {ctx_.schema, spec_.table(), ctx_.names.owner_comment()}));
    const bool exists = !held.IsNull(0, 0);
    const bool ours = exists && !held.IsNull(0, 1) && held.GetBool(0, 1);
    if (phase == Phase::kRegistered) {
      if (exists && !ours) {
        return absl::AlreadyExistsError(absl::StrCat(
            "create_table: ", t, " already exists (relkind '", held.Get(0, 0),
            "'); give the new table a name that is free, or drop the existing one first"));
      }
      if (!exists && held.GetBool(0, 2)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "create_table: a type named ", t, " already exists, and a table needs its name for its "
            "row type; give the new table another name"));
      }
      if (!exists) {
        ASSIGN_OR_RETURN(pg::Result priv, conn.Exec("SELECT has_schema_privilege($1, 'CREATE'), current_user",
                                                    {ctx_.schema}));
        if (!priv.GetBool(0, 0)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "create_table: role ", pg::QuoteIdent(priv.Get(0, 1)), " lacks CREATE on schema ",
              pg::QuoteIdent(ctx_.schema), ", where it would create ", t, ". GRANT CREATE ON SCHEMA ",
              pg::QuoteIdent(ctx_.schema), " TO ", pg::QuoteIdent(priv.Get(0, 1)), "; see docs/privileges.md"));
        }
        RETURN_IF_ERROR(TryDefinition(conn));
      }
    } else if (!exists || (!ours && phase != Phase::kSwitched)) {  // at switched: contract re-run
      return absl::FailedPreconditionError(absl::StrCat(
          "create_table: ", t, exists ? " is no longer the table pgshift created (its comment changed)"
                                      : " was dropped outside pgshift",
          "; roll the migration back"));
    }
    return std::unique_ptr<Steps>(new CreateTableSteps(CreateSql(t, /*temporary=*/false), ctx_, spec_.table()));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection&) const override {
    const catalog::Table t = Named(ctx_.schema, spec_.table());
    const std::string message = absl::StrCat(
        "create_table rollback: table ", t.Qualified(),
        " holds rows (written since column_added, by new app versions?); pgshift drops the table it "
        "created only while it is empty, so nothing was dropped. Move or delete the rows, then run "
        "rollback again");
    const std::string check = absl::StrCat(
        "BEGIN IF EXISTS (SELECT FROM ONLY ", t.Qualified(), ") THEN RAISE EXCEPTION USING MESSAGE = ",
        pg::QuoteLiteral(message), ", ERRCODE = 'P0001'; END IF; END");
    return std::vector<Action>{Transaction(
        t, absl::StrCat("drop table ", t.Qualified(), " (created by this migration) if it is empty"),
        {absl::StrCat("LOCK TABLE ", t.Qualified(), " IN ACCESS EXCLUSIVE MODE"),
         absl::StrCat("DO ", DollarQuoted(check)), absl::StrCat("DROP TABLE ", t.Qualified())},
        pg::LockMode::kAccessExclusive, TableNotOurs(ctx_.schema, spec_.table(), ctx_.names.owner_comment()))};
  }

 private:
  std::string ColumnSql(const ColumnDef& c, bool with_default, bool with_not_null) const {
    std::string out = absl::StrCat(pg::QuoteIdent(c.name), " ", c.type.sql());
    if (with_default && c.default_value) absl::StrAppend(&out, " DEFAULT (", c.default_value->sql(), ")");
    if (with_not_null && c.not_null) absl::StrAppend(&out, " NOT NULL");
    return out;
  }

  std::string CreateSql(const std::string& qualified, bool temporary) const {
    std::vector<std::string> parts;
    for (const ColumnDef& c : columns_) parts.push_back(ColumnSql(c, true, true));
    if (spec_.primary_key_size() > 0) {
      std::vector<std::string> key;
      for (const std::string& k : spec_.primary_key()) key.push_back(pg::QuoteIdent(k));
      parts.push_back(absl::StrCat("PRIMARY KEY (", absl::StrJoin(key, ", "), ")"));
    }
    return absl::StrCat("CREATE ", temporary ? "TEMP " : "", "TABLE ", qualified, " (",
                        absl::StrJoin(parts, ", "), ")", temporary ? " ON COMMIT DROP" : "");
  }

  // Tries the definition on temporary tables, in a transaction rolled back:
  // each column's type, then its default (analysed as a column default,
  // evaluated once and stored, as INSERT does), then the whole table.
  absl::Status TryDefinition(pg::Connection& conn) const {
    ASSIGN_OR_RETURN(pg::Result who, conn.Exec("SELECT current_user, current_database()"));
    absl::Status s = conn.RolledBack([&]() -> absl::Status {
      for (size_t i = 0; i < columns_.size(); ++i) {
        const ColumnDef& c = columns_[i];
        const std::string field = absl::StrCat("create_table: columns[", i, "]");
        const std::string probe = absl::StrCat("pg_temp.pgshift_probe_", i);
        absl::Status created = conn.Run(absl::StrCat("CREATE TEMP TABLE pgshift_probe_", i, " (",
                                                     ColumnSql(c, false, false), ") ON COMMIT DROP"));
        if (util::SqlStateOf(created) == "42501") {
          return absl::InvalidArgumentError(absl::StrCat(
              "create_table: checking the table's definition needs the TEMP privilege on database ",
              pg::QuoteIdent(who.Get(0, 1)), ", which role ", pg::QuoteIdent(who.Get(0, 0)),
              " lacks (pgshift tries it on a temporary table, in a transaction it rolls back). GRANT "
              "TEMPORARY ON DATABASE ", pg::QuoteIdent(who.Get(0, 1)), " TO ", pg::QuoteIdent(who.Get(0, 0)),
              "; see docs/privileges.md"));
        }
        if (!created.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(field, ".type \"", c.type.sql(),
                                                         "\" cannot be the type of column ",
                                                         pg::QuoteIdent(c.name), ": ", created.message()));
        }
        if (!c.default_value) continue;
        if (!c.default_value->columns().empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              field, ".default \"", c.default_value->sql(), "\" must not refer to columns (\"",
              absl::StrJoin(c.default_value->columns(), "\", \""),
              "\"; PostgreSQL rejects those in a DEFAULT): give a constant or a function call"));
        }
        absl::Status d = conn.Run(absl::StrCat("ALTER TABLE ", probe, " ALTER COLUMN ", pg::QuoteIdent(c.name),
                                               " SET DEFAULT (", c.default_value->sql(), ")"));
        if (d.ok()) d = conn.Run(absl::StrCat("INSERT INTO ", probe, " DEFAULT VALUES"));
        if (!d.ok()) {
          const std::string state = util::SqlStateOf(d);
          // grouping_error, windowing_error, feature_not_supported (SRF)
          const bool not_per_row = state == "42803" || state == "42P20" || state == "0A000";
          return absl::InvalidArgumentError(absl::StrCat(
              field, ".default \"", c.default_value->sql(), "\" ",
              not_per_row ? "is an aggregate, window or set-returning expression; a default is one "
                            "value computed for one row at a time, as it is inserted"
                          : absl::StrCat("does not fit column ", pg::QuoteIdent(c.name), " of type ",
                                         c.type.sql(), " as PostgreSQL assigns a column default"),
              ": ", d.message()));
        }
      }
      absl::Status whole = conn.Run(CreateSql("pgshift_probe", /*temporary=*/true));
      if (!whole.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("create_table: the definition of ", pg::QuoteQualified(ctx_.schema, spec_.table()),
                         " is refused by the server: ", whole.message()));
      }
      return absl::OkStatus();
    });
    return s;
  }

  v1::CreateTable spec_;
  std::vector<ColumnDef> columns_;
};

absl::Status Validate(const v1::Operation& op, const std::string& where) {
  const v1::CreateTable& o = op.create_table();
  std::vector<std::string> names;
  for (int i = 0; i < o.columns_size(); ++i) {
    const std::string& n = o.columns(i).name();
    if (std::find(names.begin(), names.end(), n) != names.end()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".columns[", i, "].name: column \"", n,
                                                     "\" of table \"", o.table(), "\" is given twice"));
    }
    names.push_back(n);
  }
  std::vector<std::string> key;
  for (int i = 0; i < o.primary_key_size(); ++i) {
    const std::string& k = o.primary_key(i);
    if (std::find(names.begin(), names.end(), k) == names.end()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".primary_key[", i, "]: \"", k,
                                                     "\" is not one of the columns of table \"",
                                                     o.table(), "\" (\"", absl::StrJoin(names, "\", \""), "\")"));
    }
    if (std::find(key.begin(), key.end(), k) != key.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".primary_key[", i, "]: column \"", k, "\" is given twice"));
    }
    key.push_back(k);
  }
  return absl::OkStatus();
}

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  return {{schema, op.create_table().table(), ""}};
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  const v1::CreateTable& o = op.create_table();
  std::vector<ColumnDef> columns;
  for (int i = 0; i < o.columns_size(); ++i) {
    const v1::CreateTable::Column& c = o.columns(i);
    const std::string path = absl::StrCat("create_table.columns[", i, "]");
    ASSIGN_OR_RETURN(sql::TypeName type, sql::TypeName::Parse(c.type(), absl::StrCat(path, ".type")));
    std::optional<sql::Expression> def;
    if (c.has_default_()) {
      ASSIGN_OR_RETURN(def, sql::Expression::Parse(c.default_(), absl::StrCat(path, ".default")));
    }
    columns.push_back(ColumnDef{c.name(), std::move(type), std::move(def), c.not_null()});
  }
  return std::unique_ptr<Operation>(new CreateTable(o, std::move(columns), std::move(ctx)));
}

}  // namespace

extern const OperationType kCreateTableType = {v1::Operation::kCreateTable, "create_table", &Validate,
                                               &Touches, &Make,
    /*contract_only_unmarks=*/true};

}  // namespace pgshift::ops
