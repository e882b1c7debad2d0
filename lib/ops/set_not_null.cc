// set_not_null {table, column, fill} (design §3): no new column. A trigger
// replaces NULLs written by old app versions with `fill`, the backfill
// replaces the existing NULLs, validate adds CHECK (column IS NOT NULL) NOT
// VALID and validates it, switch sets NOT NULL (no scan: the server uses the
// validated check) and drops the check, contract drops the trigger.
#include "absl/strings/str_cat.h"
#include "lib/ops/common.h"
#include "lib/ops/ops.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

class SetNotNull : public Operation {
 public:
  SetNotNull(v1::SetNotNull spec, std::string schema, Context ctx)
      : spec_(std::move(spec)), schema_(std::move(schema)), ctx_(std::move(ctx)) {}

  std::string Describe() const override {
    return absl::StrCat("set_not_null ", pg::QuoteQualified(schema_, spec_.table()), ".",
                        pg::QuoteIdent(spec_.column()));
  }

  std::vector<Touch> Touches() const override { return {{schema_, spec_.table(), spec_.column()}}; }

  int64_t RowEstimate() const override { return table_.row_estimate; }

  absl::Status Inspect(pg::Connection& conn, Phase phase) override {
    ASSIGN_OR_RETURN(table_, catalog::LoadTable(conn, schema_, spec_.table()));
    const catalog::Column* col = table_.FindColumn(spec_.column());
    if (col == nullptr) {
      return absl::NotFoundError(absl::StrCat("set_not_null: column \"", spec_.column(),
                                              "\" does not exist in ", table_.Qualified()));
    }
    col_ = *col;
    if (col_.generated != '\0') {
      return absl::InvalidArgumentError(absl::StrCat(
          "set_not_null: column \"", col_.name, "\" of ", table_.Qualified(),
          " is a generated column; its value comes from its expression, which pgshift cannot fill. "
          "Make the generation expression non-NULL instead"));
    }
    if (phase == Phase::kRegistered) {
      bool ours = false;  // NOT NULL set by this migration's switch (plan re-run)
      if (col_.not_null) {
        Guard g = TriggerInstalled(table_, ctx_);
        ASSIGN_OR_RETURN(pg::Result r, conn.Exec(g.sql, g.params));
        ours = r.GetBool(0, 0);
      }
      if (col_.not_null && !ours) {
        return absl::InvalidArgumentError(absl::StrCat("set_not_null: column \"", col_.name, "\" of ",
                                                       table_.Qualified(),
                                                       " is already NOT NULL; nothing to do"));
      }
      RETURN_IF_ERROR(catalog::CheckExpression(conn, table_, spec_.fill(), col_.type,
                                               "set_not_null: fill"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Action>> StepTo(Phase to) override {
    const std::string c = pg::QuoteIdent(spec_.column());
    switch (to) {
      case Phase::kTriggerInstalled:
        return InstallFillTrigger(table_, ctx_, spec_.column(), col_.type, spec_.fill());
      case Phase::kBackfilled:
        return std::vector<Action>{BackfillAction(
            table_, absl::StrCat("replace NULLs in ", spec_.column(), " with fill, in batches"),
            MakeBackfill(table_, absl::StrCat(c, " = ", CastTo(spec_.fill(), col_.type)),
                         absl::StrCat(c, " IS NULL")))};
      case Phase::kValidated: {
        std::vector<Action> out;
        out.push_back(Assert(table_, absl::StrCat("check that no row has ", spec_.column(), " NULL"),
                             absl::StrCat(c, " IS NULL"),
                             absl::StrCat("rows where ", spec_.column(),
                                          " is still NULL (fill yielded NULL for them?)")));
        for (Action& a : NotNullCheckActions(table_, ctx_, spec_.column())) out.push_back(std::move(a));
        return out;
      }
      case Phase::kSwitched:
        return std::vector<Action>{NotNullFromCheckAction(table_, ctx_, spec_.column())};
      case Phase::kContracted:
        return std::vector<Action>{Transaction(table_, "drop the fill trigger and its function",
                                               DropTriggerSql(table_, ctx_), "ACCESS EXCLUSIVE",
                                               TriggersGone(table_, ctx_))};
      default:
        return std::vector<Action>{};
    }
  }

  absl::Status InspectForRollback(pg::Connection& conn) override {
    ASSIGN_OR_RETURN(table_, catalog::LoadTable(conn, schema_, spec_.table()));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Action>> Rollback() override {
    // The column was nullable when the migration was registered (Inspect
    // refuses a NOT NULL column), and only the switch step, which runs while
    // our trigger exists, sets NOT NULL. So NOT NULL together with our trigger
    // means we set it; the trigger goes in the next action, after this one
    // has committed.
    Guard not_ours = TriggerInstalled(table_, ctx_);
    not_ours.sql = absl::StrCat(
        "SELECT NOT (coalesce((SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass "
        "AND attname = $3 AND NOT attisdropped), false) AND (",
        not_ours.sql, "))");
    not_ours.params.push_back(spec_.column());
    Action drop_nn = Transaction(
        table_, absl::StrCat("drop the NOT NULL that pgshift set on ", spec_.column()),
        {absl::StrCat("ALTER TABLE ", table_.Qualified(), " ALTER COLUMN ",
                      pg::QuoteIdent(spec_.column()), " DROP NOT NULL")},
        "ACCESS EXCLUSIVE", not_ours);
    std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
    sql.push_back(absl::StrCat("ALTER TABLE ", table_.Qualified(), " DROP CONSTRAINT IF EXISTS ",
                               pg::QuoteIdent(NotNullCheckName(ctx_))));
    Guard gone = TriggersGone(table_, ctx_);
    gone.sql = absl::StrCat("SELECT (", gone.sql.substr(7),
                            ") AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass "
                            "AND conname = $6)");
    gone.params.push_back(NotNullCheckName(ctx_));
    Action drop = Transaction(table_, "drop the fill trigger, its function and the NOT NULL check",
                              std::move(sql), "ACCESS EXCLUSIVE", gone);
    return std::vector<Action>{drop_nn, drop};
  }

 private:
  v1::SetNotNull spec_;
  std::string schema_;
  Context ctx_;
  catalog::Table table_;
  catalog::Column col_;
};

}  // namespace

std::unique_ptr<Operation> NewSetNotNull(const v1::SetNotNull& spec, const std::string& schema,
                                         const Context& ctx) {
  return std::make_unique<SetNotNull>(spec, schema, ctx);
}

}  // namespace pgshift::ops
