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
// True when `column` is missing or does not carry our owner comment.
Guard ColumnNotOurs(const catalog::Table& t, const std::string& column, const Context& ctx);

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
// gets `expr` (SQL over the row's columns).
std::vector<Action> InstallFillTrigger(const catalog::Table& t, const Context& ctx,
                                       const std::string& column, const std::string& expr);

// Statements dropping the triggers and the function (IF EXISTS).
std::vector<std::string> DropTriggerSql(const catalog::Table& t, const Context& ctx);

// plpgsql that evaluates `expr` (over the row's columns, read from NEW) into
// `target`.
std::string EvalIntoSql(const catalog::Table& t, const std::string& expr, const std::string& target);

// NOT NULL on `column` without a long ACCESS EXCLUSIVE lock: CHECK NOT VALID,
// VALIDATE, SET NOT NULL (no scan on PG >= 12), drop the CHECK.
std::vector<Action> SetNotNullActions(const catalog::Table& t, const Context& ctx,
                                      const std::string& column);

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

// Action: an assertion (see AssertSpec).
Action Assert(const catalog::Table& t, std::string description, std::string where,
              std::string failure);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_COMMON_H_
