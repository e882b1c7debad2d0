#include "lib/engine/sessions.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "lib/util/json.h"
#include "lib/util/status_macros.h"

namespace pgshift {

std::string DescribeSession(const SessionInfo& s) {
  std::vector<std::string> facts;
  facts.push_back(s.state.empty() ? "state unknown" : s.state);
  if (s.transaction_seconds > 0 || s.state != "idle") {
    facts.push_back(absl::StrFormat("transaction open %.0f s", s.transaction_seconds));
  }
  if (absl::StartsWith(s.state, "idle in transaction")) {
    facts.push_back(absl::StrFormat("idle for %.0f s", s.state_seconds));
  }
  if (!s.locks.empty()) facts.push_back(absl::StrCat("holds ", s.locks));
  if (!s.user.empty()) facts.push_back(absl::StrCat("user ", s.user));
  if (!s.application.empty()) facts.push_back(absl::StrCat("application ", s.application));
  if (!s.client.empty()) facts.push_back(absl::StrCat("from ", s.client));
  std::string query = absl::StrReplaceAll(s.query, {{"\n", " "}, {"\r", " "}, {"\t", " "}});
  return absl::StrCat("pid ", s.pid, " (", absl::StrJoin(facts, ", "), "): ",
                      query.empty() ? "(no query)" : query);
}

std::string DescribeSessions(const std::vector<SessionInfo>& sessions, size_t max) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < sessions.size() && i < max; ++i) parts.push_back(DescribeSession(sessions[i]));
  if (sessions.size() > max) parts.push_back(absl::StrCat("and ", sessions.size() - max, " more"));
  return absl::StrJoin(parts, "; ");
}


namespace engine {

namespace {

// Columns read for every session; `a` is pg_stat_activity, $2 the table.
constexpr char kSessionColumns[] =
    "a.pid, coalesce(a.state, ''), coalesce(a.usename::text, ''), "
    "coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), "
    "coalesce(extract(epoch FROM now() - a.xact_start), 0)::float8, "
    "coalesce(extract(epoch FROM now() - a.state_change), 0)::float8, "
    "left(coalesce(a.query, ''), 300), "
    "coalesce((SELECT string_agg(DISTINCT h.mode, ', ') FROM pg_locks h "
    "  WHERE h.pid = a.pid AND h.locktype = 'relation' AND h.relation = to_regclass($2) "
    "  AND h.granted), '')";

std::vector<SessionInfo> ReadSessions(const pg::Result& r) {
  std::vector<SessionInfo> out;
  for (int i = 0; i < r.rows(); ++i) {
    SessionInfo s;
    s.pid = static_cast<int>(r.GetInt(i, 0));
    s.state = r.Get(i, 1);
    s.user = r.Get(i, 2);
    s.application = r.Get(i, 3);
    s.client = r.Get(i, 4);
    s.transaction_seconds = std::strtod(r.Get(i, 5).c_str(), nullptr);
    s.state_seconds = std::strtod(r.Get(i, 6).c_str(), nullptr);
    s.query = r.Get(i, 7);
    s.locks = r.Get(i, 8);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<SessionInfo>> BlockersOf(pg::Connection& conn, int pid,
                                                    const std::string& table) {
  ASSIGN_OR_RETURN(pg::Result r,
                   conn.Exec(absl::StrCat("SELECT ", kSessionColumns,
                                          " FROM unnest(pg_blocking_pids($1::int)) AS b(pid) "
                                          "JOIN pg_stat_activity a ON a.pid = b.pid ORDER BY a.pid"),
                             {std::to_string(pid), table}));
  return ReadSessions(r);
}

absl::StatusOr<std::vector<SessionInfo>> SessionsOnTable(pg::Connection& conn,
                                                         const std::string& table,
                                                         absl::Duration min_transaction_age,
                                                         std::optional<pg::LockMode> conflicting_with) {
  std::vector<std::string> modes;
  if (conflicting_with) {
    for (pg::LockMode m : pg::ConflictingModes(*conflicting_with)) {
      modes.push_back(std::string(pg::LockModeTag(m)));
    }
  }
  pg::Params params = {absl::StrCat(absl::ToDoubleSeconds(min_transaction_age)), table,
                       absl::StrCat("{", absl::StrJoin(modes, ","), "}")};
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn.Exec(absl::StrCat(
                    "SELECT ", kSessionColumns, " FROM pg_stat_activity a "
                    "WHERE a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL "
                    "AND a.xact_start <= now() - make_interval(secs => $1::float8) "
                    "AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid "
                    "  AND l.locktype = 'relation' AND l.relation = to_regclass($2) "
                    "  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "  AND (cardinality($3::text[]) = 0 OR l.mode = ANY ($3::text[]))) "
                    "ORDER BY a.xact_start, a.pid"),
                params));
  return ReadSessions(r);
}

}  // namespace engine
}  // namespace pgshift
