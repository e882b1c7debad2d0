// pgshift: the command-line driver (design §7).
//
//   pgshift [--dsn DSN] [--control-schema S] [--json] COMMAND ...
//
// Exit codes: 0 ok, 1 a step failed (state consistent), 2 bad input (nothing
// changed), 3 check not satisfied, 4 busy or locks not acquired in time.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli/progress.h"
#include "lib/util/json.h"
#include "pgshift/pgshift.h"

namespace pgshift::cli {
namespace {

constexpr char kUsage[] = R"(usage: pgshift [GLOBAL OPTIONS] COMMAND [ARGS]

Commands:
  init                         create or upgrade the control schema
  plan FILE                    validate FILE against the live catalog and print every
                               step's statements and locks; changes nothing
  register FILE                store the migration (phase registered)
  advance NAME [--to PHASE]    run the next step, or every step up to PHASE
  rollback NAME                undo everything not yet contracted
  status [NAME]                phase, backfill progress and last error
  check NAME --at-least PHASE  exit 0 if reached, 3 if not

Phases: registered column_added trigger_installed backfilled validated switched contracted

Global options:
  --dsn DSN                 connection string or URI (default: $PGSHIFT_DSN, then PG* env)
  --control-schema S        schema of pgshift's tables (default pgshift)
  --json                    print one JSON object (progress events go to stderr)
  --lock-timeout D          lock_timeout of each DDL (default 1s)
  --statement-timeout D     statement_timeout of short DDL (default 30s)
  --retry-deadline D        give up taking a lock after D (default 2m)
  --batch-rows N            initial backfill batch size (default 1000)
  --batch-time D            target duration of one backfill batch; the size adapts
                            to it (default 100ms)
  --batch-min-rows N        smallest backfill batch (default 100)
  --batch-max-rows N        largest backfill batch (default 100000)
  --batch-lock-timeout D    lock_timeout of a backfill batch; on timeout the batch is
                            rolled back, halved and retried after a backoff (default 200ms)
  --batch-delay D           pause between backfill batches (default 0s)
  --backfill-walk W         auto, key or pages: walk the table by primary key or by ctid
                            page ranges (auto: pages on PostgreSQL 14+, else key)
  --max-replication-lag D   pause the backfill while a standby lags more (default 10s, 0 off)
  --max-batches N           stop the backfill after N batches (resume later)
  --preflight MODE          before a step taking ACCESS EXCLUSIVE, sessions with long
                            transactions on the table are reported and: wait (default,
                            up to --retry-deadline), refuse (exit 4) or off
  --long-transaction D      what counts as a long transaction for --preflight (default 5s)
  --max-locked-scan-rows N  refuse a scan/rewrite under ACCESS EXCLUSIVE of a table with
                            more rows (default 10000)
  --force                   advance to contracted although application instances that
                            declared the old shape are live

Pausing a running backfill: UPDATE <control schema>.migrations SET paused = true
WHERE name = 'NAME' (false to resume); it stops between batches and waits.

Durations look like 500ms, 1s, 2m. Exit codes: 0 ok, 1 a step failed (state consistent),
2 bad input (nothing changed), 3 check not satisfied, 4 busy / locks not acquired.
)";

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  bool json = false;
};

const std::map<std::string, bool>& KnownFlags() {
  // flag -> takes a value
  static const std::map<std::string, bool> flags = {
      {"dsn", true},           {"control-schema", true},    {"json", false},
      {"lock-timeout", true},  {"statement-timeout", true}, {"retry-deadline", true},
      {"batch-rows", true},    {"batch-time", true},        {"batch-delay", true},
      {"batch-min-rows", true}, {"batch-max-rows", true},   {"batch-lock-timeout", true},
      {"backfill-walk", true},
      {"max-replication-lag", true}, {"max-batches", true}, {"to", true},
      {"preflight", true},     {"long-transaction", true},  {"max-locked-scan-rows", true},
      {"force", false},
      {"at-least", true},      {"help", false},             {"version", false}};
  return flags;
}

