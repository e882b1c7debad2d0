// Who else is on a table: the sessions that block a lock request
// (pg_blocking_pids) or that hold locks on a table, with their state, how
// long their transaction has been open and their query. Used by the lock
// retry loop (to name what it waited for) and by the preflight check.
//
// Reading other roles' queries needs pg_read_all_stats (or pg_monitor); without
// it, PostgreSQL shows "<insufficient privilege>" instead of the query, and
// the pid, state and times are still reported (docs/privileges.md).
#ifndef PGSHIFT_LIB_ENGINE_SESSIONS_H_
#define PGSHIFT_LIB_ENGINE_SESSIONS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/pg/connection.h"
#include "lib/pg/lock.h"
#include "pgshift/options.h"

namespace pgshift::engine {

// The sessions blocking backend `pid` right now (pg_blocking_pids(pid)),
// with the locks they hold on `table` (quoted qualified name).
absl::StatusOr<std::vector<SessionInfo>> BlockersOf(pg::Connection& conn, int pid,
                                                    const std::string& table);

// Sessions other than the caller's holding or waiting for a lock on `table`
// whose transaction has been open for at least `min_transaction_age`. With
// `conflicting_with`, only locks that conflict with that mode count.
absl::StatusOr<std::vector<SessionInfo>> SessionsOnTable(
    pg::Connection& conn, const std::string& table, absl::Duration min_transaction_age,
    std::optional<pg::LockMode> conflicting_with = std::nullopt);


}  // namespace pgshift::engine

#endif  // PGSHIFT_LIB_ENGINE_SESSIONS_H_
