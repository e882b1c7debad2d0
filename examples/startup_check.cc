// Application startup check in C++: refuse to start when the schema is not
// ready for this version of the application.
//
//   startup_check --dsn DSN --migration NAME --needs PHASE
//
// A new application version that reads `full_name` needs migration
// 0042_rename_users_name at least at `switched`. It calls
// pgshift::RequirePhase once at startup (one connection, one round trip) and
// exits before serving anything when the migration has not got there.
//
// Exit codes (the same in startup_check.c and startup_check.py):
//   0  schema ready, the application starts
//   3  schema not ready for this version (phase too low, or not registered)
//   1  the check itself failed (server unreachable, ...)
//   2  bad usage
#include <cstdio>
#include <cstdlib>
#include <string>

#include "pgshift/pgshift.h"

int main(int argc, char** argv) {
  std::string dsn = std::getenv("PGSHIFT_DSN") ? std::getenv("PGSHIFT_DSN") : "";
  std::string migration, needs;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--dsn") dsn = argv[i + 1];
    else if (flag == "--migration") migration = argv[i + 1];
    else if (flag == "--needs") needs = argv[i + 1];
  }
  if (migration.empty() || needs.empty() || argc % 2 == 0) {
    std::fprintf(stderr, "usage: startup_check [--dsn DSN] --migration NAME --needs PHASE\n");
    return 2;
  }
  absl::StatusOr<pgshift::Phase> phase = pgshift::ParsePhase(needs);
  if (!phase.ok()) {
    std::fprintf(stderr, "startup_check: %s\n", std::string(phase.status().message()).c_str());
    return 2;
  }

  absl::Status ready = pgshift::RequirePhase(dsn, migration, *phase);
  if (absl::IsFailedPrecondition(ready) || absl::IsNotFound(ready)) {
    std::fprintf(stderr, "refusing to start: the schema is not ready for this version: %s\n",
                 std::string(ready.message()).c_str());
    return 3;
  }
  if (!ready.ok()) {
    std::fprintf(stderr, "refusing to start: cannot check the schema (%s): %s\n",
                 absl::StatusCodeToString(ready.code()).c_str(),
                 std::string(ready.message()).c_str());
    return 1;
  }
  std::printf("schema ready: %s has reached %s; starting\n", migration.c_str(), needs.c_str());
  // ... the application would start serving here ...
  return 0;
}
