// The names of everything pgshift creates for one operation of one
// migration, made in this one place: triggers, functions, checks, copies of
// indexes and constraints, and the comment that marks a column as pgshift's.
// Every name starts with the operation's prefix "pgshift_<10 hex>_<index>"
// (triggers with "zz_" before it, so that they fire after the user's own
// BEFORE triggers), and fits in 63 bytes.
#ifndef PGSHIFT_LIB_OPS_NAMES_H_
#define PGSHIFT_LIB_OPS_NAMES_H_

#include <string>

#include "absl/strings/string_view.h"

namespace pgshift::ops {

class Names {
 public:
  Names() = default;
  Names(const std::string& migration, int index);

  // "pgshift_<10 hex of a hash of the migration name>_<index>"
  const std::string& prefix() const { return prefix_; }

  // The BEFORE INSERT and BEFORE UPDATE triggers and their function.
  std::string insert_trigger() const;
  std::string update_trigger() const;
  std::string trigger_function() const;
  // A helper function "<prefix>_<suffix>" (e.g. the backfill's conversion).
  std::string helper(absl::string_view suffix) const;
  // The temporary CHECK (col IS NOT NULL) of a NOT NULL built without a scan.
  std::string not_null_check() const;
  // The copy of index or constraint `original` on a replacement column.
  std::string copy_of(absl::string_view original) const;
  // The comment on a column pgshift added, so that re-runs and rollback
  // recognise it as theirs.
  std::string owner_comment() const;

  // Prefix of every trigger pgshift creates (any migration).
  static constexpr absl::string_view kTriggerPrefix = "zz_pgshift_";

 private:
  std::string migration_;
  std::string prefix_;
};

}  // namespace pgshift::ops

#endif  // PGSHIFT_LIB_OPS_NAMES_H_
