#include "lib/ops/named_constraint.h"

#include "absl/strings/str_cat.h"
#include "lib/ops/guards.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

absl::Status CheckConstraintName(pg::Connection& conn, const catalog::Table& t, const std::string& name,
                                 const Context& ctx, Phase phase, absl::string_view what) {
  ASSIGN_OR_RETURN(pg::Result r,
                   conn.Exec("SELECT obj_description(oid, 'pg_constraint') IS NOT DISTINCT FROM $3, "
                             "pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = "
                             "$1::regclass AND conname = $2",
                             {t.Qualified(), name, ctx.names.owner_comment()}));
  // At switched the contract step may have removed the mark and been cut
  // before the phase was recorded: an unmarked constraint is then ours, and
  // the step (which only removes the mark) has nothing left to do.
  if (r.rows() > 0 && !r.GetBool(0, 0) && phase != Phase::kSwitched) {
    if (phase == Phase::kRegistered) {
      return absl::AlreadyExistsError(absl::StrCat(
          what, ": name: constraint \"", name, "\" already exists on ", t.Qualified(), " (",
          r.Get(0, 1), "); choose another name"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": a constraint \"", name, "\" that pgshift did not create appeared on ", t.Qualified(),
        " (", r.Get(0, 1), "); drop or rename it, or roll the migration back"));
  }
  if (r.rows() == 0 && (phase == Phase::kValidated || phase == Phase::kSwitched)) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": constraint \"", name, "\" of ", t.Qualified(),
        " was dropped outside pgshift after validate; roll the migration back"));
  }
  return absl::OkStatus();
}

std::string MarkConstraintSql(const catalog::Table& t, const std::string& name, const Context& ctx) {
  return absl::StrCat("COMMENT ON CONSTRAINT ", pg::QuoteIdent(name), " ON ", t.Qualified(), " IS ",
                      pg::QuoteLiteral(ctx.names.owner_comment()));
}

std::string UnmarkConstraintSql(const catalog::Table& t, const std::string& name) {
  return absl::StrCat("COMMENT ON CONSTRAINT ", pg::QuoteIdent(name), " ON ", t.Qualified(), " IS NULL");
}

Action ValidateConstraint(const catalog::Table& t, const std::string& name, std::string description) {
  return LongTransaction(
      t, std::move(description),
      {absl::StrCat("ALTER TABLE ", t.Qualified(), " VALIDATE CONSTRAINT ", pg::QuoteIdent(name))},
      pg::LockMode::kShareUpdateExclusive, ConstraintValidatedOrGone(t, name));
}

Action UnmarkConstraint(const catalog::Table& t, const std::string& name, const Context& ctx) {
  // COMMENT ON CONSTRAINT opens its table in ACCESS SHARE only (it locks
  // the constraint, not the table).
  return Transaction(t, absl::StrCat("remove pgshift's mark (a comment) from constraint ", name),
                     {UnmarkConstraintSql(t, name)}, pg::LockMode::kAccessShare,
                     Guard::Not(ConstraintOurs(t, name, ctx.names)));
}

Action DropOurConstraint(const catalog::Table& t, const std::string& name, const Context& ctx,
                         std::string description) {
  return Transaction(t, std::move(description),
                     {absl::StrCat("ALTER TABLE ", t.Qualified(), " DROP CONSTRAINT IF EXISTS ",
                                   pg::QuoteIdent(name))},
                     pg::LockMode::kAccessExclusive, Guard::Not(ConstraintOurs(t, name, ctx.names)));
}

}  // namespace pgshift::ops
