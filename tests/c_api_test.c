/* The C API (include/pgshift/c.h), compiled as C: drives a whole
 * rename_column migration on a real PostgreSQL server while an "old" and a
 * "new" application write through libpq, and checks results, phases, error
 * codes, SQLSTATEs and the progress callback.
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
  long max_estimate;
  int bad_strings;
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
  if (p->finished) {
    s->finished++;
    s->rows_done_at_finish = (long)p->rows_done;
  }
  if (s->second_driver != NULL && s->second_code < 0) {
    pgshift_status_t* st = pgshift_driver_advance(s->second_driver, s->name, &s->second_err);
    s->second_code = pgshift_last_code();
    pgshift_status_destroy(st);
  }
}

/* ---- the test ------------------------------------------------------------ */

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
  pgshift_options_set_progress(opt, on_progress, &seen);

  d = pgshift_driver_connect(dsn, opt, &err);
  CHECK_CODE(PGSHIFT_OK);
  REQUIRE(d != NULL);
  CHECK(pgshift_driver_server_version(d) >= 110000);
  /* Calls that need the control schema say so before init. */
  CHECK(pgshift_driver_status(d, name, &err) == NULL);
  CHECK_CODE(PGSHIFT_FAILED_PRECONDITION);
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
  run(blocker, "ROLLBACK");
  PQfinish(blocker);
  CHECK(pgshift_driver_current_phase(d, name, &err) == PGSHIFT_PHASE_REGISTERED);
  st = pgshift_driver_status(d, name, &err);
  CHECK(st != NULL && strstr(pgshift_status_last_error(st), "gave up") != NULL);
  pgshift_status_destroy(st);

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
  st = pgshift_driver_advance_to(d, name, PGSHIFT_PHASE_VALIDATED, &err);
  CHECK_CODE(PGSHIFT_OK);
  CHECK(st != NULL && pgshift_status_phase(st) == PGSHIFT_PHASE_VALIDATED);
  if (st != NULL) {
    CHECK(pgshift_status_backfill_count(st) == 1);
    CHECK(pgshift_status_backfill_operation(st, 0) == 0);
    CHECK(pgshift_status_backfill_done(st, 0) == 1);
    CHECK(pgshift_status_backfill_rows_done(st, 0) >= 3001);
    CHECK(pgshift_status_backfill_rows_done(st, 7) == 0); /* out of range */
  }
  pgshift_status_destroy(st);
  CHECK(seen.calls >= 3); /* 3001 rows in batches of at most 500 */
  CHECK(seen.finished == 1);
  CHECK(seen.rows_done_at_finish >= 3001);
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

  /* Contract: the old column is gone, every write survived. */
  st = pgshift_driver_advance_to(d, name, PGSHIFT_PHASE_CONTRACTED, &err);
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

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  test_codes_and_phases();
  test_specs_without_server();
  test_unreachable_server();
  find_server();
  test_whole_migration();
  if (failures) {
    fprintf(stderr, "c_api_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