absl::StatusOr<Args> Parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      std::string key = a.substr(2), value;
      bool has_value = false;
      size_t eq = key.find('=');
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
        has_value = true;
      }
      auto it = KnownFlags().find(key);
      if (it == KnownFlags().end()) {
        return absl::InvalidArgumentError(absl::StrCat("unknown option --", key, "; see pgshift --help"));
      }
      if (it->second && !has_value) {
        if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat("--", key, " needs a value"));
        value = argv[++i];
      }
      if (key == "json") args.json = true;
      args.flags[key] = value;
    } else if (args.command.empty()) {
      args.command = a;
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

absl::Status DurationFlag(const Args& args, const std::string& key, absl::Duration* out) {
  auto it = args.flags.find(key);
  if (it == args.flags.end()) return absl::OkStatus();
  if (!absl::ParseDuration(it->second, out) || *out < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--", key, " \"", it->second,
                                                   "\" is not a duration like 500ms, 1s or 2m"));
  }
  return absl::OkStatus();
}

absl::Status IntFlag(const Args& args, const std::string& key, int64_t* out) {
  auto it = args.flags.find(key);
  if (it == args.flags.end()) return absl::OkStatus();
  if (!absl::SimpleAtoi(it->second, out) || *out < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--", key, " \"", it->second,
                                                   "\" is not a non-negative integer"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Options> MakeOptions(const Args& args) {
  Options o;
  if (args.flags.count("control-schema")) o.control_schema = args.flags.at("control-schema");
  for (auto [key, field] : std::vector<std::pair<std::string, absl::Duration*>>{
           {"lock-timeout", &o.lock_timeout},
           {"statement-timeout", &o.statement_timeout},
           {"retry-deadline", &o.retry_deadline},
           {"batch-time", &o.backfill_target_batch_time},
           {"batch-delay", &o.backfill_batch_delay},
           {"batch-lock-timeout", &o.backfill_lock_timeout},
           {"max-replication-lag", &o.max_replication_lag},
           {"long-transaction", &o.long_transaction}}) {
    absl::Status s = DurationFlag(args, key, field);
    if (!s.ok()) return s;
  }
  if (o.lock_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--lock-timeout must be positive");
  }
  for (auto [key, field] : std::vector<std::pair<std::string, int64_t*>>{
           {"batch-rows", &o.backfill_batch_rows},
           {"batch-min-rows", &o.backfill_min_batch_rows},
           {"batch-max-rows", &o.backfill_max_batch_rows},
           {"max-batches", &o.backfill_max_batches},
           {"max-locked-scan-rows", &o.max_locked_scan_rows}}) {
    absl::Status s = IntFlag(args, key, field);
    if (!s.ok()) return s;
  }
  if (o.backfill_target_batch_time <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--batch-time must be positive");
  }
  if (o.backfill_lock_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--batch-lock-timeout must be positive");
  }
  // An explicit --batch-rows below the default minimum lowers the minimum.
  if (!args.flags.count("batch-min-rows")) {
    o.backfill_min_batch_rows =
        std::min(o.backfill_min_batch_rows, std::max<int64_t>(1, o.backfill_batch_rows));
  }
  if (!args.flags.count("batch-max-rows")) {
    o.backfill_max_batch_rows = std::max(o.backfill_max_batch_rows, o.backfill_batch_rows);
  }
  if (o.backfill_min_batch_rows < 1 || o.backfill_min_batch_rows > o.backfill_max_batch_rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--batch-min-rows (", o.backfill_min_batch_rows, ") must be at least 1 and at most "
        "--batch-max-rows (", o.backfill_max_batch_rows, ")"));
  }
  if (args.flags.count("backfill-walk")) {
    const std::string& walk = args.flags.at("backfill-walk");
    if (walk == "auto") {
      o.backfill_walk = BackfillWalk::kAuto;
    } else if (walk == "key") {
      o.backfill_walk = BackfillWalk::kPrimaryKey;
    } else if (walk == "pages") {
      o.backfill_walk = BackfillWalk::kPages;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--backfill-walk \"", walk,
                                                     "\" is not one of auto, key, pages"));
    }
  }
  if (args.flags.count("preflight")) {
    const std::string& mode = args.flags.at("preflight");
    if (mode == "wait") {
      o.preflight = PreflightMode::kWait;
    } else if (mode == "refuse") {
      o.preflight = PreflightMode::kRefuse;
    } else if (mode == "off") {
      o.preflight = PreflightMode::kOff;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--preflight \"", mode,
                                                     "\" is not one of wait, refuse, off"));
    }
  }
  if (args.flags.count("force")) {
    if (args.command != "advance") return absl::InvalidArgumentError("--force goes with advance");
    o.force_contract = true;
  }
  o.on_preflight = MakePreflightReporter(args.json);
  o.on_progress = MakeProgressReporter(args.json);
  return o;
}

