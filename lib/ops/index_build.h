// What create_index and add_unique share: index elements read from the
// spec (a column, quoted, or an expression, parsed and deparsed), the
// CREATE INDEX statement built from them, a dry run of that statement on an
// empty copy of the table (so that the server refuses a bad definition at
// register, not half-way), the check for duplicates before a unique build,
// and the probes telling pgshift's index or constraint from a user's.
//
// pgshift builds such an index under a name of its own (Names::helper
// ("ix")), so that the executor can tell an INVALID leftover of an
// interrupted build from a user's index and drop it (docs/operations/
// create_index.md); the index gets the user's name afterwards, with the
// owner comment that marks it as pgshift's until contract.
#ifndef PGSHIFT_LIB_OPS_INDEX_BUILD_H_
#define PGSHIFT_LIB_OPS_INDEX_BUILD_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/catalog/catalog.h"
#include "lib/ops/action.h"
#include "lib/ops/names.h"
#include "lib/pg/connection.h"

namespace pgshift::ops {

struct IndexDefinition {
  bool unique = false;
  std::string method;                 // access method, unquoted; "" for the default
  std::vector<std::string> elements;  // SQL: quoted columns, parenthesised expressions
  std::vector<std::string> include;   // quoted columns
  std::string where;                  // deparsed predicate, or ""
};

// The name pgshift builds the index under before it gets its final name.
std::string BuildName(const Names& names);

// One element of an index: `value` names a column of `t` (as written) or is
// one SQL expression over its columns. `field` names it in errors
// ("create_index.columns[0]"). NotFound for a bare name that is no column,
// InvalidArgument for text that is neither a column nor an expression.
absl::StatusOr<std::string> IndexElement(const catalog::Table& t, const std::string& value,
                                         const std::string& field);

// CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON table USING method (...)
// INCLUDE (...) WHERE (...). `table` is quoted and qualified.
std::string CreateIndexSql(const IndexDefinition& def, const std::string& table,
                           const std::string& name, bool concurrently);

// Runs the definition on an empty temporary copy of `t`'s columns in a
// transaction that is rolled back: the server checks expressions,
// immutability, operator classes, the method and the predicate without
// touching `t`. InvalidArgument starting with `what` when it refuses. When
// the role may not create temporary tables, nothing is checked here (the
// build reports the server's error).
absl::Status DryRunIndex(pg::Connection& conn, const catalog::Table& t, const IndexDefinition& def,
                         const std::string& what);

// The check, before a unique build, that no two rows (of the predicate)
// share a key: a failed build would leave an INVALID index behind.
Action DuplicatesAssert(const catalog::Table& t, const IndexDefinition& def, std::string what,
                        Guard skip_if);

// DROP INDEX CONCURRENTLY of index `name` in t's schema, skipped when `done_if`.
Action DropIndexConcurrently(const catalog::Table& t, std::string description,
                             const std::string& name, Guard done_if);

// Index `name` of `schema` exists and carries `names`' owner comment.
Guard IndexOurs(const std::string& schema, const std::string& name, const Names& names);
// No relation `name` in `schema`.
Guard RelationMissing(const std::string& schema, const std::string& name);

// What relation `name` of `schema` is ("index \"x\" of table ..."), or ""
// when there is none.
absl::StatusOr<std::string> DescribeRelation(pg::Connection& conn, const std::string& schema,
                                             const std::string& name);

// Whether index `name` of `schema` carries `names`' owner comment.
absl::StatusOr<bool> IsOurIndex(pg::Connection& conn, const std::string& schema,
                                const std::string& name, const Names& names);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_INDEX_BUILD_H_
