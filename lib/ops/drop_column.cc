// drop_column {table, column, down?} (docs/operations/drop_column.md):
// nothing is removed before contract. New app versions no longer write the
// column, so when it is NOT NULL without a default their inserts would fail:
// with `down` a trigger fills it (also for old app versions still reading
// it); without `down` the trigger step drops NOT NULL, and rollback restores
// it (CHECK NOT VALID -> VALIDATE -> SET NOT NULL). Validate refuses to pass
// while objects that a plain DROP COLUMN cannot drop depend on the column
// (views, foreign keys of other tables, policies, triggers, generated
// columns): they are listed so that the user removes them before contract.
// Contract drops the column (and with it its indexes and constraints): the
// one irreversible step.
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/ops/guards.h"
#include "lib/ops/not_null.h"
#include "lib/ops/registry.h"
#include "lib/ops/triggers.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

constexpr absl::string_view kMarker = "notnull_dropped";

// The function whose existence records that the trigger step dropped NOT NULL.
std::string Marker(const catalog::Table& t, const Context& ctx) { return HelperFunction(t, ctx, kMarker); }

class DropColumnSteps : public Steps {
 public:
  DropColumnSteps(const v1::DropColumn& spec, const std::optional<sql::Expression>& down,
                  const Context& ctx, catalog::Table table, std::optional<catalog::Column> col,
                  std::vector<std::string> dropped_with_it, std::vector<std::string> blockers)
      : spec_(spec), down_(down), ctx_(ctx), table_(std::move(table)), col_(std::move(col)),
        dropped_with_it_(std::move(dropped_with_it)), blockers_(std::move(blockers)) {}

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    if (!col_) return std::vector<Action>{};  // contract committed; re-run after a crash
    const std::string t = table_.Qualified(), c = pg::QuoteIdent(spec_.column());
    switch (to) {
      case Phase::kTriggerInstalled: {
        if (down_) return InstallFillTrigger(table_, ctx_, spec_.column(), col_->type_info(), *down_);
        if (!NeedsNullable()) return std::vector<Action>{};
        return std::vector<Action>{Transaction(
            table_,
            absl::StrCat("drop NOT NULL from ", spec_.column(),
                         " so that new app versions, which no longer write it, can insert; "
                         "rollback restores it"),
            {absl::StrCat("ALTER TABLE ", t, " ALTER COLUMN ", c, " DROP NOT NULL"),
             absl::StrCat("CREATE OR REPLACE FUNCTION ", Marker(table_, ctx_),
                          "() RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true'"),
             absl::StrCat("COMMENT ON FUNCTION ", Marker(table_, ctx_), "() IS ",
                          pg::QuoteLiteral(absl::StrCat(ctx_.names.owner_comment(), ": NOT NULL of ",
                                                        spec_.column(), " dropped; rollback restores it")))},
            pg::LockMode::kAccessExclusive, FunctionExists(table_, ctx_.names.helper(kMarker)))};
      }
      case Phase::kContracted: {
        std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
        sql.push_back(absl::StrCat("DROP FUNCTION IF EXISTS ", Marker(table_, ctx_), "()"));
        sql.push_back(absl::StrCat("ALTER TABLE ", t, " DROP COLUMN ", c));
        const std::string also =
            dropped_with_it_.empty()
                ? ""
                : absl::StrCat(" (which also drops ", absl::StrJoin(dropped_with_it_, ", "), ")");
        Action a = Transaction(table_, absl::StrCat("drop the trigger and column ", spec_.column(), also),
                               std::move(sql), pg::LockMode::kAccessExclusive,
                               ColumnMissing(table_, spec_.column()));
        a.irreversible = true;
        a.drops_data = {absl::StrCat("column ", c, " of ", t, " and every value in it")};
        for (const std::string& b : blockers_) {
          a.hazards.push_back(absl::StrCat("validate (and so contract) refuses while ", b,
                                           " depends on column ", c, ": change or drop it first"));
        }
        return std::vector<Action>{std::move(a)};
      }
      default:
        return std::vector<Action>{};
    }
  }

 private:
  // NOT NULL without a default (identity and generated columns fill themselves).
  bool NeedsNullable() const {
    return col_->not_null && !col_->default_expr && col_->identity == '\0' && col_->generated == '\0';
  }

  v1::DropColumn spec_;
  std::optional<sql::Expression> down_;
  Context ctx_;
  catalog::Table table_;
  std::optional<catalog::Column> col_;  // none: already dropped (contract re-run)
  std::vector<std::string> dropped_with_it_;
  std::vector<std::string> blockers_;  // what DROP COLUMN cannot drop, or would break
};

