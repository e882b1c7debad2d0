// The driver: registers migrations, advances them one step at a time, rolls
// them back, and reports their state. This is what deployment tooling links.
//
// Example (a deploy pipeline; the header examples are compiled by
// tests/header_examples_test.py):
//   auto d = pgshift::Driver::Connect("host=db dbname=app", pgshift::Options());
//   if (!d.ok()) { std::cerr << d.status() << "\n"; return pgshift::ExitCodeFor(d.status()); }
//   absl::Status s = (*d)->Init();
//   auto spec = pgshift::LoadMigrationFile("0042_rename_users_name.json");
//   if (s.ok()) s = spec.status();
//   if (s.ok()) s = (*d)->Register(*spec).status();
//   // deploy 1: expand (old app versions keep working)
//   if (s.ok()) s = (*d)->Advance(spec->name(), pgshift::Phase::kValidated).status();
//   // deploy 2: the new app version may start
//   if (s.ok()) s = (*d)->Advance(spec->name(), pgshift::Phase::kSwitched).status();
//   // deploy 3: the old app version is gone
//   if (s.ok()) s = (*d)->Advance(spec->name(), pgshift::Phase::kContracted).status();
//   if (!s.ok()) { std::cerr << s << "\n"; return pgshift::ExitCodeFor(s); }
//
// A Driver owns one database connection and is not thread-safe; use one per
// thread. Several drivers (in several processes) may run at once: each
// migration is held by at most one of them at a time, the others get Aborted
// ("busy") naming the holder.
#ifndef PGSHIFT_DRIVER_H_
#define PGSHIFT_DRIVER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pgshift/check.h"
#include "pgshift/lint.h"
#include "pgshift/options.h"
#include "pgshift/phase.h"
#include "pgshift/v1/migration.pb.h"

