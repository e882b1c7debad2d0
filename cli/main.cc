// pgshift: the command-line driver (docs/cli.md).
//
//   pgshift [--dsn DSN] [--control-schema S] [--json] COMMAND ...
//
// Exit codes: 0 ok, 1 a step failed (state consistent), 2 bad input (nothing
// changed), 3 check not satisfied, 4 busy or locks not acquired in time.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli/progress.h"
#include "pgshift/pgshift.h"

namespace pgshift::cli {
namespace {

constexpr char kCommands[] = R"(usage: pgshift [GLOBAL OPTIONS] COMMAND [ARGS]

Commands:
  init                         create or upgrade the control schema
  plan FILE                    validate FILE against the live catalog and print every
                               step's statements and locks; changes nothing
  register FILE                store the migration (phase registered)
  advance NAME [--to PHASE]    run the next step, or every step up to PHASE
  rollback NAME                undo everything not yet contracted
  status [NAME]                phase, backfill progress and last error
  check NAME --at-least PHASE  exit 0 if reached, 3 if not
  pause NAME                   pause a running backfill between batches (from any shell)
  resume NAME                  let a paused backfill go on

Application instances (the contract guard: contract waits for old-shape instances):
  declare NAME --shape old|new --instance-id ID [--ttl D] [--description TEXT]
                               declare that instance ID needs the old or new shape of NAME,
                               live for D (default 30s) unless declared again; --instance-id
                               is required (a shell application names itself)
  withdraw NAME --instance-id ID
                               remove instance ID's declaration (clean shutdown)

Migration directories (files applied in file-name order, recorded with their checksums):
  migrate DIR [--to PHASE]     before a deploy: register every new file of DIR in order and take
                               each migration to PHASE (default switched)
          [--allow-out-of-order] [--no-wait]
  migrate DIR --contract       after a deploy: contract, in order, every migration at switched
                               whose old app instances are gone ([--force] as for advance;
                               also with --to contracted)
  status DIR                   every file of DIR: pending, applied (phase), changed, missing
  baseline DIR --through NAME  record the files up to NAME as applied without running them

Plain SQL files (a .sql file is also a migration FILE for plan and register, and of a DIR):
  convert FILE.sql [--no-db]   print the migration (JSON) pgshift runs for FILE.sql: statements
                               safe as written as sql operations, unsafe ones as the operations
                               with the same end state; exit 2 when it refuses a statement
  lint FILE.sql... [--other-runner] [--no-db]
                               every statement: its lock, whether it scans or rewrites a table, the
                               rule ids it breaks and what pgshift runs instead; exit 1 if any is
                               unsafe as written. Uses the live catalog when a database is given
                               (--dsn, PGSHIFT_DSN, PGHOST, PGHOSTADDR, PGPORT, PGDATABASE or
                               PGSERVICE), else assumes the worst; --no-db: never connect;
                               --other-runner: judge the file as another tool runs it (notes
                               become warnings)

Phases: registered column_added trigger_installed backfilled validated switched contracted

Global options:
  --dsn DSN                 connection string or URI (default: $PGSHIFT_DSN, then PG* env)
  --json                    print one JSON object (progress events go to stderr)
)";

constexpr char kFooter[] = R"(
Durations look like 500ms, 1.5s, 2m. Exit codes: 0 ok, 1 a step failed (state consistent),
2 bad input (nothing changed), 3 check not satisfied, 4 busy / locks not acquired.
lint: 0 every statement is safe as written, 1 some statement is unsafe as written (pgshift
converts or refuses it), 2 the files could not be linted (unreadable, syntax error, server
unreachable).
)";

// The usage text: the commands, then one line per option of OptionList().
std::string Usage() {
  std::string out = kCommands;
  for (const OptionInfo& o : OptionList()) {
    std::string left = absl::StrCat("  --", o.flag);
    if (std::string(o.kind) != "bool") {
      absl::StrAppend(&left, " ", std::string(o.kind) == "duration" ? "D"
                               : std::string(o.kind) == "integer" ? "N"
                               : std::string(o.kind) == "choice"  ? absl::StrJoin(o.choices, "|")
                                                                  : "S");
    }
    absl::StrAppend(&out, absl::StrFormat("%-28s", left), left.size() >= 28 ? "\n" : "");
    if (left.size() >= 28) absl::StrAppend(&out, std::string(28, ' '));
    absl::StrAppend(&out, o.help, "\n");
  }
  absl::StrAppend(&out, kFooter);
  return out;
}

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  bool json = false;
};

