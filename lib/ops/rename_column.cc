// rename_column {table, from, to} (design §3): add `to` with the same type and
// collation, keep both columns in sync with a trigger (old wins before switch,
// new wins after), backfill, copy NOT NULL, indexes and constraints, switch,
// then drop the trigger and `from` and give `to` the old default and names.
#include "lib/ops/ops.h"

#include "absl/strings/str_cat.h"
#include "lib/ops/common.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

class RenameColumn : public Operation {
 public:
  RenameColumn(v1::RenameColumn spec, std::string schema, Context ctx)
      : spec_(std::move(spec)), schema_(std::move(schema)), ctx_(std::move(ctx)) {}

  std::string Describe() const override {
    return absl::StrCat("rename_column ", pg::QuoteQualified(schema_, spec_.table()), ".",
                        pg::QuoteIdent(spec_.from()), " -> ", pg::QuoteIdent(spec_.to()));
  }

  std::vector<Touch> Touches() const override {
    return {{schema_, spec_.table(), spec_.from()}, {schema_, spec_.table(), spec_.to()}};
  }

  int64_t RowEstimate() const override { return table_.row_estimate; }

  absl::Status Inspect(pg::Connection& conn, Phase phase) override {
    ASSIGN_OR_RETURN(table_, catalog::LoadTable(conn, schema_, spec_.table()));
    const catalog::Column* from = table_.FindColumn(spec_.from());
    const catalog::Column* to = table_.FindColumn(spec_.to());
    if (from == nullptr) {
      if (phase == Phase::kSwitched && to != nullptr) return absl::OkStatus();  // contract re-run
      return absl::NotFoundError(absl::StrCat("rename_column: column \"", spec_.from(),
                                              "\" does not exist in ", table_.Qualified()));
    }
    from_ = *from;
    RETURN_IF_ERROR(CheckReplaceable(conn, table_, ctx_, from_, "rename_column"));
    ASSIGN_OR_RETURN(owned_sequences_, catalog::OwnedSequences(conn, table_, from_.attnum));
    if (phase == Phase::kRegistered) {
      if (to != nullptr && to->comment != OwnerComment(ctx_)) {
        return absl::AlreadyExistsError(absl::StrCat("rename_column: column \"", spec_.to(),
                                                     "\" already exists in ", table_.Qualified(),
                                                     "; choose another target name"));
      }
    } else if (to == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "rename_column: column \"", spec_.to(), "\" that pgshift added to ", table_.Qualified(),
          " is gone (dropped outside pgshift?); roll the migration back and register it again"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Action>> StepTo(Phase to) override {
    const std::string t = table_.Qualified();
    const std::string f = pg::QuoteIdent(spec_.from()), n = pg::QuoteIdent(spec_.to());
    SyncSpec sync{spec_.from(), spec_.to(), from_.type, from_.type, "", ""};
    switch (to) {
      case Phase::kColumnAdded: {
        std::string collate = from_.collation.empty() ? "" : absl::StrCat(" COLLATE ", from_.collation);
        return std::vector<Action>{Transaction(
            table_, absl::StrCat("add column ", spec_.to(), " (nullable, no default)"),
            {absl::StrCat("ALTER TABLE ", t, " ADD COLUMN ", n, " ", from_.type, collate),
             absl::StrCat("COMMENT ON COLUMN ", t, ".", n, " IS ", pg::QuoteLiteral(OwnerComment(ctx_)))},
            "ACCESS EXCLUSIVE", ColumnExists(table_, spec_.to()))};
      }
      case Phase::kTriggerInstalled:
        return InstallSyncTrigger(table_, ctx_, sync);
      case Phase::kBackfilled: {
        Action a;
        a.kind = Action::Kind::kBackfill;
        a.description = absl::StrCat("copy ", spec_.from(), " into ", spec_.to(), " in batches");
        a.table = t;
        a.lock = "ROW EXCLUSIVE";
        a.backfill = Backfill(absl::StrCat(n, " = ", f), absl::StrCat(n, " IS DISTINCT FROM ", f));
        return std::vector<Action>{a};
      }
      case Phase::kValidated: {
        std::vector<Action> out;
        out.push_back(Assert(table_, absl::StrCat("check that ", spec_.to(), " equals ", spec_.from()),
                             absl::StrCat(f, " IS DISTINCT FROM ", n),
                             absl::StrCat("rows where ", spec_.to(), " differs from ", spec_.from())));
        if (from_.not_null) {
          for (Action& a : SetNotNullActions(table_, ctx_, spec_.to())) out.push_back(std::move(a));
        }
        ASSIGN_OR_RETURN(std::vector<Action> copies,
                         CopyColumnObjects(table_, ctx_, spec_.from(), spec_.to()));
        for (Action& a : copies) out.push_back(std::move(a));
        return out;
      }
      case Phase::kSwitched:
        return std::vector<Action>{SwitchSyncTrigger(table_, ctx_, sync)};
      case Phase::kContracted: {
        std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
        for (const std::string& s : owned_sequences_) {
          sql.push_back(absl::StrCat("ALTER SEQUENCE ", s, " OWNED BY ", t, ".", n));
        }
        sql.push_back(absl::StrCat("ALTER TABLE ", t, " DROP COLUMN ", f));
        if (from_.default_expr) {
          sql.push_back(absl::StrCat("ALTER TABLE ", t, " ALTER COLUMN ", n, " SET DEFAULT ",
                                     *from_.default_expr));
        }
        for (std::string& s : RenameCopiesSql(table_, ctx_, spec_.from())) sql.push_back(std::move(s));
        sql.push_back(absl::StrCat("COMMENT ON COLUMN ", t, ".", n, " IS ",
                                   from_.comment ? pg::QuoteLiteral(*from_.comment) : "NULL"));
        Action a = Transaction(table_, absl::StrCat("drop the trigger and column ", spec_.from(),
                                                    "; ", spec_.to(), " takes its default and names"),
                               std::move(sql), "ACCESS EXCLUSIVE", ColumnMissing(table_, spec_.from()));
        a.irreversible = true;
        return std::vector<Action>{a};
      }
      default:
        return std::vector<Action>{};
    }
  }

  absl::StatusOr<std::vector<Action>> Rollback() override {
    // The trigger and the column go in one transaction: with the trigger gone
    // and `to` still there (NOT NULL since validate), an old app's INSERT
    // would fail. The second action drops a trigger left without our column.
    std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
    sql.push_back(absl::StrCat("ALTER TABLE ", table_.Qualified(), " DROP COLUMN ",
                               pg::QuoteIdent(spec_.to())));
    Action col = Transaction(
        table_, absl::StrCat("drop the sync trigger and column ", spec_.to(), " that pgshift added"),
        std::move(sql), "ACCESS EXCLUSIVE", ColumnNotOurs(table_, spec_.to(), ctx_));
    Action drop = Transaction(table_, "drop the sync trigger", DropTriggerSql(table_, ctx_),
                              "ACCESS EXCLUSIVE");
    return std::vector<Action>{col, drop};
  }

  absl::Status InspectForRollback(pg::Connection& conn) override {
    ASSIGN_OR_RETURN(table_, catalog::LoadTable(conn, schema_, spec_.table()));
    return absl::OkStatus();
  }

 private:
  BackfillSpec Backfill(std::string set, std::string needs) const {
    BackfillSpec b;
    b.table = table_.Qualified();
    b.key = table_.primary_key;  // empty: the backfill walks ctid page ranges
    for (const auto& k : b.key) b.key_types.push_back(table_.FindColumn(k)->type);
    b.set_clause = std::move(set);
    b.needs_work = std::move(needs);
    return b;
  }

 private:
  v1::RenameColumn spec_;
  std::string schema_;
  Context ctx_;
  catalog::Table table_;
  catalog::Column from_;
  std::vector<std::string> owned_sequences_;
};

}  // namespace

std::unique_ptr<Operation> NewRenameColumn(const v1::RenameColumn& spec, const std::string& schema,
                                           const Context& ctx) {
  return std::make_unique<RenameColumn>(spec, schema, ctx);
}

}  // namespace pgshift::ops
