// Status helpers shared by every layer: context added to a message, and the
// SQLSTATE a status carries (the one place that knows where it is kept).
#ifndef PGSHIFT_LIB_UTIL_STATUS_H_
#define PGSHIFT_LIB_UTIL_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pgshift::util {

// Prefixes `status`'s message with `context` ("advancing X: ..."), keeping
// its code and payloads (the SQLSTATE among them).
absl::Status Annotate(const absl::Status& status, absl::string_view context);

// `status` carrying SQLSTATE `sqlstate` (e.g. "55P03").
absl::Status WithSqlState(absl::Status status, absl::string_view sqlstate);

// The SQLSTATE `status` carries, or "" when none (public as pgshift::SqlState).
std::string SqlStateOf(const absl::Status& status);

// `status` carrying where Driver::Migrate stopped (public as
// pgshift::MigrateStoppedAt / MigrateStopKind).
absl::Status WithMigrateStop(absl::Status status, absl::string_view migration, absl::string_view kind);
std::string MigrateStoppedAtOf(const absl::Status& status);
std::string MigrateStopKindOf(const absl::Status& status);

// `status` with another code, same message and payloads.
absl::Status WithCode(const absl::Status& status, absl::StatusCode code);

}  // namespace pgshift::util

#endif  // PGSHIFT_LIB_UTIL_STATUS_H_
