// Catalog guards: the questions an action asks to know it is already done,
// each a Probe with its own parameters (action.h), combined with
// Guard::Not / All / Any.
#ifndef PGSHIFT_LIB_OPS_GUARDS_H_
#define PGSHIFT_LIB_OPS_GUARDS_H_

#include <string>

#include "lib/catalog/catalog.h"
#include "lib/ops/action.h"
#include "lib/ops/names.h"

namespace pgshift::ops {

Guard ColumnExists(const catalog::Table& t, const std::string& column);
Guard ColumnMissing(const catalog::Table& t, const std::string& column);
// NOT NULL set on the column (false when the column is missing).
Guard ColumnNotNull(const catalog::Table& t, const std::string& column);
// True when `column` is missing or does not carry `names`' owner comment.
Guard ColumnNotOurs(const catalog::Table& t, const std::string& column, const Names& names);
Guard ConstraintExists(const catalog::Table& t, const std::string& name);
// Constraint `name` of t exists and carries `names`' owner comment.
Guard ConstraintOurs(const catalog::Table& t, const std::string& name, const Names& names);
// True when constraint `name` of t is validated, or does not exist.
Guard ConstraintValidatedOrGone(const catalog::Table& t, const std::string& name);
Guard TriggerExists(const catalog::Table& t, const std::string& name);
// A function `name` (any arguments) exists in t's schema.
Guard FunctionExists(const catalog::Table& t, const std::string& name);
// An ordinary table `name` exists in `schema` (false when the name is free
// or is another kind of relation).
Guard TableExists(const std::string& schema, const std::string& name);
// A view `name` exists in `schema`.
Guard ViewExists(const std::string& schema, const std::string& name);
// Both of the operation's triggers exist.
Guard TriggersInstalled(const catalog::Table& t, const Names& names);
// Neither trigger nor the trigger function exists.
Guard TriggersGone(const catalog::Table& t, const Names& names);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_GUARDS_H_