class DropColumn : public Operation {
 public:
  DropColumn(v1::DropColumn spec, std::optional<sql::Expression> down, Context ctx)
      : Operation(std::move(ctx)), spec_(std::move(spec)), down_(std::move(down)) {}

  std::string Describe() const override {
    return absl::StrCat("drop_column ", pg::QuoteQualified(ctx_.schema, spec_.table()), ".",
                        pg::QuoteIdent(spec_.column()));
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    const catalog::Column* col = table.FindColumn(spec_.column());
    if (col == nullptr) {
      if (phase == Phase::kSwitched) {  // contract re-run after its commit
        return std::unique_ptr<Steps>(
            new DropColumnSteps(spec_, down_, ctx_, std::move(table), std::nullopt, {}, {}));
      }
      if (phase == Phase::kRegistered) {
        return absl::NotFoundError(absl::StrCat("drop_column: column \"", spec_.column(),
                                                "\" does not exist in ", table.Qualified()));
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "drop_column: column \"", spec_.column(), "\" of ", table.Qualified(),
          " was dropped outside pgshift before contract; roll the migration back"));
    }
    for (const std::string& k : table.primary_key) {
      if (k == col->name) {
        return absl::InvalidArgumentError(absl::StrCat(
            "drop_column: column \"", col->name, "\" of ", table.Qualified(),
            " is part of the primary key; dropping it would silently drop the key. Give the table "
            "another primary key first"));
      }
    }
    for (const catalog::Index& ix : table.indexes) {
      if (ix.replica_identity && ix.Uses(col->attnum)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "drop_column: column \"", col->name, "\" of ", table.Qualified(),
            " is part of index \"", ix.name, "\", the table's replica identity; dropping it would "
            "leave the table without one, and UPDATE and DELETE then fail on a published table. "
            "Set another replica identity first (ALTER TABLE ... REPLICA IDENTITY ...)"));
      }
    }
    if (phase == Phase::kRegistered) {
      // Functions: the fill trigger for `down`, or the marker recording
      // that NOT NULL was dropped, whose rollback counts the NULL rows
      // before restoring it. Nothing else reads rows.
      const bool drops_not_null = !down_ && col->not_null && !col->default_expr &&
                                  col->identity == '\0' && col->generated == '\0';
      catalog::TableNeeds needs;
      needs.creates_functions = down_.has_value() || drops_not_null;
      needs.reads_rows = drops_not_null;
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, "drop_column", needs));
    }
    if (phase == Phase::kRegistered && down_) {
      if (col->generated != '\0') {
        return absl::InvalidArgumentError(absl::StrCat(
            "drop_column: column \"", col->name, "\" is generated; it fills itself, so \"down\" "
            "cannot apply: remove \"down\" from the spec"));
      }
      RETURN_IF_ERROR(catalog::CheckExpression(conn, table, *down_, col->type, "drop_column: down"));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> blockers, Dependents(conn, table, *col, /*blocking=*/true));
    // User triggers whose function reads the column: after DROP COLUMN every
    // write would fail in them.
    ASSIGN_OR_RETURN(std::vector<std::string> readers, catalog::TriggersReading(conn, table, col->name));
    for (std::string& r : readers) blockers.push_back(std::move(r));
    ASSIGN_OR_RETURN(std::vector<std::string> dropped_with_it,
                     Dependents(conn, table, *col, /*blocking=*/false));
    if (static_cast<int>(phase) >= static_cast<int>(Phase::kBackfilled) && !blockers.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "drop_column: ", absl::StrJoin(blockers, "; "), " — depend on column \"", col->name,
          "\" of ", table.Qualified(),
          ", so DROP COLUMN at contract would fail. Drop or change them (they must not use the "
          "column), then advance again"));
    }
    catalog::Column c = *col;
    return std::unique_ptr<Steps>(
        new DropColumnSteps(spec_, down_, ctx_, std::move(table), std::move(c), std::move(dropped_with_it),
                            std::move(blockers)));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection& conn) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    std::vector<Action> out;
    const std::string c = pg::QuoteIdent(spec_.column());
    const Guard no_marker = Guard::Not(FunctionExists(table, ctx_.names.helper(kMarker)));
    if (table.FindColumn(spec_.column()) != nullptr) {
      // Restore NOT NULL when our marker says the trigger step dropped it.
      out.push_back(Assert(
          table, absl::StrCat("check that no row has ", spec_.column(), " NULL before restoring NOT NULL"),
          absl::StrCat(c, " IS NULL"),
          absl::StrCat("rows where ", spec_.column(),
                       " is NULL (written by new app versions after NOT NULL was dropped); NOT NULL "
                       "cannot be restored until they hold a value: set it, then run rollback again"),
          no_marker));
      std::vector<Action> check = NotNullCheckActions(table, ctx_, spec_.column());
      check[0].done_if = Guard::Any({no_marker, check[0].done_if});
      for (Action& a : check) out.push_back(std::move(a));
      Action set = NotNullFromCheckAction(table, ctx_, spec_.column());
      set.description = absl::StrCat("restore NOT NULL on ", spec_.column(), " (validated check, no scan)");
      set.statements.push_back(absl::StrCat("DROP FUNCTION IF EXISTS ", Marker(table, ctx_), "()"));
      set.done_if = no_marker;
      out.push_back(std::move(set));
    }
    std::vector<std::string> sql = DropTriggerSql(table, ctx_);
    sql.push_back(absl::StrCat("DROP FUNCTION IF EXISTS ", Marker(table, ctx_), "()"));
    sql.push_back(absl::StrCat("ALTER TABLE ", table.Qualified(), " DROP CONSTRAINT IF EXISTS ",
                               pg::QuoteIdent(ctx_.names.not_null_check())));
    // Skipped only when everything is gone.
    out.push_back(Transaction(
        table, "drop the fill trigger and pgshift's helpers", std::move(sql),
        pg::LockMode::kAccessExclusive,
        Guard::All({TriggersGone(table, ctx_.names), no_marker,
                    Guard::Not(ConstraintExists(table, ctx_.names.not_null_check()))})));
    return out;
  }

 private:
  // Objects depending on the column, described for the user. Blocking: a
  // plain DROP COLUMN refuses to drop them (a normal dependency and no
  // automatic one). Otherwise: what DROP COLUMN drops along with the column
  // (its indexes, constraints, statistics). pgshift's own trigger is left out.
  absl::StatusOr<std::vector<std::string>> Dependents(pg::Connection& conn, const catalog::Table& table,
                                                      const catalog::Column& col, bool blocking) const {
    ASSIGN_OR_RETURN(
        pg::Result r,
        conn.Exec(
            "SELECT DISTINCT CASE WHEN d.classid = 'pg_attrdef'::regclass THEN "
            "  (SELECT 'generated column ' || quote_ident(a.attname) FROM pg_attrdef ad JOIN pg_attribute a "
            "   ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum WHERE ad.oid = d.objid) "
            "  WHEN d.classid = 'pg_rewrite'::regclass THEN "
            "  (SELECT 'view ' || rw.ev_class::regclass::text FROM pg_rewrite rw WHERE rw.oid = d.objid) "
            "  ELSE pg_describe_object(d.classid, d.objid, 0) END "
            "FROM pg_depend d "
            "WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND d.refobjsubid = $2 "
            "  AND d.deptype IN ('n', 'a') "
            "  AND NOT (d.classid = 'pg_trigger'::regclass AND EXISTS (SELECT 1 FROM pg_trigger tg "
            "        WHERE tg.oid = d.objid AND tg.tgname IN ($3, $4))) "
            "  AND (EXISTS (SELECT 1 FROM pg_depend a WHERE a.classid = d.classid AND a.objid = d.objid "
            "        AND a.refclassid = d.refclassid AND a.refobjid = d.refobjid "
            "        AND a.refobjsubid = d.refobjsubid AND a.deptype IN ('a', 'i'))) = NOT $5::bool "
            "ORDER BY 1",
            {table.Qualified(), std::to_string(col.attnum), ctx_.names.insert_trigger(),
             ctx_.names.update_trigger(), blocking ? "true" : "false"}));
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.Get(i, 0));
    return out;
  }

  v1::DropColumn spec_;
  std::optional<sql::Expression> down_;
};

absl::Status Validate(const v1::Operation&, const std::string&) { return absl::OkStatus(); }

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  const v1::DropColumn& o = op.drop_column();
  std::vector<Touch> out = {{schema, o.table(), o.column()}};
  for (Touch& t : ReadsOf(schema, o.table(), o.down(), {o.column()})) out.push_back(t);
  return out;
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  std::optional<sql::Expression> down;
  if (!op.drop_column().down().empty()) {
    ASSIGN_OR_RETURN(down, sql::Expression::Parse(op.drop_column().down(), "drop_column.down"));
  }
  return std::unique_ptr<Operation>(new DropColumn(op.drop_column(), std::move(down), std::move(ctx)));
}

}  // namespace

extern const OperationType kDropColumnType = {v1::Operation::kDropColumn, "drop_column", &Validate,
                                              &Touches, &Make};

}  // namespace pgshift::ops
