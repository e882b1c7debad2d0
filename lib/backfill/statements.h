// Every statement a backfill runs, built in one place from its spec and the
// walk it takes, so that `plan` shows exactly what `advance` runs: the
// executor's backfill (backfill.h) takes its statements from here and the
// plan renders the same ones (docs/architecture.md, "Plan equals advance").
#ifndef PGSHIFT_LIB_BACKFILL_STATEMENTS_H_
#define PGSHIFT_LIB_BACKFILL_STATEMENTS_H_

#include <string>
#include <vector>

#include "lib/ops/action.h"
#include "pgshift/options.h"

namespace pgshift::backfill {

// Whether the backfill of `spec` walks ctid page ranges (else the primary
// key), given options.backfill_walk and the server's version.
bool WalksByPages(const ops::BackfillSpec& spec, const Options& options, int server_version);

// The UPDATE forms of one set clause.
struct Updates {
  // Page walk: `next` only: $1, $2 are the batch's ctid range.
  // Key walk: `first` (no lower bound: $1.. the batch's end key), `next`
  // ($1.. the last key done, then the batch's end key), and the last batch,
  // which takes the rest of the table and counts the rows it covered in the
  // same statement: `first_last` (the whole table fits in one batch; no
  // parameters) and `last` ($1.. the last key done).
  std::string first, next, first_last, last;
};

struct Statements {
  bool by_pages = false;
  // Every batch's transaction starts with this: $1 lock_timeout, $2
  // statement_timeout (SET LOCAL: nothing outlives the batch), $3
  // pgshift.backfill: the prefix of the operation the backfill belongs to
  // (ops::Names::prefix()), which silences that operation's own sync trigger
  // (the batch computes the new shape itself) and no other: a second
  // migration's trigger on the same table syncs the rows the batch moves; and
  // row_security = off, so that a table whose row-level security policies
  // apply to the driver makes the batch fail instead of quietly leaving out
  // the rows they hide.
  std::string settings;
  // Page walk: the table lock first (from here to COMMIT no rewrite can move
  // rows), then its filenode and size in pages ($1 the table) and, when
  // `counts_rows`, the rows this transaction's scans of the table have
  // returned so far; after the batch's UPDATE, `rows_seen` reads that count
  // again: the difference is the number of rows in the batch's page range,
  // counted by the TID range scan itself (PostgreSQL 14+), at no extra cost.
  bool counts_rows = false;
  std::string lock, position, rows_seen;
  // Key walk: the batch's end key, `offset` rows on ($1 the number of rows
  // to skip; `next_end`: $1.. the last key done, then the rows to skip).
  std::string first_end, next_end;
  Updates plain;
  // With spec.fallback_set_clause, for batches in which the plain clause
  // raised; empty otherwise.
  Updates fallback;

  // Each statement once, in the order a backfill runs them, with a few
  // words on when, for plans.
  struct Shown {
    std::string sql;
    std::string when;
  };
  std::vector<Shown> All() const;
};

// `server_version` (server_version_num; 0 when unknown) says whether a page
// walk can count its rows (a TID range scan, PostgreSQL 14+).
Statements BuildStatements(const ops::BackfillSpec& spec, bool by_pages, int server_version = 0);

}  // namespace pgshift::backfill

#endif  // PGSHIFT_LIB_BACKFILL_STATEMENTS_H_
