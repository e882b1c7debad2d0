// The C API (include/pgshift/c.h): thin wrappers over the C++ API that turn
// absl::Status into `char** errptr` plus a per-thread last code.
#include "pgshift/c.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pgshift/pgshift.h"

using pgshift::MigrationStatus;
using pgshift::Phase;

struct pgshift_options_t {
  pgshift::Options rep;
};
struct pgshift_migration_t {
  pgshift::v1::Migration rep;
};
struct pgshift_status_t {
  MigrationStatus rep;
};
struct pgshift_status_list_t {
  std::vector<pgshift_status_t> rep;
};
struct pgshift_driver_t {
  std::unique_ptr<pgshift::Driver> rep;
};
struct pgshift_instance_registration_t {
  std::unique_ptr<pgshift::InstanceRegistration> rep;
};

// The C enums are the indexes of the choices in pgshift::OptionList(), which
// are the C++ enum values.
static_assert(PGSHIFT_PREFLIGHT_WAIT == static_cast<int>(pgshift::PreflightMode::kWait) &&
              PGSHIFT_PREFLIGHT_REFUSE == static_cast<int>(pgshift::PreflightMode::kRefuse) &&
              PGSHIFT_PREFLIGHT_OFF == static_cast<int>(pgshift::PreflightMode::kOff));
static_assert(PGSHIFT_BACKFILL_WALK_AUTO == static_cast<int>(pgshift::BackfillWalk::kAuto) &&
              PGSHIFT_BACKFILL_WALK_KEY == static_cast<int>(pgshift::BackfillWalk::kPrimaryKey) &&
              PGSHIFT_BACKFILL_WALK_PAGES == static_cast<int>(pgshift::BackfillWalk::kPages));
static_assert(PGSHIFT_SHAPE_OLD == static_cast<int>(pgshift::Shape::kOld) &&
              PGSHIFT_SHAPE_NEW == static_cast<int>(pgshift::Shape::kNew));

namespace {

thread_local int last_code = PGSHIFT_OK;
thread_local char last_sqlstate[6] = "";

char* CopyString(absl::string_view s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  return out;
}

// Records `s` as the last result of this thread; on error stores its message
// in *errptr (freeing what was there). Returns true when there was an error.
bool SaveError(char** errptr, const absl::Status& s) {
  last_code = static_cast<int>(s.code());
  std::string sqlstate = pgshift::SqlState(s);
  std::strncpy(last_sqlstate, sqlstate.size() == 5 ? sqlstate.c_str() : "", sizeof last_sqlstate);
  last_sqlstate[sizeof last_sqlstate - 1] = '\0';
  if (s.ok()) return false;
  if (errptr != nullptr) {
    std::free(*errptr);
    *errptr = CopyString(s.message());
  }
  return true;
}

absl::StatusOr<Phase> ToPhase(int phase) {
  if (phase < PGSHIFT_PHASE_REGISTERED || phase > PGSHIFT_PHASE_ROLLED_BACK) {
    return absl::InvalidArgumentError(
        absl::StrCat(phase, " is not a phase; use a PGSHIFT_PHASE_* value"));
  }
  return static_cast<Phase>(phase);
}

absl::Status NeedArg(const void* p, const char* what) {
  if (p == nullptr) return absl::InvalidArgumentError(absl::StrCat(what, " is NULL"));
  return absl::OkStatus();
}

pgshift_status_t* StatusResult(absl::StatusOr<MigrationStatus> r, char** errptr) {
  if (SaveError(errptr, r.status())) return nullptr;
  return new pgshift_status_t{std::move(*r)};
}

// Sets option `name` from its text form: the one path every C setter takes.
int SetOptionText(pgshift_options_t* o, const char* name, absl::string_view value,
                  char** errptr) {
  absl::Status s = NeedArg(o, "options");
  if (s.ok()) s = NeedArg(name, "option name");
  if (s.ok()) s = pgshift::SetOption(o->rep, name, value);
  SaveError(errptr, s);
  return last_code;
}

// For the typed setters: their values always parse (ranges are checked at
// connect), so they go through SetOption without touching the last code.
void SetTyped(pgshift_options_t* o, const char* name, absl::string_view value) {
  if (o != nullptr) (void)pgshift::SetOption(o->rep, name, value);
}
void SetMs(pgshift_options_t* o, const char* name, int64_t ms) {
  SetTyped(o, name, absl::StrCat(ms, "ms"));
}

const pgshift::OptionInfo* OptionAt(size_t i) {
  const auto& list = pgshift::OptionList();
  return i < list.size() ? &list[i] : nullptr;
}

// Choice `index` of option `name` (a C enum value); an index that is not a
// choice goes to SetOption as its number, which refuses it with the message
// listing the choices.
int SetChoice(pgshift_options_t* o, const char* name, int index, char** errptr) {
  for (const pgshift::OptionInfo& info : pgshift::OptionList()) {
    if (absl::string_view(info.name) != name) continue;
    if (index >= 0 && static_cast<size_t>(index) < info.choices.size()) {
      return SetOptionText(o, name, info.choices[index], errptr);
    }
  }
  return SetOptionText(o, name, absl::StrCat(index), errptr);
}

absl::StatusOr<pgshift::Shape> ToShape(int shape) {
  if (shape != PGSHIFT_SHAPE_OLD && shape != PGSHIFT_SHAPE_NEW) {
    return absl::InvalidArgumentError(
        absl::StrCat(shape, " is not a shape; use PGSHIFT_SHAPE_OLD or PGSHIFT_SHAPE_NEW"));
  }
  return static_cast<pgshift::Shape>(shape);
}

pgshift::InstanceOptions MakeInstanceOptions(const char* instance_id, const char* description,
                                             int64_t ttl_ms, const char* control_schema) {
  pgshift::InstanceOptions o;
  if (instance_id != nullptr) o.instance_id = instance_id;
  if (description != nullptr) o.description = description;
  if (ttl_ms != 0) o.ttl = absl::Milliseconds(ttl_ms);
  if (control_schema != nullptr) o.control_schema = control_schema;
  return o;
}

}  // namespace

