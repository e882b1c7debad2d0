// Actions: what operations plan and the executor (lib/engine/executor.h)
// runs. An action is data — its statements, every table it locks and how,
// whether it scans, rewrites or drops data, and the catalog guard that says
// it is already done — so that `plan` renders exactly what `advance` runs
// and the safety checks read the same facts (docs/architecture.md,
// "Actions").
#ifndef PGSHIFT_LIB_OPS_ACTION_H_
#define PGSHIFT_LIB_OPS_ACTION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "lib/catalog/catalog.h"
#include "lib/pg/connection.h"
#include "lib/pg/lock.h"

namespace pgshift::ops {

// One question to the catalog: a query returning one boolean, with its own
// parameters ($1.. of `sql` are `params`, nothing else).
struct Probe {
  std::string description;  // what it asks, for plans: "column \"x\" exists in t"
  std::string sql;
  pg::Params params;
  std::string negation;     // the description of its negation: "column \"x\" is gone"
};

// When an action is already done (so that a re-run after a crash skips it):
// a boolean formula over probes. Each probe runs on its own with its own
// parameters; the formula is evaluated by the executor, short-circuiting.
// An empty guard is never true.
class Guard {
 public:
  enum class Op { kNever, kProbe, kNot, kAll, kAny };

  Guard() = default;
  static Guard Of(Probe probe);
  static Guard Not(Guard guard);
  static Guard All(std::vector<Guard> guards);
  static Guard Any(std::vector<Guard> guards);

  Op op() const { return op_; }
  bool empty() const { return op_ == Op::kNever; }
  const Probe& probe() const { return *probe_; }
  const std::vector<Guard>& children() const { return children_; }

  // "column \"x\" exists in t and not (...)", for plans.
  std::string Describe() const;

 private:
  Op op_ = Op::kNever;
  std::shared_ptr<const Probe> probe_;
  std::vector<Guard> children_;
};

// A table an action locks, and how.
struct TableLock {
  std::string table;  // quoted qualified name
  pg::LockMode mode = pg::LockMode::kNone;
};

// How a backfill brings the rows of a table to the new shape, batch after
// batch (lib/backfill/statements.h turns it into the statements that run).
struct BackfillSpec {
  std::string table;                  // quoted qualified name
  std::vector<std::string> key;       // primary key columns (unquoted), in order; empty: none
  std::vector<std::string> key_types; // their types (format_type)
  std::string set_clause;             // e.g. "\"to\" = \"from\""
  std::string needs_work;             // predicate of the rows still to do
  // Optional. When a batch's set_clause raises a data error (SQLSTATE class
  // 22 or P0, e.g. a conversion that fails on some rows), that batch is rolled
  // back and run again with this clause instead (e.g. one calling a function
  // that returns NULL where the conversion raises), as are the next few.
  std::string fallback_set_clause;
};

// A check that must find no row: rows of `table` where `where` holds.
struct AssertSpec {
  std::string table;               // quoted qualified name
  std::vector<std::string> key;    // columns shown for sample rows; empty: ctid
  std::string where;               // predicate over the row's columns
  std::string failure;             // what it means when rows are found
  // Optional: the SQL text of what the error shows of the rows found
  // instead of their key (distinct values, e.g. "(lower(email))::text"),
  // and what the message calls it ("duplicated key"; default "primary key").
  std::string sample;
  std::string sample_label;
  std::string CountSql() const;    // SELECT count(*) ...
  std::string SampleSql() const;   // SELECT <key>::text ... LIMIT 5
  // Run first, in the same transaction as the count and the sample:
  // row_security = off, so that row-level security policies that apply to
  // the driver make the check fail instead of counting only what they show.
  static const char kSettingsSql[];
};

// One statement of a sql operation's list (lib/ops/sql.cc), recorded as
// done in the control schema by the executor in the transaction that runs
// it (just after it, for one that runs outside a transaction), so that a
// re-run after a crash skips it instead of running it twice.
struct StatementMark {
  std::string list;  // "up" or "down"; "": the action has no mark
  int number = 0;    // its number in the list, from 1
  // Skip the action unless some statement of list `after` is recorded
  // (a down statement when nothing of up ran).
  std::string after;
};

struct Action {
  enum class Kind {
    kTransaction,    // statements in one short transaction under lock_timeout
    kConcurrently,   // one CREATE/DROP INDEX CONCURRENTLY, outside a transaction
    kBackfill,       // batches of UPDATE, each committed with its checkpoint
    kAssert,         // read-only check; the step fails when it finds rows
  };
  Kind kind = Kind::kTransaction;
  std::string description;
  // Every table the action locks, strongest need first; empty for actions
  // that lock no table (CREATE FUNCTION).
  std::vector<TableLock> locks;
  std::vector<std::string> statements;  // kTransaction: in order; kConcurrently: one
  Guard done_if;                        // skipped when true (kTransaction, kConcurrently, kAssert)
  // kConcurrently CREATE INDEX: the index it builds. An INVALID index of that
  // name (ours, left by an interrupted build) is dropped with `drop_invalid`
  // and built again.
  std::string index_schema, index_name;
  std::string drop_invalid;
  bool scans_table = false;
  bool rewrites_table = false;
  bool long_running = false;  // VALIDATE and the like: no statement_timeout
  bool irreversible = false;
  // What it removes for good ("column \"x\" of \"public\".\"t\" and every
  // value in it"); empty: it removes no data.
  std::vector<std::string> drops_data;
  // What a user must know before it runs, shown by plan with its step
  // ("contract refuses while trigger t reads column x").
  std::vector<std::string> hazards;
  BackfillSpec backfill;
  AssertSpec assert_spec;
  StatementMark mark;  // kTransaction, kConcurrently

  // The table the action is about (the first it locks), or "".
  const std::string& table() const;
  // The strongest lock it takes on any table.
  pg::LockMode strongest_lock() const;
};

// Builders of the actions every operation uses.

// Statements in one short transaction on `t`, holding `mode` on it.
Action Transaction(const catalog::Table& t, std::string description, std::vector<std::string> sql,
                   pg::LockMode mode, Guard done_if = {});
// Statements that lock no table (functions): one short transaction.
Action CatalogOnly(std::string description, std::vector<std::string> sql, Guard done_if = {});
// Long work in a short transaction (VALIDATE CONSTRAINT): no statement
// timeout, and it scans `t` under `mode`, which must not block writes.
Action LongTransaction(const catalog::Table& t, std::string description,
                       std::vector<std::string> sql, pg::LockMode mode, Guard done_if = {});
// CREATE [UNIQUE] INDEX CONCURRENTLY `create_sql` building index `name` of
// t's schema on `t`.
Action BuildIndex(const catalog::Table& t, std::string description, std::string create_sql,
                  const std::string& name);
// A backfill of `t` setting `set_clause` on the rows where `needs_work`
// holds, walking its primary key (none: the executor walks ctid pages).
BackfillSpec BackfillOf(const catalog::Table& t, std::string set_clause, std::string needs_work);
// The backfill of `t` with `spec`.
Action Backfill(const catalog::Table& t, std::string description, BackfillSpec spec);
// A check that no row of `t` satisfies `where`; `failure` says what such rows mean.
Action Assert(const catalog::Table& t, std::string description, std::string where,
              std::string failure, Guard skip_if = {});

// Adds to `a` (an ALTER TABLE ... ADD COLUMN `column` on `t`) the hazard
// PostgreSQL attaches to every ADD COLUMN: server-side prepared statements
// reading every column of `t` fail once and must be prepared again.
void AddColumnHazard(Action& a, const catalog::Table& t, absl::string_view column);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_ACTION_H_
