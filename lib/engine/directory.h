// Migration directories (docs/cli.md, "Migration directories"): reading a
// directory of migration files and comparing it with what the control
// schema recorded. The driver (driver.cc) runs what this finds.
//
// A file's checksum is the SHA-256 of its bytes with CRLF line ends read as
// LF and a leading UTF-8 byte order mark dropped, so that a checkout on
// another platform does not count as a change.
#ifndef PGSHIFT_LIB_ENGINE_DIRECTORY_H_
#define PGSHIFT_LIB_ENGINE_DIRECTORY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/engine/control.h"
#include "lib/sql/lint.h"
#include "pgshift/driver.h"
#include "pgshift/v1/migration.pb.h"

namespace pgshift::engine {

// One migration file as read from the directory.
struct MigrationFile {
  std::string file;      // base name
  std::string name;      // file name without its extension
  std::string checksum;  // FileChecksum of its bytes; "" when !readable
  // False when its bytes could not be read (a broken symbolic link, no
  // permission, not a regular file): `spec` says why.
  bool readable = true;
  // The migration it holds, or why it cannot be read or parsed
  // (InvalidArgument, naming the file). A .sql file's is converted
  // (lib/spec/sql_migration.h) with the catalog ScanDirectory was given.
  absl::StatusOr<v1::Migration> spec;
  bool sql = false;  // a plain SQL file
  std::string text;  // a plain SQL file's text, to convert it again later
};

struct DirectoryScan {
  std::string directory;
  std::vector<MigrationFile> files;  // in byte order of file name
  std::vector<std::string> ignored;  // other entries, sorted
};

// Hex SHA-256 of `bytes`, normalized as described above.
std::string FileChecksum(absl::string_view bytes);

// Reads directory `dir`: every entry whose name ends in ".json" or ".sql"
// and does not start with "." is a migration file unless it is a directory
// (or a link to one); one that cannot be read (a broken symbolic link, no
// permission, a FIFO) is listed with that as its problem, never passed over.
// The rest is listed as ignored. A leading UTF-8 byte order mark is not
// part of the JSON. NotFound when `dir` does not exist, InvalidArgument
// when it is not a directory or cannot be listed. `.sql` files are judged
// with `catalog` (none: the linter assumes the worst where the catalog
// matters); nothing else touches a database.
absl::StatusOr<DirectoryScan> ScanDirectory(const std::string& dir, sql::LintCatalog* catalog = nullptr);

// Compares `scan` with the migrations the control schema holds (`stored`:
// all of them; empty before init) and says, for each file and for each
// migration registered from a file that is gone, where it stands
// (DirectoryFile::state) and what is wrong with it (problem). Pure. A .sql
// file that does not convert is a problem only while it is pending, and
// only with `judge_sql`: one applied (or baselined) is never judged again,
// and before the control schema was read nobody knows which are applied.
DirectoryReport Compare(const DirectoryScan& scan, const std::vector<StoredMigration>& stored,
                        bool judge_sql = true);

// The problems of `report` migrate refuses to run with, one line per file
// ("0003_x.json: ..."), all out-of-order ones left out with
// `allow_out_of_order`; empty when there is none. `through`, when not
// empty, limits it to the files up to that file name (and missing ones).
std::vector<std::string> Refusals(const DirectoryReport& report, bool allow_out_of_order,
                                  const std::string& through = "");

}  // namespace pgshift::engine

#endif  // PGSHIFT_LIB_ENGINE_DIRECTORY_H_