extern "C" {

// ---- codes -----------------------------------------------------------------

int pgshift_last_code(void) { return last_code; }
const char* pgshift_last_sqlstate(void) { return last_sqlstate; }

const char* pgshift_code_name(int code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",          "UNKNOWN",        "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED",  "OUT_OF_RANGE",   "UNIMPLEMENTED",      "INTERNAL",
      "UNAVAILABLE", "DATA_LOSS",        "UNAUTHENTICATED"};
  if (code < 0 || code > PGSHIFT_UNAUTHENTICATED) return "UNKNOWN";
  return kNames[code];
}

int pgshift_exit_code(int code) {
  if (code < 0 || code > PGSHIFT_UNAUTHENTICATED) code = PGSHIFT_UNKNOWN;
  return pgshift::ExitCodeFor(absl::Status(static_cast<absl::StatusCode>(code),
                                           code == PGSHIFT_OK ? "" : "error"));
}

void pgshift_free(void* ptr) { std::free(ptr); }

// ---- phases ----------------------------------------------------------------

const char* pgshift_phase_name(int phase) {
  // PhaseName returns views of string literals, so .data() is NUL-terminated.
  absl::StatusOr<Phase> p = ToPhase(phase);
  return p.ok() ? pgshift::PhaseName(*p).data() : nullptr;
}

int pgshift_phase_parse(const char* name, char** errptr) {
  absl::Status arg = NeedArg(name, "phase name");
  if (SaveError(errptr, arg)) return -1;
  absl::StatusOr<Phase> p = pgshift::ParsePhase(name);
  if (SaveError(errptr, p.status())) return -1;
  return static_cast<int>(*p);
}

int pgshift_phase_at_least(int current, int at_least) {
  absl::StatusOr<Phase> c = ToPhase(current), a = ToPhase(at_least);
  if (!c.ok() || !a.ok()) return 0;
  return pgshift::PhaseAtLeast(*c, *a) ? 1 : 0;
}

// ---- options ---------------------------------------------------------------

pgshift_options_t* pgshift_options_create(void) { return new pgshift_options_t; }
void pgshift_options_destroy(pgshift_options_t* options) { delete options; }

int pgshift_options_set(pgshift_options_t* o, const char* name, const char* value, char** errptr) {
  if (SaveError(errptr, NeedArg(value, "option value"))) return last_code;
  return SetOptionText(o, name, value, errptr);
}

