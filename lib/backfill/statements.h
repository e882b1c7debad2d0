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
  // statement_timeout (SET LOCAL: nothing outlives the batch), and $3
  // pgshift.backfill: the prefix of the operation the backfill belongs to
  // (ops::Names::prefix()), which silences that operation's own sync trigger
  // (the batch computes the new shape itself) and no other: a second
  // migration's trigger on the same table syncs the rows the batch moves.
  std::string settings;
  // Page walk: the table lock first (from here to COMMIT no rewrite can move
  // rows), then its filenode and size in pages ($1 the table).
  std::string lock, position;
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

Statements BuildStatements(const ops::BackfillSpec& spec, bool by_pages);

}  // namespace pgshift::backfill

#endif  // PGSHIFT_LIB_BACKFILL_STATEMENTS_H_
