// pgshift/json.h: every JSON form pgshift prints, in one place.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/util/json.h"
#include "pgshift/errors.h"
#include "pgshift/json.h"

namespace pgshift {

std::string ToJson(const MigrationStatus& m) {
  std::vector<std::string> bf;
  for (const auto& b : m.backfill) {
    bf.push_back(util::JsonObject()
                     .Int("operation", b.operation)
                     .Int("rows_done", b.rows_done)
                     .Int("rows_estimate", b.rows_estimate)
                     .Bool("done", b.done)
                     .Bool("rows_estimated", b.rows_estimated)
                     .Str("waiting", b.waiting)
                     .Num("pace", b.pace)
                     .Build());
  }
  util::JsonObject o;
  o.Str("name", m.name).Str("phase", PhaseName(m.phase)).Str("checksum", m.checksum);
  o.Str("created_at", m.created_at).Str("updated_at", m.updated_at);
  if (m.last_error.empty()) o.Null("last_error"); else o.Str("last_error", m.last_error);
  if (m.running_step.empty()) o.Null("running_step"); else o.Str("running_step", m.running_step);
  o.Bool("paused", m.paused);
  o.Raw("backfill", absl::StrCat("[", absl::StrJoin(bf, ","), "]"));
  if (m.driver.empty()) o.Null("driver"); else o.Str("driver", m.driver);
  if (m.file.empty()) o.Null("file"); else o.Str("file", m.file);
  if (m.file_checksum.empty()) o.Null("file_checksum"); else o.Str("file_checksum", m.file_checksum);
  o.Bool("baselined", m.baselined);
  std::vector<std::string> inst;
  for (const auto& i : m.instances) {
    inst.push_back(util::JsonObject()
                       .Str("instance_id", i.instance_id)
                       .Str("shape", ShapeName(i.shape))
                       .Str("description", i.description)
                       .Str("heartbeat_at", i.heartbeat_at)
                       .Num("expires_in_seconds", i.expires_in_seconds)
                       .Build());
  }
  o.Raw("instances", absl::StrCat("[", absl::StrJoin(inst, ","), "]"));
  return o.Build();
}

std::string ToJson(const DirectoryReport& r) {
  std::vector<std::string> files;
  for (const DirectoryFile& f : r.files) {
    util::JsonObject o;
    o.Str("file", f.file).Str("name", f.name).Str("state", f.state).Bool("out_of_order", f.out_of_order);
    if (f.checksum.empty()) o.Null("checksum"); else o.Str("checksum", f.checksum);
    if (f.recorded_checksum.empty()) o.Null("recorded_checksum"); else o.Str("recorded_checksum", f.recorded_checksum);
    if (f.problem.empty()) o.Null("problem"); else o.Str("problem", f.problem);
    if (f.migration) o.Raw("migration", ToJson(*f.migration)); else o.Null("migration");
    files.push_back(o.Build());
  }
  return util::JsonObject()
      .Str("directory", r.directory)
      .Bool("ok", r.ok)
      .Int("pending", r.pending)
      .Raw("files", absl::StrCat("[", absl::StrJoin(files, ","), "]"))
      .Raw("ignored", util::JsonStringArray(r.ignored))
      .Build();
}

std::string ToJson(const MigrateReport& r) {
  std::vector<std::string> moved;
  for (const MigratedFile& m : r.migrations) {
    moved.push_back(util::JsonObject()
                        .Str("name", m.name)
                        .Str("file", m.file)
                        .Str("from", PhaseName(m.from))
                        .Str("to", PhaseName(m.to))
                        .Bool("registered", m.registered)
                        .Build());
  }
  util::JsonObject o;
  o.Str("directory", r.directory).Raw("migrations", absl::StrCat("[", absl::StrJoin(moved, ","), "]"));
  if (r.stopped_at.empty()) o.Null("stopped_at"); else o.Str("stopped_at", r.stopped_at);
  if (r.stop_reason.empty()) o.Null("stop_reason"); else o.Str("stop_reason", r.stop_reason);
  return o.Build();
}

std::string ToJson(const LintReport& r) {
  std::vector<std::string> statements;
  for (const LintedStatement& s : r.statements) {
    std::vector<std::string> findings;
    for (const LintFinding& f : s.findings) {
      findings.push_back(
          util::JsonObject().Str("rule", f.rule).Str("level", f.level).Str("message", f.message).Build());
    }
    util::JsonObject o;
    o.Str("sql", s.sql).Int("line", s.line).Str("statement", s.statement).Str("verdict", s.verdict);
    o.Str("lock", s.lock).Raw("tables", util::JsonStringArray(s.tables));
    o.Bool("scans_table", s.scans_table).Bool("rewrites_table", s.rewrites_table);
    o.Raw("findings", absl::StrCat("[", absl::StrJoin(findings, ","), "]"));
    if (s.operation_json.empty()) o.Null("operation"); else o.Raw("operation", s.operation_json);
    o.Str("instead", s.instead).Bool("assumed", s.assumed);
    statements.push_back(o.Build());
  }
  return util::JsonObject()
      .Str("origin", r.origin)
      .Bool("unsafe", r.unsafe)
      .Raw("statements", absl::StrCat("[", absl::StrJoin(statements, ","), "]"))
      .Build();
}

std::string ToJson(const MigrateEvent& e) {
  return util::JsonObject()
      .Str("event", "migrate")
      .Str("migration", e.migration)
      .Str("file", e.file)
      .Str("action", e.action)
      .Str("phase", e.phase)
      .Str("message", e.message)
      .Build();
}

std::string ToJson(const Plan& plan) {
  auto steps_json = [](const std::vector<PlannedStep>& steps) {
    std::vector<std::string> out;
    for (const auto& s : steps) {
      std::vector<std::string> stmts;
      for (const auto& st : s.statements) {
        std::vector<std::string> locks;
        for (const auto& l : st.locks) {
          locks.push_back(util::JsonObject().Str("table", l.table).Str("mode", l.mode).Build());
        }
        stmts.push_back(util::JsonObject()
                            .Str("sql", st.sql)
                            .Str("lock", st.lock)
                            .Raw("locks", absl::StrCat("[", absl::StrJoin(locks, ","), "]"))
                            .Str("when", st.when)
                            .Str("skip_if", st.skip_if)
                            .Bool("transactional", st.transactional)
                            .Bool("scans_table", st.scans_table)
                            .Bool("rewrites_table", st.rewrites_table)
                            .Bool("batched", st.batched)
                            .Int("rows_estimate", st.rows_estimate)
                            .Str("note", st.note)
                            .Build());
      }
      out.push_back(util::JsonObject()
                        .Str("to", PhaseName(s.to))
                        .Str("operation", s.operation)
                        .Int("rows_estimate", s.rows_estimate)
                        .Raw("hazards", util::JsonStringArray(s.hazards))
                        .Raw("statements", absl::StrCat("[", absl::StrJoin(stmts, ","), "]"))
                        .Build());
    }
    return absl::StrCat("[", absl::StrJoin(out, ","), "]");
  };
  return util::JsonObject()
      .Str("migration", plan.migration)
      .Int("server_version", plan.server_version)
      .Raw("notes", util::JsonStringArray(plan.notes))
      .Raw("steps", steps_json(plan.steps))
      .Raw("rollback", steps_json(plan.rollback))
      .Build();
}

std::string ToJson(const std::vector<MigrationStatus>& statuses) {
  std::vector<std::string> items;
  for (const auto& m : statuses) items.push_back(ToJson(m));
  return absl::StrCat("{\"migrations\":[", absl::StrJoin(items, ","), "]}");
}

std::string ToJson(const Progress& p) {
  return util::JsonObject()
      .Str("event", "progress")
      .Str("migration", p.migration)
      .Int("operation", p.operation)
      .Str("step", p.step)
      .Int("rows_done", p.rows_done)
      .Int("rows_estimate", p.rows_estimate)
      .Num("rows_per_second", p.rows_per_second)
      .Num("eta_seconds", p.eta_seconds)
      .Bool("finished", p.finished)
      .Int("rows_updated", p.rows_updated)
      .Int("batch_rows", p.batch_rows)
      .Int("lock_wait_ms", p.lock_wait_ms)
      .Str("waiting", p.waiting)
      .Bool("rows_estimated", p.rows_estimated)
      .Num("pace", p.pace)
      .Num("probe_working_ms", p.probe_working_ms)
      .Num("probe_resting_ms", p.probe_resting_ms)
      .Build();
}

std::string ToJson(const std::vector<SessionInfo>& sessions) {
  std::vector<std::string> items;
  for (const SessionInfo& s : sessions) {
    items.push_back(util::JsonObject()
                        .Int("pid", s.pid)
                        .Str("state", s.state)
                        .Str("user", s.user)
                        .Str("application", s.application)
                        .Str("client", s.client)
                        .Num("transaction_seconds", s.transaction_seconds)
                        .Num("state_seconds", s.state_seconds)
                        .Str("locks", s.locks)
                        .Str("query", s.query)
                        .Build());
  }
  return absl::StrCat("[", absl::StrJoin(items, ","), "]");
}

std::string ToJson(const PreflightReport& r) {
  return util::JsonObject()
      .Str("event", "preflight")
      .Str("migration", r.migration)
      .Str("step", r.step)
      .Str("table", r.table)
      .Str("outcome", r.outcome)
      .Raw("sessions", ToJson(r.sessions))
      .Build();
}

std::string OkJson(const std::vector<std::pair<std::string, std::string>>& fields) {
  util::JsonObject o;
  o.Bool("ok", true);
  for (const auto& [key, value] : fields) o.Str(key, value);
  return o.Build();
}

std::string ErrorJson(const absl::Status& status, int exit_code) {
  util::JsonObject o;
  o.Bool("ok", false).Str("error", status.message()).Str("code", absl::StatusCodeToString(status.code()));
  const std::string sqlstate = SqlState(status);
  if (!sqlstate.empty()) o.Str("sqlstate", sqlstate);
  const std::string stopped_at = MigrateStoppedAt(status);
  if (!stopped_at.empty()) o.Str("stopped_at", stopped_at).Str("stop", MigrateStopKind(status));
  o.Int("exit_code", exit_code);
  return o.Build();
}

std::string CheckJson(absl::string_view name, Phase at_least, const absl::Status& result) {
  return util::JsonObject()
      .Str("name", name)
      .Str("at_least", PhaseName(at_least))
      .Bool("reached", result.ok())
      .Str("message", result.ok() ? "" : std::string(result.message()))
      .Build();
}

}  // namespace pgshift
