/* Application startup check in C: refuse to start when the schema is not
 * ready for this version of the application.
 *
 *   startup_check_c --dsn DSN --migration NAME --needs PHASE
 *
 * A new application version that reads `full_name` needs migration
 * 0042_rename_users_name at least at `switched`. It calls
 * pgshift_require_phase once at startup (one connection, one round trip) and
 * exits before serving anything when the migration has not got there.
 *
 * Exit codes (the same in startup_check.cc and startup_check.py):
 *   0  schema ready, the application starts
 *   3  schema not ready for this version (phase too low, or not registered)
 *   1  the check itself failed (server unreachable, ...)
 *   2  bad usage */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgshift/c.h"

int main(int argc, char** argv) {
  const char* dsn = getenv("PGSHIFT_DSN");
  const char* migration = NULL;
  const char* needs = NULL;
  char* err = NULL;
  int i, phase, code;

  for (i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--dsn") == 0) dsn = argv[i + 1];
    else if (strcmp(argv[i], "--migration") == 0) migration = argv[i + 1];
    else if (strcmp(argv[i], "--needs") == 0) needs = argv[i + 1];
  }
  if (migration == NULL || needs == NULL || argc % 2 == 0) {
    fprintf(stderr, "usage: startup_check_c [--dsn DSN] --migration NAME --needs PHASE\n");
    return 2;
  }
  phase = pgshift_phase_parse(needs, &err);
  if (phase < 0) {
    fprintf(stderr, "startup_check_c: %s\n", err);
    pgshift_free(err);
    return 2;
  }

  code = pgshift_require_phase(dsn, migration, phase, NULL, &err);
  if (code == PGSHIFT_FAILED_PRECONDITION || code == PGSHIFT_NOT_FOUND) {
    fprintf(stderr, "refusing to start: the schema is not ready for this version: %s\n", err);
    pgshift_free(err);
    return 3;
  }
  if (code != PGSHIFT_OK) {
    fprintf(stderr, "refusing to start: cannot check the schema (%s): %s\n",
            pgshift_code_name(code), err);
    pgshift_free(err);
    return 1;
  }
  printf("schema ready: %s has reached %s; starting\n", migration, needs);
  /* ... the application would start serving here ... */
  return 0;
}
