/* Uses the installed C API from C. Exit 0 when everything behaved as expected.
 *   outside_c [DSN] */
#include <stdio.h>
#include <string.h>

#include "pgshift/c.h"

int main(int argc, char** argv) {
  int failures = 0;
  char* err = NULL;
  const char spec[] =
      "{\"name\": \"0001_outside\", \"operations\": [{\"rename_column\": "
      "{\"table\": \"t\", \"from\": \"a\", \"to\": \"b\"}}]}";
  pgshift_migration_t* m = pgshift_migration_parse_json(spec, strlen(spec), &err);
  if (m == NULL || strcmp(pgshift_migration_name(m), "0001_outside") != 0) {
    fprintf(stderr, "outside_c: FAILED: parse (%s)\n", err ? err : "");
    failures++;
  }
  pgshift_migration_destroy(m);
  if (pgshift_require_phase("host=127.0.0.1 port=1 connect_timeout=5", "0001_outside",
                            PGSHIFT_PHASE_SWITCHED, NULL, &err) != PGSHIFT_UNAVAILABLE) {
    fprintf(stderr, "outside_c: FAILED: unreachable server is not UNAVAILABLE\n");
    failures++;
  }
  if (argc > 1 && pgshift_require_phase(argv[1], "0001_outside", PGSHIFT_PHASE_SWITCHED,
                                        "pgshift_outside_no_such_schema",
                                        &err) != PGSHIFT_NOT_FOUND) {
    fprintf(stderr, "outside_c: FAILED: startup check: %s (%s)\n",
            pgshift_code_name(pgshift_last_code()), err ? err : "");
    failures++;
  }
  pgshift_free(err);
  if (failures == 0) printf("outside_c: ok\n");
  return failures == 0 ? 0 : 1;
}
