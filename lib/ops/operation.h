// The operation interface. Operations *plan*: given the catalog, each one
// says which actions reach each phase and which actions roll it back. One
// executor (lib/engine/executor.h) *runs* those actions, so `plan` and
// `advance` render from the same steps and can never disagree.
#ifndef PGSHIFT_LIB_OPS_OPERATION_H_
#define PGSHIFT_LIB_OPS_OPERATION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/catalog/catalog.h"
#include "lib/pg/connection.h"
#include "pgshift/phase.h"
#include "pgshift/v1/migration.pb.h"

namespace pgshift::ops {

// How a backfill computes the new shape, batch after batch.
struct BackfillSpec {
  std::string table;                 // quoted qualified name
  std::vector<std::string> key;      // primary key columns (unquoted), in order
  std::vector<std::string> key_types;
  std::string set_clause;            // e.g. "\"to\" = \"from\""
  std::string needs_work;            // predicate of rows still to do
  // Optional. When a batch's set_clause raises a data error (SQLSTATE class
  // 22 or P0, e.g. a conversion that fails on some rows), that batch is rolled
  // back and run again with this clause instead (e.g. one that calls a
  // function returning NULL where the conversion raises), as are the next
  // few batches. Lets the fast plain expression do the work on clean data.
  std::string fallback_set_clause;
};

// A check that must find nothing: count_sql returns one bigint; sample_sql
// returns up to a few primary keys of offending rows.
struct AssertSpec {
  std::string count_sql;
  std::string sample_sql;
  std::string failure;               // what it means when count > 0
};

struct Action {
  enum class Kind {
    kTransaction,    // statements in one short transaction, lock_timeout set
    kConcurrently,   // one CREATE/DROP INDEX CONCURRENTLY, outside a transaction
    kBackfill,       // batched keyset UPDATE with a checkpoint per batch
    kAssert,         // read-only check; the step fails when it finds rows
  };
  Kind kind = Kind::kTransaction;
  std::string description;
  std::string table;                    // quoted qualified table it works on
  std::vector<std::string> statements;  // kTransaction: run in order; kConcurrently: one
  // kTransaction/kConcurrently: when this query returns true the action is
  // already done (idempotent re-runs) and is skipped.
  std::string done_if;
  pg::Params done_if_params;
  // kConcurrently CREATE INDEX: the index name; an INVALID index of that name
  // (ours, left by an interrupted build) is dropped and rebuilt.
  std::string index_schema, index_name;
  std::string lock = "ACCESS EXCLUSIVE";
  bool scans_table = false;
  bool rewrites_table = false;
  bool long_running = false;  // VALIDATE and the like: no statement_timeout
  bool irreversible = false;
  BackfillSpec backfill;
  AssertSpec assert_spec;
};

// The table+column an operation changes, for conflict checks.
struct Touch {
  std::string schema, table, column;
};

struct Context {
  std::string migration;   // migration name
  std::string prefix;      // object-name prefix, unique per migration+operation
  int index = 0;           // operation index in the spec
  int server_version = 0;  // server_version_num
};

class Operation {
 public:
  virtual ~Operation() = default;

  // "rename_column public.users.name -> full_name"
  virtual std::string Describe() const = 0;
  virtual std::vector<Touch> Touches() const = 0;

  // Reads the catalog and checks that the spec fits it at `phase` (e.g. at
  // registered the target column must not exist yet; later it is ours).
  // InvalidArgument / NotFound with a message for the user when it does not.
  virtual absl::Status Inspect(pg::Connection& conn, Phase phase) = 0;

  // Actions that take the migration from the phase before `to` to `to`.
  // Needs a successful Inspect. An empty list is a recorded no-op step.
  virtual absl::StatusOr<std::vector<Action>> StepTo(Phase to) = 0;

  // Reads the catalog for Rollback(); never refuses (rollback must work
  // from any phase, whatever the columns look like now).
  virtual absl::Status InspectForRollback(pg::Connection& conn) = 0;

  // Actions that undo everything of this operation not yet contracted.
  // Must succeed at every phase and when re-run.
  virtual absl::StatusOr<std::vector<Action>> Rollback() = 0;

  // Rows the backfill will examine (estimate), for plan and progress.
  virtual int64_t RowEstimate() const = 0;
};

// Creates the operation for `op` of migration `schema` with `ctx`.
absl::StatusOr<std::unique_ptr<Operation>> MakeOperation(const v1::Operation& op,
                                                         const std::string& schema,
                                                         const Context& ctx);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_OPERATION_H_
