// The operation interface. Operations *plan*: given the catalog, each says
// which actions (action.h) reach each phase and which undo it. One executor
// (lib/engine/executor.h) *runs* those actions, so `plan` and `advance`
// render from the same steps and cannot disagree.
//
// An Operation holds only its spec. Inspect reads the catalog and returns
// the steps planned against what it found, so an operation can never be used
// before it was inspected (docs/architecture.md, "Operations").
#ifndef PGSHIFT_LIB_OPS_OPERATION_H_
#define PGSHIFT_LIB_OPS_OPERATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/ops/action.h"
#include "lib/ops/names.h"
#include "lib/pg/connection.h"
#include "pgshift/phase.h"

namespace pgshift::ops {

// Where an operation sits: its migration, its place in it, the server.
struct Context {
  std::string migration;   // migration name
  std::string schema;      // the migration's schema
  int index = 0;           // operation index in the spec
  int server_version = 0;  // server_version_num
  Names names;             // what it names the objects it creates
  // Tables (schema, name) that operations before this one in the migration
  // create: nobody uses them yet (a sql operation's statements on them are
  // safe as written).
  std::vector<std::pair<std::string, std::string>> tables_created_before;
};

// What an operation changes or reads, for conflicts between migrations: a
// column, or the whole table when `column` is empty (a table renamed,
// created or dropped). A table touch conflicts with every touch of the same
// table; a column changed by one conflicts with the same column changed or
// read (by an expression of its own, run by its triggers and backfill) by
// the other. Two reads never conflict.
struct Touch {
  std::string schema, table, column;
  bool read = false;
  // `table` names an index (drop_index): the driver replaces it with the
  // index's table before comparing touches (a whole-table touch).
  bool index = false;
  bool Conflicts(const Touch& other) const;
};

// Touches reading every column `expr` references, but those in `changed`.
std::vector<Touch> ReadsOf(const std::string& schema, const std::string& table,
                           const std::string& expr, const std::vector<std::string>& changed);

// The steps of one operation, planned against the catalog as Inspect found it.
class Steps {
 public:
  virtual ~Steps() = default;
  // Actions taking the migration from the phase before `to` to `to`. An
  // empty list is a recorded no-op step.
  virtual absl::StatusOr<std::vector<Action>> To(Phase to) const = 0;
  // Rows the backfill will examine (estimate), for plans and progress.
  virtual int64_t RowEstimate() const { return 0; }
};

class Operation {
 public:
  explicit Operation(Context ctx) : ctx_(std::move(ctx)) {}
  virtual ~Operation() = default;
  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;

  // "rename_column \"public\".\"users\".\"name\" -> \"full_name\""
  virtual std::string Describe() const = 0;

  // Reads the catalog and checks that the spec fits it at `phase` (e.g. at
  // registered the target column must not exist yet; later it is ours).
  // InvalidArgument / NotFound / AlreadyExists with a message for the user
  // when it does not; FailedPrecondition when the database moved under the
  // migration.
  virtual absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn,
                                                         Phase phase) const = 0;

  // Actions undoing everything of this operation not yet contracted. Reads
  // the catalog but never refuses over what it finds: rollback must work
  // from every phase and when re-run.
  virtual absl::StatusOr<std::vector<Action>> Rollback(pg::Connection& conn) const = 0;

  // Whether Rehearse does anything: then register and plan inspect the
  // operations of the migration in one transaction they roll back, each
  // after the ones before it were rehearsed.
  virtual bool rehearses() const { return false; }
  // Makes, inside the caller's transaction (rolled back after), what this
  // operation's steps make, so that the operations after it are inspected
  // against it (a sql operation's ALTER TABLE ... ADD COLUMN before a
  // create_index on that column). InvalidArgument when that fails;
  // DeadlineExceeded when it does not end by `deadline` (it holds the locks
  // of what it made until the caller rolls back).
  virtual absl::Status Rehearse(pg::Connection& conn, absl::Time deadline) const { return absl::OkStatus(); }
  // After every operation of the migration rehearsed, in reverse order:
  // what its rollback would run, so that a rollback that would fail is
  // found at register. Same errors as Rehearse.
  virtual absl::Status RehearseRollback(pg::Connection& conn, absl::Time deadline) const {
    return absl::OkStatus();
  }

  const Context& context() const { return ctx_; }

 protected:
  Context ctx_;
};

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_OPERATION_H_