std::string Dsn(const Args& args) {
  if (args.flags.count("dsn")) return args.flags.at("dsn");
  if (const char* env = std::getenv("PGSHIFT_DSN")) return env;
  return "";
}

// ---- output ----------------------------------------------------------------

std::string StatusText(const MigrationStatus& m) {
  std::string out = absl::StrFormat("%-40s %-18s updated %s", m.name, PhaseName(m.phase), m.updated_at);
  for (const auto& b : m.backfill) {
    absl::StrAppendFormat(&out, "\n  backfill op %d: %d/%d rows%s", b.operation, b.rows_done,
                          b.rows_estimate, b.done ? " (done)" : "");
  }
  if (!m.driver.empty()) {
    absl::StrAppend(&out, "\n  being driven now by ", m.driver,
                    m.running_step.empty() ? "" : absl::StrCat(", reaching ", m.running_step));
  } else if (!m.running_step.empty()) {
    absl::StrAppend(&out, "\n  interrupted while reaching ", m.running_step,
                    "; run `pgshift advance ", m.name, "` to finish it or `pgshift rollback ", m.name, "`");
  }
  if (m.paused) {
    absl::StrAppend(&out, "\n  paused: the backfill waits between batches until paused is set back to "
                          "false in the migrations table");
  }
  if (!m.last_error.empty()) absl::StrAppend(&out, "\n  last error: ", m.last_error);
  for (const auto& i : m.instances) {
    absl::StrAppendFormat(&out, "\n  instance %s needs the %s shape%s (heartbeat %s, live %.0f s more)",
                          i.instance_id, ShapeName(i.shape),
                          i.description.empty() ? "" : absl::StrCat(" - ", i.description),
                          i.heartbeat_at, i.expires_in_seconds);
  }
  return out;
}

std::string PlanText(const Plan& plan) {
  std::string out = absl::StrFormat("Plan for %s (server_version_num %d). Nothing was changed.\n",
                                    plan.migration, plan.server_version);
  for (const auto& n : plan.notes) absl::StrAppend(&out, "  * ", n, "\n");
  auto steps = [&out](const std::vector<PlannedStep>& list) {
    for (const auto& s : list) {
      absl::StrAppend(&out, "\n-> ", PhaseName(s.to), "   ", s.operation, "\n");
      if (s.statements.empty()) absl::StrAppend(&out, "     (no-op for this operation; phase is recorded)\n");
      std::string last_note;
      for (const auto& st : s.statements) {
        std::vector<std::string> tags;
        tags.push_back(absl::StrCat("lock: ", st.lock));
        if (!st.transactional) tags.push_back("outside a transaction");
        if (st.batched) tags.push_back(absl::StrCat("batched, ~", st.rows_estimate, " rows"));
        if (st.scans_table && !st.batched) {
          tags.push_back(absl::StrCat("scans the table, ~", st.rows_estimate, " rows"));
        }
        if (st.rewrites_table) tags.push_back("REWRITES the table");
        if (st.note != last_note) absl::StrAppend(&out, "     -- ", st.note, "\n");
        last_note = st.note;
        absl::StrAppend(&out, "     [", absl::StrJoin(tags, "; "), "]\n     ", st.sql, ";\n");
      }
      for (const auto& h : s.hazards) absl::StrAppend(&out, "     !! ", h, "\n");
    }
  };
  steps(plan.steps);
  absl::StrAppend(&out, "\nRollback (allowed from any phase before contracted):");
  steps(plan.rollback);
  return out;
}