namespace pgshift {

// A table a statement locks, and how ("ACCESS EXCLUSIVE", ...).
struct PlannedLock {
  std::string table;  // quoted qualified name
  std::string mode;
};

// One statement of a plan, with what it does to the table.
struct PlannedStatement {
  std::string sql;           // exactly what advance runs
  std::string lock;          // strongest table lock taken, e.g. "ACCESS EXCLUSIVE"; "none"
  std::vector<PlannedLock> locks;  // every table it locks (a foreign key: two)
  // When it runs, when not every time its step runs ("first batch", "only
  // when ..."); "" for always.
  std::string when;
  // The catalog condition under which advance skips it because it is already
  // done (a re-run after a crash); "" when it always runs.
  std::string skip_if;
  bool transactional = true; // false for CREATE/DROP INDEX CONCURRENTLY
  bool scans_table = false;  // reads every row (VALIDATE, index build, checks)
  bool rewrites_table = false;
  bool batched = false;      // the backfill: many short transactions
  int64_t rows_estimate = 0; // rows it reads or writes (table estimate), 0 for catalog-only DDL
  std::string note;          // why, in a few words
};

struct PlannedStep {
  Phase to = Phase::kRegistered;  // phase reached when the step commits
  std::string operation;          // "rename_column public.users.name -> full_name"
  std::vector<PlannedStatement> statements;
  int64_t rows_estimate = 0;      // rows the step touches (backfill), estimate
  std::vector<std::string> hazards;  // "irreversible: drops column ..."
};

struct Plan {
  std::string migration;
  int server_version = 0;
  // How the server's version shaped the plan, and the lock discipline every
  // statement runs under ("each transaction: SET LOCAL lock_timeout = 1s").
  std::vector<std::string> notes;
  std::vector<PlannedStep> steps;     // in ladder order, per operation
  std::vector<PlannedStep> rollback;  // what rollback would run from the end of validate
};

struct BackfillStatus {
  int operation = 0;
  int64_t rows_done = 0;       // as Progress::rows_done
  int64_t rows_estimate = 0;   // as Progress::rows_estimate: the estimate when the last batch committed
  bool done = false;
  bool rows_estimated = true;  // rows_estimate is an estimate (until done)
  // As Progress::waiting when the backfill last reported (a batch committed,
  // or it started waiting): "" while working.
  std::string waiting;
  double pace = 1;  // as Progress::pace when the last batch committed
};

// An application instance that declared the shape it needs (check.h) and
// whose declaration has not expired.
struct InstanceStatus {
  std::string instance_id;
  Shape shape = Shape::kOld;
  std::string description;
  std::string heartbeat_at;       // ISO 8601, UTC
  double expires_in_seconds = 0;  // until it stops counting without a refresh
};

struct MigrationStatus {
  std::string name;
  Phase phase = Phase::kRegistered;
  std::string checksum;
  std::string created_at;   // ISO 8601, UTC
  std::string updated_at;
  std::string last_error;   // "" when the last step succeeded
  // Step started but not finished (a crash, a failure), or "". "rolled_back"
  // while a rollback that stopped part-way is to be finished (rollback
  // again; advance is refused meanwhile).
  std::string running_step;
  bool paused = false;      // a pause request is set (see Driver::Pause)
  // The file of a migration directory it was registered from (Migrate,
  // Baseline), "" when registered otherwise; `baselined` when Baseline
  // recorded it as applied without running it.
  std::string file;
  std::string file_checksum;
  bool baselined = false;
  std::string driver;       // who drives it right now (Status() only), or ""
  std::vector<BackfillStatus> backfill;
  std::vector<InstanceStatus> instances;  // live declarations (Status() only)
};

// ---- Migration directories (docs/cli.md, "Migration directories") --------
// A folder of migration files applied in byte order of their file names,
// each recorded with its file's checksum once registered: Driver::Migrate
// runs them, Driver::DirectoryStatus reports them, Driver::Baseline records
// the files of a database that predates pgshift as applied.

// One migration of a directory: a file, or a migration registered from a
// file that is no longer there ("missing").
struct DirectoryFile {
  std::string file;  // base name, e.g. "0001_create_users.json" (as recorded, when missing)
  std::string name;  // the migration's name: the file name without its extension
  // "pending": not registered (or rolled back), `migrate` runs it;
  // "applied": registered from this file (see `migration` for its phase);
  // "baselined": recorded as applied by `baseline`, never run;
  // "changed": applied, and the file changed since (migrate refuses);
  // "missing": applied from a file that is gone (migrate refuses).
  std::string state;
  // A pending file that sorts before an applied one (migrate refuses it
  // unless MigrateOptions::allow_out_of_order).
  bool out_of_order = false;
  std::string checksum;           // sha256 of the file now (line endings normalized); "" when missing
  std::string recorded_checksum;  // recorded when it was registered; "" when not registered
  // Why the file cannot run as it is ("" when it can): a file that does not
  // parse, a name that differs from the file name, a changed or missing
  // file, an out-of-order file.
  std::string problem;
  std::optional<MigrationStatus> migration;  // when registered
};

struct DirectoryReport {
  std::string directory;
  std::vector<DirectoryFile> files;   // in byte order of name (missing ones among them)
  std::vector<std::string> ignored;   // other entries: README.md, sub-directories, dotfiles
  int pending = 0;                    // files `migrate` would run
  bool ok = true;                     // migrate would not refuse (no problem on any file)
};

struct MigrateOptions {
  // Phase every migration is taken to; default switched (the pre-deploy
  // step). Not with `contract` (InvalidArgument).
  std::optional<Phase> to;
  // Post-deploy: contract, in order, every migration at switched whose
  // old-shape application instances are gone; stop at the first that is
  // not at switched, or may not be contracted.
  bool contract = false;
  // Let a pending file that sorts before an applied one run. (`contract`
  // needs no leave: it stops at the first pending file, in order or not.)
  bool allow_out_of_order = false;
  // Wait while another migrate (or baseline) runs on the database; false:
  // Aborted (busy) at once, naming it.
  bool wait = true;
};

// What one migration went through in a Migrate call.
struct MigratedFile {
  std::string name;
  std::string file;
  // Phase before the call: kRegistered for a new file, kRolledBack for a
  // rolled-back one registered again.
  Phase from = Phase::kRegistered;
  Phase to = Phase::kRegistered;    // phase after it
  bool registered = false;          // registered by this call
};

struct MigrateReport {
  std::string directory;
  std::vector<MigratedFile> migrations;  // every migration this call moved, in order
  // The migration it stopped at without an error (--contract: one not at
  // switched yet, or pending), "" when it went through the whole directory.
  std::string stopped_at;
  std::string stop_reason;
};

class Driver {
 public:
  // Connects to `dsn` ("" means libpq's PG* environment). Fails with
  // Unavailable when the server cannot be reached; the message never contains
  // the password.
  static absl::StatusOr<std::unique_ptr<Driver>> Connect(const std::string& dsn,
                                                         Options options = {});
  ~Driver();

  // Creates or upgrades the control schema. Idempotent; needs CREATE on the
  // database (or on an existing control schema), not superuser. An upgrade
  // waits for the locks of the control tables at most options.lock_timeout
  // (so startup checks never queue behind it longer): Aborted, nothing
  // changed, when another session holds them longer.
  absl::Status Init();

  // Validates `migration` against the live catalog and renders every step
  // with its statements, locks, scans, row estimates and hazards, adapted to
  // the server's version. Changes nothing, takes no driver lease and works
  // before `Init` (then without the conflict check against other migrations).
  absl::StatusOr<Plan> PlanMigration(const v1::Migration& migration);

  // Validates and stores `migration` at phase registered. Registering the
  // same spec again is OK; the same name with another spec is AlreadyExists.
  absl::StatusOr<MigrationStatus> Register(const v1::Migration& migration);