char* pgshift_options_get(const pgshift_options_t* o, const char* name, char** errptr) {
  absl::Status arg = NeedArg(o, "options");
  if (arg.ok()) arg = NeedArg(name, "option name");
  if (SaveError(errptr, arg)) return nullptr;
  absl::StatusOr<std::string> v = pgshift::GetOption(o->rep, name);
  if (SaveError(errptr, v.status())) return nullptr;
  return CopyString(*v);
}

size_t pgshift_option_count(void) { return pgshift::OptionList().size(); }
const char* pgshift_option_name(size_t i) { return OptionAt(i) ? OptionAt(i)->name : nullptr; }
const char* pgshift_option_flag(size_t i) { return OptionAt(i) ? OptionAt(i)->flag : nullptr; }
const char* pgshift_option_kind(size_t i) { return OptionAt(i) ? OptionAt(i)->kind : nullptr; }
const char* pgshift_option_help(size_t i) { return OptionAt(i) ? OptionAt(i)->help : nullptr; }
const char* pgshift_option_choice(size_t i, size_t j) {
  const pgshift::OptionInfo* o = OptionAt(i);
  return o != nullptr && j < o->choices.size() ? o->choices[j] : nullptr;
}

void pgshift_options_set_control_schema(pgshift_options_t* o, const char* schema) {
  SetTyped(o, "control_schema", schema ? schema : "pgshift");  // NULL: the default, as elsewhere
}
void pgshift_options_set_driver_name(pgshift_options_t* o, const char* name) {
  SetTyped(o, "driver_name", name ? name : "");
}
void pgshift_options_set_lock_timeout_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "lock_timeout", ms);
}
void pgshift_options_set_statement_timeout_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "statement_timeout", ms);
}
void pgshift_options_set_long_statement_timeout_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "long_statement_timeout", ms);
}
void pgshift_options_set_retry_initial_backoff_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "retry_initial_backoff", ms);
}
void pgshift_options_set_retry_max_backoff_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "retry_max_backoff", ms);
}
void pgshift_options_set_retry_deadline_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "retry_deadline", ms);
}
void pgshift_options_set_backfill_batch_rows(pgshift_options_t* o, int64_t rows) {
  SetTyped(o, "backfill_batch_rows", absl::StrCat(rows));
}
void pgshift_options_set_backfill_target_batch_time_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "backfill_target_batch_time", ms);
}
void pgshift_options_set_backfill_min_batch_rows(pgshift_options_t* o, int64_t rows) {
  SetTyped(o, "backfill_min_batch_rows", absl::StrCat(rows));
}
void pgshift_options_set_backfill_max_batch_rows(pgshift_options_t* o, int64_t rows) {
  SetTyped(o, "backfill_max_batch_rows", absl::StrCat(rows));
}
void pgshift_options_set_backfill_batch_delay_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "backfill_batch_delay", ms);
}
void pgshift_options_set_backfill_lock_timeout_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "backfill_lock_timeout", ms);
}
void pgshift_options_set_backfill_poll_interval_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "backfill_poll_interval", ms);
}
void pgshift_options_set_max_replication_lag_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "max_replication_lag", ms);
}
void pgshift_options_set_long_transaction_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "long_transaction", ms);
}
void pgshift_options_set_max_locked_scan_rows(pgshift_options_t* o, int64_t rows) {
  SetTyped(o, "max_locked_scan_rows", absl::StrCat(rows));
}
void pgshift_options_set_lease_heartbeat_ms(pgshift_options_t* o, int64_t ms) {
  SetMs(o, "lease_heartbeat", ms);
}
void pgshift_options_set_interrupted(pgshift_options_t* o, pgshift_interrupted_fn fn, void* arg) {
  if (o == nullptr) return;
  if (fn == nullptr) {
    o->rep.interrupted = nullptr;
    return;
  }
  o->rep.interrupted = [fn, arg] { return fn(arg) != 0; };
}
void pgshift_options_set_latency_guard(pgshift_options_t* o, double ratio) {
  // The field itself, so that a ratio out of range is refused at connect
  // (SetOption would refuse it here, silently for a shorthand).
  if (o != nullptr) o->rep.latency_guard = ratio;
}
void pgshift_options_set_throttle_query(pgshift_options_t* o, const char* sql) {
  SetTyped(o, "throttle_query", sql ? sql : "");
}
void pgshift_options_set_backfill_max_batches(pgshift_options_t* o, int64_t batches) {
  SetTyped(o, "backfill_max_batches", absl::StrCat(batches));
}
void pgshift_options_set_force_contract(pgshift_options_t* o, int force) {
  SetTyped(o, "force_contract", force ? "true" : "false");
}
int pgshift_options_set_preflight_mode(pgshift_options_t* o, int mode, char** errptr) {
  return SetChoice(o, "preflight", mode, errptr);
}
int pgshift_options_set_backfill_walk(pgshift_options_t* o, int walk, char** errptr) {
  return SetChoice(o, "backfill_walk", walk, errptr);
}

