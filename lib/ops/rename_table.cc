// rename_table {from, to} (docs/operations/rename_table.md): nothing changes
// before switched. Switched renames the table and, in the same short
// transaction, creates a view under the old name over the renamed table, so
// that old app versions keep selecting, inserting, updating and deleting
// (RETURNING and ON CONFLICT too) through the old name while new ones use the
// new name. The view is a simple auto-updatable view of every column; it gets
// the table's column defaults and the table's privileges (table and column
// grants), so that application roles keep what they had; on a table with
// row-level security it is security_invoker (PostgreSQL 15+), so that the
// policies apply to the querying role. A comment marks the view as pgshift's.
// Contract drops the view; rollback drops it and renames the table back.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/ops/guards.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

catalog::Table Named(const std::string& schema, const std::string& name) {
  catalog::Table t;
  t.schema = schema;
  t.name = name;
  return t;
}

// True when `name` of `schema` is a view carrying `comment`.
Guard ViewIsOurs(const std::string& schema, const std::string& name, const std::string& comment) {
  const std::string q = pg::QuoteQualified(schema, name);
  return Guard::Of({absl::StrCat("view ", q, " exists and is pgshift's"),
                    "SELECT coalesce((SELECT obj_description(c.oid, 'pg_class') = $3 "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'v'), false)",
                    {schema, name, comment}, absl::StrCat("pgshift's view ", q, " is gone")});
}

// "GRANT <privilege> [(<column>)] ON <view> TO <grantee> [WITH GRANT OPTION]"
// for an ACL item "privilege:grantee:grantable" (grantee quoted or PUBLIC).
std::string GrantSql(const std::string& item, const std::string& view, const std::string& column) {
  std::vector<std::string> p = absl::StrSplit(item, ':');
  if (p.size() != 3) return "";
  return absl::StrCat("GRANT ", p[0], column.empty() ? "" : absl::StrCat(" (", pg::QuoteIdent(column), ")"),
                      " ON ", view, " TO ", p[1], p[2] == "YES" ? " WITH GRANT OPTION" : "");
}

class RenameTableSteps : public Steps {
 public:
  // `switch_sql`: the statements of the switch (empty once it committed).
  RenameTableSteps(const v1::RenameTable& spec, const Context& ctx, std::vector<std::string> switch_sql)
      : spec_(spec), ctx_(ctx), switch_sql_(std::move(switch_sql)) {}

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    const catalog::Table from = Named(ctx_.schema, spec_.from());
    const std::string to_q = pg::QuoteQualified(ctx_.schema, spec_.to());
    switch (to) {
      case Phase::kSwitched: {
        if (switch_sql_.empty()) return std::vector<Action>{};
        Action a = Transaction(
            from,
            absl::StrCat("rename ", from.Qualified(), " to ", to_q, " and create view ", from.Qualified(),
                         " over it for old app versions"),
            switch_sql_, pg::LockMode::kAccessExclusive, ViewIsOurs(ctx_.schema, spec_.from(), ctx_.names.owner_comment()));
        a.hazards.push_back(absl::StrCat(
            "from here on new app versions use ", to_q, "; old ones reach it through view ", from.Qualified(),
            ", which serves SELECT, INSERT, UPDATE and DELETE (with RETURNING and ON CONFLICT) but not "
            "ON CONFLICT ON CONSTRAINT <name> (name the columns instead), TRUNCATE, COPY ... FROM, "
            "LOCK TABLE or DDL on the old name"));
        a.hazards.push_back(absl::StrCat(
            "until contract, view ", from.Qualified(), " depends on every column of ", to_q,
            ": other migrations cannot drop or retype them, and it must be gone (contract) first"));
        return std::vector<Action>{std::move(a)};
      }
      case Phase::kContracted:
        return std::vector<Action>{Transaction(
            from, absl::StrCat("drop view ", from.Qualified(), " (old app versions must be gone)"),
            {absl::StrCat("DROP VIEW ", from.Qualified())}, pg::LockMode::kAccessExclusive,
            Guard::Not(ViewIsOurs(ctx_.schema, spec_.from(), ctx_.names.owner_comment())))};
      default:
        return std::vector<Action>{};
    }
  }

 private:
  v1::RenameTable spec_;
  Context ctx_;
  std::vector<std::string> switch_sql_;
};

class RenameTable : public Operation {
 public:
  RenameTable(v1::RenameTable spec, Context ctx) : Operation(std::move(ctx)), spec_(std::move(spec)) {}