  // Runs the next step, or every step up to `to`. Returns once each step has
  // committed and its phase is recorded; safe to call again after a crash at
  // any point (an interrupted step re-runs, the backfill resumes from its
  // checkpoint). Aborted when another driver holds the migration (naming it)
  // or when the preflight check refuses; DeadlineExceeded when locks could
  // not be taken before options.retry_deadline (naming the blocking
  // sessions). Reaching contracted is refused with FailedPrecondition,
  // listing them, while application instances that declared the old shape
  // are live, unless options.force_contract; and any step while a rollback
  // that stopped part-way is unfinished (running_step "rolled_back": call
  // Rollback to finish it).
  absl::StatusOr<MigrationStatus> Advance(const std::string& name,
                                          std::optional<Phase> to = std::nullopt);

  // Undoes everything pgshift created for the migration; allowed from any
  // phase before contracted; idempotent.
  absl::StatusOr<MigrationStatus> Rollback(const std::string& name);

  // Asks the backfill of migration `name` to pause between batches, from
  // any driver (another thread's or process's); the driver running it waits,
  // reporting Progress::waiting == "paused", until Resume. The request is
  // the `paused` column of the control schema's migrations table, so
  //   UPDATE pgshift.migrations SET paused = true WHERE name = '...'
  // does the same. It persists (a later advance waits too) until Resume.
  // NotFound when the migration is not registered.
  absl::Status Pause(const std::string& name);
  absl::Status Resume(const std::string& name);

  // Runs the migration directory `dir` (see MigrateOptions): creates or
  // upgrades the control schema, then, holding the directory lock (one
  // Migrate or Baseline per database and control schema at a time),
  // registers every pending file in order, recording its checksum, and
  // advances each migration to options.to (default switched); with
  // options.contract, contracts instead. Progress goes to
  // Options::on_migrate (and the backfill's to on_progress).
  // Refuses with InvalidArgument, naming the files and changing nothing,
  // when a file does not parse, an applied file changed or is missing, or a
  // pending file sorts before an applied one (unless allow_out_of_order or
  // contract), or cannot be read.
  // Stops with FailedPrecondition (nothing of that migration run) at a
  // migration that conflicts with an earlier one not yet contracted (an
  // earlier one whose contract only removes pgshift's mark is contracted
  // early instead, when the run goes to switched or beyond, every
  // conflicting one is such a one, and the file fits the catalog), and
  // when contract is refused while old-shape instances are live; a step that
  // fails stops it as in Advance. Aborted when another Migrate holds the
  // directory lock and !options.wait; NotFound when `dir` does not exist
  // (InvalidArgument when it is not a directory). Safe to call again after any failure
  // or crash: it continues where it stopped.
  absl::StatusOr<MigrateReport> Migrate(const std::string& dir, const MigrateOptions& options = {});

  // Every file of `dir` with its state (pending, applied, baselined,
  // changed, missing), the phase of its migration and any problem, and the
  // ignored entries. Reads only; works before Init (then every file is
  // pending).
  absl::StatusOr<DirectoryReport> DirectoryStatus(const std::string& dir);

  // Records every file of `dir` up to and including migration `through`
  // (its name, or its file name) as applied, at phase contracted and marked
  // baselined, without running anything: for a database whose schema
  // already has what those files do. Files already registered are left as
  // they are, a rolled-back one too (it stays pending), each with a "skip"
  // event saying why. InvalidArgument (nothing changed) when `through` is not a file
  // of `dir`, or a file up to it does not parse or changed. Returns the
  // directory as it stands after.
  absl::StatusOr<DirectoryReport> Baseline(const std::string& dir, const std::string& through);

  // Lints `sql` (LintSql in lint.h) with the live catalog: whether each
  // table exists (a table the script creates is new: nothing else uses it
  // yet), whether a default is volatile, whether a type change rewrites.
  // Reads only; works before Init.
  absl::StatusOr<LintReport> Lint(absl::string_view sql, absl::string_view origin,
                                  const LintOptions& options = {});

  // The migration a plain SQL file becomes (ConvertSql in lint.h), judged
  // with the live catalog. Reads only; works before Init.
  absl::StatusOr<v1::Migration> ConvertSql(absl::string_view sql, absl::string_view origin,
                                           const std::string& name);

  absl::StatusOr<MigrationStatus> Status(const std::string& name);
  absl::StatusOr<std::vector<MigrationStatus>> List();

  // One round trip each; see also the free functions in check.h.
  absl::StatusOr<Phase> CurrentPhase(const std::string& name);
  absl::Status RequirePhase(const std::string& name, Phase at_least);

  int server_version() const;

 private:
  struct Impl;
  explicit Driver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgshift

#endif  // PGSHIFT_DRIVER_H_
