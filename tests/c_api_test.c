/* The C API (include/pgshift/c.h), compiled as C: drives a whole
 * rename_column migration on a real PostgreSQL server while an "old" and a
 * "new" application write through libpq, and checks results, phases, error
 * codes, SQLSTATEs, the progress and preflight callbacks, options set
 * through the library's option list (and their messages), pause/resume,
 * instance declarations with the contract guard, and the status JSON; then
 * a migration directory: migrate, its events, directory status, contract,
 * refusals of a changed or out-of-order file, and baseline.
 *
 * Server: PGSHIFT_TEST_DSN, or a throwaway cluster started with
 * scripts/pgtemp.sh (PGSHIFT_SOURCE_DIR is defined by CMake). Each run uses a
 * database of its own, dropped at the end. Exit 0 when every check passed. */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgshift/c.h"

static int failures = 0;
static char server_dsn[1024];
static char cluster_dir[256];
static char db_name[64];

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                           \
    }                                                                       \
  } while (0)

/* Fatal: the rest of the test cannot run. */
#define REQUIRE(cond)                                                       \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                              \
    }                                                                       \
  } while (0)

#define CHECK_CODE(expected)                                                   \
  do {                                                                         \
    int got_ = pgshift_last_code();                                            \
    if (got_ != (expected)) {                                                  \
      fprintf(stderr, "%s:%d: expected code %s, got %s (%s)\n", __FILE__,        \
              __LINE__, pgshift_code_name(expected), pgshift_code_name(got_),  \
              err ? err : "no message");                                       \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static void stop_cluster(void) {
  char cmd[1024];
  if (cluster_dir[0] == '\0') return;
  snprintf(cmd, sizeof cmd, "bash '%s/scripts/pgtemp.sh' stop '%s' >/dev/null 2>&1",
           PGSHIFT_SOURCE_DIR, cluster_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not stop the cluster in %s\n", cluster_dir);
  cluster_dir[0] = '\0';
}

static void find_server(void) {
  const char* env = getenv("PGSHIFT_TEST_DSN");
  char cmd[1024];
  FILE* p;
  size_t n;
  if (env != NULL && env[0] != '\0') {
    snprintf(server_dsn, sizeof server_dsn, "%s", env);
    return;
  }
  snprintf(cluster_dir, sizeof cluster_dir, "%s/pgshift-c-api-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  REQUIRE(mkdtemp(cluster_dir) != NULL);
  atexit(stop_cluster);
  snprintf(cmd, sizeof cmd, "bash '%s/scripts/pgtemp.sh' start '%s'", PGSHIFT_SOURCE_DIR,
           cluster_dir);
  p = popen(cmd, "r");
  REQUIRE(p != NULL);
  n = fread(server_dsn, 1, sizeof server_dsn - 1, p);
  server_dsn[n] = '\0';
  REQUIRE(pclose(p) == 0);
  while (n > 0 && (server_dsn[n - 1] == '\n' || server_dsn[n - 1] == ' ')) server_dsn[--n] = '\0';
  REQUIRE(n > 0);
}

static void quiet(void* arg, const char* message) {
  (void)arg;
  (void)message;
}

/* A connection to database `dbname` (NULL: the server DSN's own). */
static PGconn* connect_db(const char* dbname) {
  const char* keys[] = {"dbname", "dbname", NULL};
  const char* vals[] = {server_dsn, dbname, NULL};
  PGconn* c;
  if (dbname == NULL) keys[1] = NULL;
  c = PQconnectdbParams(keys, vals, 1);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "cannot connect: %s", PQerrorMessage(c));
    exit(1);
  }
  PQsetNoticeProcessor(c, quiet, NULL);
  return c;
}

/* Runs `sql`; fatal on error. Returns the result (caller clears it). */
static PGresult* exec_ok(PGconn* c, const char* sql) {
  PGresult* r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    fprintf(stderr, "SQL failed: %s\n  %s", sql, PQresultErrorMessage(r));
    exit(1);
  }
  return r;
}

static void run(PGconn* c, const char* sql) { PQclear(exec_ok(c, sql)); }

/* First value of the first row as a long. */
static long query_long(PGconn* c, const char* sql) {
  PGresult* r = exec_ok(c, sql);
  long v;
  REQUIRE(PQntuples(r) == 1);
  v = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return v;
}

/* The key=value DSN of an open connection (what pgshift should connect to). */
static char* dsn_of(PGconn* c) {
  static char out[2048];
  PQconninfoOption* opts = PQconninfo(c);
  PQconninfoOption* o;
  size_t len = 0;
  out[0] = '\0';
  for (o = opts; o->keyword != NULL; ++o) {
    const char* v;
    if (o->val == NULL || o->val[0] == '\0') continue;
    len += (size_t)snprintf(out + len, sizeof out - len, "%s%s='", len ? " " : "", o->keyword);
    for (v = o->val; *v && len + 4 < sizeof out; ++v) {
      if (*v == '\'' || *v == '\\') out[len++] = '\\';
      out[len++] = *v;
    }
    out[len++] = '\'';
    out[len] = '\0';
  }
  PQconninfoFree(opts);
  return out;
}

/* ---- progress callback --------------------------------------------------- */

struct progress_seen {
  int calls;
  int finished;
  long rows_done_at_finish;
  long rows_updated_at_finish;
  long max_estimate;
  long max_batch_rows;
  int bad_strings;
  int bad_estimated; /* reports whose rows_estimated is not "until finished" */
  int paused_reports;
  /* When set, resumes the migration (with this driver) once a report says
   * the backfill waits because it is paused. */
  pgshift_driver_t* resume_driver;
  int resume_code;
  /* While driver A backfills (holding the migration), driver B tries too. */
  pgshift_driver_t* second_driver;
  const char* name;
  int second_code;
  char* second_err;
};

static void on_progress(void* arg, const pgshift_progress_t* p) {
  struct progress_seen* s = (struct progress_seen*)arg;
  s->calls++;
  if (p->migration == NULL || strcmp(p->migration, s->name) != 0) s->bad_strings++;
  if (p->step == NULL || strcmp(p->step, "backfilled") != 0) s->bad_strings++;
  if (p->rows_estimate > s->max_estimate) s->max_estimate = (long)p->rows_estimate;
  if (p->batch_rows > s->max_batch_rows) s->max_batch_rows = (long)p->batch_rows;
  if (p->waiting == NULL) {
    s->bad_strings++;
  } else if (strcmp(p->waiting, "paused") == 0) {
    s->paused_reports++;
    if (s->resume_driver != NULL && s->resume_code < 0) {
      s->resume_code = pgshift_driver_resume(s->resume_driver, s->name, NULL);
    }
  }
  if (p->rows_estimated != !p->finished) s->bad_estimated++;
  if (!(p->pace >= 0.05 && p->pace <= 1) || p->probe_working_ms < 0 || p->probe_resting_ms < 0) {
    s->bad_strings++;
  }
  if (p->finished) {
    s->finished++;
    s->rows_done_at_finish = (long)p->rows_done;
    s->rows_updated_at_finish = (long)p->rows_updated;
  }
  if (s->second_driver != NULL && s->second_code < 0) {
    pgshift_status_t* st = pgshift_driver_advance(s->second_driver, s->name, &s->second_err);
    s->second_code = pgshift_last_code();
    pgshift_status_destroy(st);
  }
}

/* ---- preflight callback ---------------------------------------------------- */

struct preflight_seen {
  int calls;
  char outcome[32];
  char table[128];
  char* sessions_json; /* malloc()ed copy of the last report's */
};

static void on_preflight(void* arg, const pgshift_preflight_t* r) {
  struct preflight_seen* s = (struct preflight_seen*)arg;
  s->calls++;
  snprintf(s->outcome, sizeof s->outcome, "%s", r->outcome);
  snprintf(s->table, sizeof s->table, "%s", r->table);
  free(s->sessions_json);
  s->sessions_json = malloc(strlen(r->sessions_json) + 1);
  strcpy(s->sessions_json, r->sessions_json);
}

/* ---- the test ------------------------------------------------------------ */

/* 1 when malloc()ed `got` equals `want`; frees `got`. */
static int take_equals(char* got, const char* want) {
  int same = got != NULL && strcmp(got, want) == 0;
  if (!same) fprintf(stderr, "  got \"%s\", want \"%s\"\n", got ? got : "(null)", want);
  pgshift_free(got);
  return same;
}

static int starts_with(const char* s, const char* prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Index of option `name` in the option list, or -1. */
static long option_index(const char* name) {
  size_t i;
  for (i = 0; i < pgshift_option_count(); ++i) {
    if (strcmp(pgshift_option_name(i), name) == 0) return (long)i;
  }
  return -1;
}

static void test_options_without_server(void) {
  char* err = NULL;
  size_t i, n = pgshift_option_count();
  long preflight;
  pgshift_options_t* opt = pgshift_options_create();
  pgshift_driver_t* d;
  const char* unreachable = "host=127.0.0.1 port=1 connect_timeout=5";

  /* The list: every entry complete; NULL past the end. */
  CHECK(n >= 20);
  for (i = 0; i < n; ++i) {
    char* text;
    CHECK(pgshift_option_name(i) != NULL && pgshift_option_flag(i) != NULL &&
          pgshift_option_kind(i) != NULL && pgshift_option_help(i) != NULL);
    /* Every option reads back, and its own text sets it again. */
    text = pgshift_options_get(opt, pgshift_option_name(i), &err);
    CHECK_CODE(PGSHIFT_OK);
    REQUIRE(text != NULL);
    CHECK(pgshift_options_set(opt, pgshift_option_name(i), text, &err) == PGSHIFT_OK);
    pgshift_free(text);
  }
  CHECK(pgshift_option_name(n) == NULL && pgshift_option_kind(n) == NULL);
  preflight = option_index("preflight");
  REQUIRE(preflight >= 0);
  CHECK(strcmp(pgshift_option_kind((size_t)preflight), "choice") == 0);
  CHECK(strcmp(pgshift_option_flag((size_t)preflight), "preflight") == 0);
  CHECK(strcmp(pgshift_option_choice((size_t)preflight, 0), "wait") == 0);
  CHECK(strcmp(pgshift_option_choice((size_t)preflight, 2), "off") == 0);
  CHECK(pgshift_option_choice((size_t)preflight, 3) == NULL);
  CHECK(pgshift_option_choice((size_t)option_index("lock_timeout"), 0) == NULL);

  /* Generic set/get: the text form, read back in the library's form. */
  CHECK(take_equals(pgshift_options_get(opt, "lock_timeout", &err), "1s"));
  CHECK(pgshift_options_set(opt, "lock_timeout", "1500ms", &err) == PGSHIFT_OK);
  CHECK(take_equals(pgshift_options_get(opt, "lock_timeout", &err), "1.5s"));
  CHECK(pgshift_options_set(opt, "backfill_walk", "pages", &err) == PGSHIFT_OK);
  CHECK(take_equals(pgshift_options_get(opt, "backfill_walk", &err), "pages"));
  CHECK(pgshift_options_set(opt, "force_contract", "true", &err) == PGSHIFT_OK);
  CHECK(take_equals(pgshift_options_get(opt, "force_contract", &err), "true"));
  CHECK(err == NULL);

  /* A bad value: the library's message, the option keeps its value. */
  CHECK(pgshift_options_set(opt, "lock_timeout", "soon", &err) == PGSHIFT_INVALID_ARGUMENT);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strcmp(err, "lock_timeout (--lock-timeout): \"soon\" is not a duration "
                                   "like 500ms, 1.5s or 2m") == 0);
  CHECK(take_equals(pgshift_options_get(opt, "lock_timeout", &err), "1.5s"));
  CHECK(pgshift_options_set(opt, "backfill_batch_rows", "ten", &err) == PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL &&
        strcmp(err, "backfill_batch_rows (--batch-rows): \"ten\" is not an integer") == 0);
  CHECK(pgshift_options_set(opt, "lock_timout", "1s", &err) == PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && starts_with(err, "unknown option \"lock_timout\"; options are: ") &&
        strstr(err, "lock_timeout") != NULL);
  CHECK(pgshift_options_get(opt, "lock_timout", &err) == NULL);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  CHECK(pgshift_options_set(opt, "lock_timeout", NULL, &err) == PGSHIFT_INVALID_ARGUMENT);

  /* Typed shorthands go through the same list. */
  pgshift_options_set_lock_timeout_ms(opt, 700);
  CHECK(take_equals(pgshift_options_get(opt, "lock_timeout", &err), "700ms"));
  pgshift_options_set_backfill_batch_rows(opt, 250);
  CHECK(take_equals(pgshift_options_get(opt, "backfill_batch_rows", &err), "250"));
  pgshift_options_set_control_schema(opt, "ctl");
  CHECK(take_equals(pgshift_options_get(opt, "control_schema", &err), "ctl"));
  pgshift_options_set_force_contract(opt, 0);
  CHECK(take_equals(pgshift_options_get(opt, "force_contract", &err), "false"));
  CHECK(pgshift_options_set_preflight_mode(opt, PGSHIFT_PREFLIGHT_REFUSE, &err) == PGSHIFT_OK);
  CHECK(take_equals(pgshift_options_get(opt, "preflight", &err), "refuse"));
  CHECK(pgshift_options_set_preflight_mode(opt, 7, &err) == PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL &&
        strcmp(err, "preflight (--preflight): \"7\" is not one of wait, refuse, off") == 0);
  CHECK(take_equals(pgshift_options_get(opt, "preflight", &err), "refuse"));
  CHECK(pgshift_options_set_backfill_walk(opt, PGSHIFT_BACKFILL_WALK_KEY, &err) == PGSHIFT_OK);
  CHECK(take_equals(pgshift_options_get(opt, "backfill_walk", &err), "key"));
  CHECK(pgshift_options_set_backfill_walk(opt, -1, &err) == PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL &&
        strcmp(err, "backfill_walk (--backfill-walk): \"-1\" is not one of auto, key, pages") == 0);

  pgshift_options_set_latency_guard(opt, 2.5);
  CHECK(take_equals(pgshift_options_get(opt, "latency_guard", &err), "2.5"));
  pgshift_options_set_latency_guard(opt, 0);
  CHECK(take_equals(pgshift_options_get(opt, "latency_guard", &err), "off"));
  pgshift_options_set_throttle_query(opt, "SELECT false");
  CHECK(take_equals(pgshift_options_get(opt, "throttle_query", &err), "SELECT false"));
  pgshift_options_set_backfill_lock_timeout_ms(opt, 350);
  CHECK(take_equals(pgshift_options_get(opt, "backfill_lock_timeout", &err), "350ms"));
  pgshift_options_set_backfill_poll_interval_ms(opt, 2500);
  CHECK(take_equals(pgshift_options_get(opt, "backfill_poll_interval", &err), "2.5s"));
  pgshift_options_set_long_transaction_ms(opt, 60000);
  CHECK(take_equals(pgshift_options_get(opt, "long_transaction", &err), "1m"));
  pgshift_options_set_max_locked_scan_rows(opt, -1);
  CHECK(take_equals(pgshift_options_get(opt, "max_locked_scan_rows", &err), "-1"));
  pgshift_options_set_lease_heartbeat_ms(opt, 2000);
  CHECK(take_equals(pgshift_options_get(opt, "lease_heartbeat", &err), "2s"));

  /* Ranges are checked at connect, before connecting: INVALID_ARGUMENT with
   * the library's message, not UNAVAILABLE. */
  pgshift_options_set_latency_guard(opt, 0.5);
  CHECK(pgshift_driver_connect(unreachable, opt, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && starts_with(err, "latency_guard (--latency-guard) must be above 1"));
  pgshift_options_set_latency_guard(opt, 1.5);
  pgshift_options_set_throttle_query(opt, "DELETE FROM t");
  CHECK(pgshift_driver_connect(unreachable, opt, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && starts_with(err, "throttle_query (--throttle-query): "));
  pgshift_options_set_throttle_query(opt, NULL);
  pgshift_options_set_lock_timeout_ms(opt, 0);
  d = pgshift_driver_connect(unreachable, opt, &err);
  CHECK(d == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strcmp(err, "lock_timeout (--lock-timeout) must be positive, got 0") == 0);
  pgshift_options_set_lock_timeout_ms(opt, 1000);
  pgshift_options_set_retry_deadline_ms(opt, -5);
  CHECK(pgshift_driver_connect(unreachable, opt, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL &&
        strcmp(err, "retry_deadline (--retry-deadline) must be zero or positive, got -5ms") == 0);
  pgshift_options_set_retry_deadline_ms(opt, 100);
  CHECK(pgshift_driver_connect(unreachable, opt, &err) == NULL);
  CHECK_CODE(PGSHIFT_UNAVAILABLE); /* good options: it got as far as connecting */

  /* Instance declarations check their arguments before connecting. */
  CHECK(pgshift_declare_instance(unreachable, "m", 5, "i", NULL, 0, NULL, &err) ==
        PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "5 is not a shape") != NULL);
  CHECK(pgshift_declare_instance(unreachable, "m", PGSHIFT_SHAPE_OLD, "i", NULL, -1, NULL, &err) ==
        PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "ttl must be positive") != NULL);
  CHECK(pgshift_instance_registration_start(unreachable, "m", 2, NULL, NULL, 0, NULL, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(pgshift_declare_instance(unreachable, "m", PGSHIFT_SHAPE_NEW, NULL, NULL, 0, NULL, &err) ==
        PGSHIFT_UNAVAILABLE);

  pgshift_options_destroy(opt);
  pgshift_free(err);
}

static void test_codes_and_phases(void) {
  char* err = NULL;
  CHECK(strcmp(pgshift_phase_name(PGSHIFT_PHASE_TRIGGER_INSTALLED), "trigger_installed") == 0);
  CHECK(strcmp(pgshift_phase_name(PGSHIFT_PHASE_ROLLED_BACK), "rolled_back") == 0);
  CHECK(pgshift_phase_name(8) == NULL);
  CHECK(pgshift_phase_name(-1) == NULL);
  CHECK(pgshift_phase_parse("switched", &err) == PGSHIFT_PHASE_SWITCHED);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(err == NULL);
  CHECK(pgshift_phase_parse("swiched", &err) == -1);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  REQUIRE(err != NULL);
  CHECK(strstr(err, "swiched") != NULL && strstr(err, "contracted") != NULL);
  CHECK(pgshift_phase_at_least(PGSHIFT_PHASE_CONTRACTED, PGSHIFT_PHASE_SWITCHED) == 1);
  CHECK(pgshift_phase_at_least(PGSHIFT_PHASE_VALIDATED, PGSHIFT_PHASE_SWITCHED) == 0);
  CHECK(pgshift_phase_at_least(PGSHIFT_PHASE_ROLLED_BACK, PGSHIFT_PHASE_REGISTERED) == 0);
  CHECK(pgshift_phase_at_least(PGSHIFT_PHASE_ROLLED_BACK, PGSHIFT_PHASE_ROLLED_BACK) == 1);
  CHECK(strcmp(pgshift_code_name(PGSHIFT_FAILED_PRECONDITION), "FAILED_PRECONDITION") == 0);
  CHECK(strcmp(pgshift_code_name(99), "UNKNOWN") == 0);
  CHECK(pgshift_exit_code(PGSHIFT_OK) == 0);
  CHECK(pgshift_exit_code(PGSHIFT_FAILED_PRECONDITION) == 1);
  CHECK(pgshift_exit_code(PGSHIFT_INVALID_ARGUMENT) == 2);
  CHECK(pgshift_exit_code(PGSHIFT_NOT_FOUND) == 2);
  CHECK(pgshift_exit_code(PGSHIFT_ABORTED) == 4);
  CHECK(pgshift_exit_code(PGSHIFT_DEADLINE_EXCEEDED) == 4);
  pgshift_free(err);
}

static void test_specs_without_server(void) {
  char* err = NULL;
  const char good[] =
      "{\"name\": \"m1\", \"operations\": [{\"rename_column\": "
      "{\"table\": \"t\", \"from\": \"a\", \"to\": \"b\"}}]}";
  const char unknown_field[] =
      "{\"name\": \"m1\", \"operations\": [{\"rename_column\": "
      "{\"table\": \"t\", \"from\": \"a\", \"too\": \"b\"}}]}";
  pgshift_migration_t* m = pgshift_migration_parse_json(good, strlen(good), &err);
  char* canonical;
  REQUIRE(m != NULL);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(strcmp(pgshift_migration_name(m), "m1") == 0);
  canonical = pgshift_migration_canonical_json(m);
  CHECK(strstr(canonical, "\"schema\":\"public\"") != NULL ||
        strstr(canonical, "\"schema\": \"public\"") != NULL);
  pgshift_free(canonical);
  pgshift_migration_destroy(m);

  CHECK(pgshift_migration_parse_json(unknown_field, strlen(unknown_field), &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "too") != NULL);
  CHECK(pgshift_migration_parse_json("{not json", 9, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(pgshift_migration_load_file("/nonexistent/dir/0001.json", &err) == NULL);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  CHECK(pgshift_migration_parse_json(NULL, 0, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  pgshift_free(err);
}

static int json_value_is(const char* json, const char* anchor, const char* key, const char* value);
static int count_of(const char* s, const char* needle);

static void test_plain_sql_without_server(void) {
  char* err = NULL;
  char* json = pgshift_lint_json("BEGIN;\nCREATE INDEX users_email ON users (email);\nCOMMIT;", "0042.sql", 0, &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(json != NULL);
  CHECK(json_value_is(json, "{", "unsafe", "true"));
  CHECK(strstr(json, "\"rule\":\"require-concurrent-index\"") != NULL);
  CHECK(count_of(json, "\"verdict\":\"control\"") == 2);
  pgshift_free(json);
  /* Another runner: the lock_timeout note becomes a warning. */
  json = pgshift_lint_json("ALTER TABLE users ADD COLUMN c text;", NULL, PGSHIFT_LINT_OTHER_RUNNER, &err);
  REQUIRE(json != NULL);
  CHECK(strstr(json, "\"level\":\"warning\"") != NULL);
  pgshift_free(json);
  CHECK(pgshift_lint_json("CREATE INDEXX i ON t (c);", "bad.sql", 0, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "line 1, column 8") != NULL);
  CHECK(pgshift_lint_json("SELECT 1;", NULL, 8, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);

  json = pgshift_convert_sql("ALTER TABLE users RENAME COLUMN name TO full_name;\nCREATE TABLE t (id int);", NULL,
                             "0043_rename", &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(json != NULL);
  CHECK(strstr(json, "\"name\":\"0043_rename\"") != NULL);
  CHECK(strstr(json, "\"rename_column\":{\"table\":\"users\",\"from\":\"name\",\"to\":\"full_name\"}") != NULL);
  CHECK(strstr(json, "\"sql\":{\"up\":\"CREATE TABLE t (id int)\"}") != NULL);
  pgshift_free(json);
  CHECK(pgshift_convert_sql("VACUUM FULL users;", "0044.sql", "0044", &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "line 1 (VACUUM FULL)") != NULL);
  CHECK(pgshift_convert_sql("SELECT 1;", NULL, NULL, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  pgshift_free(err);
}

static void test_unreachable_server(void) {
  char* err = NULL;
  pgshift_driver_t* d =
      pgshift_driver_connect("host=127.0.0.1 port=1 user=x password=hunter2 connect_timeout=5",
                             NULL, &err);
  CHECK(d == NULL);
  CHECK_CODE(PGSHIFT_UNAVAILABLE);
  CHECK(err != NULL && strstr(err, "hunter2") == NULL);
  CHECK(pgshift_require_phase("host=127.0.0.1 port=1 connect_timeout=5", "m",
                              PGSHIFT_PHASE_SWITCHED, NULL, &err) == PGSHIFT_UNAVAILABLE);
  pgshift_free(err);
}

static int always_interrupted(void* arg) {
  (void)arg;
  return 1;
}

static void test_whole_migration(void) {
  char* err = NULL;
  char sql[512];
  char migration_path[256];
  const char* name = "0042_rename_users_name";
  const char spec[] =
      "{\"name\": \"0042_rename_users_name\", \"schema\": \"app\", \"operations\": "
      "[{\"rename_column\": {\"table\": \"users\", \"from\": \"name\", \"to\": \"full_name\"}}]}";
  const char other_spec[] =
      "{\"name\": \"0042_rename_users_name\", \"schema\": \"app\", \"operations\": "
      "[{\"rename_column\": {\"table\": \"users\", \"from\": \"name\", \"to\": \"display\"}}]}";
  const char note_spec[] =
      "{\"name\": \"0043_rename_users_note\", \"schema\": \"app\", \"operations\": "
      "[{\"rename_column\": {\"table\": \"users\", \"from\": \"note\", \"to\": \"remark\"}}]}";
  PGconn* admin = connect_db(NULL);
  PGconn* app;
  PGconn* blocker;
  const char* dsn;
  pgshift_options_t* opt;
  pgshift_driver_t* d;
  pgshift_driver_t* d2;
  pgshift_status_t* st;
  pgshift_status_list_t* list;
  pgshift_instance_registration_t* reg;
  pgshift_options_t* force;
  pgshift_driver_t* dforce;
  struct progress_seen seen;
  FILE* f;

  snprintf(db_name, sizeof db_name, "t_c_api_%ld", (long)getpid());
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db_name);
  run(admin, sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", db_name);
  run(admin, sql);
  app = connect_db(db_name);
  dsn = dsn_of(app);
  run(app,
      "CREATE SCHEMA app;"
      "CREATE TABLE app.users (id bigint PRIMARY KEY, name text NOT NULL, note text);"
      "INSERT INTO app.users SELECT g, 'user ' || g, 'note ' || g "
      "FROM generate_series(1, 3000) g;"
      "ANALYZE app.users");

  /* Before init: the startup check says "not registered". */
  CHECK(pgshift_current_phase(dsn, name, NULL, &err) == -1);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  CHECK(pgshift_require_phase(dsn, name, PGSHIFT_PHASE_REGISTERED, NULL, &err) ==
        PGSHIFT_NOT_FOUND);

  memset(&seen, 0, sizeof seen);
  seen.name = name;
  seen.second_code = -1;
  seen.resume_code = -1;
  opt = pgshift_options_create();
  pgshift_options_set_backfill_batch_rows(opt, 500);
  pgshift_options_set_backfill_min_batch_rows(opt, 100);
  pgshift_options_set_backfill_max_batch_rows(opt, 500);
  pgshift_options_set_lock_timeout_ms(opt, 100);
  pgshift_options_set_retry_initial_backoff_ms(opt, 20);
  pgshift_options_set_retry_max_backoff_ms(opt, 50);
  pgshift_options_set_retry_deadline_ms(opt, 400);
  pgshift_options_set_max_replication_lag_ms(opt, 0);
  pgshift_options_set_driver_name(opt, "c-api-test");
  CHECK(pgshift_options_set(opt, "backfill_poll_interval", "50ms", &err) == PGSHIFT_OK);
  pgshift_options_set_progress(opt, on_progress, &seen);

  d = pgshift_driver_connect(dsn, opt, &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(d != NULL);
  CHECK(pgshift_driver_server_version(d) >= 110000);
  /* Calls that need the control schema say so before init (bad input:
   * wrong database or control schema, or no init yet). */
  CHECK(pgshift_driver_status(d, name, &err) == NULL);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  CHECK(err != NULL && strstr(err, "run `pgshift init` first") != NULL);
  CHECK(pgshift_driver_init(d, &err) == PGSHIFT_OK);
  CHECK(pgshift_driver_init(d, &err) == PGSHIFT_OK); /* idempotent */

  /* Register: bad input first, then from a file. */
  CHECK(pgshift_driver_register_json(d, "{\"name\": \"x\"}", 13, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(pgshift_driver_register_file(d, "/nonexistent/0042.json", &err) == NULL);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  snprintf(migration_path, sizeof migration_path, "%s/pgshift-c-api-%ld.json",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
  f = fopen(migration_path, "w");
  REQUIRE(f != NULL);
  fputs(spec, f);
  fclose(f);
  st = pgshift_driver_register_file(d, migration_path, &err);
  remove(migration_path);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(st != NULL);
  CHECK(strcmp(pgshift_status_name(st), name) == 0);
  CHECK(pgshift_status_phase(st) == PGSHIFT_PHASE_REGISTERED);
  CHECK(strlen(pgshift_status_checksum(st)) > 0);
  CHECK(strcmp(pgshift_status_last_error(st), "") == 0);
  pgshift_status_destroy(st);
  /* Same spec again (as JSON text): OK. Same name, other spec: ALREADY_EXISTS. */
  st = pgshift_driver_register_json(d, spec, strlen(spec), &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_REGISTERED);
  pgshift_status_destroy(st);
  CHECK(pgshift_driver_register_json(d, other_spec, strlen(other_spec), &err) == NULL);
  CHECK_CODE(PGSHIFT_ALREADY_EXISTS);

  CHECK(pgshift_current_phase(dsn, name, NULL, &err) == PGSHIFT_PHASE_REGISTERED);
  CHECK(pgshift_require_phase(dsn, name, PGSHIFT_PHASE_SWITCHED, NULL, &err) ==
        PGSHIFT_FAILED_PRECONDITION);
  CHECK(err != NULL && strstr(err, "registered") != NULL && strstr(err, "switched") != NULL);
  CHECK(pgshift_require_phase(dsn, name, PGSHIFT_PHASE_SWITCHED, "no_such_schema", &err) ==
        PGSHIFT_NOT_FOUND);

  /* A session holding a lock on the table: the first step gives up before the
   * deadline with DEADLINE_EXCEEDED and SQLSTATE 55P03, and changes nothing. */
  blocker = connect_db(db_name);
  run(blocker, "BEGIN; SELECT count(*) FROM app.users");
  CHECK(pgshift_driver_advance(d, name, &err) == NULL);
  CHECK_CODE(PGSHIFT_DEADLINE_EXCEEDED);
  CHECK(strcmp(pgshift_last_sqlstate(), "55P03") == 0);
  CHECK(pgshift_exit_code(pgshift_last_code()) == 4);
  st = pgshift_driver_status(d, name, &err);
  CHECK(st != NULL && strstr(pgshift_status_last_error(st), "gave up") != NULL);
  pgshift_status_destroy(st);
  /* The same blocker, now older than long_transaction, seen by a driver that
   * refuses: the preflight callback gets the report with the session. */
  {
    struct preflight_seen pf;
    pgshift_options_t* refuse = pgshift_options_create();
    pgshift_driver_t* dr;
    char pid[32];
    memset(&pf, 0, sizeof pf);
    snprintf(pid, sizeof pid, "\"pid\":%d", PQbackendPID(blocker));
    CHECK(pgshift_options_set_preflight_mode(refuse, PGSHIFT_PREFLIGHT_REFUSE, &err) == PGSHIFT_OK);
    CHECK(pgshift_options_set(refuse, "long_transaction", "100ms", &err) == PGSHIFT_OK);
    pgshift_options_set_preflight(refuse, on_preflight, &pf);
    dr = pgshift_driver_connect(dsn, refuse, &err);
    REQUIRE(dr != NULL);
    CHECK(pgshift_driver_advance(dr, name, &err) == NULL);
    CHECK_CODE(PGSHIFT_ABORTED);
    CHECK(err != NULL && strstr(err, "preflight") != NULL && strstr(err, "refused") != NULL);
    CHECK(pf.calls == 1);
    CHECK(strcmp(pf.outcome, "refused") == 0);
    CHECK(strstr(pf.table, "users") != NULL);
    CHECK(pf.sessions_json != NULL && pf.sessions_json[0] == '[' &&
          strstr(pf.sessions_json, pid) != NULL);
    free(pf.sessions_json);
    /* Removing the callback: the next refusal reports nowhere. */
    pgshift_driver_destroy(dr);
    pgshift_options_set_preflight(refuse, NULL, NULL);
    pf.calls = 0;
    pf.sessions_json = NULL;
    dr = pgshift_driver_connect(dsn, refuse, &err);
    REQUIRE(dr != NULL);
    CHECK(pgshift_driver_advance(dr, name, &err) == NULL);
    CHECK_CODE(PGSHIFT_ABORTED);
    CHECK(pf.calls == 0);
    pgshift_driver_destroy(dr);
    pgshift_options_destroy(refuse);
  }
  run(blocker, "ROLLBACK");
  PQfinish(blocker);
  CHECK(pgshift_driver_current_phase(d, name, &err) == PGSHIFT_PHASE_REGISTERED);

  /* An interrupted driver stops before the step: CANCELLED, nothing begun. */
  {
    pgshift_options_t* iopt = pgshift_options_create();
    pgshift_driver_t* di;
    pgshift_options_set_interrupted(iopt, always_interrupted, NULL);
    di = pgshift_driver_connect(dsn, iopt, &err);
    CHECK_CODE(PGSHIFT_OK);
    CHECK(di != NULL && pgshift_driver_advance(di, name, &err) == NULL);
    CHECK_CODE(PGSHIFT_CANCELLED);
    CHECK(err != NULL && strstr(err, "interrupted while reaching column_added") != NULL);
    CHECK(pgshift_driver_current_phase(d, name, &err) == PGSHIFT_PHASE_REGISTERED);
    pgshift_driver_destroy(di);
    pgshift_options_destroy(iopt);
  }

  /* Next step. */
  st = pgshift_driver_advance(d, name, &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(strcmp(pgshift_last_sqlstate(), "") == 0);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_COLUMN_ADDED);
  pgshift_status_destroy(st);
  CHECK(query_long(app, "SELECT count(*) FROM information_schema.columns WHERE "
                        "table_schema = 'app' AND table_name = 'users' AND "
                        "column_name = 'full_name'") == 1);

  /* Up to trigger_installed, then the old app writes the old column. */
  st = pgshift_driver_advance_to(d, name, PGSHIFT_PHASE_TRIGGER_INSTALLED, &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_TRIGGER_INSTALLED);
  pgshift_status_destroy(st);
  run(app, "INSERT INTO app.users (id, name) VALUES (5001, 'old app insert');"
           "UPDATE app.users SET name = 'old app update' WHERE id = 7");
  CHECK(query_long(app, "SELECT count(*) FROM app.users WHERE id IN (5001, 7) AND "
                        "full_name = name") == 2);

  /* Backfill with a second driver trying to advance from the progress
   * callback: it is told the migration is busy. */
  d2 = pgshift_driver_connect(dsn, NULL, &err);
  REQUIRE(d2 != NULL);
  seen.second_driver = d2;
  /* Paused before it starts: the backfill waits, reporting "paused", until
   * the progress callback resumes it through the second driver. */
  CHECK(pgshift_driver_pause(d, "no_such_migration", &err) == PGSHIFT_NOT_FOUND);
  CHECK(pgshift_driver_pause(d, name, &err) == PGSHIFT_OK);
  st = pgshift_driver_status(d, name, &err);
  REQUIRE(st != NULL);
  CHECK(pgshift_status_paused(st) == 1);
  {
    char* json = pgshift_status_json(st);
    CHECK(json != NULL && strstr(json, "\"paused\":true") != NULL);
    pgshift_free(json);
  }
  pgshift_status_destroy(st);
  seen.resume_driver = d2;
  st = pgshift_driver_advance_to(d, name, PGSHIFT_PHASE_VALIDATED, &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_VALIDATED);
  if (st != NULL) {
    CHECK(pgshift_status_backfill_count(st) == 1);
    CHECK(pgshift_status_backfill_operation(st, 0) == 0);
    CHECK(pgshift_status_backfill_done(st, 0) == 1);
    CHECK(pgshift_status_backfill_rows_estimated(st, 0) == 0); /* exact once done */
    CHECK(pgshift_status_backfill_rows_done(st, 0) >= 3001);
    CHECK(pgshift_status_backfill_rows_done(st, 7) == 0); /* out of range */
    CHECK(strcmp(pgshift_status_backfill_waiting(st, 0), "") == 0); /* done: not holding back */
    CHECK(pgshift_status_backfill_pace(st, 0) > 0 && pgshift_status_backfill_pace(st, 0) <= 1);
    CHECK(strcmp(pgshift_status_backfill_waiting(st, 7), "") == 0);
  }
  pgshift_status_destroy(st);
  CHECK(seen.calls >= 3); /* 3001 rows in batches of at most 500 */
  CHECK(seen.finished == 1);
  CHECK(seen.bad_estimated == 0);
  CHECK(seen.rows_done_at_finish >= 3001);
  CHECK(seen.paused_reports >= 1);
  CHECK(seen.resume_code == PGSHIFT_OK);
  /* Rows the old app's writes had already synced are skipped. */
  CHECK(seen.rows_updated_at_finish > 2900 && seen.rows_updated_at_finish <= 3001);
  /* 100 .. 500 rows, rounded to whole pages when the walk is by pages. */
  CHECK(seen.max_batch_rows >= 50 && seen.max_batch_rows <= 1000);
  st = pgshift_driver_status(d, name, &err);
  CHECK(st != NULL && pgshift_status_paused(st) == 0);
  pgshift_status_destroy(st);
  CHECK(seen.bad_strings == 0);
  CHECK(seen.second_code == PGSHIFT_ABORTED);
  CHECK(seen.second_err != NULL && strstr(seen.second_err, "busy") != NULL &&
        strstr(seen.second_err, "c-api-test") != NULL);
  pgshift_free(seen.second_err);
  seen.second_driver = NULL;
  pgshift_driver_destroy(d2);
  CHECK(query_long(app, "SELECT count(*) FROM app.users WHERE full_name IS DISTINCT FROM name") ==
        0);

  /* Phases only move forward; bad phase numbers are bad input. */
  CHECK(pgshift_driver_advance_to(d, name, PGSHIFT_PHASE_COLUMN_ADDED, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(pgshift_driver_advance_to(d, name, 42, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(pgshift_driver_advance_to(d, name, PGSHIFT_PHASE_ROLLED_BACK, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);

  /* Deploy the new app version. */
  CHECK(pgshift_driver_require_phase(d, name, PGSHIFT_PHASE_SWITCHED, &err) ==
        PGSHIFT_FAILED_PRECONDITION);
  st = pgshift_driver_advance(d, name, &err);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_SWITCHED);
  pgshift_status_destroy(st);
  CHECK(pgshift_driver_require_phase(d, name, PGSHIFT_PHASE_SWITCHED, &err) == PGSHIFT_OK);
  CHECK(pgshift_require_phase(dsn, name, PGSHIFT_PHASE_SWITCHED, NULL, &err) == PGSHIFT_OK);
  CHECK(pgshift_current_phase(dsn, name, "pgshift", &err) == PGSHIFT_PHASE_SWITCHED);
  run(app, "INSERT INTO app.users (id, full_name) VALUES (5002, 'new app insert');"
           "UPDATE app.users SET full_name = 'new app update' WHERE id = 8");
  CHECK(query_long(app, "SELECT count(*) FROM app.users WHERE id IN (5002, 8) AND "
                        "full_name = name") == 2);

  /* A second migration on another column, rolled back from backfilled. */
  st = pgshift_driver_register_json(d, note_spec, strlen(note_spec), &err);
  CHECK_CODE(PGSHIFT_OK);
  pgshift_status_destroy(st);
  st = pgshift_driver_advance_to(d, "0043_rename_users_note", PGSHIFT_PHASE_BACKFILLED, &err);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_BACKFILLED);
  pgshift_status_destroy(st);
  st = pgshift_driver_rollback(d, "0043_rename_users_note", &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_ROLLED_BACK);
  pgshift_status_destroy(st);
  CHECK(query_long(app, "SELECT count(*) FROM information_schema.columns WHERE "
                        "table_schema = 'app' AND table_name = 'users' AND "
                        "column_name = 'remark'") == 0);
  CHECK(pgshift_require_phase(dsn, "0043_rename_users_note", PGSHIFT_PHASE_REGISTERED, NULL,
                              &err) == PGSHIFT_FAILED_PRECONDITION);
  CHECK(pgshift_require_phase(dsn, "0043_rename_users_note", PGSHIFT_PHASE_ROLLED_BACK, NULL,
                              &err) == PGSHIFT_OK);
  /* rollback is idempotent */
  st = pgshift_driver_rollback(d, "0043_rename_users_note", &err);
  CHECK_CODE(PGSHIFT_OK);
  pgshift_status_destroy(st);

  /* An old-shape instance is live (a registration that refreshes itself),
   * a new-shape one declared once: contract is refused naming the old one,
   * until a driver with force_contract does it anyway. */
  reg = pgshift_instance_registration_start(dsn, name, PGSHIFT_SHAPE_OLD, "c-old-reg", "api v41",
                                            30000, NULL, &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(reg != NULL);
  CHECK(strcmp(pgshift_instance_registration_id(reg), "c-old-reg") == 0);
  CHECK(pgshift_instance_registration_last_refresh(reg, &err) == PGSHIFT_OK);
  CHECK(pgshift_declare_instance(dsn, name, PGSHIFT_SHAPE_NEW, "c-new-1", NULL, 0, NULL, &err) ==
        PGSHIFT_OK);
  st = pgshift_driver_status(d, name, &err);
  REQUIRE(st != NULL);
  {
    char* json = pgshift_status_json(st);
    REQUIRE(json != NULL);
    CHECK(strstr(json, "\"instance_id\":\"c-old-reg\",\"shape\":\"old\",\"description\":\"api v41\"") !=
          NULL);
    CHECK(strstr(json, "\"instance_id\":\"c-new-1\",\"shape\":\"new\"") != NULL);
    CHECK(strstr(json, "\"phase\":\"switched\"") != NULL);
    CHECK(strstr(json, "\"driver\":null") != NULL);
    pgshift_free(json);
  }
  CHECK(strcmp(pgshift_status_driver(st), "") == 0);
  pgshift_status_destroy(st);
  CHECK(pgshift_driver_advance_to(d, name, PGSHIFT_PHASE_CONTRACTED, &err) == NULL);
  CHECK_CODE(PGSHIFT_FAILED_PRECONDITION);
  CHECK(err != NULL && strstr(err, "refusing to contract") != NULL &&
        strstr(err, "c-old-reg") != NULL && strstr(err, "api v41") != NULL &&
        strstr(err, "c-new-1") == NULL);
  CHECK(pgshift_current_phase(dsn, name, NULL, &err) == PGSHIFT_PHASE_SWITCHED);
  force = pgshift_options_create();
  pgshift_options_set_force_contract(force, 1);
  dforce = pgshift_driver_connect(dsn, force, &err);
  REQUIRE(dforce != NULL);

  /* Contract: the old column is gone, every write survived. */
  st = pgshift_driver_advance_to(dforce, name, PGSHIFT_PHASE_CONTRACTED, &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_CONTRACTED);
  pgshift_status_destroy(st);
  CHECK(query_long(app, "SELECT count(*) FROM information_schema.columns WHERE "
                        "table_schema = 'app' AND table_name = 'users' AND "
                        "column_name = 'name'") == 0);
  CHECK(query_long(app, "SELECT count(*) FROM app.users") == 3002);
  CHECK(query_long(app, "SELECT count(*) FROM app.users WHERE id <= 3000 AND id NOT IN (7, 8) "
                        "AND full_name = 'user ' || id") == 2998);
  CHECK(query_long(app, "SELECT count(*) FROM app.users WHERE "
                        "(id = 7 AND full_name = 'old app update') OR "
                        "(id = 8 AND full_name = 'new app update') OR "
                        "(id = 5001 AND full_name = 'old app insert') OR "
                        "(id = 5002 AND full_name = 'new app insert')") == 4);
  CHECK(query_long(app, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'app.users'::regclass "
                        "AND attname = 'full_name' AND attnotnull") == 1);
  pgshift_driver_destroy(dforce);
  pgshift_options_destroy(force);
  /* Clean shutdown of both instances: no declaration left. */
  CHECK(pgshift_instance_registration_last_refresh(reg, &err) == PGSHIFT_OK);
  pgshift_instance_registration_destroy(reg);
  CHECK(pgshift_withdraw_instance(dsn, name, "c-new-1", NULL, &err) == PGSHIFT_OK);
  CHECK(pgshift_withdraw_instance(dsn, name, "c-new-1", NULL, &err) == PGSHIFT_OK); /* absent: OK */
  st = pgshift_driver_status(d, name, &err);
  {
    char* json = st ? pgshift_status_json(st) : NULL;
    CHECK(json != NULL && strstr(json, "\"instances\":[]") != NULL &&
          strstr(json, "\"phase\":\"contracted\"") != NULL);
    pgshift_free(json);
  }
  pgshift_status_destroy(st);

  /* Nothing left to do from contracted. */
  CHECK(pgshift_driver_advance(d, name, &err) == NULL);
  CHECK_CODE(PGSHIFT_FAILED_PRECONDITION);
  CHECK(pgshift_driver_rollback(d, name, &err) == NULL);
  CHECK_CODE(PGSHIFT_FAILED_PRECONDITION);
  CHECK(err != NULL && strstr(err, "contracted") != NULL);
  CHECK(pgshift_driver_status(d, "no_such_migration", &err) == NULL);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  CHECK(pgshift_driver_current_phase(d, "no_such_migration", &err) == -1);
  CHECK_CODE(PGSHIFT_NOT_FOUND);

  list = pgshift_driver_list(d, &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(list != NULL);
  CHECK(pgshift_status_list_count(list) == 2);
  if (pgshift_status_list_count(list) == 2) {
    const pgshift_status_t* a = pgshift_status_list_get(list, 0);
    const pgshift_status_t* b = pgshift_status_list_get(list, 1);
    CHECK(strcmp(pgshift_status_name(a), name) == 0);
    CHECK(pgshift_status_phase(a) == PGSHIFT_PHASE_CONTRACTED);
    CHECK(strcmp(pgshift_status_name(b), "0043_rename_users_note") == 0);
    CHECK(pgshift_status_phase(b) == PGSHIFT_PHASE_ROLLED_BACK);
  }
  CHECK(pgshift_status_list_get(list, 2) == NULL);
  {
    char* json = pgshift_status_list_json(list);
    CHECK(json != NULL && starts_with(json, "{\"migrations\":[{\"name\":\"0042_rename_users_name\"") &&
          strstr(json, "\"name\":\"0043_rename_users_note\"") != NULL);
    pgshift_free(json);
  }
  pgshift_status_list_destroy(list);

  /* plan renders JSON and touches nothing. */
  {
    const char plan_spec[] =
        "{\"name\": \"0044_plan_only\", \"schema\": \"app\", \"operations\": "
        "[{\"rename_column\": {\"table\": \"users\", \"from\": \"note\", \"to\": \"memo\"}}]}";
    pgshift_migration_t* m = pgshift_migration_parse_json(plan_spec, strlen(plan_spec), &err);
    char* plan;
    REQUIRE(m != NULL);
    plan = pgshift_driver_plan(d, m, &err);
    CHECK_CODE(PGSHIFT_OK);
    CHECK(plan != NULL && strstr(plan, "\"migration\":\"0044_plan_only\"") != NULL &&
          strstr(plan, "ACCESS EXCLUSIVE") != NULL && strstr(plan, "\"to\":\"contracted\"") != NULL);
    pgshift_free(plan);
    pgshift_migration_destroy(m);
    CHECK(pgshift_current_phase(dsn, "0044_plan_only", NULL, &err) == -1);
    CHECK_CODE(PGSHIFT_NOT_FOUND);
  }

  pgshift_driver_destroy(d);
  pgshift_options_destroy(opt);
  pgshift_free(err);
  PQfinish(app);
  snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", db_name);
  run(admin, sql);
  PQfinish(admin);
}

/* ---- migration directories ------------------------------------------------ */

struct migrate_seen {
  int calls;
  int locked;
  int registers;
  int reached_switched;
  int reached_contracted;
  int baselines;
  int bad_strings; /* a NULL string, or a register event without its file */
  char last_register[64];
  /* When set, the first "register" event (the directory lock is held)
   * runs a migrate of the same directory on this (other) driver with
   * PGSHIFT_MIGRATE_NO_WAIT. */
  pgshift_driver_t* second_driver;
  const char* dir;
  int second_code;
  char* second_err;
};

static void on_migrate(void* arg, const pgshift_migrate_event_t* e) {
  struct migrate_seen* s = (struct migrate_seen*)arg;
  s->calls++;
  if (e->migration == NULL || e->file == NULL || e->action == NULL || e->phase == NULL ||
      e->message == NULL) {
    s->bad_strings++;
    return;
  }
  if (strcmp(e->action, "locked") == 0) s->locked++;
  if (strcmp(e->action, "register") == 0) {
    s->registers++;
    if (e->migration[0] == '\0' || strstr(e->file, ".json") == NULL) s->bad_strings++;
    snprintf(s->last_register, sizeof s->last_register, "%s", e->migration);
  }
  if (strcmp(e->action, "reached") == 0 && strcmp(e->phase, "switched") == 0) {
    s->reached_switched++;
  }
  if (strcmp(e->action, "baseline") == 0) s->baselines++;
  if (strcmp(e->action, "reached") == 0 && strcmp(e->phase, "contracted") == 0) {
    s->reached_contracted++;
  }
  if (s->second_driver != NULL && s->second_code < 0 && s->registers > 0) {
    char* r = pgshift_driver_migrate(s->second_driver, s->dir, -1, PGSHIFT_MIGRATE_NO_WAIT,
                                     &s->second_err);
    s->second_code = pgshift_last_code();
    pgshift_free(r);
  }
}

static void write_file(const char* dir, const char* file, const char* text) {
  char path[512];
  FILE* f;
  snprintf(path, sizeof path, "%s/%s", dir, file);
  f = fopen(path, "w");
  REQUIRE(f != NULL);
  fputs(text, f);
  REQUIRE(fclose(f) == 0);
}

static void remove_file(const char* dir, const char* file) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  remove(path);
}

/* 1 when the value of the first "key" after the first `anchor` in `json` is
 * exactly `want` (a JSON literal as printed: "\"switched\"", "true", "3").
 * Prints what it found otherwise. */
static int json_value_is(const char* json, const char* anchor, const char* key,
                         const char* want) {
  char pattern[128];
  const char* at = json ? strstr(json, anchor) : NULL;
  const char* v;
  size_t n;
  if (at == NULL) {
    fprintf(stderr, "  %s not found in %s\n", anchor, json ? json : "(null)");
    return 0;
  }
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  v = strstr(at, pattern);
  if (v == NULL) {
    fprintf(stderr, "  no %s after %s in %s\n", pattern, anchor, json);
    return 0;
  }
  v += strlen(pattern);
  n = strlen(want);
  if (strncmp(v, want, n) == 0 && (v[n] == ',' || v[n] == '}' || v[n] == ']')) return 1;
  fprintf(stderr, "  %s after %s: got %.60s, want %s\n", pattern, anchor, v, want);
  return 0;
}

/* How many times `needle` occurs in `s`. */
static int count_of(const char* s, const char* needle) {
  int n = 0;
  const char* p = s;
  if (s == NULL) return -1;
  while ((p = strstr(p, needle)) != NULL) {
    n++;
    p += strlen(needle);
  }
  return n;
}

static long column_count(PGconn* c, const char* table, const char* column) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'app' AND "
           "table_name = '%s' AND column_name = '%s'",
           table, column);
  return query_long(c, sql);
}

/* A fresh database `name` with app.users(id, name, note) holding 200 rows
 * (and, when `after_0002`, what 0001 and 0002 below would have made). */
static PGconn* fresh_db(PGconn* admin, const char* name, int after_0002) {
  char sql[256];
  PGconn* c;
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
  run(admin, sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  run(admin, sql);
  c = connect_db(name);
  run(c,
      "CREATE SCHEMA app;"
      "CREATE TABLE app.users (id bigint PRIMARY KEY, name text NOT NULL, note text);"
      "INSERT INTO app.users SELECT g, 'user ' || g, 'note ' || g "
      "FROM generate_series(1, 200) g;"
      "ANALYZE app.users");
  if (after_0002) {
    run(c,
        "CREATE TABLE app.audit (id bigint PRIMARY KEY, msg text NOT NULL);"
        "ALTER TABLE app.users ADD COLUMN email text");
  }
  return c;
}

static const char k0001[] =
    "{\"schema\": \"app\", \"operations\": [{\"create_table\": {\"table\": \"audit\", "
    "\"columns\": [{\"name\": \"id\", \"type\": \"bigint\"}, "
    "{\"name\": \"msg\", \"type\": \"text\", \"not_null\": true}], \"primary_key\": [\"id\"]}}]}\n";
static const char k0002[] =
    "{\"name\": \"0002_add_users_email\", \"schema\": \"app\", \"operations\": "
    "[{\"add_column\": {\"table\": \"users\", \"column\": \"email\", \"type\": \"text\"}}]}\n";
static const char k0002_changed[] =
    "{\"name\": \"0002_add_users_email\", \"schema\": \"app\", \"operations\": "
    "[{\"add_column\": {\"table\": \"users\", \"column\": \"email\", \"type\": \"varchar(200)\"}}]}\n";
static const char k0003[] =
    "{\"schema\": \"app\", \"operations\": "
    "[{\"rename_column\": {\"table\": \"users\", \"from\": \"note\", \"to\": \"remark\"}}]}\n";
static const char k0004[] =
    "{\"schema\": \"app\", \"operations\": "
    "[{\"add_column\": {\"table\": \"users\", \"column\": \"phone\", \"type\": \"text\"}}]}\n";
static const char k0000[] =
    "{\"schema\": \"app\", \"operations\": "
    "[{\"add_column\": {\"table\": \"users\", \"column\": \"age\", \"type\": \"integer\"}}]}\n";

static void test_migration_directory(void) {
  char* err = NULL;
  char* json;
  char dir[256];
  char missing[300];
  char dbname[64], dbname2[64];
  PGconn* admin = connect_db(NULL);
  PGconn* app;
  PGconn* app2;
  pgshift_options_t* opt;
  pgshift_driver_t* d;
  pgshift_driver_t* d2;
  pgshift_status_t* st;
  struct migrate_seen seen;
  char sql[256];

  snprintf(dir, sizeof dir, "%s/pgshift-c-api-dir-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  REQUIRE(mkdtemp(dir) != NULL);
  snprintf(missing, sizeof missing, "%s/no_such_dir", dir);
  write_file(dir, "0001_create_audit.json", k0001);
  write_file(dir, "0002_add_users_email.json", k0002);
  write_file(dir, "0003_rename_users_note.json", k0003);
  write_file(dir, "README.md", "not a migration\n");

  snprintf(dbname, sizeof dbname, "t_c_api_dir_%ld", (long)getpid());
  app = fresh_db(admin, dbname, 0);

  memset(&seen, 0, sizeof seen);
  seen.second_code = -1;
  seen.dir = dir;
  opt = pgshift_options_create();
  pgshift_options_set_lock_timeout_ms(opt, 500);
  pgshift_options_set_max_replication_lag_ms(opt, 0);
  pgshift_options_set_driver_name(opt, "c-api-dir");
  pgshift_options_set_migrate_callback(opt, on_migrate, &seen);
  {
    char conninfo[2048]; /* dsn_of's buffer is reused below */
    snprintf(conninfo, sizeof conninfo, "%s", dsn_of(app));
    d = pgshift_driver_connect(conninfo, opt, &err);
    REQUIRE(d != NULL);
    d2 = pgshift_driver_connect(conninfo, NULL, &err);
    REQUIRE(d2 != NULL);
  }

  /* Bad arguments: nothing runs. */
  CHECK(pgshift_driver_migrate(d, NULL, -1, 0, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(pgshift_driver_migrate(d, dir, -1, 8, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "PGSHIFT_MIGRATE_") != NULL);
  CHECK(pgshift_driver_migrate(d, dir, 99, 0, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "99") != NULL);
  CHECK(pgshift_driver_migrate(d, dir, PGSHIFT_PHASE_SWITCHED, PGSHIFT_MIGRATE_CONTRACT, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(pgshift_driver_migrate(d, missing, -1, 0, &err) == NULL);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  CHECK(err != NULL && strstr(err, "no_such_dir") != NULL);
  CHECK(pgshift_driver_directory_status(d, missing, &err) == NULL);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  {
    char not_a_dir[320];
    snprintf(not_a_dir, sizeof not_a_dir, "%s/README.md", dir);
    CHECK(pgshift_driver_migrate(d, not_a_dir, -1, 0, &err) == NULL);
    CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
    CHECK(err != NULL && strstr(err, "not a directory") != NULL);
  }
  CHECK(pgshift_driver_directory_status(d, NULL, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(pgshift_driver_baseline(d, dir, NULL, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(seen.registers == 0);
  CHECK(column_count(app, "users", "email") == 0);

  /* Plain SQL with the live catalog, before init too. */
  json = pgshift_driver_lint_json(d, "CREATE INDEX users_note_idx ON app.users (note);", "x.sql", 0, &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(json != NULL);
  CHECK(strstr(json, "\"verdict\":\"convert\"") != NULL);
  pgshift_free(json);
  /* A table that does not exist is new to the catalog (without one it is
     taken to be in use): the index is built as written. */
  json = pgshift_driver_convert_sql(d, "CREATE INDEX nosuch_idx ON nosuch (x);", NULL, "0009_idx", &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(json != NULL);
  CHECK(strstr(json, "\"sql\":{\"up\":\"CREATE INDEX nosuch_idx ON nosuch (x)\"}") != NULL);
  pgshift_free(json);

  /* Before init: every file is pending; README.md is ignored. */
  json = pgshift_driver_directory_status(d, dir, &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(json != NULL);
  CHECK(json_value_is(json, "{", "pending", "3"));
  CHECK(json_value_is(json, "{", "ok", "true"));
  CHECK(strstr(json, "\"ignored\":[\"README.md\"]") != NULL);
  CHECK(json_value_is(json, "\"file\":\"0001_create_audit.json\"", "name",
                      "\"0001_create_audit\""));
  CHECK(json_value_is(json, "\"file\":\"0001_create_audit.json\"", "state", "\"pending\""));
  CHECK(count_of(json, "\"state\":\"pending\"") == 3);
  pgshift_free(json);

  /* Pre-deploy: every file to switched, in order; a second migrate of the
   * same directory meanwhile is told it is busy. */
  seen.second_driver = d2;
  json = pgshift_driver_migrate(d, dir, -1, 0, &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(json != NULL);
  seen.second_driver = NULL;
  CHECK(count_of(json, "\"registered\":true") == 3);
  CHECK(count_of(json, "\"to\":\"switched\"") == 3);
  CHECK(json_value_is(json, "\"name\":\"0001_create_audit\"", "file",
                      "\"0001_create_audit.json\""));
  CHECK(json_value_is(json, "\"name\":\"0001_create_audit\"", "from", "\"registered\""));
  CHECK(json_value_is(json, "\"name\":\"0003_rename_users_note\"", "to", "\"switched\""));
  CHECK(strstr(json, "0001_create_audit") < strstr(json, "0002_add_users_email") &&
        strstr(json, "0002_add_users_email") < strstr(json, "0003_rename_users_note"));
  pgshift_free(json);
  CHECK(seen.bad_strings == 0);
  CHECK(seen.locked == 0); /* "locked" follows "waiting" only */
  CHECK(seen.registers == 3);
  CHECK(seen.reached_switched == 3);
  CHECK(strcmp(seen.last_register, "0003_rename_users_note") == 0);
  CHECK(seen.second_code == PGSHIFT_ABORTED);
  CHECK(seen.second_err != NULL && strstr(seen.second_err, "c-api-dir") != NULL);
  pgshift_free(seen.second_err);
  seen.second_err = NULL;
  /* The schema is expanded: the new table and columns exist, the old too. */
  CHECK(query_long(app, "SELECT count(*) FROM pg_tables WHERE schemaname = 'app' AND "
                        "tablename = 'audit'") == 1);
  CHECK(column_count(app, "users", "email") == 1);
  CHECK(column_count(app, "users", "remark") == 1);
  CHECK(column_count(app, "users", "note") == 1);
  CHECK(query_long(app, "SELECT count(*) FROM app.users WHERE remark = 'note ' || id") == 200);

  /* Each migration knows its file and the checksum recorded for it. */
  st = pgshift_driver_status(d, "0002_add_users_email", &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(st != NULL);
  CHECK(pgshift_status_phase(st) == PGSHIFT_PHASE_SWITCHED);
  CHECK(strcmp(pgshift_status_file(st), "0002_add_users_email.json") == 0);
  CHECK(strlen(pgshift_status_file_checksum(st)) >= 32);
  CHECK(pgshift_status_baselined(st) == 0);
  {
    char anchor[160];
    json = pgshift_driver_directory_status(d, dir, &err);
    REQUIRE(json != NULL);
    snprintf(anchor, sizeof anchor, "\"recorded_checksum\":\"%s\"",
             pgshift_status_file_checksum(st));
    CHECK(strstr(json, anchor) != NULL);
    CHECK(count_of(json, "\"state\":\"applied\"") == 3);
    CHECK(json_value_is(json, "{", "pending", "0"));
    CHECK(json_value_is(json, "\"file\":\"0003_rename_users_note.json\"", "phase",
                        "\"switched\""));
    pgshift_free(json);
  }
  json = pgshift_status_json(st);
  CHECK(json_value_is(json, "{", "file", "\"0002_add_users_email.json\""));
  CHECK(json_value_is(json, "{", "baselined", "false"));
  pgshift_free(json);
  pgshift_status_destroy(st);

  /* Again: nothing to do. */
  seen.registers = 0;
  json = pgshift_driver_migrate(d, dir, -1, 0, &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(json != NULL && strstr(json, "\"migrations\":[]") != NULL);
  pgshift_free(json);
  CHECK(seen.registers == 0);

  /* Post-deploy: contract every one; the old column is gone. */
  json = pgshift_driver_migrate(d, dir, -1, PGSHIFT_MIGRATE_CONTRACT, &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(json != NULL);
  CHECK(count_of(json, "\"to\":\"contracted\"") == 3);
  CHECK(count_of(json, "\"registered\":false") == 3);
  CHECK(json_value_is(json, "{", "stopped_at", "null"));
  pgshift_free(json);
  CHECK(seen.reached_contracted == 3);
  CHECK(column_count(app, "users", "note") == 0);
  CHECK(column_count(app, "users", "remark") == 1);
  CHECK(pgshift_driver_current_phase(d, "0001_create_audit", &err) == PGSHIFT_PHASE_CONTRACTED);

  /* An applied file changed (and a new one is pending): refused with
   * INVALID_ARGUMENT naming the file; nothing runs. */
  write_file(dir, "0002_add_users_email.json", k0002_changed);
  write_file(dir, "0004_add_users_phone.json", k0004);
  seen.registers = 0;
  CHECK(pgshift_driver_migrate(d, dir, -1, 0, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "0002_add_users_email") != NULL);
  CHECK(pgshift_exit_code(pgshift_last_code()) == 2);
  CHECK(seen.registers == 0);
  CHECK(pgshift_driver_status(d, "0004_add_users_phone", &err) == NULL);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  CHECK(column_count(app, "users", "phone") == 0);
  json = pgshift_driver_directory_status(d, dir, &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(json_value_is(json, "{", "ok", "false"));
  CHECK(json_value_is(json, "\"file\":\"0002_add_users_email.json\"", "state", "\"changed\""));
  CHECK(json_value_is(json, "\"file\":\"0004_add_users_phone.json\"", "state", "\"pending\""));
  pgshift_free(json);

  /* Restored: 0004 runs. A new file that sorts before applied ones is
   * refused unless allowed. */
  write_file(dir, "0002_add_users_email.json", k0002);
  write_file(dir, "0000_add_users_age.json", k0000);
  CHECK(pgshift_driver_migrate(d, dir, -1, 0, &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "0000_add_users_age") != NULL);
  CHECK(column_count(app, "users", "phone") == 0);
  json = pgshift_driver_directory_status(d, dir, &err);
  CHECK(json_value_is(json, "\"file\":\"0000_add_users_age.json\"", "out_of_order", "true"));
  pgshift_free(json);
  json = pgshift_driver_migrate(d, dir, PGSHIFT_PHASE_VALIDATED, PGSHIFT_MIGRATE_ALLOW_OUT_OF_ORDER, &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(json != NULL && count_of(json, "\"to\":\"validated\"") == 2 &&
        strstr(json, "0000_add_users_age") != NULL && strstr(json, "0004_add_users_phone") != NULL);
  pgshift_free(json);
  CHECK(column_count(app, "users", "phone") == 1);
  CHECK(column_count(app, "users", "age") == 1);
  CHECK(pgshift_driver_current_phase(d, "0004_add_users_phone", &err) ==
        PGSHIFT_PHASE_VALIDATED);

  /* Baseline, on a database whose schema already has what 0001 and 0002 do. */
  snprintf(dbname2, sizeof dbname2, "t_c_api_base_%ld", (long)getpid());
  app2 = fresh_db(admin, dbname2, 1);
  remove_file(dir, "0000_add_users_age.json");
  remove_file(dir, "0004_add_users_phone.json");
  pgshift_driver_destroy(d2);
  d2 = pgshift_driver_connect(dsn_of(app2), opt, &err);
  REQUIRE(d2 != NULL);
  seen.baselines = 0;
  CHECK(pgshift_driver_baseline(d2, dir, "0009_nope", &err) == NULL);
  CHECK_CODE(PGSHIFT_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "0009_nope") != NULL);
  CHECK(pgshift_driver_baseline(d2, missing, "0002_add_users_email", &err) == NULL);
  CHECK_CODE(PGSHIFT_NOT_FOUND);
  json = pgshift_driver_baseline(d2, dir, "0002_add_users_email.json", &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(json != NULL);
  CHECK(json_value_is(json, "\"file\":\"0001_create_audit.json\"", "state", "\"baselined\""));
  CHECK(json_value_is(json, "\"file\":\"0002_add_users_email.json\"", "state", "\"baselined\""));
  CHECK(json_value_is(json, "\"file\":\"0003_rename_users_note.json\"", "state", "\"pending\""));
  CHECK(json_value_is(json, "{", "pending", "1"));
  pgshift_free(json);
  CHECK(seen.baselines == 2);
  st = pgshift_driver_status(d2, "0001_create_audit", &err);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_CONTRACTED &&
        pgshift_status_baselined(st) == 1 &&
        strcmp(pgshift_status_file(st), "0001_create_audit.json") == 0);
  pgshift_status_destroy(st);
  json = pgshift_driver_migrate(d2, dir, -1, 0, &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(json != NULL && count_of(json, "\"registered\":true") == 1 &&
        json_value_is(json, "\"name\":\"0003_rename_users_note\"", "to", "\"switched\"") &&
        strstr(json, "0001_create_audit") == NULL);
  pgshift_free(json);
  CHECK(column_count(app2, "users", "remark") == 1);

  pgshift_driver_destroy(d2);
  pgshift_driver_destroy(d);
  pgshift_options_destroy(opt);
  pgshift_free(err);
  PQfinish(app);
  PQfinish(app2);
  snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", dbname);
  run(admin, sql);
  snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", dbname2);
  run(admin, sql);
  PQfinish(admin);
  remove_file(dir, "0001_create_audit.json");
  remove_file(dir, "0002_add_users_email.json");
  remove_file(dir, "0003_rename_users_note.json");
  remove_file(dir, "README.md");
  rmdir(dir);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  test_codes_and_phases();
  test_specs_without_server();
  test_plain_sql_without_server();
  test_unreachable_server();
  test_options_without_server();
  find_server();
  test_whole_migration();
  test_migration_directory();
  if (failures) {
    fprintf(stderr, "c_api_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