void pgshift_options_set_progress(pgshift_options_t* o, pgshift_progress_fn fn, void* arg) {
  if (fn == nullptr) {
    o->rep.on_progress = nullptr;
    return;
  }
  o->rep.on_progress = [fn, arg](const pgshift::Progress& p) {
    pgshift_progress_t c;
    c.migration = p.migration.c_str();
    c.operation = p.operation;
    c.step = p.step.c_str();
    c.rows_done = p.rows_done;
    c.rows_estimate = p.rows_estimate;
    c.rows_per_second = p.rows_per_second;
    c.eta_seconds = p.eta_seconds;
    c.finished = p.finished ? 1 : 0;
    c.rows_updated = p.rows_updated;
    c.batch_rows = p.batch_rows;
    c.lock_wait_ms = p.lock_wait_ms;
    c.waiting = p.waiting.c_str();
    c.rows_estimated = p.rows_estimated ? 1 : 0;
    c.pace = p.pace;
    c.probe_working_ms = p.probe_working_ms;
    c.probe_resting_ms = p.probe_resting_ms;
    fn(arg, &c);
  };
}

void pgshift_options_set_preflight(pgshift_options_t* o, pgshift_preflight_fn fn, void* arg) {
  if (fn == nullptr) {
    o->rep.on_preflight = nullptr;
    return;
  }
  o->rep.on_preflight = [fn, arg](const pgshift::PreflightReport& r) {
    const std::string sessions = pgshift::ToJson(r.sessions);
    pgshift_preflight_t c;
    c.migration = r.migration.c_str();
    c.step = r.step.c_str();
    c.table = r.table.c_str();
    c.outcome = r.outcome.c_str();
    c.sessions_json = sessions.c_str();
    fn(arg, &c);
  };
}

void pgshift_options_set_migrate_callback(pgshift_options_t* o, pgshift_migrate_fn fn,
                                          void* arg) {
  if (fn == nullptr) {
    o->rep.on_migrate = nullptr;
    return;
  }
  o->rep.on_migrate = [fn, arg](const pgshift::MigrateEvent& e) {
    pgshift_migrate_event_t c;
    c.migration = e.migration.c_str();
    c.file = e.file.c_str();
    c.action = e.action.c_str();
    c.phase = e.phase.c_str();
    c.message = e.message.c_str();
    fn(arg, &c);
  };
}

// ---- migrations ------------------------------------------------------------

pgshift_migration_t* pgshift_migration_load_file(const char* path, char** errptr) {
  if (SaveError(errptr, NeedArg(path, "migration file path"))) return nullptr;
  absl::StatusOr<pgshift::v1::Migration> m = pgshift::LoadMigrationFile(path);
  if (SaveError(errptr, m.status())) return nullptr;
  return new pgshift_migration_t{std::move(*m)};
}

pgshift_migration_t* pgshift_migration_parse_json(const char* json, size_t len, char** errptr) {
  if (SaveError(errptr, NeedArg(json, "migration JSON"))) return nullptr;
  absl::StatusOr<pgshift::v1::Migration> m =
      pgshift::ParseMigrationJson(absl::string_view(json, len));
  if (SaveError(errptr, m.status())) return nullptr;
  return new pgshift_migration_t{std::move(*m)};
}

void pgshift_migration_destroy(pgshift_migration_t* m) { delete m; }
const char* pgshift_migration_name(const pgshift_migration_t* m) { return m->rep.name().c_str(); }
char* pgshift_migration_canonical_json(const pgshift_migration_t* m) {
  return CopyString(pgshift::CanonicalJson(m->rep));
}

// ---- statuses ----------------------------------------------------------------

