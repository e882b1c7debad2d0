// The indexes and constraints of a column, recreated on its replacement
// (rename_column, change_type): indexes and unique constraints with CREATE
// INDEX CONCURRENTLY (+ ADD CONSTRAINT ... USING INDEX), CHECKs and foreign
// keys NOT VALID then VALIDATE, under pgshift names; at contract, once the
// old column is gone, the copies take the original names. NOT NULL is not
// here (not_null.h).
#ifndef PGSHIFT_LIB_OPS_COLUMN_COPIES_H_
#define PGSHIFT_LIB_OPS_COLUMN_COPIES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/catalog/catalog.h"
#include "lib/ops/action.h"
#include "lib/ops/operation.h"

namespace pgshift::ops {

// Actions building the copies of the objects on `from` for `to`.
absl::StatusOr<std::vector<Action>> CopyColumnObjects(const catalog::Table& t, const Context& ctx,
                                                      const std::string& from, const std::string& to);

// When an index on `from` is the table's replica identity (REPLICA IDENTITY
// USING INDEX), the statement making its copy the replica identity, to run
// before `from` is dropped (which drops the original, and would leave the
// table without one: UPDATE and DELETE fail on a published table); else
// none.
std::vector<std::string> ReplicaIdentitySql(const catalog::Table& t, const Context& ctx,
                                            const std::string& from);

// Statements giving the copies the original names, after `from` (and with
// it the originals) was dropped in the same transaction.
std::vector<std::string> RenameCopiesSql(const catalog::Table& t, const Context& ctx,
                                         const std::string& from);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_COLUMN_COPIES_H_
