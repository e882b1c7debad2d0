// A constraint the user names (add_check, add_foreign_key): added NOT VALID
// in a short transaction, then validated without blocking writes. pgshift
// marks the constraint as its own with a comment (Names::owner_comment) from
// the moment it is added until contract, so that re-runs, Inspect and
// rollback tell it apart from a constraint of the same name that someone
// else created: rollback drops only a constraint carrying the mark, and
// contract removes the mark, leaving the constraint exactly as a plain
// ALTER TABLE ... ADD CONSTRAINT would.
#ifndef PGSHIFT_LIB_OPS_NAMED_CONSTRAINT_H_
#define PGSHIFT_LIB_OPS_NAMED_CONSTRAINT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "lib/catalog/catalog.h"
#include "lib/ops/action.h"
#include "lib/ops/operation.h"
#include "pgshift/phase.h"

namespace pgshift::ops {


// Checks constraint `name` of `t` against the phase the migration is at
// (`what` starts the messages, e.g. "add_check"):
//   - a constraint of that name that is not pgshift's: AlreadyExists at
//     registered (bad input: nothing was done yet), FailedPrecondition later
//     (someone created it meanwhile) — but at switched, where it is the
//     constraint whose mark a cut contract step removed already;
//   - at validated and switched ours must exist: FailedPrecondition when it
//     was dropped outside pgshift.
absl::Status CheckConstraintName(pg::Connection& conn, const catalog::Table& t, const std::string& name,
                                 const Context& ctx, Phase phase, absl::string_view what);

// The statements marking constraint `name` of t as pgshift's (after ADD
// CONSTRAINT, in the same transaction) and removing the mark.
std::string MarkConstraintSql(const catalog::Table& t, const std::string& name, const Context& ctx);
std::string UnmarkConstraintSql(const catalog::Table& t, const std::string& name);

// VALIDATE CONSTRAINT `name` of t: scans t under SHARE UPDATE EXCLUSIVE
// (writes go on), no statement timeout; skipped once validated.
Action ValidateConstraint(const catalog::Table& t, const std::string& name, std::string description);

// Contract: the mark removed (COMMENT ... IS NULL, ACCESS SHARE on t);
// skipped when the constraint carries no mark of ours.
Action UnmarkConstraint(const catalog::Table& t, const std::string& name, const Context& ctx);

// Rollback: DROP CONSTRAINT `name` of t when it carries our mark (never a
// constraint of someone else's). ACCESS EXCLUSIVE on t; a foreign key's
// caller adds the referenced table, which DROP CONSTRAINT locks too.
Action DropOurConstraint(const catalog::Table& t, const std::string& name, const Context& ctx,
                         std::string description);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_NAMED_CONSTRAINT_H_
