#include "lib/ops/not_null.h"

#include "absl/strings/str_cat.h"
#include "lib/ops/guards.h"
#include "lib/pg/quote.h"

namespace pgshift::ops {

std::vector<Action> NotNullCheckActions(const catalog::Table& t, const Context& ctx,
                                        const std::string& column) {
  const std::string check = ctx.names.not_null_check();
  Action add = Transaction(
      t, absl::StrCat("add CHECK (", column, " IS NOT NULL) NOT VALID"),
      {absl::StrCat("ALTER TABLE ", t.Qualified(), " ADD CONSTRAINT ", pg::QuoteIdent(check),
                    " CHECK (", pg::QuoteIdent(column), " IS NOT NULL) NOT VALID")},
      pg::LockMode::kAccessExclusive,
      Guard::Any({ColumnNotNull(t, column), ConstraintExists(t, check)}));
  Action validate = LongTransaction(
      t, "validate the NOT NULL check",
      {absl::StrCat("ALTER TABLE ", t.Qualified(), " VALIDATE CONSTRAINT ", pg::QuoteIdent(check))},
      pg::LockMode::kShareUpdateExclusive, ConstraintValidatedOrGone(t, check));
  return {add, validate};
}

Action NotNullFromCheckAction(const catalog::Table& t, const Context& ctx, const std::string& column) {
  const std::string check = ctx.names.not_null_check();
  Action set = Transaction(
      t, absl::StrCat("SET NOT NULL on ", column, " using the validated check, drop the check"),
      {absl::StrCat("ALTER TABLE ", t.Qualified(), " ALTER COLUMN ", pg::QuoteIdent(column),
                    " SET NOT NULL"),
       absl::StrCat("ALTER TABLE ", t.Qualified(), " DROP CONSTRAINT IF EXISTS ",
                    pg::QuoteIdent(check))},
      pg::LockMode::kAccessExclusive,
      Guard::All({ColumnNotNull(t, column), Guard::Not(ConstraintExists(t, check))}));
  if (ctx.server_version < 120000) set.scans_table = true;  // PG 11 scans under the lock
  return set;
}

std::vector<Action> SetNotNullActions(const catalog::Table& t, const Context& ctx,
                                      const std::string& column) {
  std::vector<Action> out = NotNullCheckActions(t, ctx, column);
  out.push_back(NotNullFromCheckAction(t, ctx, column));
  return out;
}

}  // namespace pgshift::ops
