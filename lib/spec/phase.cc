#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pgshift/phase.h"

namespace pgshift {

namespace {
constexpr absl::string_view kNames[] = {"registered", "column_added", "trigger_installed",
                                       "backfilled", "validated",    "switched",
                                       "contracted", "rolled_back"};
}  // namespace

const std::vector<Phase>& PhaseLadder() {
  static const std::vector<Phase> ladder = {
      Phase::kRegistered, Phase::kColumnAdded, Phase::kTriggerInstalled, Phase::kBackfilled,
      Phase::kValidated,  Phase::kSwitched,    Phase::kContracted};
  return ladder;
}

absl::string_view PhaseName(Phase phase) { return kNames[static_cast<int>(phase)]; }

absl::StatusOr<Phase> ParsePhase(absl::string_view name) {
  for (int i = 0; i < 8; ++i) {
    if (kNames[i] == name) return static_cast<Phase>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown phase \"", name,
                                                 "\"; phases are: ", absl::StrJoin(kNames, ", ")));
}

bool PhaseAtLeast(Phase current, Phase at_least) {
  if (current == Phase::kRolledBack || at_least == Phase::kRolledBack) {
    return current == at_least;
  }
  return static_cast<int>(current) >= static_cast<int>(at_least);
}

}  // namespace pgshift
