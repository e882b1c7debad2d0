/* The C API of pgshift: the same driver and startup checks as the C++ API
 * (pgshift/driver.h, pgshift/check.h), for C programs and FFI users.
 *
 * Conventions (those of leveldb's c.h):
 *  - Every object is an opaque handle created by a pgshift_*_create /
 *    _connect / _load / _parse call and released by the matching _destroy.
 *  - A fallible call takes `char** errptr` as its last argument. On failure
 *    it stores a malloc()ed, NUL-terminated message in *errptr (freeing what
 *    *errptr held before) and returns NULL, -1 or an error code; on success
 *    *errptr is left untouched. Start with `char* err = NULL;` and release
 *    the message with pgshift_free(). errptr may be NULL when only the code
 *    is wanted.
 *  - The status code of the last fallible call on the calling thread is
 *    pgshift_last_code() (PGSHIFT_OK after a success), its SQLSTATE (when the
 *    error came from the server) pgshift_last_sqlstate(). Calls that have no
 *    other result return the code directly.
 *  - Strings returned as `char*` are malloc()ed copies: free them with
 *    pgshift_free(). Strings returned as `const char*` belong to the handle
 *    they were read from and live as long as it does.
 *  - Phases are the PGSHIFT_PHASE_* integers; pgshift_phase_name() gives the
 *    names used by the CLI and the control tables.
 *
 * Example (a deploy step, then a startup check):
 *
 *   char* err = NULL;
 *   pgshift_options_t* opt = pgshift_options_create();
 *   pgshift_options_set_lock_timeout_ms(opt, 500);
 *   if (pgshift_options_set(opt, "preflight", "refuse", &err) != PGSHIFT_OK) { fprintf(stderr, "%s\n", err); return 2; }
 *   pgshift_driver_t* d = pgshift_driver_connect("dbname=app", opt, &err);
 *   if (d == NULL) { fprintf(stderr, "%s\n", err); return 1; }
 *   pgshift_driver_init(d, &err);
 *   pgshift_status_t* st = pgshift_driver_register_file(d, "0042_rename.json", &err);
 *   pgshift_status_destroy(st);
 *   st = pgshift_driver_advance_to(d, "0042_rename", PGSHIFT_PHASE_VALIDATED, &err);
 *   if (st == NULL && pgshift_last_code() == PGSHIFT_ABORTED) { puts("busy: retry later"); }
 *   pgshift_status_destroy(st);
 *   pgshift_driver_destroy(d);
 *   pgshift_options_destroy(opt);
 *
 *   if (pgshift_require_phase("dbname=app", "0042_rename", PGSHIFT_PHASE_SWITCHED,
 *                             NULL, &err) != PGSHIFT_OK) {
 *     fprintf(stderr, "refusing to start: %s\n", err);
 *     exit(1);
 *   }
 *
 * Thread safety: a pgshift_driver_t owns one connection and must be used by
 * one thread at a time; use one per thread, and never call a driver from its
 * own progress, preflight or migrate callback (use another driver). Options,
 * migrations and statuses may be shared for reading. The free functions
 * (pgshift_current_phase, pgshift_require_phase, ...) are thread-safe.
 */
#ifndef PGSHIFT_C_H_
#define PGSHIFT_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PGSHIFT_C_EXPORT __attribute__((visibility("default")))
#else
#define PGSHIFT_C_EXPORT
#endif

/* ---- Status codes ------------------------------------------------------
 * The values of absl::StatusCode. What they tell the caller (errors.h):
 *   INVALID_ARGUMENT / NOT_FOUND / ALREADY_EXISTS  bad spec or name; nothing
 *                                 changed (CLI exit 2)
 *   FAILED_PRECONDITION  wrong phase, or the data is not ready (exit 1)
 *   ABORTED              busy: another driver holds the migration, or a lock
 *                        timeout / serialization failure; retry (exit 4)
 *   DEADLINE_EXCEEDED    locks not acquired before the retry deadline (exit 4)
 *   UNAVAILABLE          the server cannot be reached or the connection was
 *                        lost; re-run (exit 1) */
enum {
  PGSHIFT_OK = 0,
  PGSHIFT_CANCELLED = 1,
  PGSHIFT_UNKNOWN = 2,
  PGSHIFT_INVALID_ARGUMENT = 3,
  PGSHIFT_DEADLINE_EXCEEDED = 4,
  PGSHIFT_NOT_FOUND = 5,
  PGSHIFT_ALREADY_EXISTS = 6,
  PGSHIFT_PERMISSION_DENIED = 7,
  PGSHIFT_RESOURCE_EXHAUSTED = 8,
  PGSHIFT_FAILED_PRECONDITION = 9,
  PGSHIFT_ABORTED = 10,
  PGSHIFT_OUT_OF_RANGE = 11,
  PGSHIFT_UNIMPLEMENTED = 12,
  PGSHIFT_INTERNAL = 13,
  PGSHIFT_UNAVAILABLE = 14,
  PGSHIFT_DATA_LOSS = 15,
  PGSHIFT_UNAUTHENTICATED = 16
};

/* The code of the last fallible call made on this thread; PGSHIFT_OK when it
 * succeeded. */
PGSHIFT_C_EXPORT int pgshift_last_code(void);

/* The SQLSTATE ("55P03") of the last fallible call made on this thread when
 * its error came from the server, "" otherwise. Valid until the next call on
 * this thread. */
PGSHIFT_C_EXPORT const char* pgshift_last_sqlstate(void);

/* "OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", ...; "UNKNOWN" for values
 * outside the enum. Static storage. */
PGSHIFT_C_EXPORT const char* pgshift_code_name(int code);

/* The exit code the CLI uses for `code`: 0 ok, 1 a step failed, 2 bad input,
 * 4 busy or locks not acquired before the deadline. */
