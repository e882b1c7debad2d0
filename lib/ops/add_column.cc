// add_column {table, column, type, default?, not_null?, up?} (design §3).
//
// Instant path (PostgreSQL >= 11, no `up`, a default that is not volatile, or
// none): one ALTER TABLE ... ADD COLUMN at column_added; the server stores
// the default in the catalog without touching a row, and NOT NULL with such
// a default needs no scan either. The other steps are no-ops but for
// contract, which removes pgshift's ownership comment.
//
// Otherwise: add the column nullable and without a default, a trigger fills
// `up` (or the default) into rows written by old app versions, the backfill
// fills existing rows, validate makes it NOT NULL through a validated CHECK,
// and contract drops the trigger and sets the default.
//
// Volatility is decided by the server itself: the default is planned as a
// one-row WITH query referenced once. PostgreSQL (>= 12) inlines such a query
// exactly when it contains no volatile function (contain_volatile_functions,
// the very test ADD COLUMN uses to decide between storing the default and
// rewriting the table) and keeps it as a "CTE Scan" otherwise. Nothing is
// created or run. On PostgreSQL 11 WITH queries are never inlined, so every
// default takes the (always safe) trigger path there.
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/ops/common.h"
#include "lib/ops/ops.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

// True when `expr` holds a sub-SELECT ("(" then SELECT, VALUES, WITH or
// TABLE), outside literals and quoted identifiers.
bool HasSubquery(const std::string& expr) {
  std::string s;
  char quote = 0;
  for (char c : expr) {  // blank out literals and quoted identifiers
    if (quote) {
      if (c == quote) quote = 0;
      s.push_back(' ');
    } else if (c == '\'' || c == '"') {
      quote = c;
      s.push_back(' ');
    } else {
      s.push_back(static_cast<char>(absl::ascii_tolower(static_cast<unsigned char>(c))));
    }
  }
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '(') continue;
    size_t j = i + 1;
    while (j < s.size() && absl::ascii_isspace(static_cast<unsigned char>(s[j]))) ++j;
    for (absl::string_view kw : {"select", "values", "with", "table"}) {
      if (absl::StartsWith(absl::string_view(s).substr(j), kw)) {
        size_t k = j + kw.size();
        if (k >= s.size() || !(absl::ascii_isalnum(static_cast<unsigned char>(s[k])) || s[k] == '_')) {
          return true;
        }
      }
    }
  }
  return false;
}

class AddColumn : public Operation {
 public:
  AddColumn(v1::AddColumn spec, std::string schema, Context ctx)
      : spec_(std::move(spec)), schema_(std::move(schema)), ctx_(std::move(ctx)) {}

  std::string Describe() const override {
    return absl::StrCat("add_column ", pg::QuoteQualified(schema_, spec_.table()), ".",
                        pg::QuoteIdent(spec_.column()), " ", spec_.type());
  }

  std::vector<Touch> Touches() const override { return {{schema_, spec_.table(), spec_.column()}}; }

  int64_t RowEstimate() const override { return instant_ ? 0 : table_.row_estimate; }