// The option behind CLI flag `flag`, or nullptr.
const OptionInfo* OptionOfFlag(const std::string& flag) {
  for (const OptionInfo& o : OptionList()) {
    if (flag == o.flag) return &o;
  }
  return nullptr;
}

// flag -> takes a value: the flags of the CLI itself, then every option's.
const std::map<std::string, bool>& KnownFlags() {
  static const std::map<std::string, bool>* flags = [] {
    auto* f = new std::map<std::string, bool>{{"dsn", true},      {"json", false},  {"to", true},
                                              {"at-least", true}, {"help", false}, {"version", false},
                                              {"contract", false}, {"allow-out-of-order", false},
                                              {"no-wait", false}, {"through", true},
                                              {"shape", true},    {"instance-id", true},
                                              {"ttl", true},      {"description", true},
                                              {"other-runner", false}, {"no-db", false}};
    for (const OptionInfo& o : OptionList()) (*f)[o.flag] = std::string(o.kind) != "bool";
    return f;
  }();
  return *flags;
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
      // A bool flag alone means true; --force=VALUE goes to SetOption like
      // any other value, so --force=false is false and --force=yes is refused.
      if (!it->second && !has_value) value = "true";
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

absl::StatusOr<Options> MakeOptions(const Args& args) {
  Options o;
  for (const auto& [flag, value] : args.flags) {
    const OptionInfo* info = OptionOfFlag(flag);
    if (info == nullptr) continue;
    absl::Status s = SetOption(o, info->name, value);
    if (!s.ok()) return s;
  }
  // --force is for the commands that contract: advance, migrate --contract
  // and migrate --to contracted (whose stops say "pass --force").
  const bool migrate_contracts =
      args.command == "migrate" &&
      (args.flags.count("contract") ||
       (args.flags.count("to") && ParsePhase(args.flags.at("to")).value_or(Phase::kRegistered) ==
                                      Phase::kContracted));
  if (o.force_contract && args.command != "advance" && !migrate_contracts) {
    return absl::InvalidArgumentError(
        "--force goes with advance, migrate --contract and migrate --to contracted");
  }
  absl::StatusOr<Options> checked = SanitizeOptions(std::move(o));
  if (!checked.ok()) return checked.status();
  checked->on_preflight = MakePreflightReporter(args.json);
  checked->on_progress = MakeProgressReporter(args.json);
  checked->on_migrate = MakeMigrateReporter(args.json);
  return checked;
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
    absl::StrAppendFormat(&out, "\n  backfill op %d: %d/%s%d rows%s", b.operation, b.rows_done,
                          b.rows_estimated ? "~" : "", b.rows_estimate, b.done ? " (done)" : "");
    // Why it holds back, while a driver is at it (what a killed driver last
    // recorded means nothing).
    if (!b.done && !m.driver.empty()) {
      if (b.waiting == "latency") {
        absl::StrAppendFormat(&out, ", held back by the latency guard (working %.0f%% of the time)",
                              b.pace * 100);
      } else if (!b.waiting.empty()) {
        absl::StrAppend(&out, ", waiting: ", b.waiting);
      }
    }
  }
  const bool rolling_back = m.running_step == PhaseName(Phase::kRolledBack);
  if (!m.driver.empty()) {
    absl::StrAppend(&out, "\n  being driven now by ", m.driver,
                    m.running_step.empty() ? ""
                    : rolling_back         ? ", rolling back"
                                           : absl::StrCat(", reaching ", m.running_step));
  } else if (rolling_back) {
    absl::StrAppend(&out, "\n  rollback in progress: it stopped part-way (some operations may be "
                          "undone already); run `pgshift rollback ", m.name,
                    "` to finish it (advance is refused until then)");
  } else if (!m.running_step.empty()) {
    absl::StrAppend(&out, "\n  interrupted while reaching ", m.running_step,
                    "; run `pgshift advance ", m.name, "` to finish it or `pgshift rollback ", m.name, "`");
  }
  if (m.paused) {
    absl::StrAppend(&out, "\n  paused: the backfill waits between batches until `pgshift resume ",
                    m.name, "`");
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
        if (st.locks.size() > 1) {
          std::vector<std::string> locks;
          for (const auto& l : st.locks) locks.push_back(absl::StrCat(l.mode, " on ", l.table));
          tags.push_back(absl::StrCat("locks: ", absl::StrJoin(locks, ", ")));
        } else {
          tags.push_back(absl::StrCat("lock: ", st.lock));
        }
        if (!st.transactional) tags.push_back("outside a transaction");
        if (st.batched) tags.push_back(absl::StrCat("batched, ~", st.rows_estimate, " rows"));
        if (st.scans_table && !st.batched) {
          tags.push_back(absl::StrCat("scans the table, ~", st.rows_estimate, " rows"));
        }
        if (st.rewrites_table) tags.push_back("REWRITES the table");
        if (st.note != last_note) {
          absl::StrAppend(&out, "     -- ", st.note, "\n");
          if (!st.skip_if.empty()) absl::StrAppend(&out, "        (skipped when ", st.skip_if, ")\n");
        }
        last_note = st.note;
        if (!st.when.empty()) tags.push_back(st.when);
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

// `s` padded with spaces to `width` characters (UTF-8 code points, so that a
// file name with accents lines up), followed by one space.
std::string Column(const std::string& s, size_t width) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  return absl::StrCat(s, std::string(width > chars ? width - chars : 0, ' '), " ");
}

std::string DirectoryText(const DirectoryReport& r) {
  std::string out;
  if (r.files.empty()) absl::StrAppend(&out, "no migration files in ", r.directory, "\n");
  for (const DirectoryFile& f : r.files) {
    std::string state = f.state;
    if ((f.state == "applied" || f.state == "changed" || f.state == "missing") && f.migration) {
      absl::StrAppend(&state, " (", PhaseName(f.migration->phase), ")");
    }
    if (f.state == "pending" && f.migration) absl::StrAppend(&state, " (rolled back, runs again)");
    absl::StrAppend(&out, Column(f.file, 44), state);
    if (f.migration && !f.migration->driver.empty()) {
      absl::StrAppend(&out, "\n    being driven now by ", f.migration->driver, ", reaching ",
                      f.migration->running_step);
    } else if (f.migration && f.migration->running_step == PhaseName(Phase::kRolledBack)) {
      absl::StrAppend(&out, "\n    rollback in progress: it stopped part-way; run `pgshift rollback ",
                      f.name, "` to finish it (migrate refuses to advance it until then)");
    } else if (f.migration && !f.migration->running_step.empty()) {
      // Plain migrate leaves a migration at switched alone: only a run that
      // contracts continues an interrupted contract.
      absl::StrAppend(&out, "\n    interrupted while reaching ", f.migration->running_step,
                      "; `pgshift migrate ", r.directory,
                      f.migration->running_step == PhaseName(Phase::kContracted) ? " --contract" : "",
                      "` continues it");
    }
    if (f.migration && f.migration->paused) {
      absl::StrAppend(&out, "\n    paused: the backfill waits between batches until `pgshift resume ",
                      f.name, "`");
    }
    if (f.migration && !f.migration->last_error.empty()) {
      absl::StrAppend(&out, "\n    last error: ", f.migration->last_error);
    }
    if (!f.problem.empty()) absl::StrAppend(&out, "\n    ", f.out_of_order && f.problem.rfind("sorts", 0) == 0 ? "out of order: " : "problem: ", f.problem);
    absl::StrAppend(&out, "\n");
  }
  for (const std::string& i : r.ignored) absl::StrAppend(&out, Column(i, 44), "ignored\n");
  absl::StrAppend(&out, r.pending, " pending; ",
                  r.ok ? "migrate would run" : "migrate would refuse (see the problems above)");
  return out;
}

std::string MigrateText(const MigrateReport& r, bool contract) {
  std::string out;
  for (const MigratedFile& m : r.migrations) {
    absl::StrAppend(&out, Column(m.file, 44), PhaseName(m.from), " -> ", PhaseName(m.to),
                    m.registered ? " (registered by this run)" : "", "\n");
  }
  if (r.migrations.empty()) {
    absl::StrAppend(&out, contract ? "nothing to contract" : "nothing to do: every file is applied", "\n");
  }
  if (!r.stopped_at.empty()) absl::StrAppend(&out, "stopped at ", r.stopped_at, ": ", r.stop_reason, "\n");
  if (!out.empty()) out.pop_back();
  return out;
}

// stdout, once an unfinished progress bar on the terminal has its line ended.
std::ostream& Out() {
  EndProgressLine();
  return std::cout;
}

int Fail(const Args& args, const absl::Status& s, int code) {
  if (args.json) {
    Out() << ErrorJson(s, code) << std::endl;
  } else {
    EndProgressLine();
    std::cerr << "pgshift: " << s.message() << std::endl;
  }
  return code;
}

int Fail(const Args& args, const absl::Status& s) { return Fail(args, s, ExitCodeFor(s)); }

// ---- lint ------------------------------------------------------------------

// Whether `lint` lints against a database: --dsn or a non-empty PGSHIFT_DSN,
// or one of libpq's variables that name a server or database. Without any
// (or with --no-db) it lints without one, assuming the worst where a rule
// needs the catalog. libpq alone would try the local socket, but a linter in
// a CI job without a server must not fail for that.
bool LintWithDatabase(const Args& args) {
  if (args.flags.count("no-db")) return false;
  if (args.flags.count("dsn")) return true;
  for (const char* var : {"PGSHIFT_DSN", "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE"}) {
    const char* value = std::getenv(var);
    if (value != nullptr && *value != '\0') return true;
  }
  return false;
}

// The bytes of `path`, or InvalidArgument saying why it cannot be read.
absl::StatusOr<std::string> ReadSqlFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": it is a directory; give the .sql files"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  return text.str();
}

