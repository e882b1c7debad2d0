// Linting plain SQL migrations (docs/cli.md, "lint"): every statement of a
// script, parsed with the PostgreSQL parser, judged as pgshift would run it —
// the lock it takes, whether it scans or rewrites a table, the findings
// (with stable rule ids) and what pgshift runs instead when it is unsafe as
// written.
//
// Example:
//   absl::StatusOr<pgshift::LintReport> r =
//       pgshift::LintSql("CREATE INDEX users_email ON users (email);", "0042.sql");
//   if (r.ok() && r->unsafe) std::cout << pgshift::ToJson(*r) << "\n";
//
// Thread-safe.
#ifndef PGSHIFT_LINT_H_
#define PGSHIFT_LINT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pgshift/v1/migration.pb.h"

namespace pgshift {

struct LintFinding {
  // Stable id, e.g. "require-concurrent-index" (docs/cli.md lists them).
  std::string rule;
  // "error": unsafe as written (pgshift converts or refuses it);
  // "warning": runs, but deserves a look; "note": for information.
  std::string level;
  std::string message;
};

struct LintedStatement {
  std::string sql;  // as written, without the terminating ';'
  int line = 1;     // where it starts in the script, from 1
  // What it is, in a few words: "CREATE INDEX", "ALTER TABLE ADD COLUMN", ...
  std::string statement;
  // "safe": pgshift runs it as written, in its own short transaction with
  //   lock_timeout and retries;
  // "convert": unsafe as written; pgshift runs `operation_json` instead;
  // "refuse": pgshift will not run it; `instead` says what to write;
  // "control": transaction control or a session setting, which pgshift
  //   understands and does not run (it runs each statement its own way).
  std::string verdict;
  // The strongest table lock the statement takes as written
  // ("ACCESS EXCLUSIVE", "SHARE", ...), "none" when it locks no table.
  std::string lock;
  std::vector<std::string> tables;  // the tables it locks, quoted and qualified
  bool scans_table = false;         // as written, reads every row under its lock
  bool rewrites_table = false;      // as written, rewrites the table under its lock
  std::vector<LintFinding> findings;
  // The pgshift operation it becomes ("convert"), or one to write instead
  // ("refuse", when there is one; "..." marks what only the author can
  // write, such as a change_type's down), as JSON: {"create_index": {...}},
  // or an array of them when the statement becomes several operations
  // (ALTER TABLE ... DROP COLUMN a, DROP COLUMN b); "" otherwise.
  std::string operation_json;
  std::string instead;  // in words: what pgshift runs, or what to do
  // A rule needed the live catalog (is the default volatile, does the type
  // change rewrite) and, without a database, assumed the worst. (Without a
  // database every table the script does not create is taken to exist and
  // be in use; that is not marked.)
  bool assumed = false;
};

struct LintReport {
  std::string origin;                     // the file, in messages
  std::vector<LintedStatement> statements;
  bool unsafe = false;  // some statement is "convert" or "refuse" (CLI exit 1)
};

struct LintOptions {
  // Schema of unqualified table names.
  std::string schema = "public";
  // Judge the file as another migration runner would run it (statement by
  // statement as written): rules that are moot inside pgshift, such as
  // require-lock-timeout, become warnings instead of notes.
  bool other_runner = false;
};

// Lints `sql` without a database: catalog-dependent rules assume the worst
// (LintedStatement::assumed). InvalidArgument when the script does not parse,
// with the line and column of the error. Driver::Lint does the same with the
// live catalog.
absl::StatusOr<LintReport> LintSql(absl::string_view sql, absl::string_view origin,
                                   const LintOptions& options = {});

// The migration `pgshift migrate` runs for a plain SQL migration file
// (docs/sql.md) named `name`, without a database (catalog-dependent rules
// assume the worst; Driver::ConvertSql asks the live catalog): statements
// safe as written become `sql` operations, unsafe ones the operations with
// the same end state; transaction control is left out. InvalidArgument
// naming the file and, for every statement it refuses, the line, the reason
// and what to write instead; or the position of a syntax error.
absl::StatusOr<v1::Migration> ConvertSql(absl::string_view sql, absl::string_view origin,
                                         const std::string& name);

}  // namespace pgshift

#endif  // PGSHIFT_LINT_H_