  absl::Status Inspect(pg::Connection& conn, Phase phase) override {
    ASSIGN_OR_RETURN(table_, catalog::LoadTable(conn, schema_, spec_.table()));
    const catalog::Column* col = table_.FindColumn(spec_.column());
    if (phase == Phase::kRegistered) {
      if (col != nullptr && col->comment != OwnerComment(ctx_)) {
        return absl::AlreadyExistsError(absl::StrCat("add_column: column \"", spec_.column(),
                                                     "\" already exists in ", table_.Qualified()));
      }
      RETURN_IF_ERROR(catalog::ResolveType(conn, spec_.type()).status());
      RETURN_IF_ERROR(RefuseConstrainedDomain(conn, spec_.type(), "add_column"));
      if (spec_.has_default_()) RETURN_IF_ERROR(CheckDefault(conn));
      if (!spec_.up().empty()) {
        RETURN_IF_ERROR(catalog::CheckExpression(conn, table_, spec_.up(), spec_.type(), "add_column: up"));
      }
    } else if (col == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "add_column: column \"", spec_.column(), "\" that pgshift added to ", table_.Qualified(),
          " is gone (dropped outside pgshift?); roll the migration back and register it again"));
    }
    instant_ = false;
    if (conn.server_version() >= 110000 && spec_.up().empty()) {
      if (!spec_.has_default_()) {
        instant_ = true;
      } else {
        ASSIGN_OR_RETURN(bool volatile_default, DefaultIsVolatile(conn));
        instant_ = !volatile_default;
      }
    }
    // The table as it is once the column exists, so that the trigger reads
    // the same at plan time as at advance time.
    if (col == nullptr) {
      catalog::Column c;
      c.name = spec_.column();
      c.type = spec_.type();
      table_.columns.push_back(c);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Action>> StepTo(Phase to) override {
    const std::string t = table_.Qualified();
    const std::string c = pg::QuoteIdent(spec_.column());
    const std::string comment = absl::StrCat("COMMENT ON COLUMN ", t, ".", c, " IS ",
                                             pg::QuoteLiteral(OwnerComment(ctx_)));
    if (instant_) {
      switch (to) {
        case Phase::kColumnAdded: {
          std::string def = spec_.has_default_() ? absl::StrCat(" DEFAULT ", spec_.default_()) : "";
          std::string nn = spec_.not_null() ? " NOT NULL" : "";
          return std::vector<Action>{Transaction(
              table_,
              absl::StrCat("add column ", spec_.column(),
                           spec_.has_default_() ? " with its default stored in the catalog" : "",
                           spec_.not_null() ? ", NOT NULL" : "", " (instant: no rewrite, no scan)"),
              {absl::StrCat("ALTER TABLE ", t, " ADD COLUMN ", c, " ", spec_.type(), def, nn), comment},
              "ACCESS EXCLUSIVE", ColumnExists(table_, spec_.column()))};
        }
        case Phase::kContracted:
          return std::vector<Action>{Transaction(
              table_, "remove pgshift's ownership comment from the column",
              {absl::StrCat("COMMENT ON COLUMN ", t, ".", c, " IS NULL")}, "SHARE UPDATE EXCLUSIVE",
              ColumnNotOurs(table_, spec_.column(), ctx_))};
        default:
          return std::vector<Action>{};
      }
    }
    const std::string fill = spec_.up().empty() ? spec_.default_() : spec_.up();
    switch (to) {
      case Phase::kColumnAdded:
        return std::vector<Action>{Transaction(
            table_, absl::StrCat("add column ", spec_.column(), " (nullable, no default)"),
            {absl::StrCat("ALTER TABLE ", t, " ADD COLUMN ", c, " ", spec_.type()), comment},
            "ACCESS EXCLUSIVE", ColumnExists(table_, spec_.column()))};
      case Phase::kTriggerInstalled:
        return InstallFillTrigger(table_, ctx_, spec_.column(), spec_.type(), fill);
      case Phase::kBackfilled:
        return std::vector<Action>{BackfillAction(
            table_,
            absl::StrCat("fill ", spec_.column(), " with ", spec_.up().empty() ? "the default" : "up",
                         " in batches"),
            MakeBackfill(table_, absl::StrCat(c, " = ", CastTo(fill, spec_.type())),
                         absl::StrCat(c, " IS NULL")))};
      case Phase::kValidated: {
        std::vector<Action> out;
        if (spec_.not_null()) {
          out.push_back(Assert(table_, absl::StrCat("check that no row has ", spec_.column(), " NULL"),
                               absl::StrCat(c, " IS NULL"),
                               absl::StrCat("rows where ", spec_.column(), " is NULL (",
                                            spec_.up().empty() ? "the default" : "up",
                                            " yielded NULL for them)")));
          for (Action& a : SetNotNullActions(table_, ctx_, spec_.column())) out.push_back(std::move(a));
        }
        return out;
      }
      case Phase::kContracted: {
        std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
        if (spec_.has_default_()) {
          sql.push_back(absl::StrCat("ALTER TABLE ", t, " ALTER COLUMN ", c, " SET DEFAULT ",
                                     spec_.default_()));
        }
        sql.push_back(absl::StrCat("COMMENT ON COLUMN ", t, ".", c, " IS NULL"));
        return std::vector<Action>{Transaction(
            table_,
            absl::StrCat("drop the fill trigger", spec_.has_default_() ? " and set the default" : ""),
            std::move(sql), "ACCESS EXCLUSIVE", ColumnNotOurs(table_, spec_.column(), ctx_))};
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
    // Trigger and column in one transaction: once validate set NOT NULL, an
    // old app's INSERT between "trigger gone" and "column gone" would fail.
    std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
    sql.push_back(absl::StrCat("ALTER TABLE ", table_.Qualified(), " DROP COLUMN ",
                               pg::QuoteIdent(spec_.column())));
    Action col = Transaction(
        table_, absl::StrCat("drop the fill trigger and column ", spec_.column(), " that pgshift added"),
        std::move(sql), "ACCESS EXCLUSIVE", ColumnNotOurs(table_, spec_.column(), ctx_));
    Action drop = Transaction(table_, "drop the fill trigger", DropTriggerSql(table_, ctx_),
                              "ACCESS EXCLUSIVE", TriggersGone(table_, ctx_));
    return std::vector<Action>{col, drop};
  }

 private:
  absl::Status CheckDefault(pg::Connection& conn) {
    const std::string& d = spec_.default_();
    RETURN_IF_ERROR(catalog::CheckExpression(conn, table_, d, spec_.type(), "add_column: default"));
    absl::Status s = conn.Check(absl::StrCat("SELECT ", CastTo(d, spec_.type())));
    if (!s.ok() || HasSubquery(d)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "add_column: default \"", d,
          "\" must not refer to columns or contain a sub-SELECT (PostgreSQL rejects those in a "
          "DEFAULT); use \"up\" to compute the value from the row",
          s.ok() ? "" : absl::StrCat(": ", s.message())));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> DefaultIsVolatile(pg::Connection& conn) {
    ASSIGN_OR_RETURN(pg::Result plan,
                     conn.Exec(absl::StrCat("EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) WITH "
                                            "pgshift_default AS (SELECT ",
                                            CastTo(spec_.default_(), spec_.type()),
                                            " AS v) SELECT v FROM pgshift_default")));
    std::string text;
    for (int r = 0; r < plan.rows(); ++r) absl::StrAppend(&text, plan.Get(r, 0));
    return absl::StrContains(text, "\"CTE Scan\"");
  }

  v1::AddColumn spec_;
  std::string schema_;
  Context ctx_;
  catalog::Table table_;
  bool instant_ = false;
};

}  // namespace

std::unique_ptr<Operation> NewAddColumn(const v1::AddColumn& spec, const std::string& schema,
                                        const Context& ctx) {
  return std::make_unique<AddColumn>(spec, schema, ctx);
}

}  // namespace pgshift::ops
