// add_column {table, column, type, default?, not_null?, up?}
// (docs/operations/add_column.md).
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

struct Parsed {
  v1::AddColumn spec;
  sql::TypeName type;
  std::optional<sql::Expression> default_value, up;
};

class AddColumnSteps : public Steps {
 public:
  AddColumnSteps(const Parsed& p, const Context& ctx, catalog::Table table, catalog::TypeInfo type,
                 bool instant)
      : p_(p), ctx_(ctx), table_(std::move(table)), type_(std::move(type)), instant_(instant) {}

  int64_t RowEstimate() const override { return instant_ ? 0 : table_.row_estimate; }

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    const v1::AddColumn& s = p_.spec;
    const std::string t = table_.Qualified(), c = pg::QuoteIdent(s.column());
    const std::string comment = absl::StrCat("COMMENT ON COLUMN ", t, ".", c, " IS ",
                                             pg::QuoteLiteral(ctx_.names.owner_comment()));
    if (instant_) {
      switch (to) {
        case Phase::kColumnAdded: {
          // The default as a column default (assignment to the type), as in
          // the user's own ALTER TABLE; the server checked it casts.
          // Parenthesised: a column constraint's DEFAULT takes a restricted
          // expression (no AT TIME ZONE, no operators like IS DISTINCT FROM).
          const std::string def =
              p_.default_value ? absl::StrCat(" DEFAULT (", p_.default_value->sql(), ")") : "";
          Action a = Transaction(
              table_,
              absl::StrCat("add column ", s.column(),
                           p_.default_value ? " with its default stored in the catalog" : "",
                           s.not_null() ? ", NOT NULL" : "", " (instant: no rewrite, no scan)"),
              {absl::StrCat("ALTER TABLE ", t, " ADD COLUMN ", c, " ", type_.spelled, def,
                            s.not_null() ? " NOT NULL" : ""),
               comment},
              pg::LockMode::kAccessExclusive, ColumnExists(table_, s.column()));
          AddColumnHazard(a, table_, s.column());
          return std::vector<Action>{std::move(a)};
        }
        case Phase::kContracted:
          return std::vector<Action>{Transaction(
              table_, "remove pgshift's ownership comment from the column",
              {absl::StrCat("COMMENT ON COLUMN ", t, ".", c, " IS NULL")},
              pg::LockMode::kShareUpdateExclusive, ColumnNotOurs(table_, s.column(), ctx_.names))};
        default:
          return std::vector<Action>{};
      }
    }
    const sql::Expression& fill = p_.up ? *p_.up : *p_.default_value;
    switch (to) {
      case Phase::kColumnAdded: {
        Action a = Transaction(
            table_, absl::StrCat("add column ", s.column(), " (nullable, no default)"),
            {absl::StrCat("ALTER TABLE ", t, " ADD COLUMN ", c, " ", type_.spelled), comment},
            pg::LockMode::kAccessExclusive, ColumnExists(table_, s.column()));
        AddColumnHazard(a, table_, s.column());
        return std::vector<Action>{std::move(a)};
      }
      case Phase::kTriggerInstalled:
        return InstallFillTrigger(table_, ctx_, s.column(), type_, fill);
      case Phase::kBackfilled:
        return std::vector<Action>{Backfill(
            table_, absl::StrCat("fill ", s.column(), " with ", p_.up ? "up" : "the default", " in batches"),
            BackfillOf(table_, absl::StrCat(c, " = ", CastTo(fill, type_)), absl::StrCat(c, " IS NULL")))};
      case Phase::kValidated: {
        std::vector<Action> out;
        if (s.not_null()) {
          out.push_back(Assert(table_, absl::StrCat("check that no row has ", s.column(), " NULL"),
                               absl::StrCat(c, " IS NULL"),
                               absl::StrCat("rows where ", s.column(), " is NULL (",
                                            p_.up ? "up" : "the default", " yielded NULL for them)")));
          for (Action& a : SetNotNullActions(table_, ctx_, s.column())) out.push_back(std::move(a));
        }
        return out;
      }
      case Phase::kContracted: {
        std::vector<std::string> sql = DropTriggerSql(table_, ctx_);
        if (p_.default_value) {
          sql.push_back(absl::StrCat("ALTER TABLE ", t, " ALTER COLUMN ", c, " SET DEFAULT (",
                                     p_.default_value->sql(), ")"));
        }
        sql.push_back(absl::StrCat("COMMENT ON COLUMN ", t, ".", c, " IS NULL"));
        return std::vector<Action>{Transaction(
            table_, absl::StrCat("drop the fill trigger", p_.default_value ? " and set the default" : ""),
            std::move(sql), pg::LockMode::kAccessExclusive, ColumnNotOurs(table_, s.column(), ctx_.names))};
      }
      default:
        return std::vector<Action>{};
    }
  }

 private:
  Parsed p_;
  Context ctx_;
  catalog::Table table_;
  catalog::TypeInfo type_;
  bool instant_;
};

class AddColumn : public Operation {
 public:
  AddColumn(Parsed p, Context ctx) : Operation(std::move(ctx)), p_(std::move(p)) {}

