// drop_column {table, column, down?} (design §3): nothing is removed before
// contract. New app versions no longer write the column, so when it is NOT
// NULL without a default their inserts would fail: with `down` a trigger
// fills it (also for old app versions still reading it); without `down` the
// trigger step drops NOT NULL, and rollback restores it (CHECK NOT VALID ->
// VALIDATE -> SET NOT NULL). Validate refuses to pass while objects that a
// plain DROP COLUMN cannot drop depend on the column (views, foreign keys of
// other tables, policies, triggers, generated columns): they are listed so
// that the user removes them before contract. Contract drops the column (and
// with it its indexes and constraints): the one irreversible step.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/ops/common.h"
#include "lib/ops/ops.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

class DropColumn : public Operation {
 public:
  DropColumn(v1::DropColumn spec, std::string schema, Context ctx)
      : spec_(std::move(spec)), schema_(std::move(schema)), ctx_(std::move(ctx)) {}

  std::string Describe() const override {
    return absl::StrCat("drop_column ", pg::QuoteQualified(schema_, spec_.table()), ".",
                        pg::QuoteIdent(spec_.column()));
  }

  std::vector<Touch> Touches() const override { return {{schema_, spec_.table(), spec_.column()}}; }

  int64_t RowEstimate() const override { return 0; }

