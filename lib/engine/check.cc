#include "pgshift/check.h"

#include "absl/strings/str_cat.h"
#include "lib/engine/control.h"
#include "lib/pg/connection.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift {

absl::StatusOr<Phase> CurrentPhase(const std::string& dsn, absl::string_view name,
                                   absl::string_view control_schema) {
  RETURN_IF_ERROR(pg::CheckIdentifier(control_schema, "control schema"));
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn,
                   pg::Connection::Open(dsn, "pgshift startup check"));
  engine::Control control(*conn, std::string(control_schema));
  return control.CurrentPhase(std::string(name));
}

absl::Status RequirePhase(const std::string& dsn, absl::string_view name, Phase at_least,
                          absl::string_view control_schema) {
  ASSIGN_OR_RETURN(Phase p, CurrentPhase(dsn, name, control_schema));
  return engine::PhaseReached(name, p, at_least);
}

}  // namespace pgshift
