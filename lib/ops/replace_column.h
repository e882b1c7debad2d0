// One recipe for replacing a column with a new one, which rename_column
// (same type, identity copy both ways) and change_type (a new type, `up` and
// `down` expressions) share (docs/operations/rename_column.md,
// docs/operations/change_type.md):
//
//   column_added       the new column, nullable, no default (same collation)
//   trigger_installed  a trigger keeps both in sync: writes to the old column
//                      set new := up(row), writes to the new one old :=
//                      down(row); the old column wins conflicting writes
//   backfilled         batches set new := up(row) (the trigger silenced when
//                      there is an `up`, so a lossy `down` never rewrites the
//                      old column)
//   validated          no row lost its value, then NOT NULL, indexes, unique
//                      constraints, foreign keys and CHECKs copied to the new
//                      column
//   switched           the new column wins conflicting writes
//   contracted         trigger and old column dropped; the new column takes
//                      the old one's default, names, comment and sequences
//
// Refused up front: primary-key, identity and generated columns, columns
// that views, policies, triggers, other tables' foreign keys or exclusion
// constraints use, and (with a new type) a default, CHECK or foreign key that
// does not fit the new type, or a domain type with constraints.
#ifndef PGSHIFT_LIB_OPS_REPLACE_COLUMN_H_
#define PGSHIFT_LIB_OPS_REPLACE_COLUMN_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "lib/ops/operation.h"
#include "lib/sql/sql.h"

namespace pgshift::ops {

struct Replacement {
  std::string kind;              // "rename_column" / "change_type", for messages
  std::string table, old_column, new_column;
  std::string new_column_field;  // the spec field naming the new column ("to", "new_column")
  // The new column's type; none: the old column's type and collation.
  std::optional<sql::TypeName> type;
  // Over the row's columns; none: a plain copy both ways (then `type` is none).
  std::optional<sql::Expression> up, down;
};

std::unique_ptr<Operation> NewReplaceColumn(Replacement replacement, Context ctx);

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_REPLACE_COLUMN_H_