// One line of `sql` (the first), shortened to `width` characters.
std::string OneLine(const std::string& sql, size_t width) {
  std::string line = sql.substr(0, sql.find('\n'));
  bool cut = line.size() < sql.size();
  if (line.size() > width) {
    line = line.substr(0, width - 3);
    cut = true;
  }
  return cut ? absl::StrCat(line, "...") : line;
}

std::string LintText(const std::vector<LintReport>& reports, bool database) {
  std::string out;
  std::map<std::string, int> verdicts;
  int statements = 0, errors = 0, warnings = 0, assumed = 0;
  for (const LintReport& r : reports) {
    for (const LintedStatement& s : r.statements) {
      ++statements;
      ++verdicts[s.verdict];
      assumed += s.assumed ? 1 : 0;
      absl::StrAppend(&out, r.origin, ":", s.line, "  ", s.verdict, "  ", s.lock, "  ", s.statement,
                      s.tables.empty() ? "" : absl::StrCat(" ", absl::StrJoin(s.tables, ", ")),
                      s.assumed ? "  (assumed: no database)" : "", "\n");
      absl::StrAppend(&out, "  | ", OneLine(s.sql, 96), "\n");
      for (const LintFinding& f : s.findings) {
        absl::StrAppend(&out, "  ", f.rule, " (", f.level, "): ", f.message, "\n");
        errors += f.level == "error" ? 1 : 0;
        warnings += f.level == "warning" ? 1 : 0;
      }
      if (s.verdict == "convert" || s.verdict == "refuse") {
        const char* lead = s.verdict == "convert" ? "pgshift runs instead" : "write instead";
        if (!s.instead.empty()) absl::StrAppend(&out, "  ", lead, ": ", s.instead, "\n");
        if (!s.operation_json.empty()) absl::StrAppend(&out, "    ", s.operation_json, "\n");
      }
    }
  }
  std::vector<std::string> counts;
  for (const char* v : {"safe", "convert", "refuse", "control"}) {
    if (verdicts.count(v)) counts.push_back(absl::StrCat(verdicts[v], " ", v));
  }
  const bool unsafe = verdicts.count("convert") || verdicts.count("refuse");
  absl::StrAppend(&out, statements, statements == 1 ? " statement" : " statements", " in ", reports.size(),
                  reports.size() == 1 ? " file" : " files",
                  counts.empty() ? "" : absl::StrCat(" (", absl::StrJoin(counts, ", "), ")"), ", ", errors,
                  errors == 1 ? " error, " : " errors, ", warnings, warnings == 1 ? " warning" : " warnings",
                  ": ", unsafe ? "unsafe as written" : "safe as written",
                  database ? "; checked against the live catalog"
                  : assumed > 0
                      ? absl::StrCat("; no database: ", assumed,
                                     " assumed the worst (give --dsn to check the live catalog)")
                      : "; no database",
                  "\n");
  return out;
}

