// The SQL linter's public face (include/pgshift/lint.h): lib/sql/lint.h
// judges the statements; this fills pgshift::LintReport from it, with the
// live catalog when there is a connection.
#ifndef PGSHIFT_LIB_ENGINE_LINT_H_
#define PGSHIFT_LIB_ENGINE_LINT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/pg/connection.h"
#include "pgshift/lint.h"

namespace pgshift::engine {

// Lints `sql`; `conn` null means without a database.
absl::StatusOr<LintReport> Lint(pg::Connection* conn, absl::string_view sql, absl::string_view origin,
                                const LintOptions& options);

}  // namespace pgshift::engine

#endif  // PGSHIFT_LIB_ENGINE_LINT_H_
