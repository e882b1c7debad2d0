// Plain SQL migration files (docs/sql.md): a `.sql` file becomes one
// migration whose operations are its statements in order — each statement
// pgshift runs as written joins a `sql` operation (consecutive ones share
// one), each unsafe one it converts becomes the operation the linter names
// (lib/sql/lint.h), and one it refuses refuses the whole file. Transaction
// control and SET lock_timeout lines are left out. A `-- pgshift:down` line
// starts the statements that undo the file's hand-written ones (the first
// sql operation's `down`).
#ifndef PGSHIFT_LIB_SPEC_SQL_MIGRATION_H_
#define PGSHIFT_LIB_SPEC_SQL_MIGRATION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/sql/lint.h"
#include "pgshift/v1/migration.pb.h"

namespace pgshift {

// The comment line that starts the down section of a `.sql` file.
inline constexpr absl::string_view kSqlDownMarker = "-- pgshift:down";

// The migration named `name` (schema public) for the SQL text `sql` of file
// `origin`, judged with `catalog`. InvalidArgument naming the file, and for
// each statement refused its line, what it is, why, and what to write
// instead; or the line and column of a syntax error.
absl::StatusOr<v1::Migration> ConvertSqlMigration(absl::string_view sql, absl::string_view origin,
                                                  const std::string& name, sql::LintCatalog& catalog);

// What a baselined .sql file is recorded as (it never runs, so it is not
// judged): one sql operation holding its statements as written, "unsafe",
// with the down section as its down. InvalidArgument when it does not parse.
absl::StatusOr<v1::Migration> RecordedSqlMigration(absl::string_view sql, absl::string_view origin,
                                                   const std::string& name);

}  // namespace pgshift

#endif  // PGSHIFT_LIB_SPEC_SQL_MIGRATION_H_