void pgshift_status_destroy(pgshift_status_t* s) { delete s; }
char* pgshift_status_json(const pgshift_status_t* s) { return CopyString(pgshift::ToJson(s->rep)); }
const char* pgshift_status_name(const pgshift_status_t* s) { return s->rep.name.c_str(); }
int pgshift_status_phase(const pgshift_status_t* s) { return static_cast<int>(s->rep.phase); }
const char* pgshift_status_checksum(const pgshift_status_t* s) { return s->rep.checksum.c_str(); }
const char* pgshift_status_created_at(const pgshift_status_t* s) {
  return s->rep.created_at.c_str();
}
const char* pgshift_status_updated_at(const pgshift_status_t* s) {
  return s->rep.updated_at.c_str();
}
const char* pgshift_status_last_error(const pgshift_status_t* s) {
  return s->rep.last_error.c_str();
}
const char* pgshift_status_running_step(const pgshift_status_t* s) {
  return s->rep.running_step.c_str();
}
int pgshift_status_paused(const pgshift_status_t* s) { return s->rep.paused ? 1 : 0; }
const char* pgshift_status_file(const pgshift_status_t* s) { return s->rep.file.c_str(); }
const char* pgshift_status_file_checksum(const pgshift_status_t* s) {
  return s->rep.file_checksum.c_str();
}
int pgshift_status_baselined(const pgshift_status_t* s) { return s->rep.baselined ? 1 : 0; }
const char* pgshift_status_driver(const pgshift_status_t* s) { return s->rep.driver.c_str(); }
size_t pgshift_status_backfill_count(const pgshift_status_t* s) { return s->rep.backfill.size(); }
int pgshift_status_backfill_operation(const pgshift_status_t* s, size_t i) {
  return i < s->rep.backfill.size() ? s->rep.backfill[i].operation : 0;
}
int64_t pgshift_status_backfill_rows_done(const pgshift_status_t* s, size_t i) {
  return i < s->rep.backfill.size() ? s->rep.backfill[i].rows_done : 0;
}
int64_t pgshift_status_backfill_rows_estimate(const pgshift_status_t* s, size_t i) {
  return i < s->rep.backfill.size() ? s->rep.backfill[i].rows_estimate : 0;
}
int pgshift_status_backfill_done(const pgshift_status_t* s, size_t i) {
  return i < s->rep.backfill.size() && s->rep.backfill[i].done ? 1 : 0;
}
int pgshift_status_backfill_rows_estimated(const pgshift_status_t* s, size_t i) {
  return i < s->rep.backfill.size() && s->rep.backfill[i].rows_estimated ? 1 : 0;
}
const char* pgshift_status_backfill_waiting(const pgshift_status_t* s, size_t i) {
  return i < s->rep.backfill.size() ? s->rep.backfill[i].waiting.c_str() : "";
}
double pgshift_status_backfill_pace(const pgshift_status_t* s, size_t i) {
  return i < s->rep.backfill.size() ? s->rep.backfill[i].pace : 1;
}

void pgshift_status_list_destroy(pgshift_status_list_t* l) { delete l; }
char* pgshift_status_list_json(const pgshift_status_list_t* l) {
  std::vector<MigrationStatus> all;
  all.reserve(l->rep.size());
  for (const pgshift_status_t& s : l->rep) all.push_back(s.rep);
  return CopyString(pgshift::ToJson(all));
}
size_t pgshift_status_list_count(const pgshift_status_list_t* l) { return l->rep.size(); }
const pgshift_status_t* pgshift_status_list_get(const pgshift_status_list_t* l, size_t i) {
  return i < l->rep.size() ? &l->rep[i] : nullptr;
}

// ---- driver ------------------------------------------------------------------

pgshift_driver_t* pgshift_driver_connect(const char* dsn, const pgshift_options_t* options,
                                         char** errptr) {
  pgshift::Options o = options ? options->rep : pgshift::Options();
  absl::StatusOr<std::unique_ptr<pgshift::Driver>> d =
      pgshift::Driver::Connect(dsn ? dsn : "", std::move(o));
  if (SaveError(errptr, d.status())) return nullptr;
  return new pgshift_driver_t{std::move(*d)};
}

void pgshift_driver_destroy(pgshift_driver_t* d) { delete d; }