PGSHIFT_C_EXPORT int pgshift_exit_code(int code);

/* Releases a string returned by pgshift (an error message, JSON text). NULL
 * is ignored. */
PGSHIFT_C_EXPORT void pgshift_free(void* ptr);

/* ---- Phases ------------------------------------------------------------ */
enum {
  PGSHIFT_PHASE_REGISTERED = 0,
  PGSHIFT_PHASE_COLUMN_ADDED = 1,
  PGSHIFT_PHASE_TRIGGER_INSTALLED = 2,
  PGSHIFT_PHASE_BACKFILLED = 3,
  PGSHIFT_PHASE_VALIDATED = 4,
  PGSHIFT_PHASE_SWITCHED = 5,
  PGSHIFT_PHASE_CONTRACTED = 6,
  PGSHIFT_PHASE_ROLLED_BACK = 7
};

/* "registered", "column_added", ...; NULL when `phase` is not a phase.
 * Static storage. */
PGSHIFT_C_EXPORT const char* pgshift_phase_name(int phase);

/* Inverse of pgshift_phase_name; -1 and INVALID_ARGUMENT (naming the valid
 * phases) for an unknown name. */
PGSHIFT_C_EXPORT int pgshift_phase_parse(const char* name, char** errptr);

/* 1 when `current` has reached `at_least` on the ladder, 0 otherwise. A
 * rolled-back migration satisfies only at_least == PGSHIFT_PHASE_ROLLED_BACK. */
PGSHIFT_C_EXPORT int pgshift_phase_at_least(int current, int at_least);

/* ---- Options ------------------------------------------------------------
 * Runtime knobs of a driver (pgshift/options.h). A fresh options object has
 * the defaults documented there. Every option has a text form and is set
 * through the library's one option list (pgshift::OptionList, SetOption),
 * the same list the CLI's flags and Python's keyword arguments come from, so
 * every surface accepts the same values and rejects bad ones with the same
 * message, e.g.
 *   lock_timeout (--lock-timeout): "soon" is not a duration like 500ms, 1.5s or 2m
 * pgshift_options_set rejects text that is not of the option's kind; ranges
 * (a zero lock_timeout, a negative duration, a 64-byte control schema, ...)
 * are checked by pgshift_driver_connect, before it connects
 * (INVALID_ARGUMENT naming the option). The typed setters below are
 * shorthands that go through the same list and the same checks.
 *
 * The options are copied at pgshift_driver_connect; changing them later does
 * not affect existing drivers. */
typedef struct pgshift_options_t pgshift_options_t;

/* One progress report of a long step (the backfill). The strings and the
 * struct are valid only during the callback. Fields may be appended in later
 * versions: never allocate this struct yourself. (0.x: the fields from
 * rows_updated on were appended in 0.1, rows_estimated in 0.1 too, pace and
 * the probe figures in 0.2; the ABI
 * may still change.) */
typedef struct pgshift_progress_t {
  const char* migration;
  int operation;          /* index of the operation in the spec */
  const char* step;       /* phase being reached, e.g. "backfilled" */
  int64_t rows_done;      /* rows covered so far (committed batches, across resumes) */
  int64_t rows_estimate;  /* estimated total rows; equals rows_done once finished */
  double rows_per_second; /* recent rate */
  double eta_seconds;     /* -1 when unknown */
  int finished;           /* 1 on the last report of this operation's backfill */
  int64_t rows_updated;   /* rows changed by this call (rows already in sync are skipped) */
  int64_t batch_rows;     /* size of the next batch, in rows */
  int64_t lock_wait_ms;   /* time this call lost to lock timeouts and deadlocks */
  /* "" while working; else why the backfill waits right now: "paused",
   * "replication_lag", "lock_contention", "throttle_query", or "latency"
   * (the latency guard rests between batches: see pace). */
  const char* waiting;
  int rows_estimated;     /* 1 while rows_estimate is an estimate (until finished) */
  /* Share of time the backfill works: 1 at full speed, lower while the
   * latency guard rests between batches (waiting is then "latency"). */
  double pace;
  /* The latency guard's probe, 95th percentile in ms, while batches ran and
   * while the backfill rested; 0 when the guard is off or has no samples. */
  double probe_working_ms;
  double probe_resting_ms;
} pgshift_progress_t;

typedef void (*pgshift_progress_fn)(void* arg, const pgshift_progress_t* progress);

/* What the preflight check found before a step that takes an ACCESS
 * EXCLUSIVE lock (see the "preflight" option): one report per table and step
 * when sessions with long transactions hold locks on the table, and once more
 * when they cleared. Valid only during the callback; fields may be appended
 * in later versions. */
typedef struct pgshift_preflight_t {
  const char* migration;
  const char* step;     /* phase being reached */
  const char* table;    /* quoted qualified table */
  const char* outcome;  /* "waiting", "cleared", "refused" or "gave up" */
  /* The sessions as a JSON array (empty when the wait is over), each
   * {"pid", "state", "user", "application", "client", "transaction_seconds",
   *  "state_seconds", "locks", "query"}. */
  const char* sessions_json;
} pgshift_preflight_t;

typedef void (*pgshift_preflight_fn)(void* arg, const pgshift_preflight_t* report);

/* What pgshift_driver_migrate is doing: one event per change of what it
 * does. The strings and the struct are valid only during the callback;
 * fields may be appended in later versions (never allocate this struct
 * yourself). */
typedef struct pgshift_migrate_event_t {
  const char* migration; /* "" for events about the whole directory */
  const char* file;      /* base name of its file, or "" */
  /* "waiting" (another migrate holds the directory lock; `message` names
   * it), "locked" (got it, after waiting), "register", "advance" (to
   * `phase`), "reached" (`phase`), "contract", "skip" (nothing to do;
   * `message` says why), "stop" (`message` says why and what to do),
   * "baseline" (recorded as applied by pgshift_driver_baseline). */
  const char* action;
  const char* phase;     /* the phase reached or aimed at, "" when none */
  const char* message;
} pgshift_migrate_event_t;

