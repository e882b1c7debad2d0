#include "pgshift/check.h"

#include "absl/strings/str_cat.h"
#include "lib/pg/connection.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift {

absl::StatusOr<Phase> CurrentPhase(const std::string& dsn, absl::string_view name,
                                   absl::string_view control_schema) {
  RETURN_IF_ERROR(pg::CheckIdentifier(control_schema, "control schema"));
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn,
                   pg::Connection::Open(dsn, "pgshift startup check"));
  auto r = conn->Exec(absl::StrCat("SELECT phase FROM ",
                                   pg::QuoteQualified(control_schema, "migrations"),
                                   " WHERE name = $1"),
                      {std::string(name)});
  if (!r.ok()) {
    if (absl::IsNotFound(r.status())) {
      return absl::NotFoundError(absl::StrCat("migration \"", name,
                                              "\" is not registered: the control schema \"",
                                              control_schema, "\" does not exist"));
    }
    return r.status();
  }
  if (r->rows() == 0) {
    return absl::NotFoundError(absl::StrCat("migration \"", name, "\" is not registered"));
  }
  return ParsePhase(r->Get(0, 0));
}

absl::Status RequirePhase(const std::string& dsn, absl::string_view name, Phase at_least,
                          absl::string_view control_schema) {
  ASSIGN_OR_RETURN(Phase p, CurrentPhase(dsn, name, control_schema));
  if (PhaseAtLeast(p, at_least)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("migration \"", name, "\" is at ", PhaseName(p),
                                                    "; this version needs at least ",
                                                    PhaseName(at_least)));
}

}  // namespace pgshift