int pgshift_driver_server_version(const pgshift_driver_t* d) { return d->rep->server_version(); }

int pgshift_driver_init(pgshift_driver_t* d, char** errptr) {
  SaveError(errptr, d->rep->Init());
  return last_code;
}

char* pgshift_driver_plan(pgshift_driver_t* d, const pgshift_migration_t* m, char** errptr) {
  if (SaveError(errptr, NeedArg(m, "migration"))) return nullptr;
  absl::StatusOr<pgshift::Plan> plan = d->rep->PlanMigration(m->rep);
  if (SaveError(errptr, plan.status())) return nullptr;
  return CopyString(pgshift::ToJson(*plan));
}

pgshift_status_t* pgshift_driver_register(pgshift_driver_t* d, const pgshift_migration_t* m,
                                          char** errptr) {
  if (SaveError(errptr, NeedArg(m, "migration"))) return nullptr;
  return StatusResult(d->rep->Register(m->rep), errptr);
}

pgshift_status_t* pgshift_driver_register_file(pgshift_driver_t* d, const char* path,
                                               char** errptr) {
  if (SaveError(errptr, NeedArg(path, "migration file path"))) return nullptr;
  absl::StatusOr<pgshift::v1::Migration> m = pgshift::LoadMigrationFile(path);
  if (SaveError(errptr, m.status())) return nullptr;
  return StatusResult(d->rep->Register(*m), errptr);
}

pgshift_status_t* pgshift_driver_register_json(pgshift_driver_t* d, const char* json, size_t len,
                                               char** errptr) {
  if (SaveError(errptr, NeedArg(json, "migration JSON"))) return nullptr;
  absl::StatusOr<pgshift::v1::Migration> m =
      pgshift::ParseMigrationJson(absl::string_view(json, len));
  if (SaveError(errptr, m.status())) return nullptr;
  return StatusResult(d->rep->Register(*m), errptr);
}

pgshift_status_t* pgshift_driver_advance(pgshift_driver_t* d, const char* name, char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return nullptr;
  return StatusResult(d->rep->Advance(name), errptr);
}

pgshift_status_t* pgshift_driver_advance_to(pgshift_driver_t* d, const char* name, int to,
                                            char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return nullptr;
  absl::StatusOr<Phase> phase = ToPhase(to);
  if (SaveError(errptr, phase.status())) return nullptr;
  return StatusResult(d->rep->Advance(name, *phase), errptr);
}

pgshift_status_t* pgshift_driver_rollback(pgshift_driver_t* d, const char* name, char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return nullptr;
  return StatusResult(d->rep->Rollback(name), errptr);
}

int pgshift_driver_pause(pgshift_driver_t* d, const char* name, char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return last_code;
  SaveError(errptr, d->rep->Pause(name));
  return last_code;
}

int pgshift_driver_resume(pgshift_driver_t* d, const char* name, char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return last_code;
  SaveError(errptr, d->rep->Resume(name));
  return last_code;
}

pgshift_status_t* pgshift_driver_status(pgshift_driver_t* d, const char* name, char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return nullptr;
  return StatusResult(d->rep->Status(name), errptr);
}

pgshift_status_list_t* pgshift_driver_list(pgshift_driver_t* d, char** errptr) {
  absl::StatusOr<std::vector<MigrationStatus>> all = d->rep->List();
  if (SaveError(errptr, all.status())) return nullptr;
  auto* out = new pgshift_status_list_t;
  out->rep.reserve(all->size());
  for (auto& m : *all) out->rep.push_back(pgshift_status_t{std::move(m)});
  return out;
}

int pgshift_driver_current_phase(pgshift_driver_t* d, const char* name, char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return -1;
  absl::StatusOr<Phase> p = d->rep->CurrentPhase(name);
  if (SaveError(errptr, p.status())) return -1;
  return static_cast<int>(*p);
}

int pgshift_driver_require_phase(pgshift_driver_t* d, const char* name, int at_least,
                                 char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return last_code;
  absl::StatusOr<Phase> phase = ToPhase(at_least);
  if (SaveError(errptr, phase.status())) return last_code;
  SaveError(errptr, d->rep->RequirePhase(name, *phase));
  return last_code;
}

// ---- migration directories -------------------------------------------------------