typedef void (*pgshift_migrate_fn)(void* arg, const pgshift_migrate_event_t* event);

/* A fresh options object with the defaults of pgshift/options.h. */
PGSHIFT_C_EXPORT pgshift_options_t* pgshift_options_create(void);
/* Releases `options`; NULL is ignored. Drivers connected with it keep their copy. */
PGSHIFT_C_EXPORT void pgshift_options_destroy(pgshift_options_t* options);

/* Sets option `name` (pgshift_option_name) from its text form: durations
 * like "500ms", "1.5s", "2m"; integers; "true"/"false"; one of the choices;
 * text. Returns the code: INVALID_ARGUMENT with the library's message when
 * there is no such option or `value` is not of its kind (the option keeps its
 * value). */
PGSHIFT_C_EXPORT int pgshift_options_set(pgshift_options_t* options, const char* name,
                                         const char* value, char** errptr);
/* The text form of option `name` (malloc()ed), as pgshift_options_set reads
 * it back (durations in the shortest exact form: "1.5s"); NULL and NOT_FOUND
 * when there is no such option. */
PGSHIFT_C_EXPORT char* pgshift_options_get(const pgshift_options_t* options, const char* name,
                                           char** errptr);

/* The option list (pgshift::OptionList), for tools that build their own
 * configuration surface: `i` in [0, pgshift_option_count()). Each returns
 * static storage, or NULL when `i` is out of range. */
PGSHIFT_C_EXPORT size_t pgshift_option_count(void);
/* The name pgshift_options_set takes: "lock_timeout". */
PGSHIFT_C_EXPORT const char* pgshift_option_name(size_t i);
/* The CLI flag without "--": "lock-timeout". */
PGSHIFT_C_EXPORT const char* pgshift_option_flag(size_t i);
/* "duration", "integer", "ratio", "bool", "text" or "choice". */
PGSHIFT_C_EXPORT const char* pgshift_option_kind(size_t i);
/* One line, with the default. */
PGSHIFT_C_EXPORT const char* pgshift_option_help(size_t i);
/* The j-th accepted value of a "choice" option; NULL past the last (and for
 * other kinds). */
PGSHIFT_C_EXPORT const char* pgshift_option_choice(size_t i, size_t j);

/* Typed shorthands: each sets one option through pgshift_options_set (so a
 * value out of range is reported by pgshift_driver_connect, with the same
 * message as everywhere). Durations are in milliseconds. */
/* control_schema: schema of the control tables. Default "pgshift" (also for
 * NULL); "" is refused by pgshift_driver_connect. */
PGSHIFT_C_EXPORT void pgshift_options_set_control_schema(pgshift_options_t* options,
                                                         const char* schema);
/* lock_timeout of every DDL transaction. Default 1000. */
PGSHIFT_C_EXPORT void pgshift_options_set_lock_timeout_ms(pgshift_options_t* options, int64_t ms);
/* statement_timeout of short DDL transactions and of each backfill batch.
 * Default 30000. */
PGSHIFT_C_EXPORT void pgshift_options_set_statement_timeout_ms(pgshift_options_t* options,
                                                               int64_t ms);
/* statement_timeout of long statements (VALIDATE, CREATE INDEX
 * CONCURRENTLY); 0 means none. Default 0. */
PGSHIFT_C_EXPORT void pgshift_options_set_long_statement_timeout_ms(pgshift_options_t* options,
                                                                    int64_t ms);
/* Lock retries: jittered exponential backoff from initial to max, giving up
 * once `deadline` has passed. Defaults 200, 5000, 120000. */
PGSHIFT_C_EXPORT void pgshift_options_set_retry_initial_backoff_ms(pgshift_options_t* options,
                                                                   int64_t ms);
PGSHIFT_C_EXPORT void pgshift_options_set_retry_max_backoff_ms(pgshift_options_t* options,
                                                               int64_t ms);
PGSHIFT_C_EXPORT void pgshift_options_set_retry_deadline_ms(pgshift_options_t* options,
                                                            int64_t ms);
/* Backfill batch size at start, the time one batch should take, and the
 * bounds the adaptive size stays within. Defaults 1000 rows, 100 ms,
 * 100 .. 100000 rows. */
PGSHIFT_C_EXPORT void pgshift_options_set_backfill_batch_rows(pgshift_options_t* options,
                                                              int64_t rows);
PGSHIFT_C_EXPORT void pgshift_options_set_backfill_target_batch_time_ms(
    pgshift_options_t* options, int64_t ms);
PGSHIFT_C_EXPORT void pgshift_options_set_backfill_min_batch_rows(pgshift_options_t* options,
                                                                  int64_t rows);
PGSHIFT_C_EXPORT void pgshift_options_set_backfill_max_batch_rows(pgshift_options_t* options,
                                                                  int64_t rows);
/* Pause between backfill batches. Default 0. */
PGSHIFT_C_EXPORT void pgshift_options_set_backfill_batch_delay_ms(pgshift_options_t* options,
                                                                  int64_t ms);
/* lock_timeout of a backfill batch; a batch that waits longer is rolled
 * back, halved and retried. Default 200. */
PGSHIFT_C_EXPORT void pgshift_options_set_backfill_lock_timeout_ms(pgshift_options_t* options,
                                                                   int64_t ms);
/* How often a paused or throttled backfill looks again. Default 1000. */
PGSHIFT_C_EXPORT void pgshift_options_set_backfill_poll_interval_ms(pgshift_options_t* options,
                                                                    int64_t ms);
