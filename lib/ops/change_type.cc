// change_type {table, column, new_column, type, up, down} (design §3): add
// `new_column` of `type` (nullable, no default), a trigger keeps both columns
// in sync (writes to the old column set new := up(row), writes to the new
// one set old := down(row); old wins conflicting writes before switch, new
// after), the backfill computes new := up(row) with the trigger silenced (so
// a lossy `down` never touches the old column), validate fails with sample
// keys on rows where `up` gave NULL for a non-NULL value or raised, then
// copies NOT NULL, indexes, unique constraints, foreign keys and CHECKs to
// the new column. Contract drops the trigger and the old column and gives
// the new column the old default (cast to the new type) and the original
// index and constraint names.
//
// Refused up front (register/plan): primary-key, identity and generated
// columns, columns that views, policies, triggers, other tables' foreign
// keys or exclusion constraints use (CheckReplaceable); a default or a CHECK
// constraint that does not apply to the new type; foreign keys whose
// referenced column cannot be compared with the new type; a new type that is
// a domain with constraints.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "lib/ops/common.h"
#include "lib/ops/ops.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

class ChangeType : public Operation {
 public:
  ChangeType(v1::ChangeType spec, std::string schema, Context ctx)
      : spec_(std::move(spec)), schema_(std::move(schema)), ctx_(std::move(ctx)) {}

  std::string Describe() const override {
    return absl::StrCat("change_type ", pg::QuoteQualified(schema_, spec_.table()), ".",
                        pg::QuoteIdent(spec_.column()), " -> ", pg::QuoteIdent(spec_.new_column()), " ",
                        spec_.type());
  }

  std::vector<Touch> Touches() const override {
    return {{schema_, spec_.table(), spec_.column()}, {schema_, spec_.table(), spec_.new_column()}};
  }

  int64_t RowEstimate() const override { return table_.row_estimate; }

