// How pgshift reports errors: every fallible call returns absl::Status or
// absl::StatusOr<T>, with codes chosen to tell the caller what to do:
//
//   InvalidArgument / NotFound / AlreadyExists  bad migration spec or name;
//                                               nothing was changed.
//   FailedPrecondition  the migration is in the wrong phase for the call, or
//                       the data does not satisfy the change yet (validate).
//   Aborted             lock timeout, serialization failure or deadlock, or
//                       another driver holds the migration; retry later.
//   DeadlineExceeded    locks not acquired before the retry deadline.
//   Unavailable         the connection to the server was lost; re-run.
//
// When the error came from the server, its SQLSTATE is kept with the status.
//
// Example:
//   absl::StatusOr<pgshift::MigrationStatus> r = driver->Advance("0042_rename");
//   if (absl::IsAborted(r.status())) { /* busy: try again later */ }
//   std::string code = pgshift::SqlState(r.status());  // "55P03" for a lock timeout
//   int exit_code = pgshift::ExitCodeFor(r.status());  // 4 for busy, as the CLI would exit
#ifndef PGSHIFT_ERRORS_H_
#define PGSHIFT_ERRORS_H_

#include <string>

#include "absl/status/status.h"

namespace pgshift {

// The SQLSTATE carried by `status` ("55P03"), or "" when it has none.
std::string SqlState(const absl::Status& status);

// The exit code the CLI uses for `status` (docs/cli.md): 0 ok, 1 a step failed,
// 2 bad input, 4 busy or locks not acquired before the deadline.
int ExitCodeFor(const absl::Status& status);

// When Driver::Migrate fails after it started on a migration, the status
// says where it stopped: the migration's name (MigrateStoppedAt) and why
// (MigrateStopKind): "conflict" (an earlier migration must be contracted
// first), "refused" (the file does not fit the catalog), "failed" (a step
// failed, or contract was refused: see the code). Both "" for other errors
// (a refusal before anything ran, busy, ...). `--json` prints them as
// "stopped_at" and "stop".
std::string MigrateStoppedAt(const absl::Status& status);
std::string MigrateStopKind(const absl::Status& status);

}  // namespace pgshift

#endif  // PGSHIFT_ERRORS_H_