char* pgshift_driver_migrate(pgshift_driver_t* d, const char* dir, int to, int flags,
                             char** errptr) {
  if (SaveError(errptr, NeedArg(dir, "migration directory"))) return nullptr;
  constexpr int kKnown =
      PGSHIFT_MIGRATE_CONTRACT | PGSHIFT_MIGRATE_ALLOW_OUT_OF_ORDER | PGSHIFT_MIGRATE_NO_WAIT;
  if ((flags & ~kKnown) != 0) {
    SaveError(errptr, absl::InvalidArgumentError(absl::StrCat(
                          "unknown migrate flags ", flags & ~kKnown,
                          "; use PGSHIFT_MIGRATE_CONTRACT, PGSHIFT_MIGRATE_ALLOW_OUT_OF_ORDER "
                          "and PGSHIFT_MIGRATE_NO_WAIT")));
    return nullptr;
  }
  pgshift::MigrateOptions options;
  if (to >= 0) {
    absl::StatusOr<Phase> phase = ToPhase(to);
    if (SaveError(errptr, phase.status())) return nullptr;
    options.to = *phase;
  }
  options.contract = (flags & PGSHIFT_MIGRATE_CONTRACT) != 0;
  options.allow_out_of_order = (flags & PGSHIFT_MIGRATE_ALLOW_OUT_OF_ORDER) != 0;
  options.wait = (flags & PGSHIFT_MIGRATE_NO_WAIT) == 0;
  absl::StatusOr<pgshift::MigrateReport> r = d->rep->Migrate(dir, options);
  if (SaveError(errptr, r.status())) return nullptr;
  return CopyString(pgshift::ToJson(*r));
}

char* pgshift_driver_directory_status(pgshift_driver_t* d, const char* dir, char** errptr) {
  if (SaveError(errptr, NeedArg(dir, "migration directory"))) return nullptr;
  absl::StatusOr<pgshift::DirectoryReport> r = d->rep->DirectoryStatus(dir);
  if (SaveError(errptr, r.status())) return nullptr;
  return CopyString(pgshift::ToJson(*r));
}

char* pgshift_driver_baseline(pgshift_driver_t* d, const char* dir, const char* through,
                              char** errptr) {
  absl::Status arg = NeedArg(dir, "migration directory");
  if (arg.ok()) arg = NeedArg(through, "baseline target (through)");
  if (SaveError(errptr, arg)) return nullptr;
  absl::StatusOr<pgshift::DirectoryReport> r = d->rep->Baseline(dir, through);
  if (SaveError(errptr, r.status())) return nullptr;
  return CopyString(pgshift::ToJson(*r));
}

// ---- plain SQL -------------------------------------------------------------------

namespace {

absl::StatusOr<pgshift::LintOptions> LintFlags(int flags) {
  if ((flags & ~PGSHIFT_LINT_OTHER_RUNNER) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown lint flags ", flags & ~PGSHIFT_LINT_OTHER_RUNNER, "; use PGSHIFT_LINT_OTHER_RUNNER"));
  }
  pgshift::LintOptions options;
  options.other_runner = (flags & PGSHIFT_LINT_OTHER_RUNNER) != 0;
  return options;
}

char* Lint(pgshift::Driver* driver, const char* sql, const char* origin, int flags, char** errptr) {
  if (SaveError(errptr, NeedArg(sql, "SQL text"))) return nullptr;
  absl::StatusOr<pgshift::LintOptions> options = LintFlags(flags);
  if (SaveError(errptr, options.status())) return nullptr;
  const std::string where = origin ? origin : "sql";
  absl::StatusOr<pgshift::LintReport> r = driver ? driver->Lint(sql, where, *options)
                                                 : pgshift::LintSql(sql, where, *options);
  if (SaveError(errptr, r.status())) return nullptr;
  return CopyString(pgshift::ToJson(*r));
}

char* Convert(pgshift::Driver* driver, const char* sql, const char* origin, const char* name, char** errptr) {
  absl::Status arg = NeedArg(sql, "SQL text");
  if (arg.ok()) arg = NeedArg(name, "migration name");
  if (SaveError(errptr, arg)) return nullptr;
  const std::string where = origin ? origin : "sql";
  absl::StatusOr<pgshift::v1::Migration> m = driver ? driver->ConvertSql(sql, where, name)
                                                    : pgshift::ConvertSql(sql, where, name);
  if (SaveError(errptr, m.status())) return nullptr;
  return CopyString(pgshift::CanonicalJson(*m));
}

}  // namespace

