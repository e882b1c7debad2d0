// The layout of the control schema as data: its tables and columns, the
// version each column came with, the DDL that creates and upgrades it, and
// what a live schema's catalog says about it (pgshift's, foreign, newer,
// damaged). Control::Init and Control::RequireInitialized decide from it.
#ifndef PGSHIFT_LIB_ENGINE_CONTROL_SCHEMA_H_
#define PGSHIFT_LIB_ENGINE_CONTROL_SCHEMA_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/pg/connection.h"

namespace pgshift::engine {

// The comment on the meta table that marks a control schema as pgshift's.
inline constexpr char kControlMarker[] =
    "pgshift control schema: written by pgshift only (see pgshift status)";

// What the catalog says about the control tables in one schema.
struct ControlLayout {
  // table -> column -> format_type, for each control table that exists.
  std::map<std::string, std::map<std::string, std::string>> tables;
  std::map<std::string, std::string> kinds;  // table -> relkind, 'r' for a table
  bool marked = false;  // the meta table carries kControlMarker
  int version = 0;      // meta's schema_version; 0 when unknown
  // Why the tables are not pgshift's ("" when they are, or there are none).
  std::string foreign;
  // What is missing or wrong in pgshift's own tables, each saying what;
  // `repairable` is what init can recreate (an empty table whose loss
  // costs no state a running migration needs).
  std::vector<std::string> damage, repairable;

  bool empty() const { return tables.empty(); }
};

// Reads the control tables of `schema` (two queries, read-only).
absl::StatusOr<ControlLayout> InspectControlSchema(pg::Connection& conn, const std::string& schema);

// The other pgshift control schemas of this database (those whose meta table
// carries kControlMarker), `own` excluded, in name order.
absl::StatusOr<std::vector<std::string>> OtherControlSchemas(pg::Connection& conn, const std::string& own);

// The statements that create every control table missing from `schema` and
// add every column a table of an older version lacks; idempotent.
std::vector<std::string> ControlSchemaDdl(const std::string& schema);

}  // namespace pgshift::engine

#endif  // PGSHIFT_LIB_ENGINE_CONTROL_SCHEMA_H_
