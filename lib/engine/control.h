// The control schema (docs/architecture.md, "The control schema"):
// migrations, history of step attempts, backfill checkpoints and application
// instances, in a schema of their own ("pgshift" by default). Every query on
// those tables is in this module (control.cc, and lease.cc for the lease).
#ifndef PGSHIFT_LIB_ENGINE_CONTROL_H_
#define PGSHIFT_LIB_ENGINE_CONTROL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/backfill/backfill.h"
#include "lib/pg/connection.h"
#include "pgshift/driver.h"
#include "pgshift/phase.h"

namespace pgshift::engine {

// 1: meta, migrations, history, checkpoints.
// 2: history.report (preflight, lock waits, locks taken); instances.
// 3: migrations.paused (pause requests honoured by the backfill).
// 4: migrations.source_file, source_checksum, baselined (migration directories).
inline constexpr int kControlSchemaVersion = 5;

// The file of a migration directory a migration comes from, and its
// checksum (directory.h); empty for a migration registered otherwise.
struct SourceFile {
  std::string file;
  std::string checksum;
};

// An application instance that declared the shape it needs (check.h).
struct LiveInstance {
  std::string instance_id;
  std::string shape;        // "old" / "new"
  std::string description;
  std::string heartbeat_at; // ISO 8601 UTC
  double expires_in_seconds = 0;
};

struct StoredMigration {
  MigrationStatus status;
  std::string spec_json;
};

// OK when phase `p` of migration `name` has reached `at_least`;
// FailedPrecondition saying where it stands otherwise (the startup check).
absl::Status PhaseReached(absl::string_view name, Phase p, Phase at_least);

class Control {
 public:
  Control(pg::Connection& conn, std::string schema);

  const std::string& schema() const { return schema_; }
  // "pgshift"."table"
  std::string Table(absl::string_view name) const;

  // Creates or upgrades the control schema; idempotent and safe to race.
  // Waits for the locks of the control tables at most `lock_timeout`:
  // Aborted (nothing changed) when another session holds them longer.
  absl::Status Init(absl::Duration lock_timeout = absl::Seconds(1));
  // FailedPrecondition telling the user to run `pgshift init` when missing
  // or older than this library.
  absl::Status RequireInitialized();
  // True when the control tables exist (any version); reads only.
  absl::StatusOr<bool> Exists();

  // Stores the spec at phase registered (checksum computed by the server).
  // Same name + same checksum: returns the stored row. Different checksum:
  // AlreadyExists.
  // `source`, when given, is recorded with a new row.
  absl::StatusOr<StoredMigration> Register(const std::string& name, const std::string& spec_json,
                                           const SourceFile& source = {});
  // Records the file a migration registered without one comes from.
  absl::Status RecordSource(const std::string& name, const SourceFile& source);
  // A rolled-back migration registered again, with `spec_json` (its file may
  // have changed since): phase registered, error, pause and checkpoints
  // cleared. False (nothing changed) when it is not at rolled_back.
  absl::StatusOr<bool> Revive(const std::string& name, const std::string& spec_json,
                              const SourceFile& source);
  // Records `name` as applied without running it: phase contracted,
  // baselined. False (nothing changed) when the name is registered already.
  absl::StatusOr<bool> RecordBaselined(const std::string& name, const std::string& spec_json,
                                       const SourceFile& source);
  absl::StatusOr<StoredMigration> Load(const std::string& name);
  // The phase of `name` in one round trip (the startup check). NotFound when
  // it is not registered, or when the control schema does not exist.
  absl::StatusOr<Phase> CurrentPhase(const std::string& name);
  absl::StatusOr<std::vector<StoredMigration>> LoadAll();

  absl::Status SetRunningStep(const std::string& name, std::optional<Phase> step);
  // Records that `name` moved from phase `from` to `to`, fenced: only while
  // backend `lease_pid` still holds the driver lease (lease.h) and the
  // phase is still `from`. Aborted otherwise (a lost lease, or another
  // driver moved it), recording nothing.
  absl::Status SetPhase(const std::string& name, Phase from, Phase to, int lease_pid);
  absl::Status SetLastError(const std::string& name, const std::string& error);

  // History: returns the row id of a new attempt.
  absl::StatusOr<int64_t> BeginAttempt(const std::string& name, const std::string& step,
                                       const std::string& driver);
  // `report_json` is a JSON object: {"preflight": [...], "lock_waits":
  // [...], "locks": [...]} (see docs/runbook.md, reading history).
  absl::Status FinishAttempt(int64_t id, bool ok, const std::string& error,
                             const std::vector<std::string>& statements, int64_t lock_wait_ms,
                             int64_t rows, const std::string& report_json = "{}");

  // Records (or refreshes) that application instance `id` needs `shape`
  // ("old"/"new") of migration `name` for the next `ttl`. A "new"
  // declaration is refused (FailedPrecondition) before the migration reached
  // switched: new app versions may not run before (the sync trigger would
  // overwrite a NULL they write to the new column with the old value).
  absl::Status DeclareInstance(const std::string& name, const std::string& id, absl::string_view shape,
                               const std::string& description, absl::Duration ttl);
  absl::Status WithdrawInstance(const std::string& name, const std::string& id);

  // Live instances of migration `name` (declarations not expired), of
  // `shape` ("old"/"new"), or of both when `shape` is empty. With
  // `forget_expired`, also deletes declarations that expired more than a day
  // ago (best effort).
  absl::StatusOr<std::vector<LiveInstance>> LiveInstances(const std::string& name,
                                                          const std::string& shape = "",
                                                          bool forget_expired = false);

  // Other active migrations (not contracted/rolled back), name -> spec JSON.
  absl::StatusOr<std::vector<StoredMigration>> Active();

  absl::Status ClearCheckpoints(const std::string& name);
  // How many statements of list `list` ("up", "down") of operation `op` of
  // migration `name` (a sql operation) are recorded as done: the highest
  // number recorded. Kept in checkpoints under operation -(op + 1), which
  // status does not read as a backfill.
  absl::StatusOr<int> StatementsDone(const std::string& name, int op, const std::string& list);
  // Records statement `number` of that list as done (in the caller's
  // transaction, when there is one).
  absl::Status RecordStatementDone(const std::string& name, int op, const std::string& list,
                                   int number);

  // Where the backfill of operation `operation` of migration `name` keeps
  // its checkpoint (and reads the migration's pause request). Uses this
  // Control's connection; lives no longer than it.
  std::unique_ptr<backfill::CheckpointStore> Checkpoints(const std::string& name, int operation);

  // Sets the pause request the backfill checks between batches. NotFound
  // when the migration is not registered.
  absl::Status SetPaused(const std::string& name, bool paused);

 private:
  absl::StatusOr<StoredMigration> FromRow(const pg::Result& r, int row);
  pg::Connection& conn_;
  std::string schema_;
};

}  // namespace pgshift::engine

#endif  // PGSHIFT_LIB_ENGINE_CONTROL_H_
