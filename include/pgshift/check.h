// Startup checks for applications: is the schema ready for this version?
// Each call is one round trip on an open connection (plus the connection).
//
// Example (new app version, needs the new shape):
//   absl::Status ready = pgshift::RequirePhase(dsn, "0042_rename_users_name",
//                                              pgshift::Phase::kSwitched);
//   if (!ready.ok()) { std::cerr << ready << "\n"; std::exit(1); }
//
// Thread-safe: each call uses its own connection.
#ifndef PGSHIFT_CHECK_H_
#define PGSHIFT_CHECK_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pgshift/phase.h"

namespace pgshift {

// The phase of migration `name`; NotFound when it is not registered (or the
// control schema does not exist).
absl::StatusOr<Phase> CurrentPhase(const std::string& dsn, absl::string_view name,
                                   absl::string_view control_schema = "pgshift");

// OK when migration `name` has reached `at_least`; FailedPrecondition saying
// where it stands otherwise; NotFound when it is not registered.
absl::Status RequirePhase(const std::string& dsn, absl::string_view name, Phase at_least,
                          absl::string_view control_schema = "pgshift");

}  // namespace pgshift

#endif  // PGSHIFT_CHECK_H_