  std::string Describe() const override {
    return absl::StrCat("add_column ", pg::QuoteQualified(ctx_.schema, p_.spec.table()), ".",
                        pg::QuoteIdent(p_.spec.column()), " ", p_.type.sql());
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    const v1::AddColumn& s = p_.spec;
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, s.table()));
    ASSIGN_OR_RETURN(catalog::TypeInfo type, catalog::ResolveType(conn, p_.type));
    const catalog::Column* col = table.FindColumn(s.column());
    if (phase == Phase::kRegistered) {
      if (col != nullptr && col->comment != ctx_.names.owner_comment()) {
        return absl::AlreadyExistsError(absl::StrCat("add_column: column \"", s.column(),
                                                     "\" already exists in ", table.Qualified()));
      }
      RETURN_IF_ERROR(catalog::RefuseConstrainedDomain(conn, type.spelled, "add_column"));
      if (p_.default_value) RETURN_IF_ERROR(CheckDefault(conn, table, type));
      if (p_.up) RETURN_IF_ERROR(catalog::CheckExpression(conn, table, *p_.up, type.spelled, "add_column: up"));
      // As the column will take them: the default once it is the column's,
      // and (a default that is not) up as a value assigned to the column.
      RETURN_IF_ERROR(catalog::CheckAssignment(conn, table, s.column(), type.spelled,
                                               p_.default_value ? &*p_.default_value : nullptr,
                                               p_.up ? &*p_.up : nullptr, "add_column"));
    } else if (col == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "add_column: column \"", s.column(), "\" that pgshift added to ", table.Qualified(),
          " is gone (dropped outside pgshift?); roll the migration back and register it again"));
    }
    bool instant = false;
    if (conn.server_version() >= 110000 && !p_.up) {
      if (!p_.default_value) {
        instant = true;
      } else {
        ASSIGN_OR_RETURN(bool volatile_default, DefaultIsVolatile(conn, type));
        instant = !volatile_default;
      }
    }
    if (phase == Phase::kRegistered) {
      // Instant: one ALTER TABLE; otherwise a fill trigger and a backfill.
      catalog::TableNeeds needs;
      needs.reads_rows = !instant;
      needs.creates_functions = !instant;
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, "add_column", needs));
    }
    // The table as it is once the column exists, so that the trigger reads
    // the same at plan time as at advance time.
    if (col == nullptr) {
      catalog::Column c;
      c.name = s.column();
      c.type = type.spelled;
      c.raw_type = type.raw;
      c.exact_equality = type.exact_equality;
      table.columns.push_back(c);
    }
    return std::unique_ptr<Steps>(new AddColumnSteps(p_, ctx_, std::move(table), std::move(type), instant));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection& conn) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, p_.spec.table()));
    // Trigger and column in one transaction: once validate set NOT NULL, an
    // old app's INSERT between "trigger gone" and "column gone" would fail.
    std::vector<std::string> sql = DropTriggerSql(table, ctx_);
    sql.push_back(absl::StrCat("ALTER TABLE ", table.Qualified(), " DROP COLUMN ",
                               pg::QuoteIdent(p_.spec.column())));
    Action col = Transaction(
        table, absl::StrCat("drop the fill trigger and column ", p_.spec.column(), " that pgshift added"),
        std::move(sql), pg::LockMode::kAccessExclusive,
        ColumnNotOurs(table, p_.spec.column(), ctx_.names));
    Action drop = Transaction(table, "drop the fill trigger", DropTriggerSql(table, ctx_),
                              pg::LockMode::kAccessExclusive, TriggersGone(table, ctx_.names));
    return std::vector<Action>{std::move(col), std::move(drop)};
  }

 private:
  absl::Status CheckDefault(pg::Connection& conn, const catalog::Table& table,
                            const catalog::TypeInfo& type) const {
    const sql::Expression& d = *p_.default_value;
    if (!d.columns().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "add_column: default \"", d.sql(),
          "\" must not refer to columns (PostgreSQL rejects those in a DEFAULT); use \"up\" to "
          "compute the value from the row"));
    }
    return catalog::CheckExpression(conn, table, d, type.spelled, "add_column: default");
  }

  absl::StatusOr<bool> DefaultIsVolatile(pg::Connection& conn, const catalog::TypeInfo& type) const {
    ASSIGN_OR_RETURN(catalog::Explained plan,
                     catalog::Explain(conn, absl::StrCat("WITH pgshift_default AS (SELECT ",
                                                         CastTo(*p_.default_value, type),
                                                         " AS v) SELECT v FROM pgshift_default")));
    return plan.Has("CTE Scan");
  }

  Parsed p_;
};

absl::Status Validate(const v1::Operation& op, const std::string& where) {
  const v1::AddColumn& o = op.add_column();
  if (o.not_null() && !o.has_default_() && o.up().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": a NOT NULL column needs \"default\" or \"up\" to fill existing rows and rows "
               "written by old app versions"));
  }
  return absl::OkStatus();
}

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  const v1::AddColumn& o = op.add_column();
  std::vector<Touch> out = {{schema, o.table(), o.column()}};
  for (Touch& t : ReadsOf(schema, o.table(), o.up(), {o.column()})) out.push_back(t);
  return out;
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  const v1::AddColumn& o = op.add_column();
  ASSIGN_OR_RETURN(sql::TypeName type, sql::TypeName::Parse(o.type(), "add_column.type"));
  Parsed p{o, std::move(type), std::nullopt, std::nullopt};
  if (o.has_default_()) {
    ASSIGN_OR_RETURN(p.default_value, sql::Expression::Parse(o.default_(), "add_column.default"));
  }
  if (!o.up().empty()) {
    ASSIGN_OR_RETURN(p.up, sql::Expression::Parse(o.up(), "add_column.up"));
  }
  return std::unique_ptr<Operation>(new AddColumn(std::move(p), std::move(ctx)));
}

}  // namespace

extern const OperationType kAddColumnType = {v1::Operation::kAddColumn, "add_column", &Validate,
                                             &Touches, &Make};

}  // namespace pgshift::ops
