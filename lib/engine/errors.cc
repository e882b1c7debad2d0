// pgshift/errors.h: the SQLSTATE of a status and the CLI's exit-code policy
// (docs/cli.md, exit codes), shared by the CLI, the C API and the bindings.
#include "pgshift/errors.h"

#include "lib/util/status.h"

namespace pgshift {

std::string SqlState(const absl::Status& status) { return util::SqlStateOf(status); }

std::string MigrateStoppedAt(const absl::Status& status) { return util::MigrateStoppedAtOf(status); }
std::string MigrateStopKind(const absl::Status& status) { return util::MigrateStopKindOf(status); }

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
      return 2;
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
      return 4;
    default:
      return 1;
  }
}

}  // namespace pgshift
