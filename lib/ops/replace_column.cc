#include "lib/ops/replace_column.h"

#include <map>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/ops/column_copies.h"
#include "lib/ops/guards.h"
#include "lib/ops/not_null.h"
#include "lib/ops/triggers.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

std::string Q(const std::string& s) { return pg::QuoteIdent(s); }

// What Inspect found, and the steps planned from it.
class ReplaceSteps : public Steps {
 public:
  ReplaceSteps(const Replacement& r, const Context& ctx) : r_(r), ctx_(ctx) {}

  int64_t RowEstimate() const override { return table_.row_estimate; }

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    switch (to) {
      case Phase::kColumnAdded:
        return std::vector<Action>{AddColumn()};
      case Phase::kTriggerInstalled:
        return InstallSyncTrigger(table_, ctx_, Sync());
      case Phase::kBackfilled:
        return Backfill();
      case Phase::kValidated:
        return Validate();
      case Phase::kSwitched:
        return std::vector<Action>{SwitchSyncTrigger(table_, ctx_, Sync())};
      case Phase::kContracted:
        if (gone_) return std::vector<Action>{};  // contract committed; re-run after a crash
        return std::vector<Action>{Contract()};
      default:
        return std::vector<Action>{};
    }
  }

  // Filled by ReplaceColumn::Inspect.
  catalog::Table table_;   // with the new column, as the spec types it
  catalog::Table before_;  // without it
  catalog::Column old_;
  catalog::TypeInfo new_type;
  std::string collation;   // of the new column: the old one's when the type has one, else ""
  std::optional<sql::Expression> old_default;
  std::vector<std::string> owned_sequences;
  std::vector<std::string> trigger_readers;  // user triggers reading the old column
  bool gone_ = false;      // the old column is gone: contract already committed

 private:
  bool identity() const { return !r_.up; }

  SyncSpec Sync() const {
    return SyncSpec{r_.old_column, r_.new_column, old_.type_info(), new_type, r_.up, r_.down};
  }

  RowFunction UpFunction() const {
    return LenientRowFunction(before_, ctx_, "up", *r_.up, new_type);
  }

  Action AddColumn() const {
    const std::string t = table_.Qualified(), n = Q(r_.new_column);
    std::vector<std::string> sql = {
        absl::StrCat("ALTER TABLE ", t, " ADD COLUMN ", n, " ", new_type.spelled,
                     collation.empty() ? "" : absl::StrCat(" COLLATE ", collation)),
        absl::StrCat("COMMENT ON COLUMN ", t, ".", n, " IS ", pg::QuoteLiteral(ctx_.names.owner_comment()))};
    // What ADD COLUMN does not carry over from the old column, in the same
    // transaction: its privileges (new app versions read and write the new
    // column) and its settings.
    for (std::string& s : ColumnSettingsSql()) sql.push_back(std::move(s));
    Action a = Transaction(
        table_,
        absl::StrCat("add column ", r_.new_column, identity() ? "" : absl::StrCat(" ", new_type.spelled),
                     " (nullable, no default)", sql.size() > 2 ? " with the old column's privileges and settings" : ""),
        std::move(sql), pg::LockMode::kAccessExclusive, ColumnExists(table_, r_.new_column));
    AddColumnHazard(a, table_, r_.new_column);
    return a;
  }

  // GRANT and ALTER COLUMN SET statements giving the new column the old
  // one's column privileges, statistics target and options, and (same type
  // only) its storage and compression.
  std::vector<std::string> ColumnSettingsSql() const {
    const std::string t = table_.Qualified(), n = Q(r_.new_column);
    const std::string alter = absl::StrCat("ALTER TABLE ", t, " ALTER COLUMN ", n);
    std::vector<std::string> out;
    for (const std::string& grant : old_.grants) {
      // "PRIVILEGE:grantee:grantable", grantee quoted by the server or PUBLIC.
      std::vector<std::string> parts = absl::StrSplit(grant, ':');
      if (parts.size() != 3) continue;
      out.push_back(absl::StrCat("GRANT ", parts[0], " (", n, ") ON ", t, " TO ", parts[1],
                                 parts[2] == "true" ? " WITH GRANT OPTION" : ""));
    }
    if (old_.stats_target >= 0) absl::StrAppend(&out.emplace_back(), alter, " SET STATISTICS ", old_.stats_target);
    if (!old_.options.empty()) {
      std::vector<std::string> options;
      for (const std::string& o : old_.options) {
        std::vector<std::string> kv = absl::StrSplit(o, absl::MaxSplits('=', 1));
        if (kv.size() == 2) options.push_back(absl::StrCat(Q(kv[0]), " = ", pg::QuoteLiteral(kv[1])));
      }
      if (!options.empty()) out.push_back(absl::StrCat(alter, " SET (", absl::StrJoin(options, ", "), ")"));
    }
    if (identity()) {
      static const std::map<char, const char*> kStorage = {
          {'p', "PLAIN"}, {'e', "EXTERNAL"}, {'x', "EXTENDED"}, {'m', "MAIN"}};
      static const std::map<char, const char*> kCompression = {{'p', "pglz"}, {'l', "lz4"}};
      if (kStorage.count(old_.storage)) out.push_back(absl::StrCat(alter, " SET STORAGE ", kStorage.at(old_.storage)));
      if (kCompression.count(old_.compression)) {
        out.push_back(absl::StrCat(alter, " SET COMPRESSION ", kCompression.at(old_.compression)));
      }
    }
    return out;
  }

  std::vector<Action> Backfill() const {
    const std::string o = Q(r_.old_column), n = Q(r_.new_column);
    if (identity()) {
      return {ops::Backfill(
          table_, absl::StrCat("copy ", r_.old_column, " into ", r_.new_column, " in batches"),
          BackfillOf(table_, absl::StrCat(n, " = ", o), Differ(n, o, old_.exact_equality)))};
    }
    const RowFunction up = UpFunction();
    // The plain expression does the work (as fast as a plain UPDATE); a
    // batch in which it raises runs again with the lenient function (a
    // PL/pgSQL call with an exception block per row, several times slower),
    // which leaves NULL where up raises for validate to report.
    BackfillSpec spec =
        BackfillOf(table_, absl::StrCat(n, " = ", CastTo(*r_.up, new_type)), absl::StrCat(n, " IS NULL"));
    spec.fallback_set_clause = absl::StrCat(n, " = ", up.call);
    return {CatalogOnly("create the backfill's conversion function (NULL where up raises)",
                        {up.create_sql}),
            ops::Backfill(table_,
                          absl::StrCat("compute ", r_.new_column, " from up in batches (trigger silenced: ",
                                       r_.old_column, " is never written)"),
                          std::move(spec))};
  }

  absl::StatusOr<std::vector<Action>> Validate() const {
    const std::string o = Q(r_.old_column), n = Q(r_.new_column);
    std::vector<Action> out;
    if (identity()) {
      out.push_back(Assert(table_, absl::StrCat("check that ", r_.new_column, " equals ", r_.old_column),
                           Differ(o, n, old_.exact_equality),
                           absl::StrCat("rows where ", r_.new_column, " differs from ", r_.old_column)));
    } else {
      out.push_back(Assert(
          table_, absl::StrCat("check that up gave a value wherever ", r_.old_column, " has one"),
          absl::StrCat(o, " IS NOT NULL AND ", n, " IS NULL"),
          absl::StrCat("rows where up yielded NULL from a non-NULL ", r_.old_column,
                       ", or raised; fix those rows (an UPDATE of ", r_.old_column, " recomputes ",
                       r_.new_column, ") or roll back and change up")));
    }
    if (old_.not_null) {
      for (Action& a : SetNotNullActions(table_, ctx_, r_.new_column)) out.push_back(std::move(a));
    }
    ASSIGN_OR_RETURN(std::vector<Action> copies,
                     CopyColumnObjects(table_, ctx_, r_.old_column, r_.new_column));
    for (Action& a : copies) out.push_back(std::move(a));
    return out;
  }

  Action Contract() const {
    const std::string t = table_.Qualified(), o = Q(r_.old_column), n = Q(r_.new_column);
    std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
    if (!identity()) sql.push_back(UpFunction().drop_sql);
    for (const std::string& s : owned_sequences) {
      sql.push_back(absl::StrCat("ALTER SEQUENCE ", s, " OWNED BY ", t, ".", n));
    }
    for (std::string& s : ReplicaIdentitySql(table_, ctx_, r_.old_column)) sql.push_back(std::move(s));
    sql.push_back(absl::StrCat("ALTER TABLE ", t, " DROP COLUMN ", o));
    if (old_default) {
      sql.push_back(absl::StrCat("ALTER TABLE ", t, " ALTER COLUMN ", n, " SET DEFAULT ",
                                 identity() ? absl::StrCat("(", old_default->sql(), ")")
                                            : CastTo(*old_default, new_type)));
    }
    for (std::string& s : RenameCopiesSql(table_, ctx_, r_.old_column)) sql.push_back(std::move(s));
    sql.push_back(absl::StrCat("COMMENT ON COLUMN ", t, ".", n, " IS ",
                               old_.comment ? pg::QuoteLiteral(*old_.comment) : "NULL"));
    Action a = Transaction(table_,
                           absl::StrCat("drop the trigger and column ", r_.old_column, "; ",
                                        r_.new_column, " takes its default and names"),
                           std::move(sql), pg::LockMode::kAccessExclusive,
                           ColumnMissing(table_, r_.old_column));
    a.irreversible = true;
    a.drops_data = {absl::StrCat("column ", o, " of ", t, " and every value in it")};
    for (const std::string& reader : trigger_readers) {
      a.hazards.push_back(absl::StrCat(
          "contract refuses while ", reader, ": once ", r_.old_column,
          " is gone every write would fail in it; change the function to use ", r_.new_column,
          " (both exist until contract)"));
    }
    return a;
  }

  Replacement r_;
  Context ctx_;
};