int Fail(const Args& args, const absl::Status& s, int code) {
  if (args.json) {
    util::JsonObject o;
    o.Bool("ok", false).Str("error", s.message()).Str("code", absl::StatusCodeToString(s.code()));
    std::string sqlstate = SqlState(s);
    if (!sqlstate.empty()) o.Str("sqlstate", sqlstate);
    o.Int("exit_code", code);
    std::cout << o.Build() << std::endl;
  } else {
    std::cerr << "pgshift: " << s.message() << std::endl;
  }
  return code;
}

int Fail(const Args& args, const absl::Status& s) { return Fail(args, s, ExitCodeFor(s)); }

absl::Status Need(const Args& args, size_t n, const char* what) {
  if (args.positional.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("`", args.command, "` takes ", what,
                                                   "; see pgshift --help"));
  }
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  absl::StatusOr<Args> parsed = Parse(argc, argv);
  if (!parsed.ok()) {
    std::cerr << "pgshift: " << parsed.status().message() << std::endl;
    return 2;
  }
  Args args = *parsed;
  if (args.flags.count("help") || args.command == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (args.flags.count("version") || args.command == "version") {
    std::cout << "pgshift 0.1.0" << std::endl;
    return 0;
  }
  if (args.command.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  static const std::vector<std::string> commands = {"init", "plan", "register", "advance",
                                                    "rollback", "status", "check"};
  if (std::find(commands.begin(), commands.end(), args.command) == commands.end()) {
    return Fail(args, absl::InvalidArgumentError(absl::StrCat("unknown command \"", args.command,
                                                              "\"; commands are: ",
                                                              absl::StrJoin(commands, ", "))));
  }
  absl::StatusOr<Options> options = MakeOptions(args);
  if (!options.ok()) return Fail(args, options.status());

  // Arguments are checked before connecting, so bad input never touches the
  // database.
  absl::Status usage = absl::OkStatus();
  std::optional<v1::Migration> spec;
  std::optional<Phase> to, at_least;
  const std::string& cmd = args.command;
  if (cmd == "init") usage = Need(args, 0, "no arguments");
  if (cmd == "plan" || cmd == "register") {
    usage = Need(args, 1, "one migration FILE");
    if (usage.ok()) {
      absl::StatusOr<v1::Migration> m = LoadMigrationFile(args.positional[0]);
      if (!m.ok()) return Fail(args, m.status(), 2);
      spec = *m;
    }
  }
  if (cmd == "advance" || cmd == "rollback") usage = Need(args, 1, "one migration NAME");
  if (cmd == "status" && args.positional.size() > 1) usage = Need(args, 1, "at most one NAME");
  if (cmd == "check") {
    usage = Need(args, 1, "one migration NAME and --at-least PHASE");
    if (usage.ok() && !args.flags.count("at-least")) {
      usage = absl::InvalidArgumentError("`check` needs --at-least PHASE");
    }
  }
  if (!usage.ok()) return Fail(args, usage, 2);
  if (args.flags.count("to")) {
    if (cmd != "advance") return Fail(args, absl::InvalidArgumentError("--to goes with advance"), 2);
    absl::StatusOr<Phase> p = ParsePhase(args.flags.at("to"));
    if (!p.ok()) return Fail(args, p.status(), 2);
    to = *p;
  }
  if (args.flags.count("at-least")) {
    absl::StatusOr<Phase> p = ParsePhase(args.flags.at("at-least"));
    if (!p.ok()) return Fail(args, p.status(), 2);
    at_least = *p;
  }

  const std::string dsn = Dsn(args);
  if (cmd == "check") {
    absl::Status s = RequirePhase(dsn, args.positional[0], *at_least, options->control_schema);
    bool reached = s.ok();
    if (!reached && !absl::IsFailedPrecondition(s) && !absl::IsNotFound(s)) return Fail(args, s);
    if (args.json) {
      std::cout << util::JsonObject()
                       .Str("name", args.positional[0])
                       .Str("at_least", PhaseName(*at_least))
                       .Bool("reached", reached)
                       .Str("message", reached ? "" : std::string(s.message()))
                       .Build()
                << std::endl;
    } else {
      std::cout << (reached ? absl::StrCat(args.positional[0], " has reached ", PhaseName(*at_least))
                            : std::string(s.message()))
                << std::endl;
    }
    return reached ? 0 : 3;
  }

  absl::StatusOr<std::unique_ptr<Driver>> driver = Driver::Connect(dsn, *options);
  if (!driver.ok()) return Fail(args, driver.status());
  Driver& d = **driver;

  if (cmd == "init") {
    absl::Status s = d.Init();
    if (!s.ok()) return Fail(args, s);
    if (args.json) {
      std::cout << util::JsonObject().Bool("ok", true).Str("control_schema", options->control_schema).Build()
                << std::endl;
    } else {
      std::cout << "control schema \"" << options->control_schema << "\" is ready" << std::endl;
    }
    return 0;
  }
  if (cmd == "plan") {
    absl::StatusOr<Plan> plan = d.PlanMigration(*spec);
    if (!plan.ok()) return Fail(args, plan.status());
    std::cout << (args.json ? ToJson(*plan) : PlanText(*plan)) << std::endl;
    return 0;
  }
  absl::StatusOr<MigrationStatus> result;
  if (cmd == "register") result = d.Register(*spec);
  if (cmd == "advance") result = d.Advance(args.positional[0], to);
  if (cmd == "rollback") result = d.Rollback(args.positional[0]);
  if (cmd == "status") {
    if (args.positional.empty()) {
      absl::StatusOr<std::vector<MigrationStatus>> all = d.List();
      if (!all.ok()) return Fail(args, all.status());
      if (args.json) {
        std::vector<std::string> items;
        for (const auto& m : *all) items.push_back(ToJson(m));
        std::cout << "{\"migrations\":[" << absl::StrJoin(items, ",") << "]}" << std::endl;
      } else if (all->empty()) {
        std::cout << "no migrations registered" << std::endl;
      } else {
        for (const auto& m : *all) std::cout << StatusText(m) << std::endl;
      }
      return 0;
    }
    result = d.Status(args.positional[0]);
  }
  if (!result.ok() && absl::IsUnavailable(result.status()) &&
      (cmd == "advance" || cmd == "rollback")) {
    // Lost the server mid-step: say how to continue (exit 1, state consistent).
    const std::string& name = args.positional[0];
    absl::Status s(result.status().code(),
                   absl::StrCat(result.status().message(),
                                "\nThe step did not commit, so the phase is unchanged; run "
                                "`pgshift ", cmd, " ", name,
                                "` again to finish it (a backfill resumes from its checkpoint)"));
    result.status().ForEachPayload(
        [&s](absl::string_view url, const absl::Cord& p) { s.SetPayload(url, p); });
    return Fail(args, s);
  }
  if (!result.ok()) return Fail(args, result.status());
  if (args.json) {
    std::cout << ToJson(*result) << std::endl;
  } else {
    std::cout << StatusText(*result) << std::endl;
  }
  return 0;
}

}  // namespace
}  // namespace pgshift::cli

int main(int argc, char** argv) { return pgshift::cli::Run(argc, argv); }
