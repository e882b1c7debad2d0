// The JSON forms of pgshift's results, written in this one place: what the
// CLI prints with --json (docs/cli.md), what pgshift_driver_plan and the
// pgshift_*_json calls of the C API return, and what the Python binding
// builds its objects from. Every surface therefore carries the same fields.
//
// Example:
//   absl::StatusOr<pgshift::MigrationStatus> s = driver->Status("0042_rename");
//   if (s.ok()) std::cout << pgshift::ToJson(*s) << "\n";
//
// Thread-safe.
#ifndef PGSHIFT_JSON_H_
#define PGSHIFT_JSON_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "pgshift/driver.h"
#include "pgshift/options.h"

namespace pgshift {

// {"directory", "ok", "pending", "files": [{"file", "name", "state",
//   "out_of_order", "checksum", "recorded_checksum", "problem", "migration"?:
//   <status>}], "ignored": [...]}
std::string ToJson(const DirectoryReport& report);
// {"directory", "migrations": [{"name", "file", "from", "to", "registered"}],
//  "stopped_at", "stop_reason"}
std::string ToJson(const MigrateReport& report);
// {"origin", "unsafe", "statements": [{"sql", "line", "statement", "verdict",
//   "lock", "tables", "scans_table", "rewrites_table", "findings": [{"rule",
//   "level", "message"}], "operation", "instead", "assumed"}]}
// ("operation": the operation's JSON object, an array of them, or null).
std::string ToJson(const LintReport& report);
// {"event": "migrate", "migration", "file", "action", "phase", "message"}
std::string ToJson(const MigrateEvent& event);
// {"migration", "server_version", "notes", "steps": [...], "rollback": [...]}
std::string ToJson(const Plan& plan);
// {"name", "phase", "checksum", ..., "backfill": [...], "instances": [...]}
std::string ToJson(const MigrationStatus& status);
// {"migrations": [<status>, ...]}
std::string ToJson(const std::vector<MigrationStatus>& statuses);
// {"event": "progress", "migration", "operation", "step", "rows_done", ...}
std::string ToJson(const Progress& progress);
// {"event": "preflight", "migration", "step", "table", "outcome", "sessions": [...]}
std::string ToJson(const PreflightReport& report);
// [{"pid", "state", "user", "application", "client", "transaction_seconds",
//   "state_seconds", "locks", "query"}, ...]
std::string ToJson(const std::vector<SessionInfo>& sessions);
// A command that succeeded without a result object: {"ok": true, "<key>":
// "<value>", ...}, e.g. {"ok": true, "control_schema": "pgshift"}.
std::string OkJson(const std::vector<std::pair<std::string, std::string>>& fields);
// An error: {"ok": false, "error", "code", "sqlstate"?, "stopped_at"?, "stop"?,
// "exit_code"} ("stopped_at" and "stop": see MigrateStoppedAt in errors.h).
std::string ErrorJson(const absl::Status& status, int exit_code);
// The startup check's answer: {"name", "at_least", "reached", "message"}.
std::string CheckJson(absl::string_view name, Phase at_least, const absl::Status& result);

}  // namespace pgshift

#endif  // PGSHIFT_JSON_H_
