// set_not_null {table, column, fill?} (docs/operations/set_not_null.md): no
// new column. A trigger replaces NULLs written by old app versions with
// `fill`, the backfill replaces the existing NULLs, validate adds CHECK
// (column IS NOT NULL) NOT VALID and validates it, switch sets NOT NULL (no
// scan: the server uses the validated check) and drops the check, contract
// drops the trigger. Without `fill` there is no trigger and no backfill:
// validate fails, naming sample keys, while NULLs remain, and a marker
// function stands in for the trigger as the record that the NOT NULL the
// switch sets is pgshift's (rollback drops only that).
#include <optional>

#include "absl/strings/str_cat.h"
#include "lib/ops/guards.h"
#include "lib/ops/not_null.h"
#include "lib/ops/registry.h"
#include "lib/ops/triggers.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

constexpr absl::string_view kMarker = "notnull_set";

// Whether pgshift owns the column's NOT NULL from the switch on: our fill
// trigger, or without a fill our marker function, exists.
Guard Owned(const catalog::Table& t, const Context& ctx) {
  return Guard::Any({TriggerExists(t, ctx.names.insert_trigger()), FunctionExists(t, ctx.names.helper(kMarker))});
}

std::string DropMarkerSql(const catalog::Table& t, const Context& ctx) {
  return absl::StrCat("DROP FUNCTION IF EXISTS ", HelperFunction(t, ctx, kMarker), "()");
}

class SetNotNullSteps : public Steps {
 public:
  SetNotNullSteps(const v1::SetNotNull& spec, const Context& ctx, std::optional<sql::Expression> fill,
                  catalog::Table table, catalog::Column col)
      : spec_(spec), ctx_(ctx), fill_(std::move(fill)), table_(std::move(table)), col_(std::move(col)) {}

  int64_t RowEstimate() const override { return fill_ ? table_.row_estimate : 0; }

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    const std::string c = pg::QuoteIdent(spec_.column());
    switch (to) {
      case Phase::kTriggerInstalled:
        if (fill_) return InstallFillTrigger(table_, ctx_, spec_.column(), col_.type_info(), *fill_);
        return std::vector<Action>{CatalogOnly(
            "record that the NOT NULL the switch sets is pgshift's (no fill: no trigger)",
            {absl::StrCat("CREATE OR REPLACE FUNCTION ", HelperFunction(table_, ctx_, kMarker),
                          "() RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true'"),
             absl::StrCat("COMMENT ON FUNCTION ", HelperFunction(table_, ctx_, kMarker), "() IS ",
                          pg::QuoteLiteral(absl::StrCat(ctx_.names.owner_comment(), ": NOT NULL of ",
                                                        spec_.column(), " is set by this migration")))},
            FunctionExists(table_, ctx_.names.helper(kMarker)))};
      case Phase::kBackfilled:
        if (!fill_) return std::vector<Action>{};
        return std::vector<Action>{Backfill(
            table_, absl::StrCat("replace NULLs in ", spec_.column(), " with fill, in batches"),
            BackfillOf(table_, absl::StrCat(c, " = ", CastTo(*fill_, col_.type_info())),
                       absl::StrCat(c, " IS NULL")))};
      case Phase::kValidated: {
        std::vector<Action> out;
        out.push_back(Assert(
            table_, absl::StrCat("check that no row has ", spec_.column(), " NULL"), absl::StrCat(c, " IS NULL"),
            fill_ ? absl::StrCat("rows where ", spec_.column(), " is still NULL (fill yielded NULL for them?)")
                  : absl::StrCat("rows where ", spec_.column(),
                                 " is NULL and no fill replaces them (give them a value, then run "
                                 "advance again)")));
        for (Action& a : NotNullCheckActions(table_, ctx_, spec_.column())) out.push_back(std::move(a));
        return out;
      }
      case Phase::kSwitched:
        return std::vector<Action>{NotNullFromCheckAction(table_, ctx_, spec_.column())};
      case Phase::kContracted:
        if (!fill_) {
          return std::vector<Action>{CatalogOnly("drop the marker function", {DropMarkerSql(table_, ctx_)},
                                                 Guard::Not(FunctionExists(table_, ctx_.names.helper(kMarker))))};
        }
        return std::vector<Action>{Transaction(table_, "drop the fill trigger and its function",
                                               DropTriggerSql(table_, ctx_),
                                               pg::LockMode::kAccessExclusive,
                                               TriggersGone(table_, ctx_.names))};
      default:
        return std::vector<Action>{};
    }
  }

 private:
  v1::SetNotNull spec_;
  Context ctx_;
  std::optional<sql::Expression> fill_;
  catalog::Table table_;
  catalog::Column col_;
};

class SetNotNull : public Operation {
 public:
  SetNotNull(v1::SetNotNull spec, std::optional<sql::Expression> fill, Context ctx)
      : Operation(std::move(ctx)), spec_(std::move(spec)), fill_(std::move(fill)) {}

