// Loading migration files: the proto3 JSON form of pgshift.v1.Migration with
// snake_case field names (proto/pgshift/v1/migration.proto). Unknown fields
// are refused, naming the field and where it was found.
//
// Example:
//   absl::StatusOr<pgshift::v1::Migration> m =
//       pgshift::LoadMigrationFile("migrations/0042_rename.json");
//   if (!m.ok()) { std::cerr << m.status() << "\n"; return 2; }
#ifndef PGSHIFT_MIGRATION_H_
#define PGSHIFT_MIGRATION_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "pgshift/v1/migration.pb.h"

namespace pgshift {

// Parses migration JSON text. InvalidArgument on malformed JSON, unknown
// fields, or a spec that is incomplete (missing names, no operations, ...).
// `origin` names the text in messages (a file path). Does not touch a
// database; the catalog checks happen in Driver::Plan/Register.
// `file_name`, when not empty, is the migration's name as a file of a
// migration directory (the file name without its extension): "name" may
// then be omitted, and must equal it when given. A leading UTF-8 byte order
// mark is skipped.
absl::StatusOr<v1::Migration> ParseMigrationJson(absl::string_view json,
                                                 absl::string_view origin = "migration",
                                                 absl::string_view file_name = "");

// Reads and parses a migration file; NotFound when it cannot be read. A
// path ending in ".sql" is a plain SQL migration (ConvertSql in lint.h,
// judged without a database; Driver::ConvertSql asks the live catalog),
// named after the file.
absl::StatusOr<v1::Migration> LoadMigrationFile(const std::string& path);

// The canonical JSON of `migration` (snake_case names, fields in declaration
// order, schema filled in): what is stored and checksummed at register.
std::string CanonicalJson(const v1::Migration& migration);

// `migration` as a migration file holds it: the canonical JSON, indented
// (what `pgshift convert` prints).
std::string MigrationFileJson(const v1::Migration& migration);

// The name of an operation's kind: "rename_column", "set_not_null", ...
absl::string_view OperationKind(const v1::Operation& op);

}  // namespace pgshift

#endif  // PGSHIFT_MIGRATION_H_