  absl::Status Inspect(pg::Connection& conn, Phase phase) override {
    ASSIGN_OR_RETURN(table_, catalog::LoadTable(conn, schema_, spec_.table()));
    const catalog::Column* col = table_.FindColumn(spec_.column());
    if (col == nullptr) {
      gone_ = true;
      if (phase == Phase::kSwitched) return absl::OkStatus();  // contract re-run after its commit
      if (phase == Phase::kRegistered) {
        return absl::NotFoundError(absl::StrCat("drop_column: column \"", spec_.column(),
                                                "\" does not exist in ", table_.Qualified()));
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "drop_column: column \"", spec_.column(), "\" of ", table_.Qualified(),
          " was dropped outside pgshift before contract; roll the migration back"));
    }
    gone_ = false;
    col_ = *col;
    for (const std::string& k : table_.primary_key) {
      if (k == col_.name) {
        return absl::InvalidArgumentError(absl::StrCat(
            "drop_column: column \"", col_.name, "\" of ", table_.Qualified(),
            " is part of the primary key; dropping it would silently drop the key. Give the table "
            "another primary key first"));
      }
    }
    if (phase == Phase::kRegistered && !spec_.down().empty()) {
      if (col_.generated != '\0') {
        return absl::InvalidArgumentError(absl::StrCat(
            "drop_column: column \"", col_.name, "\" is generated; it fills itself, so \"down\" "
            "cannot apply: remove \"down\" from the spec"));
      }
      RETURN_IF_ERROR(catalog::CheckExpression(conn, table_, spec_.down(), col_.type, "drop_column: down"));
    }
    ASSIGN_OR_RETURN(blockers_, Dependents(conn, /*blocking=*/true));
    ASSIGN_OR_RETURN(dropped_with_it_, Dependents(conn, /*blocking=*/false));
    if (static_cast<int>(phase) >= static_cast<int>(Phase::kBackfilled) && !blockers_.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "drop_column: ", absl::StrJoin(blockers_, "; "), " — depend on column \"", col_.name,
          "\" of ", table_.Qualified(),
          ", so DROP COLUMN at contract would fail. Drop or change them (they must not use the "
          "column), then advance again"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Action>> StepTo(Phase to) override {
    const std::string t = table_.Qualified();
    const std::string c = pg::QuoteIdent(spec_.column());
    switch (to) {
      case Phase::kTriggerInstalled: {
        if (gone_) return std::vector<Action>{};
        if (!spec_.down().empty()) {
          return InstallFillTrigger(table_, ctx_, spec_.column(), col_.type, spec_.down());
        }
        if (NeedsNullable()) {
          Action a = Transaction(
              table_,
              absl::StrCat("drop NOT NULL from ", spec_.column(),
                           " so that new app versions, which no longer write it, can insert; "
                           "rollback restores it"),
              {absl::StrCat("ALTER TABLE ", t, " ALTER COLUMN ", c, " DROP NOT NULL"),
               absl::StrCat("CREATE OR REPLACE FUNCTION ", Marker(),
                            "() RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true'"),
               absl::StrCat("COMMENT ON FUNCTION ", Marker(), "() IS ",
                            pg::QuoteLiteral(absl::StrCat(OwnerComment(ctx_), ": NOT NULL of ",
                                                          spec_.column(), " dropped; rollback restores it")))},
              "ACCESS EXCLUSIVE", Negate(FunctionMissing(table_, MarkerName())));
          return std::vector<Action>{a};
        }
        return std::vector<Action>{};
      }
      case Phase::kContracted: {
        std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
        sql.push_back(absl::StrCat("DROP FUNCTION IF EXISTS ", Marker(), "()"));
        sql.push_back(absl::StrCat("ALTER TABLE ", t, " DROP COLUMN ", c));
        std::string also = dropped_with_it_.empty()
                               ? ""
                               : absl::StrCat(" (which also drops ", absl::StrJoin(dropped_with_it_, ", "), ")");
        Action a = Transaction(table_, absl::StrCat("drop the trigger and column ", spec_.column(), also),
                               std::move(sql), "ACCESS EXCLUSIVE", ColumnMissing(table_, spec_.column()));
        a.irreversible = true;
        return std::vector<Action>{a};
      }
      default:
        return std::vector<Action>{};
    }
  }

  absl::Status InspectForRollback(pg::Connection& conn) override {
    ASSIGN_OR_RETURN(table_, catalog::LoadTable(conn, schema_, spec_.table()));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Action>> Rollback() override {
    std::vector<Action> out;
    const std::string c = pg::QuoteIdent(spec_.column());
    if (table_.FindColumn(spec_.column()) != nullptr) {
      // Restore NOT NULL when our marker says the trigger step dropped it.
      Guard no_marker = FunctionMissing(table_, MarkerName());
      out.push_back(Assert(
          table_, absl::StrCat("check that no row has ", spec_.column(), " NULL before restoring NOT NULL"),
          absl::StrCat(c, " IS NULL AND to_regprocedure(", pg::QuoteLiteral(Marker() + "()"),
                       ") IS NOT NULL"),
          absl::StrCat("rows where ", spec_.column(),
                       " is NULL (written by new app versions after NOT NULL was dropped); NOT NULL "
                       "cannot be restored until they hold a value: set it, then run rollback again")));
      std::vector<Action> check = NotNullCheckActions(table_, ctx_, spec_.column());
      Guard add_done{check[0].done_if, check[0].done_if_params};
      Guard either = Either(no_marker, add_done);
      check[0].done_if = either.sql;
      check[0].done_if_params = either.params;
      for (Action& a : check) out.push_back(std::move(a));
      Action set = NotNullFromCheckAction(table_, ctx_, spec_.column());
      set.description = absl::StrCat("restore NOT NULL on ", spec_.column(), " (validated check, no scan)");
      set.statements.push_back(absl::StrCat("DROP FUNCTION IF EXISTS ", Marker(), "()"));
      set.done_if = no_marker.sql;
      set.done_if_params = no_marker.params;
      out.push_back(std::move(set));
    }
    std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
    sql.push_back(absl::StrCat("DROP FUNCTION IF EXISTS ", Marker(), "()"));
    sql.push_back(absl::StrCat("ALTER TABLE ", table_.Qualified(), " DROP CONSTRAINT IF EXISTS ",
                               pg::QuoteIdent(NotNullCheckName(ctx_))));
    // Skipped only when everything is gone.
    Guard check_gone = {"SELECT NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass "
                        "AND conname = $2)",
                        {table_.Qualified(), NotNullCheckName(ctx_)}};
    out.push_back(Transaction(
        table_, "drop the fill trigger and pgshift's helpers", std::move(sql), "ACCESS EXCLUSIVE",
        Both(Both(TriggersGone(table_, ctx_), FunctionMissing(table_, MarkerName())), check_gone)));
    return out;
  }

 private:
  // NOT NULL without a default (identity and generated columns fill themselves).
  bool NeedsNullable() const {
    return col_.not_null && !col_.default_expr && col_.identity == '\0' && col_.generated == '\0';
  }
  std::string MarkerName() const { return absl::StrCat(ctx_.prefix, "_notnull_dropped"); }
  std::string Marker() const { return HelperFunction(table_, ctx_, "notnull_dropped"); }

  // Objects depending on the column, described for the user. Blocking: a
  // plain DROP COLUMN refuses to drop them (a normal dependency and no
  // automatic one). Otherwise: what DROP COLUMN drops along with the column
  // (its indexes, constraints, statistics). pgshift's own trigger is left out.
  absl::StatusOr<std::vector<std::string>> Dependents(pg::Connection& conn, bool blocking) {
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
            {table_.Qualified(), std::to_string(col_.attnum), absl::StrCat("zz_", ctx_.prefix, "_ins"),
             absl::StrCat("zz_", ctx_.prefix, "_upd"), blocking ? "true" : "false"}));
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.Get(i, 0));
    return out;
  }

  v1::DropColumn spec_;
  std::string schema_;
  Context ctx_;
  catalog::Table table_;
  catalog::Column col_;
  bool gone_ = false;
  std::vector<std::string> blockers_;
  std::vector<std::string> dropped_with_it_;
};

}  // namespace

std::unique_ptr<Operation> NewDropColumn(const v1::DropColumn& spec, const std::string& schema,
                                         const Context& ctx) {
  return std::make_unique<DropColumn>(spec, schema, ctx);
}

}  // namespace pgshift::ops