/* Pause the backfill while a standby replays more than this far behind;
 * 0 disables. Default 10000. */
PGSHIFT_C_EXPORT void pgshift_options_set_max_replication_lag_ms(pgshift_options_t* options,
                                                                 int64_t ms);
/* The latency guard: the backfill rests between batches while they make a
 * probe query more than `ratio` times slower than at rest; 0 turns it off.
 * Default 1.5. A ratio not above 1 (other than 0) or above 1000 is refused
 * by pgshift_driver_connect with INVALID_ARGUMENT. */
PGSHIFT_C_EXPORT void pgshift_options_set_latency_guard(pgshift_options_t* options, double ratio);
/* A SELECT returning one boolean: the backfill waits while it returns true.
 * NULL or "" for none (default). Anything but one read-only SELECT is
 * refused by pgshift_driver_connect with INVALID_ARGUMENT. */
PGSHIFT_C_EXPORT void pgshift_options_set_throttle_query(pgshift_options_t* options,
                                                        const char* sql);
/* Stop after this many backfill batches per call (0 = no limit); the step
 * resumes from its checkpoint on the next call. Default 0. */
PGSHIFT_C_EXPORT void pgshift_options_set_backfill_max_batches(pgshift_options_t* options,
                                                               int64_t batches);
/* What counts as a long transaction for the preflight. Default 5000. */
PGSHIFT_C_EXPORT void pgshift_options_set_long_transaction_ms(pgshift_options_t* options,
                                                              int64_t ms);
/* Refuse a scan or rewrite under ACCESS EXCLUSIVE of a table with more rows
 * than this; negative for no limit. Default 10000. */
PGSHIFT_C_EXPORT void pgshift_options_set_max_locked_scan_rows(pgshift_options_t* options,
                                                               int64_t rows);
/* How often the driver lease is refreshed on its connection. Default 5000. */
PGSHIFT_C_EXPORT void pgshift_options_set_lease_heartbeat_ms(pgshift_options_t* options,
                                                             int64_t ms);
/* Name recorded in history rows and shown to a second driver. Default
 * "<host>:<pid>". */
PGSHIFT_C_EXPORT void pgshift_options_set_driver_name(pgshift_options_t* options,
                                                      const char* name);
/* force_contract: 1 lets advance reach contracted although application
 * instances that declared the old shape are live; 0 (default) refuses with
 * FAILED_PRECONDITION listing them. */
PGSHIFT_C_EXPORT void pgshift_options_set_force_contract(pgshift_options_t* options, int force);

/* The "preflight" option: what to do about long transactions on a table
 * before a step that takes an ACCESS EXCLUSIVE lock on it. */
enum {
  PGSHIFT_PREFLIGHT_WAIT = 0,   /* report them, then wait up to the retry deadline (default) */
  PGSHIFT_PREFLIGHT_REFUSE = 1, /* report them and refuse the step (ABORTED) */
  PGSHIFT_PREFLIGHT_OFF = 2     /* do not check */
};
/* Sets the preflight mode; INVALID_ARGUMENT (the option keeps its value) for
 * a value that is not a PGSHIFT_PREFLIGHT_*. Returns the code. */
PGSHIFT_C_EXPORT int pgshift_options_set_preflight_mode(pgshift_options_t* options, int mode,
                                                        char** errptr);

/* The "backfill_walk" option: how the backfill walks the table. */
enum {
  PGSHIFT_BACKFILL_WALK_AUTO = 0,  /* pages on PostgreSQL 14+, else the key (default) */
  PGSHIFT_BACKFILL_WALK_KEY = 1,   /* keyset batches in primary-key order */
  PGSHIFT_BACKFILL_WALK_PAGES = 2  /* ctid page ranges in physical order */
};
/* Sets the backfill walk; INVALID_ARGUMENT (the option keeps its value) for a
 * value that is not a PGSHIFT_BACKFILL_WALK_*. Returns the code. */
PGSHIFT_C_EXPORT int pgshift_options_set_backfill_walk(pgshift_options_t* options, int walk,
                                                       char** errptr);

/* Called after every committed backfill batch, about once per poll interval
 * while the backfill waits, and at the end of each operation's backfill, on
 * the thread running the step, with `arg`. NULL `fn` removes the callback. */
PGSHIFT_C_EXPORT void pgshift_options_set_progress(pgshift_options_t* options,
                                                   pgshift_progress_fn fn, void* arg);
/* Called with every preflight report, on the thread running the step, with
 * `arg`. NULL `fn` removes the callback. */
PGSHIFT_C_EXPORT void pgshift_options_set_preflight(pgshift_options_t* options,
                                                    pgshift_preflight_fn fn, void* arg);
/* Called with every event of pgshift_driver_migrate and
 * pgshift_driver_baseline (pgshift_migrate_event_t), on the thread calling
 * it, with `arg`. NULL `fn` removes the callback. The
 * backfills it runs report to the progress callback as in
 * pgshift_driver_advance. */
PGSHIFT_C_EXPORT void pgshift_options_set_migrate_callback(pgshift_options_t* options,
                                                           pgshift_migrate_fn fn, void* arg);

/* Asked with `arg` before every step and action, between backfill batches,
 * while a backfill rests or waits, during preflight and migrate-lock waits,
 * and while a long statement runs (which it then cancels), possibly from
 * another thread of the driver: nonzero stops pgshift_driver_advance,
 * _rollback, _migrate or _baseline there with PGSHIFT_CANCELLED, keeping
 * what committed (the next call resumes). E.g. return a flag a SIGINT
 * handler sets. NULL `fn` removes it. */
typedef int (*pgshift_interrupted_fn)(void* arg);
PGSHIFT_C_EXPORT void pgshift_options_set_interrupted(pgshift_options_t* options,
                                                      pgshift_interrupted_fn fn, void* arg);

