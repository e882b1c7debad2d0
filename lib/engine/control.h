// The control schema (design §4): migrations, history of step attempts and
// backfill checkpoints, in a schema of their own ("pgshift" by default).
#ifndef PGSHIFT_LIB_ENGINE_CONTROL_H_
#define PGSHIFT_LIB_ENGINE_CONTROL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/pg/connection.h"
#include "pgshift/driver.h"
#include "pgshift/phase.h"

namespace pgshift::engine {

inline constexpr int kControlSchemaVersion = 2;

struct StoredMigration {
  MigrationStatus status;
  std::string spec_json;
};

class Control {
 public:
  Control(pg::Connection& conn, std::string schema);

  const std::string& schema() const { return schema_; }
  // "pgshift"."table"
  std::string Table(absl::string_view name) const;

  // Creates or upgrades the control schema; idempotent and safe to race.
  absl::Status Init();
  // FailedPrecondition telling the user to run `pgshift init` when missing.
  absl::Status RequireInitialized();

  // Stores the spec at phase registered (checksum computed by the server).
  // Same name + same checksum: returns the stored row. Different checksum:
  // AlreadyExists.
  absl::StatusOr<StoredMigration> Register(const std::string& name, const std::string& spec_json);
  absl::StatusOr<StoredMigration> Load(const std::string& name);
  absl::StatusOr<std::vector<StoredMigration>> LoadAll();

  absl::Status SetRunningStep(const std::string& name, std::optional<Phase> step);
  absl::Status SetPhase(const std::string& name, Phase phase);
  absl::Status SetLastError(const std::string& name, const std::string& error);

  // History: returns the row id of a new attempt.
  absl::StatusOr<int64_t> BeginAttempt(const std::string& name, const std::string& step,
                                       const std::string& driver);
  absl::Status FinishAttempt(int64_t id, bool ok, const std::string& error,
                             const std::vector<std::string>& statements, int64_t lock_wait_ms,
                             int64_t rows);

  // One-driver-at-a-time lock (session advisory lock on the migration name).
  // Aborted naming the holder when another session holds it.
  absl::Status Lock(const std::string& name);
  absl::Status Unlock(const std::string& name);

  // Other active migrations (not contracted/rolled back), name -> spec JSON.
  absl::StatusOr<std::vector<StoredMigration>> Active();

  absl::Status ClearCheckpoints(const std::string& name);

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
