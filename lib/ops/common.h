// Building blocks shared by the operations: object names, catalog guards for
// idempotent re-runs, the sync trigger, NOT NULL through a validated CHECK,
// and copying a column's indexes and constraints to its replacement.
#ifndef PGSHIFT_LIB_OPS_COMMON_H_
#define PGSHIFT_LIB_OPS_COMMON_H_

#include <string>
#include <vector>

#include "lib/catalog/catalog.h"
#include "lib/ops/operation.h"

namespace pgshift::ops {

// Prefix of every object pgshift creates for operation `index` of migration
// `migration`: "pgshift_<10 hex of a hash of the name>_<index>".
std::string ObjectPrefix(const std::string& migration, int index);

// `sql` with every reference to column `from` replaced by column `to`:
// quoted or bare identifier tokens outside literals that are not function
// names (followed by '('), type names (after '::') or qualified (after '.').
std::string RewriteColumn(absl::string_view sql, const std::string& from, const std::string& to);

// The comment pgshift puts on a column it created, so that re-runs and
// rollback recognise it as theirs.
std::string OwnerComment(const Context& ctx);

// Guards (done_if queries with their parameters).
struct Guard {
  std::string sql;
  pg::Params params;
};
Guard ColumnExists(const catalog::Table& t, const std::string& column);
Guard ColumnMissing(const catalog::Table& t, const std::string& column);
Guard ColumnNotNull(const catalog::Table& t, const std::string& column);
Guard ColumnNullable(const catalog::Table& t, const std::string& column);
Guard ConstraintExists(const catalog::Table& t, const std::string& name);
Guard ConstraintValidatedOrGone(const catalog::Table& t, const std::string& name);
// True when neither of our triggers nor our trigger function exists.
Guard TriggersGone(const catalog::Table& t, const Context& ctx);
// True when our INSERT trigger exists (the trigger step has run, contract not).
Guard TriggerInstalled(const catalog::Table& t, const Context& ctx);
// True when `column` is missing or does not carry our owner comment.
Guard ColumnNotOurs(const catalog::Table& t, const std::string& column, const Context& ctx);

// A guard true when `a` or `b` is (parameters of `b` renumbered after `a`'s).
Guard Either(const Guard& a, const Guard& b);
// A guard true when both are / when `g` is not.
Guard Both(const Guard& a, const Guard& b);
Guard Negate(const Guard& g);
// True when function `name` (unqualified, no arguments) is missing from t's schema.
Guard FunctionMissing(const catalog::Table& t, const std::string& name);

Action Transaction(const catalog::Table& t, std::string description, std::vector<std::string> sql,
                   std::string lock, Guard done_if = {});

// How the two columns of a two-column change stay in sync.
struct SyncSpec {
  std::string old_col, new_col;
  std::string old_type, new_type;
  // SQL expressions over the row's columns; empty means a plain copy of the
  // other column (rename).
  std::string up;    // new column from the row
  std::string down;  // old column from the row
};

// CREATE OR REPLACE FUNCTION for the sync trigger; `new_wins` after switch.
std::string SyncFunctionSql(const catalog::Table& t, const Context& ctx, const SyncSpec& sync,
                            bool new_wins);
// Actions: the function and its BEFORE INSERT / BEFORE UPDATE triggers.
std::vector<Action> InstallSyncTrigger(const catalog::Table& t, const Context& ctx,
                                       const SyncSpec& sync);
// Action replacing the function so that the new column wins conflicts.
Action SwitchSyncTrigger(const catalog::Table& t, const Context& ctx, const SyncSpec& sync);

// A fill-if-NULL trigger: BEFORE INSERT OR UPDATE, when `column` is NULL it
// gets `expr` (SQL over the row's columns) cast to `type`.
std::vector<Action> InstallFillTrigger(const catalog::Table& t, const Context& ctx,
                                       const std::string& column, const std::string& type,
                                       const std::string& expr);

// Statements dropping the triggers and the function (IF EXISTS).
std::vector<std::string> DropTriggerSql(const catalog::Table& t, const Context& ctx);

// plpgsql that evaluates `expr` (over the row's columns, read from NEW) into
// `target`.
std::string EvalIntoSql(const catalog::Table& t, const std::string& expr, const std::string& target);

// "(expr)::type": every expression pgshift evaluates is cast explicitly, the
// way catalog::CheckExpression checked it.
std::string CastTo(const std::string& expr, const std::string& type);

// Quoted qualified name of helper function "<prefix>_<suffix>" in t's schema.
std::string HelperFunction(const catalog::Table& t, const Context& ctx, const std::string& suffix);

// A function evaluating `expr` (over the columns of `t` it names) cast to
// `type`, returning NULL where the expression raises, so that a batch of the
// backfill never fails on one bad row: validate then reports those rows with
// their keys. `call` invokes it over the current row (in an UPDATE).
struct RowFunction {
  std::string create_sql;
  std::string call;
  std::string drop_sql;
};
RowFunction LenientRowFunction(const catalog::Table& t, const Context& ctx, const std::string& suffix,
                               const std::string& expr, const std::string& type);

// NOT NULL on `column` without a long ACCESS EXCLUSIVE lock: CHECK NOT VALID,
// VALIDATE, SET NOT NULL (no scan on PG >= 12), drop the CHECK.
std::vector<Action> SetNotNullActions(const catalog::Table& t, const Context& ctx,
                                      const std::string& column);
// The first half: CHECK ("column" IS NOT NULL) NOT VALID, then VALIDATE.
std::vector<Action> NotNullCheckActions(const catalog::Table& t, const Context& ctx,
                                        const std::string& column);
// The second half: SET NOT NULL (the server skips the scan thanks to the
// validated check) and drop the check, in one short transaction.
Action NotNullFromCheckAction(const catalog::Table& t, const Context& ctx, const std::string& column);
// Name of the temporary NOT NULL check: "<prefix>_nn".
std::string NotNullCheckName(const Context& ctx);

// Indexes, unique constraints, foreign keys and CHECKs on `from` recreated on
// `to` under pgshift names (CREATE INDEX CONCURRENTLY, NOT VALID + VALIDATE).
// NOT NULL is not included (see SetNotNullActions).
absl::StatusOr<std::vector<Action>> CopyColumnObjects(const catalog::Table& t, const Context& ctx,
                                                      const std::string& from, const std::string& to);
// At contract, after `from` is dropped: statements giving the copies the
// original names.
std::vector<std::string> RenameCopiesSql(const catalog::Table& t, const Context& ctx,
                                         const std::string& from);
// The pgshift name of the copy of object `original`.
std::string CopyName(const Context& ctx, const std::string& original);

// Refuses columns pgshift cannot replace safely (primary key, identity,
// generated, views and other dependents, exclusion constraints, referenced by
// foreign keys). `what` names the operation in messages.
absl::Status CheckReplaceable(pg::Connection& conn, const catalog::Table& t, const Context& ctx,
                              const catalog::Column& col, absl::string_view what);

// A batched backfill of `t`: SET `set_clause` on rows where `needs_work`.
// Walks the primary key; a table without one gets an empty key, which the
// executor walks by ctid ranges.
BackfillSpec MakeBackfill(const catalog::Table& t, std::string set_clause, std::string needs_work);
Action BackfillAction(const catalog::Table& t, std::string description, BackfillSpec spec);

// InvalidArgument when `type` is a domain with constraints (CHECK or NOT
// NULL, at any level): adding a column of such a type rewrites the whole
// table under ACCESS EXCLUSIVE, which pgshift exists to avoid.
absl::Status RefuseConstrainedDomain(pg::Connection& conn, const std::string& type,
                                     absl::string_view what);

// Action: an assertion (see AssertSpec).
Action Assert(const catalog::Table& t, std::string description, std::string where,
              std::string failure);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_COMMON_H_
