// add_check {table, name, check} (docs/operations/add_check.md): nothing
// changes before validate. Validate first counts the rows the check would
// reject (the step fails naming sample keys while there are any), then adds
// CHECK (check) NOT VALID in a short transaction (ACCESS EXCLUSIVE, no scan:
// from then on every write is checked) and validates it under SHARE UPDATE
// EXCLUSIVE, which lets writes go on. Switch has nothing to do; contract
// removes pgshift's mark from the constraint. Rollback drops it.
#include "absl/strings/str_cat.h"
#include "lib/ops/guards.h"
#include "lib/ops/named_constraint.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

class AddCheckSteps : public Steps {
 public:
  AddCheckSteps(const v1::AddCheck& spec, const Context& ctx, sql::Expression check, catalog::Table table)
      : spec_(spec), ctx_(ctx), check_(std::move(check)), table_(std::move(table)) {}

  int64_t RowEstimate() const override { return table_.row_estimate; }

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    const std::string& name = spec_.name();
    switch (to) {
      case Phase::kValidated: {
        std::vector<Action> out;
        // Skipped once the constraint is validated (a re-run after a crash).
        out.push_back(Assert(
            table_, absl::StrCat("check that no row violates CHECK (", check_.sql(), ")"),
            absl::StrCat("NOT (", check_.sql(), ")"),
            absl::StrCat("rows of ", table_.Qualified(), " violate CHECK (", check_.sql(), ") of constraint \"",
                         name, "\"; change them so that the check holds (or is NULL), then advance again"),
            Guard::All({ConstraintExists(table_, name), ConstraintValidatedOrGone(table_, name)})));
        out.push_back(Transaction(
            table_, absl::StrCat("add CHECK constraint ", name, " NOT VALID (checks new writes, no scan)"),
            {absl::StrCat("ALTER TABLE ", table_.Qualified(), " ADD CONSTRAINT ", pg::QuoteIdent(name),
                          " CHECK (", check_.sql(), ") NOT VALID"),
             MarkConstraintSql(table_, name, ctx_)},
            pg::LockMode::kAccessExclusive, ConstraintExists(table_, name)));
        out.push_back(ValidateConstraint(table_, name, absl::StrCat("validate CHECK constraint ", name)));
        return out;
      }
      case Phase::kContracted:
        return std::vector<Action>{UnmarkConstraint(table_, name, ctx_)};
      default:
        return std::vector<Action>{};
    }
  }

 private:
  v1::AddCheck spec_;
  Context ctx_;
  sql::Expression check_;
  catalog::Table table_;
};

class AddCheck : public Operation {
 public:
  AddCheck(v1::AddCheck spec, sql::Expression check, Context ctx)
      : Operation(std::move(ctx)), spec_(std::move(spec)), check_(std::move(check)) {}

  std::string Describe() const override {
    return absl::StrCat("add_check ", pg::QuoteIdent(spec_.name()), " on ",
                        pg::QuoteQualified(ctx_.schema, spec_.table()));
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    RETURN_IF_ERROR(CheckConstraintName(conn, table, spec_.name(), ctx_, phase, "add_check"));
    if (phase == Phase::kRegistered) {
      absl::Status valid = catalog::CheckExpression(conn, table, check_, "boolean", "add_check: check");
      if (!valid.ok()) {
        // Not castable to boolean: say so only when it is otherwise a valid
        // expression of one row (every type casts to text); else say what
        // is wrong with it.
        RETURN_IF_ERROR(catalog::CheckExpression(conn, table, check_, "text", "add_check: check"));
        return absl::InvalidArgumentError(absl::StrCat(
            "add_check: check \"", check_.sql(), "\" is not a condition over ", table.Qualified(),
            ": a CHECK must be a boolean expression (", valid.message(), ")"));
      }
      // CheckExpression casts explicitly (text casts to boolean); a CHECK,
      // like AND, takes only what is a boolean without a cast.
      absl::Status b = conn.Check(absl::StrCat("SELECT 1 FROM ONLY ", table.Qualified(),
                                               " WHERE false AND (", check_.sql(), ")"));
      if (!b.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "add_check: check \"", check_.sql(), "\" is not a condition over ", table.Qualified(),
            ": a CHECK must be a boolean expression (", b.message(), ")"));
      }
      catalog::TableNeeds needs;  // the check before VALIDATE counts rows
      needs.reads_rows = true;
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, "add_check", needs));
    }
    return std::unique_ptr<Steps>(new AddCheckSteps(spec_, ctx_, check_, std::move(table)));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection& conn) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    return std::vector<Action>{DropOurConstraint(
        table, spec_.name(), ctx_, absl::StrCat("drop CHECK constraint ", spec_.name(), " (pgshift's)"))};
  }

 private:
  v1::AddCheck spec_;
  sql::Expression check_;
};

absl::Status Validate(const v1::Operation&, const std::string&) { return absl::OkStatus(); }

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  const v1::AddCheck& o = op.add_check();
  return ReadsOf(schema, o.table(), o.check(), {});
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  ASSIGN_OR_RETURN(sql::Expression check, sql::Expression::Parse(op.add_check().check(), "add_check.check"));
  return std::unique_ptr<Operation>(new AddCheck(op.add_check(), std::move(check), std::move(ctx)));
}

}  // namespace

extern const OperationType kAddCheckType = {v1::Operation::kAddCheck, "add_check", &Validate, &Touches,
                                            &Make,
    /*contract_only_unmarks=*/true};

}  // namespace pgshift::ops