  std::string Describe() const override {
    return absl::StrCat("rename_table ", pg::QuoteQualified(ctx_.schema, spec_.from()), " -> ",
                        pg::QuoteIdent(spec_.to()));
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    const std::string from_q = pg::QuoteQualified(ctx_.schema, spec_.from());
    const std::string to_q = pg::QuoteQualified(ctx_.schema, spec_.to());
    ASSIGN_OR_RETURN(pg::Result ns, conn.Exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", {ctx_.schema}));
    if (ns.rows() == 0) {
      return absl::NotFoundError(absl::StrCat("rename_table: schema \"", ctx_.schema, "\" does not exist"));
    }
    // Where the switch stands: the old name is our view and the new one a table.
    ASSIGN_OR_RETURN(
        pg::Result st,
        conn.Exec("SELECT (SELECT c.relkind::text FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = $2), "
                  "  coalesce((SELECT obj_description(c.oid, 'pg_class') = $4 FROM pg_class c "
                  "   WHERE c.relnamespace = n.oid AND c.relname = $2 AND c.relkind = 'v'), false), "
                  "  (SELECT c.relkind::text FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = $3), "
                  "  EXISTS (SELECT 1 FROM pg_type ty WHERE ty.typnamespace = n.oid AND ty.typname = $3) "
                  "FROM pg_namespace n WHERE n.nspname = $1",
                  {ctx_.schema, spec_.from(), spec_.to(), ctx_.names.owner_comment()}));
    const std::string from_kind = st.IsNull(0, 0) ? "" : st.Get(0, 0);
    const bool view_ours = st.GetBool(0, 1);
    const std::string to_kind = st.IsNull(0, 2) ? "" : st.Get(0, 2);
    // The switch committed: a re-run of it (at validated), contract, or a
    // re-run of contract (the view gone).
    const bool switched = to_kind == "r" && (view_ours || (from_kind.empty() && phase == Phase::kSwitched));
    if (switched && (phase == Phase::kValidated || phase == Phase::kSwitched)) {
      return std::unique_ptr<Steps>(new RenameTableSteps(spec_, ctx_, {}));
    }
    if (switched && phase != Phase::kRegistered) {
      return absl::FailedPreconditionError(absl::StrCat(
          "rename_table: ", from_q, " is already pgshift's view over ", to_q,
          " before the switch step; roll the migration back"));
    }
    if (static_cast<int>(phase) >= static_cast<int>(Phase::kSwitched)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "rename_table: ", to_q, " is not the renamed table, or ", from_q,
          " is not pgshift's view over it, any more; something changed them outside pgshift"));
    }
    // Before the switch: `from` is an ordinary table, `to` is free.
    absl::StatusOr<catalog::Table> loaded = catalog::LoadTable(conn, ctx_.schema, spec_.from());
    if (!loaded.ok()) return util::Annotate(loaded.status(), "rename_table: from");
    const catalog::Table& table = *loaded;
    if (!to_kind.empty() || st.GetBool(0, 3)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "rename_table: to: ", to_q, " already exists (",
          to_kind.empty() ? "a type" : absl::StrCat("a relation of relkind '", to_kind, "'"),
          "); give the table a name that is free"));
    }
    if (phase == Phase::kRegistered) {
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, "rename_table", catalog::TableNeeds{}));
      ASSIGN_OR_RETURN(pg::Result priv,
                       conn.Exec("SELECT has_schema_privilege(n.oid, 'CREATE'), c.relrowsecurity, current_user "
                                 "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE c.oid = $1",
                                 {std::to_string(table.oid)}));
      if (!priv.GetBool(0, 0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "rename_table: role ", pg::QuoteIdent(priv.Get(0, 2)), " lacks CREATE on schema ",
            pg::QuoteIdent(ctx_.schema), ", where the switch creates view ", from_q,
            " for old app versions. GRANT CREATE ON SCHEMA ", pg::QuoteIdent(ctx_.schema), " TO ",
            pg::QuoteIdent(priv.Get(0, 2)), "; see docs/privileges.md"));
      }
      if (priv.GetBool(0, 1) && conn.server_version() < 150000) {
        return absl::InvalidArgumentError(absl::StrCat(
            "rename_table: ", from_q, " has row-level security enabled, and before PostgreSQL 15 a "
            "view cannot check it for the querying role (no security_invoker): old app versions "
            "reading through the view would see every row as the view's owner does. Rename it by hand, "
            "or on PostgreSQL 15 or later"));
      }
      bool column_grants = false;
      for (const catalog::Column& c : table.columns) column_grants = column_grants || !c.grants.empty();
      if (priv.GetBool(0, 1) && column_grants) {
        return absl::InvalidArgumentError(absl::StrCat(
            "rename_table: ", from_q, " has row-level security enabled and column-level privileges: "
            "a view that checks the policies for the querying role (security_invoker) checks the "
            "table's privileges on every column it selects, so roles with privileges on some columns "
            "only would lose access through the old name. Grant them the table, or rename it by hand"));
      }
    }
    ASSIGN_OR_RETURN(std::vector<std::string> sql, SwitchSql(conn, table));
    return std::unique_ptr<Steps>(new RenameTableSteps(spec_, ctx_, std::move(sql)));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection&) const override {
    const catalog::Table from = Named(ctx_.schema, spec_.from());
    const catalog::Table to = Named(ctx_.schema, spec_.to());
    Action a = Transaction(
        to, absl::StrCat("drop view ", from.Qualified(), " and rename ", to.Qualified(), " back to ",
                         from.Qualified()),
        {absl::StrCat("DROP VIEW IF EXISTS ", from.Qualified()),
         absl::StrCat("ALTER TABLE ", to.Qualified(), " RENAME TO ", pg::QuoteIdent(spec_.from()))},
        pg::LockMode::kAccessExclusive,
        // Not switched (yet), or renamed back: the old name is a table again.
        Guard::Any({TableExists(ctx_.schema, spec_.from()), Guard::Not(TableExists(ctx_.schema, spec_.to())),
                    Guard::All({ViewExists(ctx_.schema, spec_.from()),
                                Guard::Not(ViewIsOurs(ctx_.schema, spec_.from(), ctx_.names.owner_comment()))})}));
    a.locks.push_back({from.Qualified(), pg::LockMode::kAccessExclusive});
    return std::vector<Action>{std::move(a)};
  }

 private:
  // The switch: rename, the view, its defaults, its privileges, our mark.
  absl::StatusOr<std::vector<std::string>> SwitchSql(pg::Connection& conn, const catalog::Table& table) const {
    const std::string from_q = table.Qualified();
    const std::string to_q = pg::QuoteQualified(ctx_.schema, spec_.to());
    std::vector<std::string> cols;
    for (const catalog::Column& c : table.columns) cols.push_back(pg::QuoteIdent(c.name));
    // The view checks privileges on itself, for the querying role (it gets
    // the table's grants below), and reads the table as its owner. Under
    // row-level security it must be security_invoker instead, so that the
    // policies apply to the querying role and not to the owner (PostgreSQL
    // 15+; refused at register otherwise).
    ASSIGN_OR_RETURN(pg::Result rls_r, conn.Exec("SELECT relrowsecurity FROM pg_class WHERE oid = $1",
                                                 {std::to_string(table.oid)}));
    const bool rls = rls_r.GetBool(0, 0) && conn.server_version() >= 150000;
    std::vector<std::string> sql = {
        absl::StrCat("ALTER TABLE ", from_q, " RENAME TO ", pg::QuoteIdent(spec_.to())),
        absl::StrCat("CREATE VIEW ", from_q, rls ? " WITH (security_invoker = true)" : "", " AS SELECT ",
                     absl::StrJoin(cols, ", "), " FROM ", to_q)};
    for (const catalog::Column& c : table.columns) {
      if (!c.default_expr || c.identity != '\0' || c.generated != '\0') continue;
      sql.push_back(absl::StrCat("ALTER VIEW ", from_q, " ALTER COLUMN ", pg::QuoteIdent(c.name),
                                 " SET DEFAULT (", *c.default_expr, ")"));
    }
    ASSIGN_OR_RETURN(pg::Result acl,
                     conn.Exec("SELECT x.privilege_type || ':' || CASE WHEN x.grantee = 0 THEN 'PUBLIC' "
                               "  ELSE quote_ident(r.rolname) END || ':' || x.is_grantable "
                               "FROM pg_class c, aclexplode(c.relacl) x LEFT JOIN pg_roles r ON r.oid = x.grantee "
                               // the view's owner (the driver) has them all already
                               "WHERE c.oid = $1 AND x.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user) "
                               "ORDER BY 1",
                               {std::to_string(table.oid)}));
    for (int i = 0; i < acl.rows(); ++i) {
      const std::string g = GrantSql(acl.Get(i, 0), from_q, "");
      if (!g.empty()) sql.push_back(g);
    }
    for (const catalog::Column& c : table.columns) {
      for (const std::string& item : c.grants) {
        const std::string g = GrantSql(item, from_q, c.name);
        if (!g.empty()) sql.push_back(g);
      }
    }
    sql.push_back(absl::StrCat("COMMENT ON VIEW ", from_q, " IS ", pg::QuoteLiteral(ctx_.names.owner_comment())));
    return sql;
  }

  v1::RenameTable spec_;
};

absl::Status Validate(const v1::Operation& op, const std::string& where) {
  const v1::RenameTable& o = op.rename_table();
  if (o.from() == o.to()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"from\" and \"to\" are both \"", o.from(), "\"; give the table a new name"));
  }
  return absl::OkStatus();
}

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  return {{schema, op.rename_table().from(), ""}, {schema, op.rename_table().to(), ""}};
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  return std::unique_ptr<Operation>(new RenameTable(op.rename_table(), std::move(ctx)));
}

}  // namespace

extern const OperationType kRenameTableType = {v1::Operation::kRenameTable, "rename_table", &Validate,
                                               &Touches, &Make};

}  // namespace pgshift::ops
