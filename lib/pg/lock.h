// PostgreSQL's table lock modes, in order of strength, with the names the
// two sides use ("ACCESS EXCLUSIVE" in SQL and plans, "AccessExclusiveLock"
// in pg_locks) and the conflict table of the PostgreSQL documentation
// ("Explicit Locking", table-level lock modes).
#ifndef PGSHIFT_LIB_PG_LOCK_H_
#define PGSHIFT_LIB_PG_LOCK_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace pgshift::pg {

// Ordered: a later mode is stronger (and conflicts with more).
enum class LockMode {
  kNone = 0,  // takes no table lock (e.g. CREATE FUNCTION)
  kAccessShare,
  kRowShare,
  kRowExclusive,
  kShareUpdateExclusive,
  kShare,
  kShareRowExclusive,
  kExclusive,
  kAccessExclusive,
};

// "ACCESS EXCLUSIVE", ..., "none".
absl::string_view LockModeName(LockMode mode);
// "AccessExclusiveLock", ...; "" for kNone.
absl::string_view LockModeTag(LockMode mode);
// Either spelling, any case; nullopt when it names no mode.
std::optional<LockMode> ParseLockMode(absl::string_view name);

// True when a lock in mode `a` and one in mode `b` on the same table cannot
// be held at once by two sessions.
bool LockModesConflict(LockMode a, LockMode b);
// Every mode that conflicts with `mode` (none for kNone).
std::vector<LockMode> ConflictingModes(LockMode mode);

}  // namespace pgshift::pg

#endif  // PGSHIFT_LIB_PG_LOCK_H_
