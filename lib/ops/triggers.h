// The PL/pgSQL pgshift writes around user expressions: the sync trigger that
// keeps an old and a new column in step, the fill trigger that gives old app
// versions' rows a value, and the lenient function the backfill falls back
// on. Expressions come in parsed (lib/sql/sql.h); the columns they read are
// declared as variables from the row, so that an expression reads the same
// in a trigger as in SQL over the row (docs/architecture.md, "Triggers").
#ifndef PGSHIFT_LIB_OPS_TRIGGERS_H_
#define PGSHIFT_LIB_OPS_TRIGGERS_H_

#include <optional>
#include <string>
#include <vector>

#include "lib/catalog/catalog.h"
#include "lib/ops/action.h"
#include "lib/ops/operation.h"
#include "lib/sql/sql.h"

namespace pgshift::ops {

// "(expr)::raw": every expression pgshift evaluates is converted with an
// explicit cast to the target's raw type, as catalog::CheckExpression checked
// it; its modifier (a length) is then applied by the assignment to the
// column or variable, which raises instead of truncating (catalog::TypeInfo).
std::string CastTo(const sql::Expression& expr, const catalog::TypeInfo& type);

// An SQL condition true when `a` and `b` (SQL expressions of a type whose
// equality is `exact` or not) hold different values: IS DISTINCT FROM, or,
// for types where equal values can differ (numeric 1.0 and 1.000, json,
// case-insensitive collations), their text forms compared byte by byte.
std::string Differ(const std::string& a, const std::string& b, bool exact);
std::string Same(const std::string& a, const std::string& b, bool exact);

// Quoted qualified name of helper function names.helper(suffix) in t's schema.
std::string HelperFunction(const catalog::Table& t, const Context& ctx, absl::string_view suffix);

// How the two columns of a column replacement stay in sync.
struct SyncSpec {
  std::string old_col, new_col;
  catalog::TypeInfo old_type, new_type;
  // Over the row's columns; none for a plain copy of the other column
  // (rename: same type both ways).
  std::optional<sql::Expression> up;    // new column from the row
  std::optional<sql::Expression> down;  // old column from the row
};

// The function and its BEFORE INSERT / BEFORE UPDATE triggers (old column
// wins conflicting writes).
std::vector<Action> InstallSyncTrigger(const catalog::Table& t, const Context& ctx,
                                       const SyncSpec& sync);
// Replaces the function so that the new column wins conflicting writes.
Action SwitchSyncTrigger(const catalog::Table& t, const Context& ctx, const SyncSpec& sync);

// A fill-if-NULL trigger: BEFORE INSERT OR UPDATE, when `column` is NULL it
// gets `expr` (over the row's columns) cast to `type`.
std::vector<Action> InstallFillTrigger(const catalog::Table& t, const Context& ctx,
                                       const std::string& column, const catalog::TypeInfo& type,
                                       const sql::Expression& expr);

// Statements dropping the triggers and their function (IF EXISTS).
std::vector<std::string> DropTriggerSql(const catalog::Table& t, const Context& ctx);

// A function evaluating `expr` (over the columns of `t` it names) cast to
// `type`, returning NULL where the expression raises, so that a backfill
// batch never fails on one bad row: validate then reports those rows by key.
struct RowFunction {
  std::string create_sql;
  std::string call;      // the call over the current row, for an UPDATE's SET
  std::string drop_sql;
};
RowFunction LenientRowFunction(const catalog::Table& t, const Context& ctx, absl::string_view suffix,
                               const sql::Expression& expr, const catalog::TypeInfo& type);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_TRIGGERS_H_