/* ---- Migration specs ----------------------------------------------------
 * A parsed migration file (the proto3 JSON form of pgshift.v1.Migration). */
typedef struct pgshift_migration_t pgshift_migration_t;

/* Reads and parses a migration file; NOT_FOUND when it cannot be read,
 * INVALID_ARGUMENT when it is not a valid migration. A path ending in ".sql"
 * is a plain SQL migration, converted without a database
 * (pgshift_convert_sql). */
PGSHIFT_C_EXPORT pgshift_migration_t* pgshift_migration_load_file(const char* path,
                                                                  char** errptr);
/* Parses `len` bytes of migration JSON; INVALID_ARGUMENT when invalid. */
PGSHIFT_C_EXPORT pgshift_migration_t* pgshift_migration_parse_json(const char* json, size_t len,
                                                                   char** errptr);
/* Releases `migration`; NULL is ignored. */
PGSHIFT_C_EXPORT void pgshift_migration_destroy(pgshift_migration_t* migration);
/* The migration's name, owned by `migration`. */
PGSHIFT_C_EXPORT const char* pgshift_migration_name(const pgshift_migration_t* migration);
/* The canonical JSON that register stores and checksums (malloc()ed). */
PGSHIFT_C_EXPORT char* pgshift_migration_canonical_json(const pgshift_migration_t* migration);

/* ---- Migration status ---------------------------------------------------
 * A snapshot of one migration's row in the control tables. Every field is
 * in pgshift_status_json (the JSON `pgshift --json status NAME` prints);
 * the accessors below read the common ones without a JSON parser. */
typedef struct pgshift_status_t pgshift_status_t;

/* Releases `status`; NULL is ignored. */
PGSHIFT_C_EXPORT void pgshift_status_destroy(pgshift_status_t* status);
/* The whole status as the JSON object of the CLI and the Python binding
 * (pgshift::ToJson; malloc()ed): name, phase, checksum, created_at,
 * updated_at, last_error, running_step, paused, file, file_checksum,
 * baselined, backfill, driver, instances. */
PGSHIFT_C_EXPORT char* pgshift_status_json(const pgshift_status_t* status);
/* The migration's name. */
PGSHIFT_C_EXPORT const char* pgshift_status_name(const pgshift_status_t* status);
/* A PGSHIFT_PHASE_* value. */
PGSHIFT_C_EXPORT int pgshift_status_phase(const pgshift_status_t* status);
/* Checksum of the registered spec. */
PGSHIFT_C_EXPORT const char* pgshift_status_checksum(const pgshift_status_t* status);
/* When it was registered / last changed; ISO 8601, UTC. */
PGSHIFT_C_EXPORT const char* pgshift_status_created_at(const pgshift_status_t* status);
PGSHIFT_C_EXPORT const char* pgshift_status_updated_at(const pgshift_status_t* status);
/* "" when the last step succeeded. */
PGSHIFT_C_EXPORT const char* pgshift_status_last_error(const pgshift_status_t* status);
/* The phase of a step that started but did not finish (a crash), or "". */
PGSHIFT_C_EXPORT const char* pgshift_status_running_step(const pgshift_status_t* status);
/* 1 when a pause request is set (pgshift_driver_pause), else 0. */
PGSHIFT_C_EXPORT int pgshift_status_paused(const pgshift_status_t* status);
/* The file of a migration directory it was registered from
 * (pgshift_driver_migrate, pgshift_driver_baseline), "" when it was
 * registered otherwise; the checksum recorded for that file ("" likewise). */
PGSHIFT_C_EXPORT const char* pgshift_status_file(const pgshift_status_t* status);
PGSHIFT_C_EXPORT const char* pgshift_status_file_checksum(const pgshift_status_t* status);
/* 1 when pgshift_driver_baseline recorded it as applied without running it,
 * else 0. */
PGSHIFT_C_EXPORT int pgshift_status_baselined(const pgshift_status_t* status);
/* The driver holding the migration right now (statuses from
 * pgshift_driver_status only), or "". */
PGSHIFT_C_EXPORT const char* pgshift_status_driver(const pgshift_status_t* status);
/* Backfill checkpoints, one per operation that has a backfill; `i` in
 * [0, count). Out-of-range `i` gives 0. */
PGSHIFT_C_EXPORT size_t pgshift_status_backfill_count(const pgshift_status_t* status);
PGSHIFT_C_EXPORT int pgshift_status_backfill_operation(const pgshift_status_t* status, size_t i);
PGSHIFT_C_EXPORT int64_t pgshift_status_backfill_rows_done(const pgshift_status_t* status,
                                                           size_t i);
PGSHIFT_C_EXPORT int64_t pgshift_status_backfill_rows_estimate(const pgshift_status_t* status,
                                                               size_t i);
PGSHIFT_C_EXPORT int pgshift_status_backfill_done(const pgshift_status_t* status, size_t i);
/* 1 while rows_estimate is an estimate (until done), else 0. */
PGSHIFT_C_EXPORT int pgshift_status_backfill_rows_estimated(const pgshift_status_t* status,
                                                            size_t i);
/* Why the backfill held back when it last reported (as
 * pgshift_progress_t.waiting; "" while working), and its pace then. Valid
 * as long as `status`. */
PGSHIFT_C_EXPORT const char* pgshift_status_backfill_waiting(const pgshift_status_t* status,
                                                             size_t i);
PGSHIFT_C_EXPORT double pgshift_status_backfill_pace(const pgshift_status_t* status, size_t i);

/* Every registered migration (pgshift_driver_list). */
typedef struct pgshift_status_list_t pgshift_status_list_t;

/* Releases `list` and the statuses it owns; NULL is ignored. */
PGSHIFT_C_EXPORT void pgshift_status_list_destroy(pgshift_status_list_t* list);
/* {"migrations": [<status JSON>, ...]}, as `pgshift --json status` prints
 * it (malloc()ed). */