char* pgshift_lint_json(const char* sql, const char* origin, int flags, char** errptr) {
  return Lint(nullptr, sql, origin, flags, errptr);
}

char* pgshift_driver_lint_json(pgshift_driver_t* d, const char* sql, const char* origin, int flags,
                               char** errptr) {
  return Lint(d->rep.get(), sql, origin, flags, errptr);
}

char* pgshift_convert_sql(const char* sql, const char* origin, const char* name, char** errptr) {
  return Convert(nullptr, sql, origin, name, errptr);
}

char* pgshift_driver_convert_sql(pgshift_driver_t* d, const char* sql, const char* origin, const char* name,
                                 char** errptr) {
  return Convert(d->rep.get(), sql, origin, name, errptr);
}

// ---- startup checks ------------------------------------------------------------

int pgshift_current_phase(const char* dsn, const char* name, const char* control_schema,
                          char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return -1;
  absl::StatusOr<Phase> p =
      pgshift::CurrentPhase(dsn ? dsn : "", name, control_schema ? control_schema : "pgshift");
  if (SaveError(errptr, p.status())) return -1;
  return static_cast<int>(*p);
}

int pgshift_require_phase(const char* dsn, const char* name, int at_least,
                          const char* control_schema, char** errptr) {
  if (SaveError(errptr, NeedArg(name, "migration name"))) return last_code;
  absl::StatusOr<Phase> phase = ToPhase(at_least);
  if (SaveError(errptr, phase.status())) return last_code;
  SaveError(errptr, pgshift::RequirePhase(dsn ? dsn : "", name, *phase,
                                          control_schema ? control_schema : "pgshift"));
  return last_code;
}

// ---- instance declarations -----------------------------------------------------

int pgshift_declare_instance(const char* dsn, const char* migration, int shape,
                             const char* instance_id, const char* description, int64_t ttl_ms,
                             const char* control_schema, char** errptr) {
  if (SaveError(errptr, NeedArg(migration, "migration name"))) return last_code;
  absl::StatusOr<pgshift::Shape> sh = ToShape(shape);
  if (SaveError(errptr, sh.status())) return last_code;
  SaveError(errptr, pgshift::DeclareInstance(
                        dsn ? dsn : "", migration, *sh,
                        MakeInstanceOptions(instance_id, description, ttl_ms, control_schema)));
  return last_code;
}

int pgshift_withdraw_instance(const char* dsn, const char* migration, const char* instance_id,
                              const char* control_schema, char** errptr) {
  absl::Status arg = NeedArg(migration, "migration name");
  if (arg.ok()) arg = NeedArg(instance_id, "instance id");
  if (SaveError(errptr, arg)) return last_code;
  SaveError(errptr, pgshift::WithdrawInstance(dsn ? dsn : "", migration, instance_id,
                                              control_schema ? control_schema : "pgshift"));
  return last_code;
}

pgshift_instance_registration_t* pgshift_instance_registration_start(
    const char* dsn, const char* migration, int shape, const char* instance_id,
    const char* description, int64_t ttl_ms, const char* control_schema, char** errptr) {
  if (SaveError(errptr, NeedArg(migration, "migration name"))) return nullptr;
  absl::StatusOr<pgshift::Shape> sh = ToShape(shape);
  if (SaveError(errptr, sh.status())) return nullptr;
  absl::StatusOr<std::unique_ptr<pgshift::InstanceRegistration>> r =
      pgshift::InstanceRegistration::Start(
          dsn ? dsn : "", migration, *sh,
          MakeInstanceOptions(instance_id, description, ttl_ms, control_schema));
  if (SaveError(errptr, r.status())) return nullptr;
  return new pgshift_instance_registration_t{std::move(*r)};
}

void pgshift_instance_registration_destroy(pgshift_instance_registration_t* r) { delete r; }

const char* pgshift_instance_registration_id(const pgshift_instance_registration_t* r) {
  return r->rep->instance_id().c_str();
}

int pgshift_instance_registration_last_refresh(const pgshift_instance_registration_t* r,
                                               char** errptr) {
  SaveError(errptr, r->rep->last_refresh());
  return last_code;
}

}  // extern "C"