class ReplaceColumn : public Operation {
 public:
  ReplaceColumn(Replacement r, Context ctx) : Operation(std::move(ctx)), r_(std::move(r)) {}

  std::string Describe() const override {
    return absl::StrCat(r_.kind, " ", pg::QuoteQualified(ctx_.schema, r_.table), ".", Q(r_.old_column),
                        " -> ", Q(r_.new_column), r_.type ? absl::StrCat(" ", r_.type->sql()) : "");
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    auto steps = std::make_unique<ReplaceSteps>(r_, ctx_);
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, r_.table));
    const catalog::Column* old_col = table.FindColumn(r_.old_column);
    const catalog::Column* new_col = table.FindColumn(r_.new_column);
    if (old_col == nullptr) {
      if (phase == Phase::kSwitched && new_col != nullptr) {  // contract re-run
        steps->gone_ = true;
        steps->table_ = table;
        return steps;
      }
      return absl::NotFoundError(absl::StrCat(r_.kind, ": column \"", r_.old_column,
                                              "\" does not exist in ", table.Qualified()));
    }
    steps->old_ = *old_col;
    if (phase == Phase::kRegistered) {
      catalog::TableNeeds needs;  // a sync trigger, a backfill, checks that count rows
      needs.reads_rows = true;
      needs.creates_functions = true;
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, r_.kind, needs));
    }
    RETURN_IF_ERROR(CheckReplaceable(conn, table, *old_col));
    ASSIGN_OR_RETURN(steps->owned_sequences, catalog::OwnedSequences(conn, table, old_col->attnum));
    ASSIGN_OR_RETURN(steps->trigger_readers, catalog::TriggersReading(conn, table, r_.old_column));
    if (phase == Phase::kSwitched && !steps->trigger_readers.empty()) {
      // The next step is contract, which drops the old column.
      return absl::FailedPreconditionError(absl::StrCat(
          r_.kind, ": ", absl::StrJoin(steps->trigger_readers, "; "), " on ", table.Qualified(),
          " — contract would drop column \"", r_.old_column,
          "\" and every write would then fail in it. Change the function to use \"", r_.new_column,
          "\" (both columns exist now), then advance again; nothing was changed"));
    }
    if (phase == Phase::kRegistered) {
      if (new_col != nullptr && new_col->comment != ctx_.names.owner_comment()) {
        return absl::AlreadyExistsError(absl::StrCat(r_.kind, ": column \"", r_.new_column,
                                                     "\" already exists in ", table.Qualified(),
                                                     "; choose another ", r_.new_column_field,
                                                     " name"));
      }
    } else if (new_col == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          r_.kind, ": column \"", r_.new_column, "\" that pgshift added to ", table.Qualified(),
          " is gone (dropped outside pgshift?); roll the migration back and register it again"));
    }
    if (old_col->default_expr) {
      ASSIGN_OR_RETURN(steps->old_default,
                       sql::Expression::Parse(*old_col->default_expr, "the column's default"));
    }
    if (r_.type) {
      // The new column keeps the old one's collation when its type has one.
      ASSIGN_OR_RETURN(steps->new_type, catalog::ResolveType(conn, *r_.type, old_col->collation));
      ASSIGN_OR_RETURN(pg::Result coll,
                       conn.Exec("SELECT typcollation <> 0 FROM pg_type WHERE oid = $1::regtype",
                                 {steps->new_type.spelled}));
      const bool collatable = coll.rows() > 0 && coll.GetBool(0, 0);
      steps->collation = collatable ? old_col->collation : "";
    } else {
      steps->new_type = old_col->type_info();
      steps->collation = old_col->collation;
    }
    // The row as it is before the new column exists (what `up` reads), and
    // once it does (what the trigger reads), the same at plan time as at
    // advance time.
    steps->before_ = table;
    steps->before_.columns.clear();
    for (const catalog::Column& c : table.columns) {
      if (c.name != r_.new_column) steps->before_.columns.push_back(c);
    }
    catalog::Column added = new_col != nullptr ? *new_col : catalog::Column();
    added.name = r_.new_column;
    added.type = steps->new_type.spelled;
    added.raw_type = steps->new_type.raw;
    added.exact_equality = steps->new_type.exact_equality;
    added.collation = steps->collation;
    steps->table_ = steps->before_;
    steps->table_.columns.push_back(added);
    if (phase == Phase::kRegistered && r_.type) {
      RETURN_IF_ERROR(CheckConversion(conn, table, *steps));
    }
    if (phase == Phase::kRegistered && !r_.type) {
      // The new column takes the old one's type: a domain with constraints
      // would make ADD COLUMN rewrite the table under ACCESS EXCLUSIVE.
      ASSIGN_OR_RETURN(bool constrained, catalog::IsConstrainedDomain(conn, old_col->type));
      if (constrained) {
        return Refuse(table, *old_col,
                      absl::StrCat("has type ", old_col->type,
                                   ", a domain with constraints: adding the new column of that type, "
                                   "which is how pgshift renames without blocking, would make "
                                   "PostgreSQL rewrite the whole table under an ACCESS EXCLUSIVE lock"),
                      "rename it with a plain ALTER TABLE ... RENAME COLUMN when old app versions "
                      "can be stopped, or first change the column to the domain's base type plus a "
                      "CHECK constraint");
      }
    }
    return steps;
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection& conn) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, r_.table));
    std::vector<std::string> drop = DropTriggerSql(table, ctx_);
    Guard gone = TriggersGone(table, ctx_.names);
    if (r_.up) {
      drop.push_back(absl::StrCat("DROP FUNCTION IF EXISTS ", HelperFunction(table, ctx_, "up")));
      gone = Guard::All({gone, Guard::Not(FunctionExists(table, ctx_.names.helper("up")))});
    }
    // Trigger and column in one transaction: once validate copied NOT NULL,
    // an old app's INSERT between "trigger gone" and "column gone" would
    // fail. The second action removes a trigger left without our column.
    std::vector<std::string> with_column = drop;
    with_column.push_back(absl::StrCat("ALTER TABLE ", table.Qualified(), " DROP COLUMN ",
                                       Q(r_.new_column)));
    Action column = Transaction(
        table,
        absl::StrCat("drop the sync trigger and column ", r_.new_column,
                     " that pgshift added (with its copies of indexes and constraints)"),
        std::move(with_column), pg::LockMode::kAccessExclusive,
        ColumnNotOurs(table, r_.new_column, ctx_.names));
    Action rest = Transaction(table, r_.up ? "drop the sync trigger and its functions" : "drop the sync trigger",
                              std::move(drop), pg::LockMode::kAccessExclusive, std::move(gone));
    return std::vector<Action>{std::move(column), std::move(rest)};
  }

 private:
  absl::Status Refuse(const catalog::Table& t, const catalog::Column& col, absl::string_view why,
                      absl::string_view todo) const {
    return absl::InvalidArgumentError(absl::StrCat(r_.kind, ": column \"", col.name, "\" of ",
                                                   t.Qualified(), " ", why, "; ", todo));
  }

  // Columns pgshift cannot replace safely.
  absl::Status CheckReplaceable(pg::Connection& conn, const catalog::Table& t,
                                const catalog::Column& col) const {
    for (const std::string& k : t.primary_key) {
      if (k == col.name) {
        return Refuse(t, col, "is part of the primary key",
                      "pgshift does not replace primary-key columns (the key is what the backfill "
                      "and the application rely on)");
      }
    }
    if (col.identity != '\0') {
      return Refuse(t, col, "is an identity column",
                    "identity columns are refused rather than half-copied; drop the identity first "
                    "or keep the column");
    }
    if (col.generated != '\0') {
      return Refuse(t, col, "is a generated column", "change its generation expression instead");
    }
    for (const catalog::Constraint& c : t.constraints) {
      if (c.Uses(col.attnum) && c.type == 'x') {
        return Refuse(t, col, absl::StrCat("is used by exclusion constraint ", c.name),
                      "exclusion constraints cannot be rebuilt without a long lock; drop it first");
      }
    }
    ASSIGN_OR_RETURN(std::vector<std::string> deps,
                     catalog::ForeignDependents(conn, t, col.attnum, std::string(Names::kTriggerPrefix)));
    if (!deps.empty()) {
      return Refuse(t, col, absl::StrCat("is used by ", absl::StrJoin(deps, ", ")),
                    "pgshift cannot recreate those objects on the new column without breaking "
                    "them; drop or change them first (and recreate them after contract)");
    }
    return absl::OkStatus();
  }

  // With a new type, at register: everything that moves to the new column
  // fits it (nothing changes when one check fails).
  // `table` is the table as loaded (with the new column when a plan runs
  // again after column_added).
  absl::Status CheckConversion(pg::Connection& conn, const catalog::Table& table,
                               const ReplaceSteps& s) const {
    const std::string& type = s.new_type.spelled;
    const catalog::Table& before = table;
    RETURN_IF_ERROR(RefuseConstrainedDomain(conn, type));
    RETURN_IF_ERROR(catalog::CheckExpression(conn, before, *r_.up, type, absl::StrCat(r_.kind, ": up")));
    // `down` reads the new column, which exists only once column_added ran.
    std::vector<std::pair<std::string, std::string>> extra;
    if (before.FindColumn(r_.new_column) == nullptr) extra.emplace_back(r_.new_column, type);
    RETURN_IF_ERROR(catalog::CheckExpression(conn, before, *r_.down, s.old_.type,
                                             absl::StrCat(r_.kind, ": down"), extra));
    if (s.old_default) {
      absl::Status st = catalog::CheckExpression(conn, before, *s.old_default, type,
                                                 absl::StrCat(r_.kind, ": the column's default"));
      if (!st.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            st.message(), ". Contract gives the new column the old default; drop it first (ALTER "
            "TABLE ... ALTER COLUMN ... DROP DEFAULT) or change it to one that fits ", type));
      }
    }
    for (const catalog::Constraint& c : before.constraints) {
      if (!c.Uses(s.old_.attnum) || absl::StartsWith(c.name, "pgshift_")) continue;
      if (c.type == 'c') {
        ASSIGN_OR_RETURN(sql::Expression check,
                         sql::Expression::Parse(c.check_expr, absl::StrCat("CHECK constraint ", c.name)));
        ASSIGN_OR_RETURN(check, check.RenameColumn(r_.old_column, r_.new_column));
        absl::Status st = catalog::CheckExpression(
            conn, before, check, "boolean", absl::StrCat(r_.kind, ": CHECK constraint ", c.name), extra);
        if (!st.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              st.message(), ". pgshift copies every CHECK on the column to the new column and does "
              "not apply half of them; drop or rewrite constraint \"", c.name,
              "\" first, then register again"));
        }
      } else if (c.type == 'f') {
        ASSIGN_OR_RETURN(
            pg::Result ref,
            conn.Exec("SELECT format_type(a.atttypid, a.atttypmod) FROM pg_constraint c, "
                      "unnest(c.conkey, c.confkey) AS k(l, r) JOIN pg_attribute a ON a.attnum = k.r "
                      "WHERE c.conrelid = $1::regclass AND c.conname = $2 AND a.attrelid = c.confrelid "
                      "AND k.l = $3",
                      {before.Qualified(), c.name, std::to_string(s.old_.attnum)}));
        for (int i = 0; i < ref.rows(); ++i) {
          // Both spellings come from format_type().
          absl::Status st = conn.Check(absl::StrCat("SELECT NULL::", type, " = NULL::", ref.Get(i, 0)));
          if (!st.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(
                r_.kind, ": foreign key \"", c.name, "\" references a column of type ", ref.Get(i, 0),
                ", which cannot be compared with ", type, " (", st.message(),
                "); drop the foreign key first or choose a compatible type"));
          }
        }
      }
    }
    return absl::OkStatus();
  }

  // InvalidArgument when `type` is a domain with constraints (CHECK or NOT
  // NULL, at any level): adding a column of such a type rewrites the whole
  // table under ACCESS EXCLUSIVE, which pgshift exists to avoid.
  absl::Status RefuseConstrainedDomain(pg::Connection& conn, const std::string& type) const {
    return catalog::RefuseConstrainedDomain(conn, type, r_.kind);
  }

  Replacement r_;
};

}  // namespace

std::unique_ptr<Operation> NewReplaceColumn(Replacement replacement, Context ctx) {
  return std::make_unique<ReplaceColumn>(std::move(replacement), std::move(ctx));
}

}  // namespace pgshift::ops