PGSHIFT_C_EXPORT char* pgshift_status_list_json(const pgshift_status_list_t* list);
/* How many migrations the list holds. */
PGSHIFT_C_EXPORT size_t pgshift_status_list_count(const pgshift_status_list_t* list);
/* The i-th migration, owned by the list; NULL when `i` is out of range. */
PGSHIFT_C_EXPORT const pgshift_status_t* pgshift_status_list_get(
    const pgshift_status_list_t* list, size_t i);

/* ---- Driver -------------------------------------------------------------- */
typedef struct pgshift_driver_t pgshift_driver_t;

/* Connects to `dsn` (NULL or "" means libpq's PG* environment) with
 * `options` (NULL for the defaults). The options are checked first, before
 * connecting: INVALID_ARGUMENT naming the option ("lock_timeout
 * (--lock-timeout) must be positive, got 0") when one is out of range.
 * UNAVAILABLE when the server cannot be reached; messages never contain the
 * password. */
PGSHIFT_C_EXPORT pgshift_driver_t* pgshift_driver_connect(const char* dsn,
                                                          const pgshift_options_t* options,
                                                          char** errptr);
/* Closes the connection and releases `driver`; NULL is ignored. */
PGSHIFT_C_EXPORT void pgshift_driver_destroy(pgshift_driver_t* driver);

/* server_version_num of the server, e.g. 150004. */
PGSHIFT_C_EXPORT int pgshift_driver_server_version(const pgshift_driver_t* driver);

/* Creates or upgrades the control schema; idempotent. Returns the code. */
PGSHIFT_C_EXPORT int pgshift_driver_init(pgshift_driver_t* driver, char** errptr);

/* Validates `migration` against the live catalog and returns its plan (every
 * step's statements and locks, and the rollback) as the JSON object that
 * `pgshift --json plan` prints (malloc()ed). Changes nothing. */
PGSHIFT_C_EXPORT char* pgshift_driver_plan(pgshift_driver_t* driver,
                                           const pgshift_migration_t* migration, char** errptr);

/* Validates and stores a migration at phase registered and returns its
 * status. Registering the same spec again is OK; the same name with another
 * spec is ALREADY_EXISTS. The _file and _json forms parse the spec first
 * (NOT_FOUND / INVALID_ARGUMENT as the pgshift_migration_* calls). */
PGSHIFT_C_EXPORT pgshift_status_t* pgshift_driver_register(pgshift_driver_t* driver,
                                                           const pgshift_migration_t* migration,
                                                           char** errptr);
PGSHIFT_C_EXPORT pgshift_status_t* pgshift_driver_register_file(pgshift_driver_t* driver,
                                                                const char* path, char** errptr);
PGSHIFT_C_EXPORT pgshift_status_t* pgshift_driver_register_json(pgshift_driver_t* driver,
                                                                const char* json, size_t len,
                                                                char** errptr);

/* Runs the next step of migration `name` and returns the new status, once
 * the step has committed and its phase is recorded. Safe to call again after
 * a crash. ABORTED when another driver holds the migration or locks could
 * not be taken; FAILED_PRECONDITION when a step failed (the state stays
 * consistent) or there is nothing to advance. */
PGSHIFT_C_EXPORT pgshift_status_t* pgshift_driver_advance(pgshift_driver_t* driver,
                                                          const char* name, char** errptr);
/* Runs every step up to phase `to` (a PGSHIFT_PHASE_* value); otherwise as
 * pgshift_driver_advance. */
PGSHIFT_C_EXPORT pgshift_status_t* pgshift_driver_advance_to(pgshift_driver_t* driver,
                                                             const char* name, int to,
                                                             char** errptr);
/* Undoes everything pgshift created for the migration; allowed from any
 * phase before contracted; idempotent. */
PGSHIFT_C_EXPORT pgshift_status_t* pgshift_driver_rollback(pgshift_driver_t* driver,
                                                           const char* name, char** errptr);
/* Asks the backfill of migration `name` to pause between batches, from any
 * driver (another thread's or process's): the driver running it waits,
 * reporting waiting == "paused", until pgshift_driver_resume. The request
 * persists (a later advance waits too). Returns the code; NOT_FOUND when the
 * migration is not registered. */
PGSHIFT_C_EXPORT int pgshift_driver_pause(pgshift_driver_t* driver, const char* name,
                                          char** errptr);
/* Clears the pause request of migration `name`; returns the code, NOT_FOUND
 * when it is not registered. */
PGSHIFT_C_EXPORT int pgshift_driver_resume(pgshift_driver_t* driver, const char* name,
                                           char** errptr);
/* The stored status of `name`, with the driver holding it now and the live
 * instance declarations; NOT_FOUND when it is not registered. */
PGSHIFT_C_EXPORT pgshift_status_t* pgshift_driver_status(pgshift_driver_t* driver,
                                                         const char* name, char** errptr);
/* Every registered migration, by name. */
PGSHIFT_C_EXPORT pgshift_status_list_t* pgshift_driver_list(pgshift_driver_t* driver,
                                                            char** errptr);
/* The phase of `name` (one round trip); -1 and NOT_FOUND when it is not
 * registered. */
PGSHIFT_C_EXPORT int pgshift_driver_current_phase(pgshift_driver_t* driver, const char* name,
                                                  char** errptr);
/* PGSHIFT_OK when `name` has reached `at_least`; FAILED_PRECONDITION saying
 * where it stands otherwise; NOT_FOUND when it is not registered. */
PGSHIFT_C_EXPORT int pgshift_driver_require_phase(pgshift_driver_t* driver, const char* name,
                                                  int at_least, char** errptr);

