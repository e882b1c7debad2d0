// The PostgreSQL parser (libpg_query), wrapped once: SQL text to the
// server's own parse tree (the protobuf messages of pg_query.proto) and back.
// Everything pgshift reads or rewrites in SQL goes through here
// (docs/architecture.md, "The SQL layer"); nothing in lib/ scans SQL text by
// hand.
//
// This header exposes the tree types (pg_query::*), whose generated header is
// large: include it only where a tree is built or walked. The rest of lib/
// uses lib/sql/sql.h.
//
// Thread-safe: libpg_query keeps its memory per thread.
#ifndef PGSHIFT_LIB_SQL_TREE_H_
#define PGSHIFT_LIB_SQL_TREE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pg_query/pg_query.pb.h"

namespace pgshift::sql {

// Parses `sql` (one or more statements). InvalidArgument on a syntax error,
// saying where (see SyntaxError in sql.h).
absl::StatusOr<pg_query::ParseResult> Parse(absl::string_view sql);

// Parses `prefix` followed by `text`, where `prefix` is pgshift's own
// (e.g. "SELECT " to read an expression): a syntax error's position is given
// in `text`, the part the user wrote.
absl::StatusOr<pg_query::ParseResult> ParseWithPrefix(absl::string_view prefix,
                                                      absl::string_view text);

// The SQL text of `tree`, as the deparser writes it: identifiers quoted
// where they need it, no comments, statements separated by "; ".
absl::StatusOr<std::string> Deparse(const pg_query::ParseResult& tree);

// The text of one expression node (as it would appear in a SELECT list).
absl::StatusOr<std::string> DeparseExpression(const pg_query::Node& expr);

// A tree of one statement.
pg_query::ParseResult OneStatement(pg_query::Node stmt);

// Calls `visit` on every message of the tree below `root` (root included),
// depth first. `visit` may change the message it is given (e.g. rename a
// column reference); returning false skips that message's children.
void Walk(google::protobuf::Message* root,
          const std::function<bool(google::protobuf::Message*)>& visit);

// Read-only walk.
void Walk(const google::protobuf::Message& root,
          const std::function<bool(const google::protobuf::Message&)>& visit);

}  // namespace pgshift::sql

#endif  // PGSHIFT_LIB_SQL_TREE_H_
