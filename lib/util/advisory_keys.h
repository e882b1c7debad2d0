// The first keys of pgshift's advisory locks, shared by the engine (which
// takes them: lib/engine/lease.h) and the backfill's latency guard (which
// tells pgshift's own sessions from the application's by them).
#ifndef PGSHIFT_LIB_UTIL_ADVISORY_KEYS_H_
#define PGSHIFT_LIB_UTIL_ADVISORY_KEYS_H_

namespace pgshift::util {

// First key of every migration lease ("pgsh").
inline constexpr char kAdvisoryClassKey[] = "1885827944";

// First key of the directory runner's lock (one migrate or baseline at a
// time per database and control schema).
inline constexpr char kRunnerClassKey[] = "1885827945";

}  // namespace pgshift::util

#endif  // PGSHIFT_LIB_UTIL_ADVISORY_KEYS_H_