// `pgshift lint FILE.sql...`: 0 safe as written, 1 unsafe, 2 not linted.
int Lint(const Args& args, const Options& options) {
  // Every file is read before anything else: a missing one changes nothing.
  std::vector<std::pair<std::string, std::string>> files;
  for (const std::string& path : args.positional) {
    absl::StatusOr<std::string> sql = ReadSqlFile(path);
    if (!sql.ok()) return Fail(args, sql.status(), 2);
    files.emplace_back(path, *std::move(sql));
  }
  LintOptions lint_options;
  lint_options.other_runner = args.flags.count("other-runner") > 0;
  // A database that was asked for but cannot be reached is an error, never
  // a silent fallback to the worst case; exit 2 (not ExitCodeFor's 1, which
  // lint gives to "unsafe as written").
  auto fail = [&args](const absl::Status& s) {
    int code = ExitCodeFor(s);
    return Fail(args, s, code == 1 ? 2 : code);
  };
  const bool database = LintWithDatabase(args);
  std::unique_ptr<Driver> driver;
  if (database) {
    absl::StatusOr<std::unique_ptr<Driver>> d = Driver::Connect(Dsn(args), options);
    if (!d.ok()) return fail(d.status());
    driver = *std::move(d);
  }
  std::vector<LintReport> reports;
  for (const auto& [path, sql] : files) {
    absl::StatusOr<LintReport> r =
        driver ? driver->Lint(sql, path, lint_options) : LintSql(sql, path, lint_options);
    if (!r.ok()) {
      absl::Status s = r.status();
      // The message names the file (the origin) with the line and column.
      if (!absl::StartsWith(s.message(), path)) {
        absl::Status named(s.code(), absl::StrCat(path, ": ", s.message()));
        s.ForEachPayload([&named](absl::string_view url, const absl::Cord& p) { named.SetPayload(url, p); });
        s = named;
      }
      return fail(s);
    }
    reports.push_back(*std::move(r));
  }
  bool unsafe = false;
  for (const LintReport& r : reports) unsafe = unsafe || r.unsafe;
  if (args.json) {
    std::vector<std::string> objects;
    for (const LintReport& r : reports) objects.push_back(ToJson(r));
    Out() << "{\"files\":[" << absl::StrJoin(objects, ",") << "],\"unsafe\":" << (unsafe ? "true" : "false")
              << ",\"database\":" << (database ? "true" : "false") << "}" << std::endl;
  } else {
    Out() << LintText(reports, database) << std::flush;
  }
  return unsafe ? 1 : 0;
}

