// What the rest of pgshift needs from the PostgreSQL parser (lib/sql/tree.h
// wraps libpg_query), without the tree types: splitting scripts into
// statements, checking syntax with the position of an error, user expressions
// and type names checked to be exactly what they claim, and index and
// constraint definitions moved from one column to another by renaming column
// references in the tree.
//
// Nothing here reads the catalog; names are resolved by the server later
// (lib/catalog/catalog.h). See docs/architecture.md, "The SQL layer".
//
// Thread-safe.
#ifndef PGSHIFT_LIB_SQL_SQL_H_
#define PGSHIFT_LIB_SQL_SQL_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pgshift::sql {

// One statement of a script.
struct Statement {
  // As written, from its first token to its last (comments before and
  // after it are not part of it), without the terminating ';'.
  std::string text;
  int offset = 0;    // byte offset of its first character in the script
  int line = 1;      // line of its first character, from 1
};

// Splits `script` into statements with the parser, so that semicolons in
// literals, dollar-quoted bodies, comments and quoted identifiers never cut a
// statement. InvalidArgument with the position of the first syntax error.
absl::StatusOr<std::vector<Statement>> Split(absl::string_view script);

// A `--` comment alone on its line (blanks aside), found with the parser's
// scanner (one inside a literal or a dollar-quoted body is not a comment).
struct LineComment {
  size_t offset = 0;  // where its "--" starts
  int line = 1;
  std::string text;   // "-- ...", blanks around it stripped
};
// Every such comment of `script`. InvalidArgument when the script does not
// scan (an unterminated literal).
absl::StatusOr<std::vector<LineComment>> LineComments(absl::string_view script);

// Where the first `--` comment of `script` that reads exactly `comment`
// (blanks around it aside) and stands alone on its line starts, found with
// the parser's scanner (so that one inside a literal or a dollar-quoted
// body is not seen); nullopt when there is none. InvalidArgument when the
// script does not scan (an unterminated literal).
absl::StatusOr<std::optional<size_t>> FindLineComment(absl::string_view script, absl::string_view comment);

// OK when `sql` parses. Otherwise InvalidArgument reading
//   syntax error at or near "x" (line 2, column 7)
absl::Status CheckSyntax(absl::string_view sql);

// OK when `sql` is one SELECT (or VALUES) that only reads: no INTO, no
// FOR UPDATE/SHARE, no data-modifying WITH. Otherwise InvalidArgument saying
// what it is. (Functions it calls are not looked into: run it read-only.)
absl::Status CheckReadQuery(absl::string_view sql);

// An SQL expression written by a user (up, down, fill, default, check):
// exactly one value expression, without sub-SELECTs, statements, parameter
// references ($1), "*" or table-qualified column references. Its text is the
// deparser's, so it holds no comment and can be put wherever an expression
// goes; pgshift always puts it in parentheses.
class Expression {
 public:
  // `field` names the text in errors, e.g. "operations[0].change_type.up".
  static absl::StatusOr<Expression> Parse(absl::string_view text, absl::string_view field);

  const std::string& sql() const { return sql_; }
  // The columns it references, each once, in order of first use.
  const std::vector<std::string>& columns() const { return columns_; }
  bool References(absl::string_view column) const;

  // The same expression with every reference to column `from` made a
  // reference to column `to`.
  absl::StatusOr<Expression> RenameColumn(absl::string_view from, absl::string_view to) const;

 private:
  Expression() = default;
  std::string sql_;
  std::vector<std::string> columns_;
};

// A type name written by a user, e.g. "numeric(12,2)", "text[]",
// "timestamp with time zone": nothing else. Whether the type exists is for
// the server to say (catalog::ResolveType).
class TypeName {
 public:
  static absl::StatusOr<TypeName> Parse(absl::string_view text, absl::string_view field);

  // The deparser's spelling, e.g. "numeric(12, 2)".
  const std::string& sql() const { return sql_; }

 private:
  TypeName() = default;
  std::string sql_;
};

// The statement building a copy of an index on another column:
// `indexdef` is pg_get_indexdef() of the original; the copy is named `name`,
// built CONCURRENTLY, and every reference to column `from` (in its keys, key
// expressions, INCLUDE list and predicate) refers to column `to`.
absl::StatusOr<std::string> CopyIndexDefinition(absl::string_view indexdef, absl::string_view name,
                                                absl::string_view from, absl::string_view to);

// The statement adding a copy of a CHECK or FOREIGN KEY constraint on
// another column, NOT VALID: `constraintdef` is pg_get_constraintdef() of
// the original, on table `schema`.`table`; the copy is named `name`, and
// column `from` becomes `to` in the constraint's own columns (never in the
// columns a foreign key references). A foreign key's referenced table is
// set to `referenced` (schema, table) — pg_get_constraintdef leaves out a
// schema that is on the search_path.
struct QualifiedName {
  std::string schema, name;
};
absl::StatusOr<std::string> CopyConstraintDefinition(const QualifiedName& table,
                                                     absl::string_view constraintdef,
                                                     absl::string_view name,
                                                     absl::string_view from, absl::string_view to,
                                                     const QualifiedName& referenced = {});

// The fields of the trigger records NEW and OLD that a PL/pgSQL function
// names (NEW.email, OLD."Mixed Case"), read with the PL/pgSQL parser;
// `function_definition` is a CREATE FUNCTION statement (pg_get_functiondef).
// Fields reached only through dynamic SQL (EXECUTE format(...), to_jsonb(NEW))
// are not seen. InvalidArgument when the function does not parse.
absl::StatusOr<std::vector<std::string>> TriggerRecordFields(absl::string_view function_definition);

}  // namespace pgshift::sql

#endif  // PGSHIFT_LIB_SQL_SQL_H_
