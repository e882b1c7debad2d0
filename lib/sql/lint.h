// The SQL linter (docs/cli.md, "lint"): each statement of a script, read
// from the parse tree, judged as pgshift would run it. The public form is
// pgshift::LintReport (include/pgshift/lint.h), filled from this by
// lib/engine/lint.cc; what needs the live catalog is asked through
// LintCatalog, which answers "unknown" without a database (the linter then
// assumes the worst and says so).
#ifndef PGSHIFT_LIB_SQL_LINT_H_
#define PGSHIFT_LIB_SQL_LINT_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pgshift::sql {

// What the linter asks the catalog; std::nullopt means "cannot tell".
class LintCatalog {
 public:
  virtual ~LintCatalog() = default;
  virtual std::optional<bool> TableExists(const std::string& schema, const std::string& table) = 0;
  // Whether any function named in `functions` ("nextval", "pg_catalog.random")
  // is volatile (any overload of that name, to be safe).
  virtual std::optional<bool> IsVolatile(const std::vector<std::string>& functions) = 0;
  // Whether changing `column` of the table to `type` (a type name, e.g.
  // "character varying(100)") with type modifier `typmod` (-1 for none,
  // kUnknownTypmod when the linter cannot compute it) rewrites or scans the
  // table.
  static constexpr int kUnknownTypmod = -2;
  virtual std::optional<bool> TypeChangeRewrites(const std::string& schema, const std::string& table,
                                                 const std::string& column, const std::string& type,
                                                 int typmod) = 0;
};

// The catalog of no database: every answer unknown.
class NoCatalog : public LintCatalog {
 public:
  std::optional<bool> TableExists(const std::string&, const std::string&) override { return std::nullopt; }
  std::optional<bool> IsVolatile(const std::vector<std::string>&) override { return std::nullopt; }
  std::optional<bool> TypeChangeRewrites(const std::string&, const std::string&, const std::string&,
                                         const std::string&, int) override {
    return std::nullopt;
  }
};

struct LintFinding {
  std::string rule, level, message;
};

// See pgshift::LintedStatement for the meaning of each field.
struct LintedStatement {
  std::string sql;
  int line = 1;
  std::string statement;
  std::string verdict;
  std::string lock = "none";
  std::vector<std::string> tables;
  bool scans_table = false;
  bool rewrites_table = false;
  std::vector<LintFinding> findings;
  std::string operation_json;
  std::string instead;
  bool assumed = false;

  // For running it (lib/ops/sql.cc, lib/spec/sql_migration.cc); not part of
  // the public report.
  struct TableLock {
    std::string schema, table, mode;  // mode as in `lock`
  };
  std::vector<TableLock> locks;  // every table it locks, the strongest mode on each
  // What it changes, for conflicts between migrations: a column it adds or
  // alters, or a whole table it creates (column "").
  struct Change {
    std::string schema, table, column;
  };
  std::vector<Change> changes;
  // It cannot run inside a transaction block (CREATE INDEX CONCURRENTLY,
  // VACUUM, ...).
  bool outside_transaction = false;
  // A statement safe as written that pgshift still runs as an operation,
  // which can be resumed: CREATE INDEX CONCURRENTLY on a table in use runs
  // as create_index (an INVALID leftover of an interrupted build is dropped
  // and built again). "" otherwise.
  std::string run_as_json;
  // The schema of the table (or index) the operation it is converted into
  // works on: an operation runs in its migration's schema.
  std::string operation_schema;
};

// Why `st` is unsafe as written: its first finding of level error,
// "<message> [<rule>]", for messages that refuse it.
std::string WhyUnsafe(const LintedStatement& st);

// Lints every statement of `script`; unqualified names are in `schema`.
// InvalidArgument (with line and column) when it does not parse.
// `created_before`: tables (schema, name) that statements before the script
// created (earlier operations of the same migration): new, like the ones it
// creates itself.
absl::StatusOr<std::vector<LintedStatement>> Lint(
    absl::string_view script, const std::string& schema, bool other_runner, LintCatalog& catalog,
    const std::vector<std::pair<std::string, std::string>>& created_before = {});

}  // namespace pgshift::sql

#endif  // PGSHIFT_LIB_SQL_LINT_H_