/* ---- Migration directories ----------------------------------------------
 * A folder of migration files (NNNN_name.json, NNNN_name.sql) applied in
 * byte order of their file names, each recorded with its file's checksum
 * once registered (docs/cli.md, "Migration directories"). The results are
 * the JSON objects `pgshift --json migrate DIR` and `pgshift --json status
 * DIR` print (pgshift::ToJson of MigrateReport and DirectoryReport,
 * malloc()ed; free them with pgshift_free).
 *
 * Example (pre-deploy, then post-deploy):
 *
 *   char* err = NULL;
 *   pgshift_driver_t* d = pgshift_driver_connect("dbname=app", NULL, &err);
 *   if (d == NULL) { fprintf(stderr, "%s\n", err); return 1; }
 *   char* report = pgshift_driver_migrate(d, "migrations", -1, 0, &err);
 *   if (report == NULL) {
 *     fprintf(stderr, "%s: %s\n", pgshift_code_name(pgshift_last_code()), err);
 *     pgshift_free(err);
 *     pgshift_driver_destroy(d);
 *     return pgshift_exit_code(pgshift_last_code());
 *   }
 *   pgshift_free(report);
 *   report = pgshift_driver_migrate(d, "migrations", -1, PGSHIFT_MIGRATE_CONTRACT, &err);
 *   pgshift_free(report);
 *   pgshift_free(err);
 *   pgshift_driver_destroy(d);
 */

/* Flags of pgshift_driver_migrate, or-ed together (0: none). */
enum {
  /* Post-deploy: contract, in order, every migration at switched whose
   * old-shape application instances are gone; stop at the first that is not
   * at switched or may not be contracted. `to` must be -1. */
  PGSHIFT_MIGRATE_CONTRACT = 1,
  /* Let a pending file that sorts before an applied one run. */
  PGSHIFT_MIGRATE_ALLOW_OUT_OF_ORDER = 2,
  /* Do not wait while another migrate or baseline runs on the database:
   * ABORTED at once, naming it. */
  PGSHIFT_MIGRATE_NO_WAIT = 4
};

/* Runs the migration directory `dir`: creates or upgrades the control
 * schema, then, holding the directory lock (one migrate or baseline per
 * database and control schema at a time), registers every pending file in
 * order, recording its checksum, and advances each migration to phase `to`
 * (a PGSHIFT_PHASE_* value; -1 means PGSHIFT_PHASE_SWITCHED); with
 * PGSHIFT_MIGRATE_CONTRACT it contracts instead. Returns the report as JSON:
 *   {"directory", "migrations": [{"name", "file", "from", "to",
 *    "registered"}], "stopped_at", "stop_reason"}
 * ("migrations" lists every migration this call moved, in order;
 * "stopped_at" the one a contract run stopped at without an error, and
 * "stop_reason" why, or null).
 * Events go to the callback of pgshift_options_set_migrate_callback,
 * backfill progress to that of pgshift_options_set_progress.
 * Errors (NULL returned):
 *   INVALID_ARGUMENT  nothing changed: an unknown phase or flag, or a
 *                     `to` with PGSHIFT_MIGRATE_CONTRACT; a file
 *                     that does not parse; an applied file that changed or
 *                     is missing; a pending file that sorts before an
 *                     applied one (without ..._ALLOW_OUT_OF_ORDER; a
 *                     contract run stops at it instead). The message
 *                     names the files.
 *   NOT_FOUND         `dir` does not exist (INVALID_ARGUMENT when it is not
 *                     a directory).
 *   FAILED_PRECONDITION  stopped at a migration that conflicts with an
 *                     earlier one not yet contracted (nothing of it run), a
 *                     contract refused while old-shape instances are live,
 *                     or a step that failed (as pgshift_driver_advance).
 *   ABORTED           another migrate holds the directory lock
 *                     (PGSHIFT_MIGRATE_NO_WAIT), or busy as in advance.
 * Safe to call again after any failure or crash: it continues where it
 * stopped. */
PGSHIFT_C_EXPORT char* pgshift_driver_migrate(pgshift_driver_t* driver, const char* dir,
                                              int to, int flags, char** errptr);

/* Every file of `dir` with its state, as JSON:
 *   {"directory", "ok", "pending", "files": [{"file", "name", "state",
 *    "out_of_order", "checksum", "recorded_checksum", "problem",
 *    "migration"?: <status JSON>}], "ignored": [...]}
 * "state" is "pending", "applied", "baselined", "changed" or "missing";
 * "problem" says why a file cannot run as it is (null when it can);
 * "checksum" and "recorded_checksum" are null when there is none;
 * "migration" is null when it is not registered; "ok" is false when
 * migrate would refuse. Reads only; works before
 * pgshift_driver_init (then every file is pending). NOT_FOUND when `dir` does
 * not exist, INVALID_ARGUMENT when it is not a directory. */
PGSHIFT_C_EXPORT char* pgshift_driver_directory_status(pgshift_driver_t* driver, const char* dir,
                                                       char** errptr);

/* Records every file of `dir` up to and including migration `through` (its
 * name, or its file name) as applied, at phase contracted and marked
 * baselined, without running anything: for a database whose schema already
 * has what those files do. Files already registered are left as they are.
 * Returns the directory as it stands after (the JSON of
 * pgshift_driver_directory_status). INVALID_ARGUMENT (nothing changed) when
 * `through` is not a file of `dir`, or a file up to it does not parse or
 * changed, or `dir` is not a directory; NOT_FOUND when `dir` does not exist. */
PGSHIFT_C_EXPORT char* pgshift_driver_baseline(pgshift_driver_t* driver, const char* dir,
                                               const char* through, char** errptr);

