#include "lib/pg/lock.h"

#include "absl/strings/match.h"

namespace pgshift::pg {

namespace {

struct ModeNames {
  LockMode mode;
  absl::string_view name;  // SQL
  absl::string_view tag;   // pg_locks
};
constexpr ModeNames kModes[] = {
    {LockMode::kNone, "none", ""},
    {LockMode::kAccessShare, "ACCESS SHARE", "AccessShareLock"},
    {LockMode::kRowShare, "ROW SHARE", "RowShareLock"},
    {LockMode::kRowExclusive, "ROW EXCLUSIVE", "RowExclusiveLock"},
    {LockMode::kShareUpdateExclusive, "SHARE UPDATE EXCLUSIVE", "ShareUpdateExclusiveLock"},
    {LockMode::kShare, "SHARE", "ShareLock"},
    {LockMode::kShareRowExclusive, "SHARE ROW EXCLUSIVE", "ShareRowExclusiveLock"},
    {LockMode::kExclusive, "EXCLUSIVE", "ExclusiveLock"},
    {LockMode::kAccessExclusive, "ACCESS EXCLUSIVE", "AccessExclusiveLock"},
};

// kConflicts[m] is a bit set of the modes conflicting with mode m
// (bit i = LockMode i), as in the documentation's table.
constexpr unsigned Bits(std::initializer_list<LockMode> modes) {
  unsigned b = 0;
  for (LockMode m : modes) b |= 1u << static_cast<int>(m);
  return b;
}
using M = LockMode;
constexpr unsigned kConflicts[] = {
    0,
    Bits({M::kAccessExclusive}),
    Bits({M::kExclusive, M::kAccessExclusive}),
    Bits({M::kShare, M::kShareRowExclusive, M::kExclusive, M::kAccessExclusive}),
    Bits({M::kShareUpdateExclusive, M::kShare, M::kShareRowExclusive, M::kExclusive,
          M::kAccessExclusive}),
    Bits({M::kRowExclusive, M::kShareUpdateExclusive, M::kShareRowExclusive, M::kExclusive,
          M::kAccessExclusive}),
    Bits({M::kRowExclusive, M::kShareUpdateExclusive, M::kShare, M::kShareRowExclusive,
          M::kExclusive, M::kAccessExclusive}),
    Bits({M::kRowShare, M::kRowExclusive, M::kShareUpdateExclusive, M::kShare,
          M::kShareRowExclusive, M::kExclusive, M::kAccessExclusive}),
    Bits({M::kAccessShare, M::kRowShare, M::kRowExclusive, M::kShareUpdateExclusive, M::kShare,
          M::kShareRowExclusive, M::kExclusive, M::kAccessExclusive}),
};

}  // namespace

absl::string_view LockModeName(LockMode mode) { return kModes[static_cast<int>(mode)].name; }
absl::string_view LockModeTag(LockMode mode) { return kModes[static_cast<int>(mode)].tag; }

std::optional<LockMode> ParseLockMode(absl::string_view name) {
  for (const ModeNames& m : kModes) {
    if (absl::EqualsIgnoreCase(name, m.name) || (!m.tag.empty() && name == m.tag)) return m.mode;
  }
  return std::nullopt;
}

bool LockModesConflict(LockMode a, LockMode b) {
  return (kConflicts[static_cast<int>(a)] >> static_cast<int>(b)) & 1u;
}

std::vector<LockMode> ConflictingModes(LockMode mode) {
  std::vector<LockMode> out;
  for (const ModeNames& m : kModes) {
    if (LockModesConflict(mode, m.mode)) out.push_back(m.mode);
  }
  return out;
}

}  // namespace pgshift::pg