  std::string Describe() const override {
    return absl::StrCat("set_not_null ", pg::QuoteQualified(ctx_.schema, spec_.table()), ".",
                        pg::QuoteIdent(spec_.column()));
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    const catalog::Column* col = table.FindColumn(spec_.column());
    if (col == nullptr) {
      return absl::NotFoundError(absl::StrCat("set_not_null: column \"", spec_.column(),
                                              "\" does not exist in ", table.Qualified()));
    }
    if (col->generated != '\0') {
      return absl::InvalidArgumentError(absl::StrCat(
          "set_not_null: column \"", col->name, "\" of ", table.Qualified(),
          " is a generated column; its value comes from its expression, which pgshift cannot fill. "
          "Make the generation expression non-NULL instead"));
    }
    if (phase == Phase::kRegistered) {
      // NOT NULL is ours when our trigger or marker exists (a plan run
      // again after switch).
      if (col->not_null) {
        ASSIGN_OR_RETURN(pg::Result r,
                         conn.Exec("SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = "
                                   "$1::regclass AND tgname = $2) OR EXISTS (SELECT 1 FROM pg_proc "
                                   "WHERE pronamespace = $3::regnamespace AND proname = $4)",
                                   {table.Qualified(), ctx_.names.insert_trigger(),
                                    pg::QuoteIdent(table.schema), ctx_.names.helper(kMarker)}));
        if (!r.GetBool(0, 0)) {
          return absl::InvalidArgumentError(absl::StrCat("set_not_null: column \"", col->name, "\" of ",
                                                         table.Qualified(),
                                                         " is already NOT NULL; nothing to do"));
        }
      }
      if (fill_) RETURN_IF_ERROR(catalog::CheckExpression(conn, table, *fill_, col->type, "set_not_null: fill"));
      catalog::TableNeeds needs;  // a fill trigger (or the marker), a backfill, a check that counts rows
      needs.reads_rows = true;
      needs.creates_functions = true;
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, "set_not_null", needs));
    }
    catalog::Column c = *col;
    return std::unique_ptr<Steps>(new SetNotNullSteps(spec_, ctx_, fill_, std::move(table), std::move(c)));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection& conn) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    // The column was nullable when the migration was registered (Inspect
    // refuses a NOT NULL column), and only the switch step, which runs while
    // our trigger exists, sets NOT NULL. So NOT NULL together with our
    // trigger means we set it; the trigger goes in the next action, after
    // this one has committed.
    Action drop_nn = Transaction(
        table, absl::StrCat("drop the NOT NULL that pgshift set on ", spec_.column()),
        {absl::StrCat("ALTER TABLE ", table.Qualified(), " ALTER COLUMN ",
                      pg::QuoteIdent(spec_.column()), " DROP NOT NULL")},
        pg::LockMode::kAccessExclusive,
        Guard::Not(Guard::All({ColumnNotNull(table, spec_.column()), Owned(table, ctx_)})));
    std::vector<std::string> sql = DropTriggerSql(table, ctx_);
    sql.push_back(DropMarkerSql(table, ctx_));
    sql.push_back(absl::StrCat("ALTER TABLE ", table.Qualified(), " DROP CONSTRAINT IF EXISTS ",
                               pg::QuoteIdent(ctx_.names.not_null_check())));
    Action drop = Transaction(
        table, "drop the fill trigger, its function, the marker and the NOT NULL check", std::move(sql),
        pg::LockMode::kAccessExclusive,
        Guard::All({TriggersGone(table, ctx_.names),
                    Guard::Not(FunctionExists(table, ctx_.names.helper(kMarker))),
                    Guard::Not(ConstraintExists(table, ctx_.names.not_null_check()))}));
    return std::vector<Action>{std::move(drop_nn), std::move(drop)};
  }

 private:
  v1::SetNotNull spec_;
  std::optional<sql::Expression> fill_;
};

absl::Status Validate(const v1::Operation&, const std::string&) { return absl::OkStatus(); }

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  const v1::SetNotNull& o = op.set_not_null();
  std::vector<Touch> out = {{schema, o.table(), o.column()}};
  for (Touch& t : ReadsOf(schema, o.table(), o.fill(), {o.column()})) out.push_back(t);
  return out;
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  std::optional<sql::Expression> fill;
  if (!op.set_not_null().fill().empty()) {
    ASSIGN_OR_RETURN(fill, sql::Expression::Parse(op.set_not_null().fill(), "set_not_null.fill"));
  }
  return std::unique_ptr<Operation>(new SetNotNull(op.set_not_null(), std::move(fill), std::move(ctx)));
}

}  // namespace

extern const OperationType kSetNotNullType = {v1::Operation::kSetNotNull, "set_not_null", &Validate,
                                              &Touches, &Make};

}  // namespace pgshift::ops