/* ---- Plain SQL ------------------------------------------------------------
 * docs/sql.md. `origin` names the text in messages (a file path; NULL means
 * "sql"). The plain functions judge without a database (catalog-dependent
 * rules assume the worst); the pgshift_driver_ ones ask the live catalog
 * and work before pgshift_driver_init. Both read only. */

/* Flags of pgshift_lint_json. */
enum {
  /* Judge the script as another migration runner would run it: notes that
     are moot inside pgshift (require-lock-timeout, ...) become warnings. */
  PGSHIFT_LINT_OTHER_RUNNER = 1
};

/* Every statement of `sql`, linted: the JSON object `pgshift lint --json`
 * prints for one file, {"origin", "unsafe", "statements": [{"sql", "line",
 * "statement", "verdict", "lock", "tables", "scans_table", "rewrites_table",
 * "findings": [{"rule", "level", "message"}], "operation", "instead",
 * "assumed"}]}. INVALID_ARGUMENT with the line and column when it does not
 * parse. Example:
 *   char* err = NULL;
 *   char* report = pgshift_lint_json("CREATE INDEX i ON users (email);", "0042.sql", 0, &err);
 *   if (report == NULL) { fprintf(stderr, "%s\n", err); pgshift_free(err); }
 *   pgshift_free(report);
 */
PGSHIFT_C_EXPORT char* pgshift_lint_json(const char* sql, const char* origin, int flags, char** errptr);
PGSHIFT_C_EXPORT char* pgshift_driver_lint_json(pgshift_driver_t* driver, const char* sql, const char* origin,
                                                int flags, char** errptr);

/* The migration (its canonical JSON) that a plain SQL migration file
 * holding `sql` and named `name` (the file name without ".sql") becomes, as
 * `pgshift convert` prints it. INVALID_ARGUMENT naming every statement it
 * refuses (line, reason, what to write instead), or the position of a
 * syntax error. */
PGSHIFT_C_EXPORT char* pgshift_convert_sql(const char* sql, const char* origin, const char* name,
                                           char** errptr);
PGSHIFT_C_EXPORT char* pgshift_driver_convert_sql(pgshift_driver_t* driver, const char* sql,
                                                  const char* origin, const char* name, char** errptr);

/* ---- Startup checks (no driver) ------------------------------------------
 * One connection and one round trip each, for application startup.
 * `control_schema` NULL means "pgshift". Thread-safe. */

/* The phase of `name`; -1 and NOT_FOUND when it is not registered (or the
 * control schema does not exist), UNAVAILABLE when the server is down. */
PGSHIFT_C_EXPORT int pgshift_current_phase(const char* dsn, const char* name,
                                           const char* control_schema, char** errptr);
/* PGSHIFT_OK when `name` has reached `at_least`; FAILED_PRECONDITION saying
 * where it stands and what this version needs otherwise; NOT_FOUND when it is
 * not registered. */
PGSHIFT_C_EXPORT int pgshift_require_phase(const char* dsn, const char* name, int at_least,
                                           const char* control_schema, char** errptr);

/* ---- Instance declarations (no driver) -----------------------------------
 * An application instance declares which shape of a migration it needs, so
 * that advancing to contracted refuses (FAILED_PRECONDITION listing them)
 * while instances needing the old shape are live, unless force_contract
 * (pgshift/check.h). A declaration stays live for `ttl_ms` after its last
 * refresh (server clock). Arguments: `instance_id` NULL or "" means
 * "<hostname>:<pid>"; `description` NULL means ""; `ttl_ms` 0 means 30000;
 * `control_schema` NULL means "pgshift". Thread-safe. */
enum {
  PGSHIFT_SHAPE_OLD = 0, /* written for the schema before the migration */
  PGSHIFT_SHAPE_NEW = 1  /* written for the schema after it */
};

/* Declares (or refreshes) once that the instance needs `shape` (a
 * PGSHIFT_SHAPE_*) of `migration`, which need not be registered yet. Returns
 * the code: INVALID_ARGUMENT for a bad shape or a negative ttl,
 * FAILED_PRECONDITION when the control schema is missing or too old. */
PGSHIFT_C_EXPORT int pgshift_declare_instance(const char* dsn, const char* migration, int shape,
                                              const char* instance_id, const char* description,
                                              int64_t ttl_ms, const char* control_schema,
                                              char** errptr);
/* Removes the declaration of `instance_id` (clean shutdown); PGSHIFT_OK when
 * there is none. Returns the code. */
PGSHIFT_C_EXPORT int pgshift_withdraw_instance(const char* dsn, const char* migration,
                                               const char* instance_id,
                                               const char* control_schema, char** errptr);

/* A declaration kept live while the handle exists: a background thread
 * refreshes it every ttl/3; pgshift_instance_registration_destroy stops the
 * thread and withdraws it. */
typedef struct pgshift_instance_registration_t pgshift_instance_registration_t;

/* Declares once (so the caller knows it worked; NULL and the code of
 * pgshift_declare_instance otherwise), then starts refreshing. */
PGSHIFT_C_EXPORT pgshift_instance_registration_t* pgshift_instance_registration_start(
    const char* dsn, const char* migration, int shape, const char* instance_id,
    const char* description, int64_t ttl_ms, const char* control_schema, char** errptr);
/* Stops refreshing and withdraws the declaration; NULL is ignored. */
PGSHIFT_C_EXPORT void pgshift_instance_registration_destroy(
    pgshift_instance_registration_t* registration);
/* The instance id the registration declares, owned by the handle. */
PGSHIFT_C_EXPORT const char* pgshift_instance_registration_id(
    const pgshift_instance_registration_t* registration);
/* The code of the latest refresh (PGSHIFT_OK after start), its message in
 * *errptr when it failed. */
PGSHIFT_C_EXPORT int pgshift_instance_registration_last_refresh(
    const pgshift_instance_registration_t* registration, char** errptr);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* PGSHIFT_C_H_ */