  absl::Status Inspect(pg::Connection& conn, Phase phase) override {
    ASSIGN_OR_RETURN(table_, catalog::LoadTable(conn, schema_, spec_.table()));
    const catalog::Column* old_col = table_.FindColumn(spec_.column());
    const catalog::Column* new_col = table_.FindColumn(spec_.new_column());
    gone_ = old_col == nullptr;
    if (old_col == nullptr) {
      if (phase == Phase::kSwitched && new_col != nullptr) return absl::OkStatus();  // contract re-run
      return absl::NotFoundError(absl::StrCat("change_type: column \"", spec_.column(),
                                              "\" does not exist in ", table_.Qualified()));
    }
    old_ = *old_col;
    RETURN_IF_ERROR(CheckReplaceable(conn, table_, ctx_, old_, "change_type"));
    ASSIGN_OR_RETURN(owned_sequences_, catalog::OwnedSequences(conn, table_, old_.attnum));
    if (phase == Phase::kRegistered) {
      if (new_col != nullptr && new_col->comment != OwnerComment(ctx_)) {
        return absl::AlreadyExistsError(absl::StrCat("change_type: column \"", spec_.new_column(),
                                                     "\" already exists in ", table_.Qualified(),
                                                     "; choose another new_column name"));
      }
      RETURN_IF_ERROR(CheckSpec(conn));
    } else if (new_col == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "change_type: column \"", spec_.new_column(), "\" that pgshift added to ", table_.Qualified(),
          " is gone (dropped outside pgshift?); roll the migration back and register it again"));
    }
    ASSIGN_OR_RETURN(pg::Result coll,
                     conn.Exec("SELECT typcollation <> 0 FROM pg_type WHERE oid = $1::regtype",
                               {spec_.type()}));
    collatable_ = coll.rows() > 0 && coll.GetBool(0, 0);
    // The row as it is before the new column exists (what `up` reads), and as
    // it is once it does (what the trigger reads), the same at plan time as
    // at advance time.
    before_ = table_;
    before_.columns.clear();
    for (const catalog::Column& c : table_.columns) {
      if (c.name != spec_.new_column()) before_.columns.push_back(c);
    }
    catalog::Column added;
    if (new_col != nullptr) added = *new_col;
    added.name = spec_.new_column();
    added.type = spec_.type();
    table_.columns = before_.columns;
    table_.columns.push_back(added);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Action>> StepTo(Phase to) override {
    const std::string t = table_.Qualified();
    const std::string o = pg::QuoteIdent(spec_.column()), n = pg::QuoteIdent(spec_.new_column());
    SyncSpec sync{spec_.column(), spec_.new_column(), old_.type, spec_.type(), spec_.up(), spec_.down()};
    RowFunction up = LenientRowFunction(before_, ctx_, "up", spec_.up(), spec_.type());
    switch (to) {
      case Phase::kColumnAdded: {
        std::string collate = collatable_ && !old_.collation.empty()
                                  ? absl::StrCat(" COLLATE ", old_.collation) : "";
        return std::vector<Action>{Transaction(
            table_, absl::StrCat("add column ", spec_.new_column(), " ", spec_.type(), " (nullable, no default)"),
            {absl::StrCat("ALTER TABLE ", t, " ADD COLUMN ", n, " ", spec_.type(), collate),
             absl::StrCat("COMMENT ON COLUMN ", t, ".", n, " IS ", pg::QuoteLiteral(OwnerComment(ctx_)))},
            "ACCESS EXCLUSIVE", ColumnExists(table_, spec_.new_column()))};
      }
      case Phase::kTriggerInstalled:
        return InstallSyncTrigger(table_, ctx_, sync);
      case Phase::kBackfilled: {
        Action fn = Transaction(table_, "create the backfill's conversion function (NULL where up raises)",
                                {up.create_sql}, "none");
        // The plain expression does the work (as fast as a plain UPDATE);
        // a batch in which it raises runs again with the lenient function
        // (a PL/pgSQL call with an exception block per row, several times
        // slower), which leaves NULL where up raises for validate to report.
        BackfillSpec b = MakeBackfill(table_, absl::StrCat(n, " = ", CastTo(spec_.up(), spec_.type())),
                                      absl::StrCat(n, " IS NULL"));
        b.fallback_set_clause = absl::StrCat(n, " = ", up.call);
        Action fill = BackfillAction(
            table_, absl::StrCat("compute ", spec_.new_column(), " from up in batches (trigger silenced: ",
                                 spec_.column(), " is never written)"),
            std::move(b));
        return std::vector<Action>{fn, fill};
      }
      case Phase::kValidated: {
        std::vector<Action> out;
        out.push_back(Assert(
            table_, absl::StrCat("check that up gave a value wherever ", spec_.column(), " has one"),
            absl::StrCat(o, " IS NOT NULL AND ", n, " IS NULL"),
            absl::StrCat("rows where up yielded NULL from a non-NULL ", spec_.column(),
                         ", or raised; fix those rows (an UPDATE of ", spec_.column(),
                         " recomputes ", spec_.new_column(), ") or roll back and change up")));
        if (old_.not_null) {
          for (Action& a : SetNotNullActions(table_, ctx_, spec_.new_column())) out.push_back(std::move(a));
        }
        ASSIGN_OR_RETURN(std::vector<Action> copies,
                         CopyColumnObjects(table_, ctx_, spec_.column(), spec_.new_column()));
        for (Action& a : copies) out.push_back(std::move(a));
        return out;
      }
      case Phase::kSwitched:
        return std::vector<Action>{SwitchSyncTrigger(table_, ctx_, sync)};
      case Phase::kContracted: {
        std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
        sql.push_back(up.drop_sql);
        for (const std::string& s : owned_sequences_) {
          sql.push_back(absl::StrCat("ALTER SEQUENCE ", s, " OWNED BY ", t, ".", n));
        }
        sql.push_back(absl::StrCat("ALTER TABLE ", t, " DROP COLUMN ", o));
        if (old_.default_expr) {
          sql.push_back(absl::StrCat("ALTER TABLE ", t, " ALTER COLUMN ", n, " SET DEFAULT ",
                                     CastTo(*old_.default_expr, spec_.type())));
        }
        for (std::string& s : RenameCopiesSql(table_, ctx_, spec_.column())) sql.push_back(std::move(s));
        sql.push_back(absl::StrCat("COMMENT ON COLUMN ", t, ".", n, " IS ",
                                   old_.comment ? pg::QuoteLiteral(*old_.comment) : "NULL"));
        Action a = Transaction(table_,
                               absl::StrCat("drop the trigger and column ", spec_.column(), "; ",
                                            spec_.new_column(), " takes its default and names"),
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
    std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
    sql.push_back(absl::StrCat("DROP FUNCTION IF EXISTS ", HelperFunction(table_, ctx_, "up")));
    Guard both = Both(TriggersGone(table_, ctx_), FunctionMissing(table_, absl::StrCat(ctx_.prefix, "_up")));
    Action drop = Transaction(table_, "drop the sync trigger and its functions", std::move(sql),
                              "ACCESS EXCLUSIVE", both);
    // Trigger and column in one transaction: once validate copied NOT NULL,
    // an old app's INSERT between "trigger gone" and "column gone" would
    // fail. `drop` then removes a trigger left without our column.
    std::vector<std::string> col_sql = drop.statements;
    col_sql.push_back(absl::StrCat("ALTER TABLE ", table_.Qualified(), " DROP COLUMN ",
                                   pg::QuoteIdent(spec_.new_column())));
    Action col = Transaction(
        table_, absl::StrCat("drop the sync trigger and column ", spec_.new_column(),
                             " that pgshift added (and its copies of indexes and constraints)"),
        std::move(col_sql), "ACCESS EXCLUSIVE", ColumnNotOurs(table_, spec_.new_column(), ctx_));
    return std::vector<Action>{col, drop};
  }

 private:
  // Register-time checks of the spec against the catalog (nothing changes
  // when one fails).
  absl::Status CheckSpec(pg::Connection& conn) {
    RETURN_IF_ERROR(catalog::ResolveType(conn, spec_.type()).status());
    RETURN_IF_ERROR(RefuseConstrainedDomain(conn, spec_.type(), "change_type"));
    RETURN_IF_ERROR(catalog::CheckExpression(conn, table_, spec_.up(), spec_.type(), "change_type: up"));
    // `down` reads the new column, which exists only once column_added ran.
    std::vector<std::pair<std::string, std::string>> extra;
    if (table_.FindColumn(spec_.new_column()) == nullptr) extra.emplace_back(spec_.new_column(), spec_.type());
    RETURN_IF_ERROR(catalog::CheckExpression(conn, table_, spec_.down(), old_.type, "change_type: down", extra));
    if (old_.default_expr) {
      absl::Status s = catalog::CheckExpression(conn, table_, *old_.default_expr, spec_.type(),
                                                "change_type: the column's default");
      if (!s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            s.message(), ". Contract gives the new column the old default; drop it first (ALTER "
            "TABLE ... ALTER COLUMN ... DROP DEFAULT) or change it to one that fits ", spec_.type()));
      }
    }
    for (const catalog::Constraint& c : table_.constraints) {
      if (!c.Uses(old_.attnum) || absl::StartsWith(c.name, "pgshift_")) continue;
      if (c.type == 'c') {
        // pg_get_constraintdef: "CHECK (expr)" [" NOT VALID"]
        absl::string_view def = c.def;
        absl::ConsumeSuffix(&def, " NOT VALID");
        if (!absl::ConsumePrefix(&def, "CHECK ")) continue;
        std::string expr = RewriteColumn(def, spec_.column(), spec_.new_column());
        absl::Status s = catalog::CheckExpression(conn, table_, expr, "boolean",
                                                  absl::StrCat("change_type: CHECK constraint ", c.name), extra);
        if (!s.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              s.message(), ". pgshift copies every CHECK on the column to the new column and does not "
              "apply half of them; drop or rewrite constraint \"", c.name, "\" first, then register again"));
        }
      } else if (c.type == 'f') {
        ASSIGN_OR_RETURN(
            pg::Result ref,
            conn.Exec("SELECT format_type(a.atttypid, a.atttypmod) FROM pg_constraint c, "
                      "unnest(c.conkey, c.confkey) AS k(l, r) JOIN pg_attribute a ON a.attnum = k.r "
                      "WHERE c.conrelid = $1::regclass AND c.conname = $2 AND a.attrelid = c.confrelid "
                      "AND k.l = $3",
                      {table_.Qualified(), c.name, std::to_string(old_.attnum)}));
        for (int r = 0; r < ref.rows(); ++r) {
          absl::Status s = conn.Check(absl::StrCat("SELECT NULL::", spec_.type(), " = NULL::", ref.Get(r, 0)));
          if (!s.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "change_type: foreign key \"", c.name, "\" references a column of type ", ref.Get(r, 0),
                ", which cannot be compared with ", spec_.type(), " (", s.message(),
                "); drop the foreign key first or choose a compatible type"));
          }
        }
      }
    }
    return absl::OkStatus();
  }

  v1::ChangeType spec_;
  std::string schema_;
  Context ctx_;
  catalog::Table table_;   // with the new column (as the spec types it)
  catalog::Table before_;  // without it
  catalog::Column old_;
  bool gone_ = false;
  bool collatable_ = false;
  std::vector<std::string> owned_sequences_;
};

}  // namespace

std::unique_ptr<Operation> NewChangeType(const v1::ChangeType& spec, const std::string& schema,
                                         const Context& ctx) {
  return std::make_unique<ChangeType>(spec, schema, ctx);
}

}  // namespace pgshift::ops
