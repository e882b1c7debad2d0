// The phase ladder every pgshift migration climbs (docs/architecture.md):
//
//   registered -> column_added -> trigger_installed -> backfilled
//     -> validated -> switched -> contracted
//   and, from any phase before contracted, -> rolled_back.
//
// Example:
//   absl::StatusOr<pgshift::Phase> p = pgshift::ParsePhase("switched");
//   bool ready = pgshift::PhaseAtLeast(current, pgshift::Phase::kSwitched);
#ifndef PGSHIFT_PHASE_H_
#define PGSHIFT_PHASE_H_

#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace pgshift {

enum class Phase {
  kRegistered = 0,
  kColumnAdded = 1,
  kTriggerInstalled = 2,
  kBackfilled = 3,
  kValidated = 4,
  kSwitched = 5,
  kContracted = 6,
  kRolledBack = 7,
};

// The ladder in order, registered .. contracted (rolled_back is off it).
const std::vector<Phase>& PhaseLadder();

// "registered", "column_added", ... — the names stored in the control table.
absl::string_view PhaseName(Phase phase);

// Inverse of PhaseName; InvalidArgument naming the valid phases otherwise.
absl::StatusOr<Phase> ParsePhase(absl::string_view name);

// True when `current` has reached `at_least` on the ladder. A rolled-back
// migration satisfies only at_least == kRolledBack.
bool PhaseAtLeast(Phase current, Phase at_least);

}  // namespace pgshift

#endif  // PGSHIFT_PHASE_H_