// A .sql file's migration name: its file name without the extension.
std::string SqlFileName(const std::string& path) {
  return std::filesystem::path(path).stem().string();
}

// `pgshift convert FILE.sql`: the migration JSON, exit 0; 2 when a
// statement is refused or the file cannot be read or parsed.
int Convert(const Args& args, const Options& options) {
  const std::string& path = args.positional[0];
  absl::StatusOr<std::string> text = ReadSqlFile(path);
  if (!text.ok()) return Fail(args, text.status(), 2);
  auto fail = [&args](const absl::Status& s) {
    int code = ExitCodeFor(s);
    return Fail(args, s, code == 1 ? 2 : code);
  };
  absl::StatusOr<v1::Migration> m;
  if (LintWithDatabase(args)) {
    absl::StatusOr<std::unique_ptr<Driver>> d = Driver::Connect(Dsn(args), options);
    if (!d.ok()) return fail(d.status());
    m = (*d)->ConvertSql(*text, path, SqlFileName(path));
  } else {
    m = ConvertSql(*text, path, SqlFileName(path));
  }
  if (!m.ok()) return fail(m.status());
  Out() << MigrationFileJson(*m) << std::endl;
  return 0;
}

bool IsDirectory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

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
    // The arguments did not parse, but a --json among them still asks for
    // one JSON object on stdout.
    Args partial;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      partial.json |= a == "--json" || a == "--json=true";
    }
    return Fail(partial, parsed.status(), 2);
  }
  Args args = *parsed;
  if (args.flags.count("help") || args.command == "help") {
    std::cout << Usage();
    return 0;
  }
  if (args.flags.count("version") || args.command == "version") {
    std::cout << "pgshift 0.1.0" << std::endl;
    return 0;
  }
  if (args.command.empty()) {
    if (args.json) return Fail(args, absl::InvalidArgumentError("no command given; see pgshift --help"), 2);
    std::cerr << Usage();
    return 2;
  }
  static const std::vector<std::string> commands = {"init",   "plan",  "register", "advance", "rollback",
                                                    "status", "check", "pause",    "resume",
                                                    "migrate", "baseline", "declare", "withdraw",
                                                    "lint", "convert"};
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
  // A .sql file is converted once connected (the catalog decides some
  // statements); its syntax is checked now.
  std::optional<std::string> sql_text;
  if (cmd == "plan" || cmd == "register") {
    usage = Need(args, 1, "one migration FILE");
    if (usage.ok() && absl::EndsWith(args.positional[0], ".sql")) {
      absl::StatusOr<std::string> text = ReadSqlFile(args.positional[0]);
      if (!text.ok()) return Fail(args, text.status(), 2);
      sql_text = *std::move(text);
    } else if (usage.ok()) {
      absl::StatusOr<v1::Migration> m = LoadMigrationFile(args.positional[0]);
      if (!m.ok()) return Fail(args, m.status(), 2);
      spec = *m;
    }
  }
  if (cmd == "convert") usage = Need(args, 1, "one FILE.sql");
  if (cmd == "advance" || cmd == "rollback" || cmd == "pause" || cmd == "resume") {
    usage = Need(args, 1, "one migration NAME");
  }
  if (cmd == "status" && args.positional.size() > 1) usage = Need(args, 1, "at most one NAME or DIR");
  if (cmd == "migrate") usage = Need(args, 1, "one migration directory DIR");
  if (cmd == "baseline") {
    usage = Need(args, 1, "one migration directory DIR and --through NAME");
    if (usage.ok() && !args.flags.count("through")) {
      usage = absl::InvalidArgumentError("`baseline` needs --through NAME: the last file to record as applied");
    }
  }
  for (const char* flag : {"contract", "allow-out-of-order", "no-wait"}) {
    if (usage.ok() && args.flags.count(flag) && cmd != "migrate") {
      usage = absl::InvalidArgumentError(absl::StrCat("--", flag, " goes with migrate"));
    }
  }
  if (cmd == "lint" && args.positional.empty()) {
    usage = absl::InvalidArgumentError("`lint` takes one or more FILE.sql; see pgshift --help");
  }
  if (usage.ok() && args.flags.count("other-runner") && cmd != "lint") {
    usage = absl::InvalidArgumentError("--other-runner goes with lint");
  }
  if (usage.ok() && args.flags.count("no-db") && cmd != "lint" && cmd != "convert") {
    usage = absl::InvalidArgumentError("--no-db goes with lint and convert");
  }
  if (usage.ok() && args.flags.count("through") && cmd != "baseline") {
    usage = absl::InvalidArgumentError("--through goes with baseline");
  }
  // (--allow-out-of-order is accepted with --contract, which needs no leave:
  // it stops at the first pending file, in order or not.)
  if (usage.ok() && cmd == "migrate" && args.flags.count("contract") && args.flags.count("to")) {
    usage = absl::InvalidArgumentError(
        "--to does not go with --contract: migrate --contract takes migrations from switched to contracted");
  }
  if (cmd == "check") {
    usage = Need(args, 1, "one migration NAME and --at-least PHASE");
    if (usage.ok() && !args.flags.count("at-least")) {
      usage = absl::InvalidArgumentError("`check` needs --at-least PHASE");
    }
  }
  if (usage.ok() && cmd == "declare") {
    usage = Need(args, 1, "one migration NAME, --shape old|new and --instance-id ID");
    if (usage.ok() && !args.flags.count("shape")) {
      usage = absl::InvalidArgumentError(
          "`declare` needs --shape old|new: the shape of the migration the instance needs");
    }
  }
  if (usage.ok() && cmd == "withdraw") usage = Need(args, 1, "one migration NAME and --instance-id ID");
  if (usage.ok() && (cmd == "declare" || cmd == "withdraw")) {
    if (!args.flags.count("instance-id") || args.flags.at("instance-id").empty()) {
      usage = absl::InvalidArgumentError(absl::StrCat(
          "`", cmd, "` needs --instance-id ID: the name the application instance declares itself "
          "under (the same for every refresh and for withdraw)"));
    }
  }
  for (const char* flag : {"shape", "ttl", "description"}) {
    if (usage.ok() && args.flags.count(flag) && cmd != "declare") {
      usage = absl::InvalidArgumentError(absl::StrCat("--", flag, " goes with declare"));
    }
  }
  if (usage.ok() && args.flags.count("instance-id") && cmd != "declare" && cmd != "withdraw") {
    usage = absl::InvalidArgumentError("--instance-id goes with declare and withdraw");
  }
  if (!usage.ok()) return Fail(args, usage, 2);
  std::optional<Shape> shape;
  absl::Duration ttl = InstanceOptions().ttl;
  if (cmd == "declare") {
    const std::string& text = args.flags.at("shape");
    if (text == ShapeName(Shape::kOld)) shape = Shape::kOld;
    if (text == ShapeName(Shape::kNew)) shape = Shape::kNew;
    if (!shape) {
      return Fail(args, absl::InvalidArgumentError(absl::StrCat(
                            "--shape: \"", text, "\" is not old or new")), 2);
    }
    // The same text form as every duration option (SetOption reads them
    // with absl::ParseDuration too; there is no public parser of its own).
    if (args.flags.count("ttl")) {
      const std::string& value = args.flags.at("ttl");
      if (!absl::ParseDuration(value, &ttl)) {
        return Fail(args, absl::InvalidArgumentError(absl::StrCat(
                              "--ttl: \"", value, "\" is not a duration like 500ms, 1.5s or 2m")), 2);
      }
      if (ttl <= absl::ZeroDuration()) {
        return Fail(args, absl::InvalidArgumentError(absl::StrCat(
                              "--ttl must be positive, got ", absl::FormatDuration(ttl))), 2);
      }
    }
  }
  if (args.flags.count("to")) {
    if (cmd != "advance" && cmd != "migrate") {
      return Fail(args, absl::InvalidArgumentError("--to goes with advance and migrate"), 2);
    }
    absl::StatusOr<Phase> p = ParsePhase(args.flags.at("to"));
    if (!p.ok()) return Fail(args, p.status(), 2);
    to = *p;
  }
  if (args.flags.count("at-least")) {
    absl::StatusOr<Phase> p = ParsePhase(args.flags.at("at-least"));
    if (!p.ok()) return Fail(args, p.status(), 2);
    at_least = *p;
  }

  // lint and convert read files and, when a database is given, the
  // catalog: no init.
  if (cmd == "lint") return Lint(args, *options);
  if (cmd == "convert") return Convert(args, *options);

  const std::string dsn = Dsn(args);
  if (cmd == "check") {
    absl::Status s = RequirePhase(dsn, args.positional[0], *at_least, options->control_schema);
    bool reached = s.ok();
    if (!reached && !absl::IsFailedPrecondition(s) && !absl::IsNotFound(s)) return Fail(args, s);
    if (args.json) {
      Out() << CheckJson(args.positional[0], *at_least, s) << std::endl;
    } else {
      Out() << (reached ? absl::StrCat(args.positional[0], " has reached ", PhaseName(*at_least))
                            : std::string(s.message()))
                << std::endl;
    }
    return reached ? 0 : 3;
  }

  if (cmd == "declare") {
    // One round trip, as for the library (and its InstanceRegistration).
    const std::string& name = args.positional[0];
    InstanceOptions io;
    io.instance_id = args.flags.at("instance-id");
    io.description = args.flags.count("description") ? args.flags.at("description") : "";
    io.ttl = ttl;
    io.control_schema = options->control_schema;
    absl::Status s = DeclareInstance(dsn, name, *shape, io);
    if (!s.ok()) return Fail(args, s);
    // The server computes the expiry with its own clock (now() + ttl); the
    // time printed is this host's estimate of it.
    const std::string until =
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() + ttl, absl::UTCTimeZone());
    if (args.json) {
      Out() << OkJson({{"name", name},
                           {"instance_id", io.instance_id},
                           {"shape", std::string(ShapeName(*shape))},
                           {"description", io.description},
                           {"ttl", absl::FormatDuration(ttl)},
                           {"expires_at", until}})
                << std::endl;
    } else {
      Out() << name << ": instance \"" << io.instance_id << "\" declared it needs the "
                << ShapeName(*shape) << " shape, live for " << absl::FormatDuration(ttl)
                << " (until about " << until << ") unless declared again" << std::endl;
    }
    return 0;
  }
  if (cmd == "withdraw") {
    const std::string& name = args.positional[0];
    const std::string& id = args.flags.at("instance-id");
    absl::Status s = WithdrawInstance(dsn, name, id, options->control_schema);
    if (!s.ok()) return Fail(args, s);
    if (args.json) {
      Out() << OkJson({{"name", name}, {"instance_id", id}}) << std::endl;
    } else {
      Out() << name << ": instance \"" << id << "\" withdrawn (it no longer counts for contract)"
                << std::endl;
    }
    return 0;
  }

  absl::StatusOr<std::unique_ptr<Driver>> driver = Driver::Connect(dsn, *options);
  if (!driver.ok()) return Fail(args, driver.status());
  Driver& d = **driver;

  if (cmd == "init") {
    absl::Status s = d.Init();
    if (!s.ok()) return Fail(args, s);
    if (args.json) {
      Out() << OkJson({{"control_schema", options->control_schema}}) << std::endl;
    } else {
      Out() << "control schema \"" << options->control_schema << "\" is ready" << std::endl;
    }
    return 0;
  }
  if (cmd == "pause" || cmd == "resume") {
    const std::string& name = args.positional[0];
    absl::Status s = cmd == "pause" ? d.Pause(name) : d.Resume(name);
    if (!s.ok()) return Fail(args, s);
    if (args.json) {
      absl::StatusOr<MigrationStatus> now = d.Status(name);
      if (!now.ok()) return Fail(args, now.status());
      Out() << ToJson(*now) << std::endl;
    } else {
      Out() << (cmd == "pause" ? absl::StrCat(name, ": pause requested; a running backfill stops "
                                                        "between batches and waits (pgshift resume ",
                                                  name, " lets it go on)")
                                   : absl::StrCat(name, ": resumed"))
                << std::endl;
    }
    return 0;
  }
  if (cmd == "migrate") {
    MigrateOptions mo;
    mo.to = to;
    mo.contract = args.flags.count("contract") > 0;
    mo.allow_out_of_order = args.flags.count("allow-out-of-order") > 0;
    mo.wait = args.flags.count("no-wait") == 0;
    absl::StatusOr<MigrateReport> r = d.Migrate(args.positional[0], mo);
    if (!r.ok()) return Fail(args, r.status());
    Out() << (args.json ? ToJson(*r) : MigrateText(*r, mo.contract)) << std::endl;
    return 0;
  }
  if (cmd == "baseline") {
    absl::StatusOr<DirectoryReport> r = d.Baseline(args.positional[0], args.flags.at("through"));
    if (!r.ok()) return Fail(args, r.status());
    Out() << (args.json ? ToJson(*r) : DirectoryText(*r)) << std::endl;
    return 0;
  }
  if (cmd == "status" && args.positional.size() == 1 && IsDirectory(args.positional[0])) {
    absl::StatusOr<DirectoryReport> r = d.DirectoryStatus(args.positional[0]);
    if (!r.ok()) return Fail(args, r.status());
    Out() << (args.json ? ToJson(*r) : DirectoryText(*r)) << std::endl;
    return 0;
  }
  if (sql_text) {
    const std::string& path = args.positional[0];
    absl::StatusOr<v1::Migration> m = d.ConvertSql(*sql_text, path, SqlFileName(path));
    if (!m.ok()) return Fail(args, m.status(), 2);
    spec = *std::move(m);
  }
  if (cmd == "plan") {
    absl::StatusOr<Plan> plan = d.PlanMigration(*spec);
    if (!plan.ok()) return Fail(args, plan.status());
    Out() << (args.json ? ToJson(*plan) : PlanText(*plan)) << std::endl;
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
        Out() << ToJson(*all) << std::endl;
      } else if (all->empty()) {
        Out() << "no migrations registered" << std::endl;
      } else {
        for (const auto& m : *all) Out() << StatusText(m) << std::endl;
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
    Out() << ToJson(*result) << std::endl;
  } else {
    Out() << StatusText(*result) << std::endl;
  }
  return 0;
}

}  // namespace
}  // namespace pgshift::cli

int main(int argc, char** argv) { return pgshift::cli::Run(argc, argv); }
