// End-to-end benchmark of pgshift against a real PostgreSQL, measured side by
// side in one run (docs/performance.md, "Against the targets"):
//
//   1. backfill rows/s versus one plain UPDATE of the same rows with the same
//      expression, at 100k and 1M rows (10M with --large), and the driver's
//      peak memory (max RSS of the `pgshift advance` process);
//   2. single-row UPDATE and INSERT throughput from several clients with the
//      sync trigger installed versus without;
//   3. application query latency (p50 / p99 / max, longest stall) under a
//      steady multi-client load: with no migration, during a full pgshift
//      migration through every phase, and during the naive
//      ALTER TABLE ... ALTER COLUMN ... TYPE.
//
// Usage:
//   e2e_bench [--dsn DSN] [--out FILE] [--large] [--smoke] [--op OP]
//             [--clients N] [--rate TX_PER_S] [--write-seconds S] [--baseline-seconds S]
//
// Without --dsn it starts its own throwaway cluster (scripts/pgtemp.sh) and
// stops it at the end; with --smoke and no --dsn it uses PGSHIFT_TEST_DSN
// when set. Everything happens in a fresh database that is dropped at the
// end. Prints a table and writes the figures as JSON (--out, default
// e2e_bench.json).
#include <libpq-fe.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/ops/names.h"
#include "lib/pg/connection.h"
#include "lib/util/json.h"
#include "pgshift/pgshift.h"

namespace pgshift::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "e2e_bench: " << what << std::endl;
  std::exit(1);
}

void Check(const absl::Status& s, const std::string& what) {
  if (!s.ok()) Die(absl::StrCat(what, ": ", s.ToString()));
}

template <typename T>
T Check(absl::StatusOr<T> s, const std::string& what) {
  if (!s.ok()) Die(absl::StrCat(what, ": ", s.status().ToString()));
  return std::move(*s);
}

void Log(const std::string& line) {
  std::cerr << "[e2e_bench] " << line << std::endl;
}

// ---- configuration --------------------------------------------------------------

struct Config {
  std::string dsn;
  std::string out = "e2e_bench.json";
  std::string cli = PGSHIFT_CLI;
  std::string op = "auto";  // rename_column, change_type, or auto (change_type when available)
  bool smoke = false;
  bool large = false;
  std::vector<int64_t> sizes = {100000, 1000000};
  int clients = 4;
  int write_rows = 100000;
  double write_seconds = 3;  // per round; rounds alternate without/with the trigger
  int write_rounds = 4;
  int latency_rows = 1000000;
  double rate = 100;             // transactions per second per client (UPDATE + SELECT)
  double baseline_seconds = 20;
  std::string command_line;
  std::string only;  // "", "backfill", "writes" or "latency": run one section (for tuning)
  // Backfill settings of the migration run under load (section 3); negative:
  // pgshift's defaults.
  double batch_time_ms = -1, batch_delay_ms = -1;
  std::string latency_guard;  // --latency-guard of the default pgshift run; "": the default
  bool quick_latency = false;  // section 3: only the baseline and the default pgshift run (tuning)
  std::string svg;  // --svg FILE: draw section 3's latency over time (gnuplot)
};

Config ParseArgs(int argc, char** argv) {
  Config c;
  for (int i = 0; i < argc; ++i) absl::StrAppend(&c.command_line, i ? " " : "", argv[i]);
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) Die(absl::StrCat(argv[i], " needs a value"));
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dsn") c.dsn = value(i);
    else if (a == "--out") c.out = value(i);
    else if (a == "--cli") c.cli = value(i);
    else if (a == "--op") c.op = value(i);
    else if (a == "--only") c.only = value(i);
    else if (a == "--batch-time-ms") c.batch_time_ms = std::stod(value(i));
    else if (a == "--batch-delay-ms") c.batch_delay_ms = std::stod(value(i));
    else if (a == "--sizes") {
      c.sizes.clear();
      for (absl::string_view n : absl::StrSplit(value(i), ',')) {
        int64_t v = 0;
        if (!absl::SimpleAtoi(n, &v) || v <= 0) Die("--sizes takes row counts like 100000,1000000");
        c.sizes.push_back(v);
      }
    }
    else if (a == "--write-rounds") c.write_rounds = std::stoi(value(i));
    else if (a == "--large") c.large = true;
    else if (a == "--smoke") c.smoke = true;
    else if (a == "--clients") c.clients = std::stoi(value(i));
    else if (a == "--rate") c.rate = std::stod(value(i));
    else if (a == "--write-seconds") c.write_seconds = std::stod(value(i));
    else if (a == "--baseline-seconds") c.baseline_seconds = std::stod(value(i));
    else if (a == "--latency-rows") c.latency_rows = std::stoi(value(i));
    else if (a == "--latency-guard") c.latency_guard = value(i);
    else if (a == "--quick-latency") c.quick_latency = true;
    else if (a == "--svg") c.svg = value(i);
    else if (a == "--help" || a == "-h") {
      std::cout << "usage: e2e_bench [--dsn DSN] [--out FILE] [--large] [--smoke] "
                   "[--op rename_column|change_type|auto] [--clients N] [--rate TX_PER_S] "
                   "[--write-seconds S] [--write-rounds N] [--baseline-seconds S] "
                   "[--only backfill|writes|latency] [--sizes N,N,...] [--batch-time-ms MS] "
                   "[--batch-delay-ms MS] [--latency-rows N] [--latency-guard R|off] "
                   "[--quick-latency] [--svg FILE]\n";
      std::exit(0);
    } else {
      Die(absl::StrCat("unknown argument ", a, "; see --help"));
    }
  }
  if (c.large) c.sizes.push_back(10000000);
  if (c.smoke) {
    c.sizes = {2000, 8000};
    c.write_rows = 2000;
    c.write_seconds = 0.5;
    c.write_rounds = 1;
    c.latency_rows = 4000;
    c.baseline_seconds = 1;
    c.rate = 50;
    if (c.dsn.empty()) {
      if (const char* env = std::getenv("PGSHIFT_TEST_DSN"); env && *env) c.dsn = env;
    }
  }
  return c;
}

// ---- server -------------------------------------------------------------------

// A throwaway cluster started with scripts/pgtemp.sh, stopped at exit.
class TempCluster {
 public:
  std::string Start() {
    char tmpl[] = "/tmp/pgshift-bench.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Die("mkdtemp failed");
    dir_ = tmpl;
    std::string cmd = absl::StrCat("PGTEMP_WATCH_PID=", getpid(), " bash '", PGSHIFT_SOURCE_DIR,
                                   "/scripts/pgtemp.sh' start '", dir_, "'");
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) Die("cannot run scripts/pgtemp.sh");
    char buf[512];
    std::string out;
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    if (pclose(p) != 0) Die("scripts/pgtemp.sh start failed");
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  }
  ~TempCluster() {
    if (dir_.empty()) return;
    std::string cmd = absl::StrCat("bash '", PGSHIFT_SOURCE_DIR, "/scripts/pgtemp.sh' stop '", dir_,
                                   "' >/dev/null 2>&1");
    if (std::system(cmd.c_str()) != 0) std::cerr << "e2e_bench: could not stop " << dir_ << "\n";
  }

 private:
  std::string dir_;
};

// `dsn` with its database replaced by `dbname` (works for URIs too).
std::string WithDatabase(const std::string& dsn, const std::string& dbname) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (opts == nullptr) {
    if (err) PQfreemem(err);
    Die("cannot parse the connection string");
  }
  auto quote = [](const std::string& v) {
    std::string q = "'";
    for (char ch : v) {
      if (ch == '\'' || ch == '\\') q.push_back('\\');
      q.push_back(ch);
    }
    return q + "'";
  };
  std::vector<std::string> parts;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || std::string(o->keyword) == "dbname") continue;
    parts.push_back(absl::StrCat(o->keyword, "=", quote(o->val)));
  }
  PQconninfoFree(opts);
  parts.push_back(absl::StrCat("dbname=", quote(dbname)));
  return absl::StrJoin(parts, " ");
}

std::unique_ptr<pg::Connection> Connect(const std::string& dsn) {
  return Check(pg::Connection::Open(dsn, "e2e_bench"), "connect");
}

// ---- the migration under test ---------------------------------------------------

// What pgshift runs and what the naive equivalents are.
struct OpUnderTest {
  std::string kind;        // rename_column or change_type
  std::string new_type;    // type of the new column
  std::string expr;        // the backfill's expression, for the plain UPDATE
  std::string naive_ddl;   // ALTER TABLE ... (with {T} for the table)

  std::string Spec(const std::string& name, const std::string& table) const {
    std::string op;
    if (kind == "rename_column") {
      op = absl::StrCat(R"({"rename_column": {"table": ")", table, R"(", "from": "a", "to": "a_new"}})");
    } else {
      op = absl::StrCat(R"({"change_type": {"table": ")", table,
                        R"(", "column": "a", "new_column": "a_new", "type": "bigint", )",
                        R"("up": "a::bigint", "down": "a_new::integer"}})");
    }
    return absl::StrCat(R"({"name": ")", name, R"(", "schema": "public", "operations": [)", op, "]}");
  }
};

OpUnderTest RenameOp() { return {"rename_column", "integer", "a", ""}; }
OpUnderTest ChangeTypeOp() { return {"change_type", "bigint", "a::bigint", ""}; }

v1::Migration Spec(const OpUnderTest& op, const std::string& name, const std::string& table) {
  return Check(ParseMigrationJson(op.Spec(name, table)), "migration spec");
}

// ---- tables --------------------------------------------------------------------------

// `autovacuum`: false for the backfill-versus-UPDATE comparison. Autovacuum
// would start on the pgshift table halfway through its backfill (its batches
// commit as they go) and compete for the CPU, but never during the single
// UPDATE (which commits at the end); the comparison is of the two ways of
// writing the same rows.
void CreateTable(pg::Connection& c, const std::string& table, int64_t rows, bool index_on_a,
                 bool autovacuum = true) {
  Check(c.Run(absl::StrCat("DROP TABLE IF EXISTS ", table)), "drop");
  Check(c.Run(absl::StrCat("CREATE TABLE ", table,
                           " (id bigint PRIMARY KEY, a integer NOT NULL, b text NOT NULL, "
                           "c timestamptz NOT NULL DEFAULT now())",
                           autovacuum ? "" : " WITH (autovacuum_enabled = off)")),
        "create");
  // Insert in chunks so that a 10M-row load does not need one huge transaction.
  const int64_t chunk = 1000000;
  for (int64_t lo = 1; lo <= rows; lo += chunk) {
    int64_t hi = std::min(rows, lo + chunk - 1);
    Check(c.Run(absl::StrCat("INSERT INTO ", table,
                             " (id, a, b) SELECT g, (g * 7919::bigint) % 100000, md5(g::text) "
                             "FROM generate_series(",
                             lo, ", ", hi, ") g")),
          "load");
  }
  if (index_on_a) Check(c.Run(absl::StrCat("CREATE INDEX ON ", table, " (a)")), "index");
  Check(c.Run(absl::StrCat("VACUUM ANALYZE ", table)), "vacuum");
}

// ---- the anchor: a pgroll-equivalent ---------------------------------------------------
//
// Re-created from pgroll's published design (design §9), on a table made by
// CreateTable, for the change a -> a_new of `op`: a needs-backfill flag
// column (DEFAULT true), and two BEFORE INSERT OR UPDATE row triggers without
// a WHEN clause, "up" and "down", each a PL/pgSQL function that copies every
// column of NEW into a %TYPE variable, reads search_path to tell an old
// application's session from a new one's, and in its direction computes the
// other column and clears the flag. Sessions here have the default
// search_path, so they are old applications: "up" works, "down" looks and
// does nothing, as in pgroll. Its backfill updates the key to itself, 1000
// rows at a time, in key order from the last key done, to fire the triggers.

void InstallPgrollEquivalent(pg::Connection& c, const std::string& table, const OpUnderTest& op) {
  Check(c.Run(absl::StrCat("ALTER TABLE ", table, " ADD COLUMN a_new ", op.new_type,
                           ", ADD COLUMN needs_backfill boolean DEFAULT true")),
        "pgroll-equivalent columns");
  const std::vector<std::string> columns = {"id", "a", "b", "c", "a_new", "needs_backfill"};
  const std::string down = op.kind == "rename_column" ? "a_new" : "a_new::integer";
  for (const auto& [dir, test, set] :
       {std::tuple<std::string, std::string, std::string>{"up", "<>", absl::StrCat("a_new = ", op.expr)},
        {"down", "=", absl::StrCat("a = ", down)}}) {
    std::string declare;
    for (const std::string& col : columns) {
      absl::StrAppend(&declare, "  ", col, " public.", table, ".", col, "%TYPE := NEW.", col, ";\n");
    }
    const std::string fn = absl::StrCat(table, "_", dir);
    Check(c.Run(absl::StrCat(
              "CREATE FUNCTION ", fn, "() RETURNS trigger LANGUAGE plpgsql AS $f$\nDECLARE\n", declare,
              "  latest_schema text;\n  search_path text;\nBEGIN\n"
              "  SELECT current_setting INTO search_path FROM current_setting('search_path');\n"
              "  IF search_path ", test, " 'public_v2' THEN\n    NEW.", set,
              ";\n    NEW.needs_backfill = false;\n  END IF;\n  RETURN NEW;\nEND $f$")),
          "pgroll-equivalent function");
    Check(c.Run(absl::StrCat("CREATE TRIGGER ", fn, " BEFORE INSERT OR UPDATE ON ", table,
                             " FOR EACH ROW EXECUTE FUNCTION ", fn, "()")),
          "pgroll-equivalent trigger");
  }
}

// Its backfill, batch after batch until no row is left; returns the rows.
int64_t PgrollEquivalentBackfill(pg::Connection& c, const std::string& table) {
  const std::string sql = absl::StrCat(
      "WITH batch AS (SELECT id FROM ", table, " WHERE needs_backfill = true AND id > $1 ORDER BY id "
      "LIMIT 1000 FOR NO KEY UPDATE), done AS (UPDATE ", table, " t SET id = t.id FROM batch "
      "WHERE t.id = batch.id RETURNING t.id) SELECT max(id), count(*) FROM done");
  std::string last = "0";
  int64_t rows = 0;
  while (true) {
    pg::Result r = Check(c.Exec(sql, {last}), "pgroll-equivalent batch");
    if (r.IsNull(0, 0)) return rows;
    last = r.Get(0, 0);
    rows += r.GetInt(0, 1);
  }
}

// ---- 1. backfill vs plain UPDATE ----------------------------------------------------

struct BackfillResult {
  int64_t rows = 0;
  double plain_seconds = 0;
  // The same single UPDATE on a table that has pgshift's sync trigger
  // installed (its WHEN clause skips the rows, but PostgreSQL still locks
  // each row before any BEFORE UPDATE row trigger): what the trigger's mere
  // presence costs, apart from batching.
  double trigger_plain_seconds = 0;
  double pgshift_seconds = 0;     // the backfilled step as recorded in pgshift.history
  double pgshift_wall_seconds = 0;  // the whole `pgshift advance` process
  double pgroll_seconds = 0;      // the pgroll-equivalent's backfill
  long driver_max_rss_kb = 0;
  double pgroll_rate() const { return rows / pgroll_seconds; }
  double pgroll_ratio() const { return pgroll_rate() / plain_rate(); }
  double plain_rate() const { return rows / plain_seconds; }
  double trigger_plain_rate() const { return rows / trigger_plain_seconds; }
  double pgshift_rate() const { return rows / pgshift_seconds; }
  double ratio() const { return pgshift_rate() / plain_rate(); }
};

// Runs the CLI; returns its exit code and peak RSS.
int RunCli(const Config& cfg, const std::string& dsn, const std::vector<std::string>& args,
           long* max_rss_kb, double* wall) {
  auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    FILE* out = freopen("/dev/null", "w", stdout);
    FILE* err = freopen("/dev/null", "w", stderr);
    (void)out;
    (void)err;
    std::vector<std::string> all = {cfg.cli, "--dsn", dsn};
    for (const auto& a : args) all.push_back(a);
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(cfg.cli.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  if (wall) *wall = Seconds(Clock::now() - t0);
  if (max_rss_kb) *max_rss_kb = ru.ru_maxrss;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// One measurement: fresh identical tables; the plain UPDATE on one, the same
// UPDATE on one with the sync trigger installed, and the pgshift backfill on
// a third, in an order that rotates with `rep`.
BackfillResult BenchBackfillOnce(const Config& cfg, const std::string& dsn, const OpUnderTest& op,
                                 int64_t rows, int rep) {
  auto c = Connect(dsn);
  const std::string plain = absl::StrCat("bf_plain_", rows), trig = absl::StrCat("bf_trig_", rows),
                    shift = absl::StrCat("bf_shift_", rows), pgroll = absl::StrCat("bf_pgroll_", rows);
  CreateTable(*c, plain, rows, false, false);
  CreateTable(*c, trig, rows, false, false);
  CreateTable(*c, shift, rows, false, false);
  CreateTable(*c, pgroll, rows, false, false);
  InstallPgrollEquivalent(*c, pgroll, op);
  BackfillResult r;
  r.rows = rows;
  const std::string name = absl::StrCat("bf_", rows, "_", rep), tname = absl::StrCat(name, "_t");
  {
    auto d = Check(Driver::Connect(dsn, Options()), "driver");
    Check(d->Init(), "init");
    for (const auto& [n, t] : {std::pair{name, shift}, std::pair{tname, trig}}) {
      Check(d->Register(Spec(op, n, t)).status(), "register");
      Check(d->Advance(n, Phase::kTriggerInstalled).status(), "advance to trigger_installed");
    }
  }
  Check(c->Run(absl::StrCat("ALTER TABLE ", plain, " ADD COLUMN a_new ", op.new_type)), "add column");

  auto run_plain = [&](const std::string& table, double* seconds) {
    // The same new column, the same expression, all rows in one statement
    // (as the backfill, it tells the trigger of `tname`'s operation, by its
    // prefix, that it computes the new column itself).
    Check(c->Run("CHECKPOINT"), "checkpoint");
    Check(c->Run("SELECT set_config('pgshift.backfill', $1, false)", {ops::Names(tname, 0).prefix()}),
          "set");
    auto t0 = Clock::now();
    Check(c->Run(absl::StrCat("UPDATE ", table, " SET a_new = ", op.expr)), "plain update");
    *seconds = Seconds(Clock::now() - t0);
    Check(c->Run("RESET pgshift.backfill"), "reset");
  };
  auto run_pgshift = [&]() {
    // Through the CLI, as a deploy runs it.
    Check(c->Run("CHECKPOINT"), "checkpoint");
    int rc = RunCli(cfg, dsn, {"advance", name, "--to", "backfilled"}, &r.driver_max_rss_kb,
                    &r.pgshift_wall_seconds);
    if (rc != 0) Die(absl::StrCat("pgshift advance ", name, " exited ", rc));
    auto h = Check(c->Exec("SELECT extract(epoch FROM finished_at - started_at)::float8 FROM "
                           "pgshift.history WHERE migration = $1 AND step = 'backfilled' AND ok",
                           {name}),
                   "history");
    if (h.rows() != 1 || !absl::SimpleAtod(h.Get(0, 0), &r.pgshift_seconds)) Die("no history row");
  };
  auto run_pgroll = [&]() {
    Check(c->Run("CHECKPOINT"), "checkpoint");
    auto t0 = Clock::now();
    const int64_t done = PgrollEquivalentBackfill(*c, pgroll);
    r.pgroll_seconds = Seconds(Clock::now() - t0);
    if (done != rows) Die(absl::StrCat(pgroll, ": the pgroll-equivalent backfilled ", done, " rows"));
  };
  std::vector<std::function<void()>> runs = {
      [&]() { run_plain(plain, &r.plain_seconds); },
      [&]() { run_plain(trig, &r.trigger_plain_seconds); },
      run_pgshift, run_pgroll};
  std::rotate(runs.begin(), runs.begin() + rep % 4, runs.end());
  for (auto& run : runs) run();
  for (const std::string& t : {shift, trig, pgroll}) {
    auto bad = Check(c->Exec(absl::StrCat("SELECT count(*) FROM ", t, " WHERE a_new IS DISTINCT FROM ",
                                          op.expr)),
                     "verify");
    if (bad.GetInt(0, 0) != 0) Die(absl::StrCat(t, ": rows left behind"));
  }
  Log(absl::StrFormat("backfill %d rows (rep %d): plain UPDATE %.2fs (%.0f rows/s), with trigger "
                      "%.2fs (%.0f rows/s), pgshift %.2fs (%.0f rows/s), ratio %.2f, driver max RSS "
                      "%ld kB; pgroll-equivalent %.2fs (ratio %.2f)",
                      rows, rep, r.plain_seconds, r.plain_rate(), r.trigger_plain_seconds,
                      r.trigger_plain_rate(), r.pgshift_seconds, r.pgshift_rate(), r.ratio(),
                      r.driver_max_rss_kb, r.pgroll_seconds, r.pgroll_ratio()));
  {
    auto d = Check(Driver::Connect(dsn, Options()), "driver");
    Check(d->Rollback(name).status(), "rollback");
    Check(d->Rollback(tname).status(), "rollback");
  }
  for (const std::string& t : {plain, trig, shift, pgroll}) {
    Check(c->Run(absl::StrCat("DROP TABLE ", t)), "drop");
  }
  for (const char* dir : {"up", "down"}) {
    Check(c->Run(absl::StrCat("DROP FUNCTION ", pgroll, "_", dir, "()")), "drop");
  }
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Repeats the measurement with rotating order (the machine's background
// load drifts) and keeps the medians; the driver's RSS is the largest seen.
BackfillResult BenchBackfill(const Config& cfg, const std::string& dsn, const OpUnderTest& op,
                             int64_t rows, std::vector<double>* ratios) {
  const int reps = cfg.smoke ? 1 : rows <= 1000000 ? 3 : 1;
  Log(absl::StrCat("backfill: ", rows, " rows, ", reps, " repetition(s)"));
  std::vector<double> plain, trig, shift, wall, pgroll;
  BackfillResult out;
  out.rows = rows;
  for (int rep = 0; rep < reps; ++rep) {
    BackfillResult r = BenchBackfillOnce(cfg, dsn, op, rows, rep);
    plain.push_back(r.plain_seconds);
    trig.push_back(r.trigger_plain_seconds);
    shift.push_back(r.pgshift_seconds);
    wall.push_back(r.pgshift_wall_seconds);
    pgroll.push_back(r.pgroll_seconds);
    ratios->push_back(r.ratio());
    out.driver_max_rss_kb = std::max(out.driver_max_rss_kb, r.driver_max_rss_kb);
  }
  out.plain_seconds = Median(plain);
  out.trigger_plain_seconds = Median(trig);
  out.pgshift_seconds = Median(shift);
  out.pgshift_wall_seconds = Median(wall);
  out.pgroll_seconds = Median(pgroll);
  return out;
}

// ---- clients --------------------------------------------------------------------------

// One application connection with prepared statements (raw libpq: the
// benchmark measures the server, not a wrapper).
class Client {
 public:
  explicit Client(const std::string& dsn) {
    conn_ = PQconnectdb(dsn.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) Die(absl::StrCat("client connect: ", PQerrorMessage(conn_)));
  }
  ~Client() { PQfinish(conn_); }
  void Prepare(const std::string& name, const std::string& sql) {
    PGresult* r = PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    std::string err = PQresultErrorMessage(r);
    PQclear(r);
    if (!ok) Die(absl::StrCat("prepare ", sql, ": ", err));
  }
  // True when it succeeded; *error gets the message otherwise.
  bool Exec(const std::string& name, const std::vector<std::string>& params, std::string* error) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    PGresult* r = PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()),
                                 values.data(), nullptr, nullptr, 0);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok && error) *error = PQresultErrorMessage(r);
    PQclear(r);
    return ok;
  }

 private:
  PGconn* conn_;
};

// ---- 2. write throughput ----------------------------------------------------------------

// One write workload's throughput in transactions per second.
// "Interleaved": rounds alternate between the table without the trigger and
// the one with it. "Concurrent": both run at the same time with the same
// number of clients each, so background load on the machine hits both alike
// and the ratio is the ratio of per-write cost.
struct WriteFigures {
  std::string workload;
  bool fires = true;  // the trigger function runs for these writes
  double without = 0, with = 0, without_c = 0, with_c = 0;
  double pgroll = 0, pgroll_c = 0;  // the same writes on the pgroll-equivalent's table
  double ratio() const { return with / without; }
  double ratio_c() const { return with_c / without_c; }
  double pgroll_ratio() const { return pgroll / without; }
  double pgroll_ratio_c() const { return pgroll_c / without_c; }
};

enum class WriteKind { kUpdateSynced, kUpdateOther, kInsert };

// `clients` threads doing single-row writes on `table` until Stop().
class WriteLoad {
 public:
  WriteLoad(const std::string& dsn, const std::string& table, WriteKind kind, int clients,
            int64_t rows, std::atomic<int64_t>* next_id)
      : clients_(clients) {
    for (int i = 0; i < clients; ++i) {
      threads_.emplace_back([=]() {
        Client cl(dsn);
        switch (kind) {
          case WriteKind::kUpdateSynced:
            cl.Prepare("w", absl::StrCat("UPDATE ", table, " SET a = a + 1 WHERE id = $1"));
            break;
          case WriteKind::kUpdateOther:
            cl.Prepare("w", absl::StrCat("UPDATE ", table, " SET c = now() WHERE id = $1"));
            break;
          case WriteKind::kInsert:
            cl.Prepare("w", absl::StrCat("INSERT INTO ", table, " (id, a, b) VALUES ($1, $2, $3)"));
            break;
        }
        std::mt19937_64 rng(1234 + i);
        std::uniform_int_distribution<int64_t> pick(1, rows);
        std::string err;
        ready_++;
        while (!go_.load()) std::this_thread::yield();
        int64_t n = 0;
        while (!stop_.load(std::memory_order_relaxed)) {
          bool ok;
          if (kind == WriteKind::kInsert) {
            int64_t id = next_id->fetch_add(1);
            ok = cl.Exec("w", {std::to_string(id), std::to_string(id % 100000), "inserted row"}, &err);
          } else {
            ok = cl.Exec("w", {std::to_string(pick(rng))}, &err);
          }
          if (!ok) Die(absl::StrCat("write failed: ", err));
          ++n;
        }
        total_ += n;
      });
    }
  }
  // Waits until every client is connected and prepared, then lets them go.
  void Go() {
    while (ready_.load() < clients_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    start_ = Clock::now();
    go_ = true;
  }
  // Transactions per second since Go().
  double Stop() {
    stop_ = true;
    auto end = Clock::now();
    for (auto& t : threads_) t.join();
    return static_cast<double>(total_.load()) / Seconds(end - start_);
  }

 private:
  int clients_;
  std::vector<std::thread> threads_;
  std::atomic<int> ready_{0};
  std::atomic<bool> go_{false}, stop_{false};
  std::atomic<int64_t> total_{0};
  Clock::time_point start_;
};

std::vector<WriteFigures> BenchWrites(const Config& cfg, const std::string& dsn,
                                      const OpUnderTest& op) {
  auto c = Connect(dsn);
  Log(absl::StrCat("writes: loading 3 x ", cfg.write_rows, " rows"));
  CreateTable(*c, "w_plain", cfg.write_rows, false);
  CreateTable(*c, "w_sync", cfg.write_rows, false);
  CreateTable(*c, "w_pgroll", cfg.write_rows, false);
  // The pgroll-equivalent, backfilled (every row rewritten once, as the
  // others), where old applications live until its switch.
  InstallPgrollEquivalent(*c, "w_pgroll", op);
  PgrollEquivalentBackfill(*c, "w_pgroll");
  Check(c->Run("VACUUM ANALYZE w_pgroll"), "vacuum");
  {
    auto d = Check(Driver::Connect(dsn, Options()), "driver");
    Check(d->Init(), "init");
    Check(d->Register(Spec(op, "writes", "w_sync")).status(), "register");
    // Backfilled: the sync trigger is installed and every row is in sync,
    // the state the application lives in until the switch.
    Check(d->Advance("writes", Phase::kBackfilled).status(), "advance");
  }
  // The same column and the same full-table write on the other table, so
  // that both have the same row width and physical layout (every row
  // rewritten once, then vacuumed): the trigger is the only difference.
  Check(c->Run(absl::StrCat("ALTER TABLE w_plain ADD COLUMN a_new ", op.new_type)), "add column");
  Check(c->Run(absl::StrCat("UPDATE w_plain SET a_new = ", op.expr)), "update");
  Check(c->Run("VACUUM ANALYZE w_plain"), "vacuum");
  Check(c->Run("VACUUM ANALYZE w_sync"), "vacuum");
  std::atomic<int64_t> next_plain{cfg.write_rows + 1}, next_sync{cfg.write_rows + 1},
      next_pgroll{cfg.write_rows + 1};
  auto seconds = std::chrono::duration<double>(cfg.write_seconds);
  std::vector<WriteFigures> out;
  for (WriteKind kind : {WriteKind::kUpdateSynced, WriteKind::kUpdateOther, WriteKind::kInsert}) {
    WriteFigures f;
    f.workload = kind == WriteKind::kUpdateSynced  ? "UPDATE a (synced column)"
                 : kind == WriteKind::kUpdateOther ? "UPDATE c (other column)"
                                                   : "INSERT (old app)";
    f.fires = kind != WriteKind::kUpdateOther;
    struct Target {
      const char* table;
      std::atomic<int64_t>* next;
      double* interleaved;
      double* concurrent;
    };
    const std::vector<Target> tables = {{"w_plain", &next_plain, &f.without, &f.without_c},
                                        {"w_sync", &next_sync, &f.with, &f.with_c},
                                        {"w_pgroll", &next_pgroll, &f.pgroll, &f.pgroll_c}};
    for (int round = 0; round < cfg.write_rounds; ++round) {
      // Interleaved, the order rotating between rounds.
      for (size_t k = 0; k < tables.size(); ++k) {
        const Target& t = tables[(k + static_cast<size_t>(round)) % tables.size()];
        WriteLoad load(dsn, t.table, kind, cfg.clients, cfg.write_rows, t.next);
        load.Go();
        std::this_thread::sleep_for(seconds);
        *t.interleaved += load.Stop() / cfg.write_rounds;
      }
      // Concurrent: the three at once.
      std::vector<std::unique_ptr<WriteLoad>> loads;
      for (const Target& t : tables) {
        loads.push_back(std::make_unique<WriteLoad>(dsn, t.table, kind, cfg.clients, cfg.write_rows, t.next));
      }
      for (auto& l : loads) l->Go();
      std::this_thread::sleep_for(seconds);
      for (size_t k = 0; k < tables.size(); ++k) *tables[k].concurrent += loads[k]->Stop() / cfg.write_rounds;
    }
    Log(absl::StrFormat("%s: interleaved %.0f tx/s without the trigger, %.0f with (ratio %.3f), "
                        "pgroll-equivalent %.0f (%.3f); concurrent %.0f vs %.0f (ratio %.3f), "
                        "pgroll-equivalent %.0f (%.3f)",
                        f.workload, f.without, f.with, f.ratio(), f.pgroll, f.pgroll_ratio(),
                        f.without_c, f.with_c, f.ratio_c(), f.pgroll_c, f.pgroll_ratio_c()));
    out.push_back(f);
  }
  // The trigger did its job.
  auto bad = Check(c->Exec(absl::StrCat("SELECT count(*) FROM w_sync WHERE a_new IS DISTINCT FROM ",
                                        op.expr)),
                   "verify");
  if (bad.GetInt(0, 0) != 0) Die("the sync trigger missed writes");
  Check(Check(Driver::Connect(dsn, Options()), "driver")->Rollback("writes").status(), "rollback");
  auto pgroll_bad = Check(c->Exec(absl::StrCat("SELECT count(*) FROM w_pgroll WHERE a_new IS DISTINCT FROM ",
                                               op.expr, " OR needs_backfill")),
                          "verify");
  if (pgroll_bad.GetInt(0, 0) != 0) Die("the pgroll-equivalent trigger missed writes");
  Check(c->Run("DROP TABLE w_plain"), "drop");
  Check(c->Run("DROP TABLE w_sync"), "drop");
  Check(c->RunSimple("DROP TABLE w_pgroll; DROP FUNCTION w_pgroll_up(); DROP FUNCTION w_pgroll_down()"),
        "drop");
  return out;
}

// ---- 3. latency under load -----------------------------------------------------------------

struct Sample {
  Clock::time_point start;
  float ms;
  bool update;  // else a SELECT
};

struct LatencyStats {
  std::string scenario;
  double seconds = 0;
  int64_t queries = 0;
  int64_t errors = 0;
  double p50 = 0, p99 = 0, max = 0;
  double p90 = 0, p999 = 0, p99_update = 0, p99_select = 0;
  double stall_ms = 0;  // longest time in which no query of any client completed
  struct Step {
    std::string step;
    double seconds = 0;
    int64_t queries = 0;
    double p50 = 0, p99 = 0, max = 0;
  };
  std::vector<Step> steps;  // pgshift: latency while each step ran
  std::string first_error;
  // pgshift: the backfill's progress reports (seconds since the start, pace,
  // probe p90 working / resting), and how long the backfill step took.
  struct Pace {
    double t = 0, pace = 1, working_ms = 0, resting_ms = 0;
  };
  std::vector<Pace> paces;
  double backfill_seconds = 0;
  double before_p99 = 0;  // pgshift: p99 of the same load in the seconds just before the run
  // Per bucket of the timeline: seconds since the start, p99 and max (ms).
  struct Point {
    double t = 0, p99 = 0, max = 0;
  };
  std::vector<Point> timeline;
  std::vector<std::pair<std::string, double>> marks;  // step name, seconds since the start
};

// A steady, rate-limited application load: each client runs
// `UPDATE t SET <col> = <col> + 1 WHERE id = $1` then `SELECT <col>, b FROM t
// WHERE id = $2` `rate` times per second. `version` says which column the
// application uses (0: a, 1: a_new), as deploys switch it.
class Load {
 public:
  Load(const std::string& dsn, const std::string& table, int clients, double rate, int64_t rows)
      : dsn_(dsn), table_(table), rows_(rows), rate_(rate), clients_(clients) {
    for (int i = 0; i < clients; ++i) threads_.emplace_back([this, i]() { Run(i); });
  }
  ~Load() { Stop(); }

  void SetVersion(int v) { version_ = v; }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // p99 and max of the queries that started in each 500 ms of [from, to).
  std::vector<LatencyStats::Point> Timeline(Clock::time_point from, Clock::time_point to) {
    std::lock_guard<std::mutex> lock(mu_);
    constexpr double kBucket = 0.5;
    const size_t n = static_cast<size_t>(std::max(1.0, std::ceil(Seconds(to - from) / kBucket)));
    std::vector<std::vector<float>> buckets(n);
    for (const auto& x : samples_) {
      if (x.start < from || x.start >= to) continue;
      buckets[std::min(n - 1, static_cast<size_t>(Seconds(x.start - from) / kBucket))].push_back(x.ms);
    }
    std::vector<LatencyStats::Point> out;
    for (size_t i = 0; i < n; ++i) {
      auto& b = buckets[i];
      if (b.empty()) continue;
      std::sort(b.begin(), b.end());
      out.push_back({(static_cast<double>(i) + 0.5) * kBucket,
                     b[std::min(b.size() - 1, static_cast<size_t>(b.size() * 0.99))], b.back()});
    }
    return out;
  }

  // Samples of queries that started within [from, to).
  LatencyStats Stats(const std::string& scenario, Clock::time_point from, Clock::time_point to) {
    std::lock_guard<std::mutex> lock(mu_);
    LatencyStats s;
    s.scenario = scenario;
    s.seconds = Seconds(to - from);
    s.errors = errors_;
    s.first_error = first_error_;
    std::vector<float> ms, upd, sel;
    std::vector<Clock::time_point> done;
    for (const auto& x : samples_) {
      if (x.start < from || x.start >= to) continue;
      ms.push_back(x.ms);
      (x.update ? upd : sel).push_back(x.ms);
      done.push_back(x.start + std::chrono::microseconds(static_cast<int64_t>(x.ms * 1000)));
    }
    s.queries = static_cast<int64_t>(ms.size());
    if (ms.empty()) return s;
    std::sort(ms.begin(), ms.end());
    s.p50 = ms[ms.size() / 2];
    s.p99 = ms[std::min(ms.size() - 1, static_cast<size_t>(ms.size() * 0.99))];
    s.max = ms.back();
    s.p90 = ms[static_cast<size_t>(ms.size() * 0.90)];
    s.p999 = ms[std::min(ms.size() - 1, static_cast<size_t>(ms.size() * 0.999))];
    for (auto* v : {&upd, &sel}) std::sort(v->begin(), v->end());
    if (!upd.empty()) s.p99_update = upd[std::min(upd.size() - 1, static_cast<size_t>(upd.size() * 0.99))];
    if (!sel.empty()) s.p99_select = sel[std::min(sel.size() - 1, static_cast<size_t>(sel.size() * 0.99))];
    std::sort(done.begin(), done.end());
    Clock::time_point prev = from;
    for (auto t : done) {
      s.stall_ms = std::max(s.stall_ms, Millis(t - prev));
      prev = std::max(prev, t);
    }
    return s;
  }

 private:
  void Run(int i) {
    Client cl(dsn_);
    int prepared = -1;  // application version the statements are prepared for
    int generation = 0;  // statement names: u<generation>, s<generation>
    std::mt19937_64 rng(99 + i);
    std::uniform_int_distribution<int64_t> pick(1, rows_);
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / rate_));
    // Spread the clients' schedules.
    Clock::time_point next = Clock::now() + interval * i / std::max(1, clients_);
    std::vector<Sample> local;
    std::string err;
    while (!stop_.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_until(next);
      next = std::max(next + interval, Clock::now());
      int v = version_.load();
      if (v != prepared) {
        const std::string col = v == 0 ? "a" : "a_new";
        ++generation;
        cl.Prepare(absl::StrCat("u", generation),
                   absl::StrCat("UPDATE ", table_, " SET ", col, " = ", col, " + 1 WHERE id = $1"));
        cl.Prepare(absl::StrCat("s", generation),
                   absl::StrCat("SELECT ", col, ", b FROM ", table_, " WHERE id = $1"));
        prepared = v;
      }
      for (const char* kind : {"u", "s"}) {
        auto t0 = Clock::now();
        bool ok = cl.Exec(absl::StrCat(kind, generation), {std::to_string(pick(rng))}, &err);
        float ms = static_cast<float>(Millis(Clock::now() - t0));
        if (!ok) {
          {
            std::lock_guard<std::mutex> lock(mu_);
            if (errors_++ == 0) first_error_ = err;
          }
          // A prepared statement whose result type changed under it (the
          // naive ALTER TYPE does that) fails until prepared again, as an
          // application's driver would.
          if (err.find("cached plan must not change result type") != std::string::npos) {
            prepared = -1;
          }
          continue;
        }
        local.push_back({t0, ms, kind[0] == 'u'});
      }
      if (local.size() >= 256) Flush(&local);
    }
    Flush(&local);
  }
  void Flush(std::vector<Sample>* local) {
    std::lock_guard<std::mutex> lock(mu_);
    samples_.insert(samples_.end(), local->begin(), local->end());
    local->clear();
  }

  std::string dsn_, table_;
  int64_t rows_;
  double rate_;
  int clients_;
  std::atomic<bool> stop_{false};
  std::atomic<int> version_{0};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::vector<Sample> samples_;
  int64_t errors_ = 0;
  std::string first_error_;
};

struct LatencyResult {
  LatencyStats baseline, pgshift, naive;
  // Control: the same load while one unrelated query keeps one CPU busy for
  // as long as the pgshift run took: what any busy backend does to the app's
  // latency on this machine.
  LatencyStats busy;
  // pgshift with the latency guard off (full speed whatever the load).
  LatencyStats unguarded;
  double lock_timeout_ms = 0;
};

LatencyResult BenchLatency(const Config& cfg, const std::string& dsn, const OpUnderTest& op) {
  auto c = Connect(dsn);
  Log(absl::StrCat("latency: loading 3 x ", cfg.latency_rows, " rows (with an index on a)"));
  CreateTable(*c, "l_shift", cfg.latency_rows, true);
  CreateTable(*c, "l_naive", cfg.quick_latency ? 1 : cfg.latency_rows, true);
  CreateTable(*c, "l_gentle", cfg.quick_latency ? 1 : cfg.latency_rows, true);
  Check(c->Run("CHECKPOINT"), "checkpoint");
  LatencyResult r;
  Options options;  // defaults, as a deploy would run, unless asked otherwise
  if (cfg.batch_time_ms >= 0) options.backfill_target_batch_time = absl::Milliseconds(cfg.batch_time_ms);
  if (cfg.batch_delay_ms >= 0) options.backfill_batch_delay = absl::Milliseconds(cfg.batch_delay_ms);
  if (!cfg.latency_guard.empty()) Check(SetOption(options, "latency_guard", cfg.latency_guard), "--latency-guard");
  r.lock_timeout_ms = absl::ToDoubleMilliseconds(options.lock_timeout);
  const auto settle = std::chrono::milliseconds(cfg.smoke ? 200 : 1000);

  {
    Log(absl::StrFormat("latency: baseline, %d clients x %.0f tx/s for %.0fs", cfg.clients, cfg.rate,
                        cfg.baseline_seconds));
    Load load(dsn, "l_shift", cfg.clients, cfg.rate, cfg.latency_rows);
    std::this_thread::sleep_for(settle);
    auto from = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(cfg.baseline_seconds));
    auto to = Clock::now();
    load.Stop();
    r.baseline = load.Stats("no migration", from, to);
    r.baseline.timeline = load.Timeline(from, to);
  }
  // A whole migration under the load; the application switches to the new
  // column when the migration reaches switched (as a deploy would).
  auto run_pgshift = [&](const std::string& table, const std::string& name, const Options& o,
                         const std::string& label) {
    Log(absl::StrCat("latency: ", label, " through every phase under the same load"));
    Load load(dsn, table, cfg.clients, cfg.rate, cfg.latency_rows);
    std::this_thread::sleep_for(settle);
    // The same load just before, on the same table: a baseline next to the
    // run (this machine's p99 drifts between minutes).
    const auto before = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(cfg.baseline_seconds / 2));
    const auto before_end = Clock::now();
    std::vector<LatencyStats::Pace> paces;
    Options with_progress = o;
    const auto start = Clock::now();
    with_progress.on_progress = [&](const Progress& p) {
      paces.push_back({Seconds(Clock::now() - start), p.pace, p.probe_working_ms, p.probe_resting_ms});
    };
    auto d = Check(Driver::Connect(dsn, with_progress), "driver");
    Check(d->Init(), "init");
    auto from = Clock::now();
    Check(d->Register(Spec(op, name, table)).status(), "register");
    std::vector<std::pair<std::string, Clock::time_point>> marks = {{"registered", from}};
    for (Phase p : PhaseLadder()) {
      if (p == Phase::kRegistered) continue;
      auto t = Clock::now();
      Check(d->Advance(name, p).status(), absl::StrCat("advance to ", PhaseName(p)));
      marks.push_back({std::string(PhaseName(p)), t});
      if (p == Phase::kSwitched) load.SetVersion(1);
    }
    auto to = Clock::now();
    std::this_thread::sleep_for(settle);
    load.Stop();
    LatencyStats out = load.Stats(label, from, to);
    for (size_t i = 1; i < marks.size(); ++i) {
      auto end = i + 1 < marks.size() ? marks[i + 1].second : to;
      LatencyStats x = load.Stats(marks[i].first, marks[i].second, end);
      out.steps.push_back({marks[i].first, x.seconds, x.queries, x.p50, x.p99, x.max});
      if (marks[i].first == "backfilled") out.backfill_seconds = x.seconds;
      out.marks.push_back({marks[i].first, Seconds(marks[i].second - from)});
    }
    for (auto& p : paces) p.t -= Seconds(from - start);
    out.paces = std::move(paces);
    out.timeline = load.Timeline(from, to);
    out.before_p99 = load.Stats("before", before, before_end).p99;  // clients flush as they stop
    return out;
  };
  r.pgshift = run_pgshift("l_shift", "latency", options, absl::StrCat("pgshift ", op.kind));
  if (!cfg.quick_latency) {
    Options unguarded = options;
    unguarded.latency_guard = 0;
    r.unguarded = run_pgshift("l_gentle", "latency_unguarded", unguarded, "pgshift, --latency-guard off");
  }
  if (!cfg.quick_latency) {
    const double seconds = std::max(1.0, r.pgshift.seconds);
    Log(absl::StrFormat("latency: control, one CPU-bound query for %.0fs under the same load", seconds));
    Load load(dsn, "l_naive", cfg.clients, cfg.rate, cfg.latency_rows);  // identical table
    std::this_thread::sleep_for(settle);
    auto admin = Connect(dsn);
    Check(admin->Run("SELECT set_config('statement_timeout', $1, false)",
                     {absl::StrCat(static_cast<int64_t>(seconds * 1000), "ms")}),
          "statement_timeout");
    auto from = Clock::now();
    absl::Status s = admin->Run("SELECT count(*) FROM generate_series(1, 10000000000) g");
    auto to = Clock::now();
    if (SqlState(s) != "57014") Check(s, "busy query");  // ends at its statement_timeout
    std::this_thread::sleep_for(settle);
    load.Stop();
    r.busy = load.Stats("one busy backend (control)", from, to);
  }
  if (!cfg.quick_latency) {
    const std::string ddl = "ALTER TABLE l_naive ALTER COLUMN a TYPE bigint";
    Log(absl::StrCat("latency: naive `", ddl, "` under the same load"));
    Load load(dsn, "l_naive", cfg.clients, cfg.rate, cfg.latency_rows);
    std::this_thread::sleep_for(settle);
    auto admin = Connect(dsn);
    auto from = Clock::now();
    Check(admin->Run(ddl), "naive ALTER");
    auto to = Clock::now();
    std::this_thread::sleep_for(settle);
    load.Stop();
    r.naive = load.Stats("naive ALTER ... TYPE", from, to);
    r.naive.timeline = load.Timeline(from, to + settle);  // and the second after it
    r.naive.marks = {{"ALTER TABLE", 0}};
  }
  Check(c->Run("DROP TABLE l_shift"), "drop");
  Check(c->Run("DROP TABLE l_gentle"), "drop");
  Check(c->Run("DROP TABLE l_naive"), "drop");
  return r;
}

// ---- the picture --------------------------------------------------------------------------

// Application p99 per half second through each scenario, drawn by gnuplot
// into `path` (SVG): above, pgshift with its defaults (the latency guard on),
// its steps marked and its pace; below, the guard off and the naive ALTER
// TABLE, all against the no-migration baseline.
void DrawTimeline(const Config& cfg, const LatencyResult& l, const OpUnderTest& op) {
  const std::string dir = absl::StrCat(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp",
                                       "/pgshift_bench_", getpid());
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) Die(absl::StrCat("cannot create ", dir));
  auto write = [&](const std::string& name, const std::vector<LatencyStats::Point>& points) {
    std::ofstream f(absl::StrCat(dir, "/", name));
    for (const auto& p : points) f << absl::StrFormat("%.2f %.3f %.3f\n", p.t, p.p99, p.max);
    if (!f) Die(absl::StrCat("cannot write ", dir, "/", name));
  };
  write("baseline.dat", l.baseline.timeline);
  write("guarded.dat", l.pgshift.timeline);
  write("unguarded.dat", l.unguarded.timeline);
  write("naive.dat", l.naive.timeline);
  {
    std::ofstream f(absl::StrCat(dir, "/pace.dat"));
    for (const auto& p : l.pgshift.paces) f << absl::StrFormat("%.2f %.1f\n", p.t, p.pace * 100);
  }
  auto marks = [](const LatencyStats& s) {
    std::string out;
    for (const auto& [step, t] : s.marks) {
      if (step == "switched" || step == "contracted") continue;  // instants; would overlap
      absl::StrAppend(&out, absl::StrFormat(
                                "set arrow from first %.2f, graph 0 to first %.2f, graph 1 nohead dt 2 lc rgb '#888888'\n"
                                "set label '%s' at first %.2f, graph 0.97 rotate by 90 right font ',9' tc rgb '#555555'\n",
                                t, t, step, t + 0.3));
    }
    return out;
  };
  const double base = l.baseline.p99;
  const double guarded_end = l.pgshift.seconds, unguarded_end = std::max(l.unguarded.seconds, 5.0);
  std::string script = absl::StrCat(
      "set terminal svg size 960,760 dynamic noenhanced font 'sans,11' background '#ffffff'\n",
      "set output '", cfg.svg, "'\n",
      "set multiplot layout 2,1 title '", op.kind, ", ", cfg.latency_rows, " rows, ", cfg.clients,
      " clients x ", absl::StrFormat("%.0f", cfg.rate),
      " tx/s (UPDATE + SELECT by key): application p99 per 0.5 s' font ',13'\n",
      "set logscale y\nset yrange [0.1:5000]\nset ylabel 'p99 latency (ms)'\nset grid ytics\n",
      "set key top left\n",
      // Panel 1: defaults.
      absl::StrFormat("set title 'pgshift with its defaults (latency guard on): %.0f s'\n", guarded_end),
      "set xlabel 'seconds since register'\n",
      absl::StrFormat("set xrange [0:%.1f]\n", guarded_end),
      "set y2range [0:105]\nset y2tics 0,25,100\nset y2label 'backfill pace (% of time working)'\n",
      marks(l.pgshift),
      absl::StrFormat("plot %.4f w l lw 2 lc rgb '#999999' t 'no migration (p99 %.2f ms)', ", base, base),
      "'", dir, "/guarded.dat' u 1:2 w l lw 1.5 lc rgb '#1f77b4' t 'pgshift, app p99', ",
      "'", dir, "/pace.dat' u 1:2 axes x1y2 w steps lw 1 lc rgb '#2ca02c' t 'backfill pace'\n",
      "unset arrow\nunset label\nunset y2tics\nunset y2label\n",
      // Panel 2: guard off, naive.
      absl::StrFormat("set title 'pgshift --latency-guard off (%.0f s), and the naive ALTER TABLE ... TYPE'\n",
                      l.unguarded.seconds),
      absl::StrFormat("set xrange [0:%.1f]\n", unguarded_end), marks(l.unguarded),
      absl::StrFormat("plot %.4f w l lw 2 lc rgb '#999999' t 'no migration', ", base),
      "'", dir, "/unguarded.dat' u 1:2 w l lw 1.5 lc rgb '#ff7f0e' t 'pgshift, guard off, app p99', ",
      "'", dir, "/naive.dat' u 1:2 w l lw 2 lc rgb '#d62728' t 'naive ALTER TABLE (from its start), app p99'\n",
      "unset multiplot\n");
  const std::string gp = absl::StrCat(dir, "/timeline.gp");
  {
    std::ofstream f(gp);
    f << script;
    if (!f) Die(absl::StrCat("cannot write ", gp));
  }
  const std::string cmd = absl::StrCat("gnuplot ", gp);
  if (std::system(cmd.c_str()) != 0) {
    Die(absl::StrCat("gnuplot failed (", gp, " and its data are kept); --svg needs gnuplot ",
                     "(apt-get install gnuplot-nox)"));
  }
  Log(absl::StrCat("latency timeline drawn: ", cfg.svg, " (data in ", dir, ")"));
}

// ---- reporting ----------------------------------------------------------------------------

std::string LatencyJson(const LatencyStats& s) {
  std::vector<std::string> steps;
  for (const auto& x : s.steps) {
    steps.push_back(util::JsonObject()
                        .Str("step", x.step)
                        .Num("seconds", x.seconds)
                        .Int("queries", x.queries)
                        .Num("p50_ms", x.p50)
                        .Num("p99_ms", x.p99)
                        .Num("max_ms", x.max)
                        .Build());
  }
  return util::JsonObject()
      .Str("scenario", s.scenario)
      .Num("seconds", s.seconds)
      .Int("queries", s.queries)
      .Int("errors", s.errors)
      .Num("p50_ms", s.p50)
      .Num("p90_ms", s.p90)
      .Num("p99_ms", s.p99)
      .Num("p99_9_ms", s.p999)
      .Num("p99_update_ms", s.p99_update)
      .Num("p99_select_ms", s.p99_select)
      .Num("max_ms", s.max)
      .Num("longest_stall_ms", s.stall_ms)
      .Num("p99_ms_just_before", s.before_p99)
      .Num("backfill_seconds", s.backfill_seconds)
      .Raw("steps", absl::StrCat("[", absl::StrJoin(steps, ","), "]"))
      .Build();
}

int Main(int argc, char** argv) {
  Config cfg = ParseArgs(argc, argv);
  TempCluster cluster;
  std::string server = cfg.dsn;
  if (server.empty()) {
    Log("starting a throwaway PostgreSQL (scripts/pgtemp.sh)");
    server = cluster.Start();
  }
  const std::string dbname = absl::StrCat("pgshift_bench_", getpid());
  auto admin = Connect(server);
  Check(admin->Run(absl::StrCat("CREATE DATABASE ", dbname)), "create database");
  const std::string dsn = WithDatabase(server, dbname);
  struct DropDb {
    pg::Connection* admin;
    std::string name;
    ~DropDb() { (void)admin->Run(absl::StrCat("DROP DATABASE IF EXISTS ", name, " WITH (FORCE)")); }
  } drop_db{admin.get(), dbname};

  auto info = Connect(dsn);
  const std::string version = Check(info->Exec("SELECT version()"), "version").Get(0, 0);
  const std::string settings =
      Check(info->Exec("SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings "
                       "WHERE name IN ('shared_buffers', 'fsync', 'synchronous_commit', "
                       "'full_page_writes', 'max_wal_size', 'wal_level')"),
            "settings")
          .Get(0, 0);

  // The operation: change_type when this build has it, else rename_column.
  OpUnderTest op = RenameOp();
  if (cfg.op == "change_type" || cfg.op == "auto") {
    // Plan it on a scratch table: the spec may parse in a build whose
    // operation is not implemented yet.
    Check(info->Run("CREATE TABLE probe (id bigint PRIMARY KEY, a integer NOT NULL)"), "probe");
    auto spec = ParseMigrationJson(ChangeTypeOp().Spec("probe", "probe"));
    auto d = Check(Driver::Connect(dsn, Options()), "driver");
    bool available = spec.ok() && d->PlanMigration(*spec).ok();
    Check(info->Run("DROP TABLE probe"), "probe");
    if (available) {
      op = ChangeTypeOp();
    } else if (cfg.op == "change_type") {
      Die("this build has no change_type operation");
    }
  } else if (cfg.op != "rename_column") {
    Die("--op must be rename_column, change_type or auto");
  }
  Log(absl::StrCat("server: ", version));
  Log(absl::StrCat("operation under test: ", op.kind));

  if (!cfg.only.empty()) {
    // Tuning: one section; its figures are in the log lines above.
    std::vector<double> ratios;
    if (cfg.only == "backfill") {
      for (int64_t n : cfg.sizes) BenchBackfill(cfg, dsn, op, n, &ratios);
    } else if (cfg.only == "writes") {
      BenchWrites(cfg, dsn, op);
    } else if (cfg.only == "latency") {
      LatencyResult l = BenchLatency(cfg, dsn, op);
      if (!cfg.svg.empty() && !cfg.quick_latency) DrawTimeline(cfg, l, op);
      for (const LatencyStats* x : {&l.baseline, &l.busy, &l.pgshift, &l.unguarded, &l.naive}) {
        Log(absl::StrFormat("%s: p50 %.2f p90 %.2f p99 %.2f (update %.2f, select %.2f) p99.9 %.2f "
                            "max %.1f stall %.1f ms, %d queries, %d errors",
                            x->scenario, x->p50, x->p90, x->p99, x->p99_update, x->p99_select,
                            x->p999, x->max, x->stall_ms, x->queries, x->errors));
      }
      for (const auto& x : l.pgshift.steps) {
        Log(absl::StrFormat("  %s: %.1fs, p50 %.2f p99 %.2f max %.1f ms", x.step, x.seconds, x.p50,
                            x.p99, x.max));
      }
      double pace_sum = 0;
      for (const auto& p : l.pgshift.paces) pace_sum += p.pace;
      if (!l.pgshift.paces.empty()) {
        const auto& last = l.pgshift.paces[l.pgshift.paces.size() / 2];
        Log(absl::StrFormat("  mean pace %.2f over %d reports; mid-way probe %.3f ms working, %.3f resting",
                            pace_sum / l.pgshift.paces.size(), l.pgshift.paces.size(), last.working_ms,
                            last.resting_ms));
      }
    } else {
      Die("--only takes backfill, writes or latency");
    }
    return 0;
  }
  std::vector<BackfillResult> backfills;
  std::vector<std::vector<double>> rep_ratios;
  for (int64_t n : cfg.sizes) {
    rep_ratios.emplace_back();
    backfills.push_back(BenchBackfill(cfg, dsn, op, n, &rep_ratios.back()));
  }
  std::vector<WriteFigures> writes = BenchWrites(cfg, dsn, op);
  LatencyResult latency = BenchLatency(cfg, dsn, op);

  // ---- table ----
  std::printf("\npgshift end-to-end benchmark (%s)\n", op.kind.c_str());
  std::printf("server: %s\nsettings: %s\ncpus: %u\ncommand: %s\n\n", version.c_str(),
              settings.c_str(), std::thread::hardware_concurrency(), cfg.command_line.c_str());
  std::printf("1. Backfill vs one plain UPDATE (same rows, same expression: a_new = %s; medians "
              "of rotating repetitions)\n",
              op.expr.c_str());
  std::printf("%10s %10s %12s %12s %12s %12s %7s %7s %10s %10s %7s\n", "rows", "UPDATE s", "UPDATE r/s",
              "+trigger s", "pgshift s", "pgshift r/s", "ratio", "ratio2", "driver kB", "pgroll s",
              "pgroll");
  for (const auto& b : backfills) {
    std::printf("%10lld %10.2f %12.0f %12.2f %12.2f %12.0f %7.2f %7.2f %10ld %10.2f %7.2f\n",
                static_cast<long long>(b.rows), b.plain_seconds, b.plain_rate(),
                b.trigger_plain_seconds, b.pgshift_seconds, b.pgshift_rate(), b.ratio(),
                b.pgshift_rate() / b.trigger_plain_rate(), b.driver_max_rss_kb, b.pgroll_seconds,
                b.pgroll_ratio());
  }
  std::printf("ratio = pgshift / plain UPDATE; ratio2 = pgshift / the same UPDATE on a table with "
              "the sync trigger installed; driver kB = max RSS of `pgshift advance`; pgroll = the "
              "pgroll-equivalent's backfill / plain UPDATE\n");
  const double trend = backfills.back().pgshift_rate() / backfills.front().pgshift_rate();
  std::printf("pgshift rows/s at %lld rows / at %lld rows: %.2f\n\n",
              static_cast<long long>(backfills.back().rows),
              static_cast<long long>(backfills.front().rows), trend);

  std::printf("2. Single-row writes, %d clients per table, %d x %.1fs rounds (tx/s)\n", cfg.clients,
              cfg.write_rounds, cfg.write_seconds);
  std::printf("%-26s %-12s %16s %16s %8s %16s %8s\n", "workload", "measured", "without trigger",
              "pgshift", "ratio", "pgroll-equiv.", "ratio");
  for (const auto& f : writes) {
    std::printf("%-26s %-12s %16.0f %16.0f %8.3f %16.0f %8.3f\n", f.workload.c_str(), "interleaved",
                f.without, f.with, f.ratio(), f.pgroll, f.pgroll_ratio());
    std::printf("%-26s %-12s %16.0f %16.0f %8.3f %16.0f %8.3f\n", "", "concurrent", f.without_c,
                f.with_c, f.ratio_c(), f.pgroll_c, f.pgroll_ratio_c());
  }
  std::printf("\n");

  std::printf("3. App latency under load (%d clients x %.0f tx/s, UPDATE + SELECT by id, %d rows)\n",
              cfg.clients, cfg.rate, cfg.latency_rows);
  std::printf("%-36s %7s %8s %7s %7s %7s %8s %8s %9s %9s %6s\n", "scenario", "seconds", "queries",
              "p50 ms", "p90 ms", "p99 ms", "p99 upd", "p99 sel", "max ms", "stall ms", "errors");
  for (const LatencyStats* s : {&latency.baseline, &latency.busy, &latency.pgshift, &latency.unguarded, &latency.naive}) {
    std::printf("%-36s %7.1f %8lld %7.2f %7.2f %7.2f %8.2f %8.2f %9.1f %9.1f %6lld\n",
                s->scenario.c_str(), s->seconds, static_cast<long long>(s->queries), s->p50, s->p90,
                s->p99, s->p99_update, s->p99_select, s->max, s->stall_ms,
                static_cast<long long>(s->errors));
  }
  for (const LatencyStats* s : {&latency.pgshift, &latency.unguarded}) {
    std::printf("%s, by step (seconds, queries, p50, p99, max ms):\n", s->scenario.c_str());
    for (const auto& x : s->steps) {
      std::printf("  %-26s %7.1f %8lld %7.2f %7.2f %9.1f\n", x.step.c_str(), x.seconds,
                  static_cast<long long>(x.queries), x.p50, x.p99, x.max);
    }
  }
  {
    double pace_sum = 0;
    for (const auto& p : latency.pgshift.paces) pace_sum += p.pace;
    std::printf("latency guard: backfill %.1f s guarded vs %.1f s unguarded (%.1fx longer); mean pace "
                "over %zu reports %.2f\n",
                latency.pgshift.backfill_seconds, latency.unguarded.backfill_seconds,
                latency.pgshift.backfill_seconds / std::max(0.001, latency.unguarded.backfill_seconds),
                latency.pgshift.paces.size(),
                latency.pgshift.paces.empty() ? 1.0 : pace_sum / latency.pgshift.paces.size());
  }
  if (latency.pgshift.errors + latency.naive.errors + latency.baseline.errors > 0) {
    std::printf("first error: %s\n",
                (latency.pgshift.errors ? latency.pgshift : latency.naive).first_error.c_str());
  }

  // ---- targets ----
  double min_ratio = 1e9;
  for (const auto& b : backfills) min_ratio = std::min(min_ratio, b.ratio());
  const double p99_ratio = latency.pgshift.p99 / latency.baseline.p99;
  struct Target {
    std::string what;
    double value;
    std::string goal;
    bool met;
  };
  std::vector<Target> targets = {
      {"backfill rows/s / plain UPDATE rows/s (worst size)", min_ratio, ">= 0.9", min_ratio >= 0.9},
      {"backfill rows/s, largest / smallest size", trend, ">= 0.8 (flat)", trend >= 0.8},
      {"longest app query during pgshift (ms)", latency.pgshift.max,
       absl::StrFormat("<= lock_timeout %.0f", latency.lock_timeout_ms),
       latency.pgshift.max <= latency.lock_timeout_ms},
      {"app p99 during pgshift / baseline p99", p99_ratio, "<= 1.5", p99_ratio <= 1.5},
      {"app p99 during pgshift / p99 of the 10 s just before", latency.pgshift.p99 / latency.pgshift.before_p99,
       "<= 1.5", latency.pgshift.p99 / latency.pgshift.before_p99 <= 1.5},
      {"(context) same, pgshift guard off", latency.unguarded.p99 / latency.unguarded.before_p99,
       "no target", true},
      {"(context) app p99, pgshift guard off / baseline p99", latency.unguarded.p99 / latency.baseline.p99,
       "no target", true},
      {"(context) backfill time, guarded / guard off",
       latency.pgshift.backfill_seconds / std::max(0.001, latency.unguarded.backfill_seconds), "no target",
       true},
      {"(context) app p99, one busy backend / baseline p99", latency.busy.p99 / latency.baseline.p99,
       "no target", true},
      {"(context) app p99, pgshift / one busy backend", latency.pgshift.p99 / latency.busy.p99,
       "no target", true},
  };
  for (const auto& b : backfills) {
    targets.push_back({absl::StrCat("(anchor) pgroll-equivalent backfill / plain UPDATE, ", b.rows, " rows"),
                       b.pgroll_ratio(), "no target", true});
  }
  for (const auto& f : writes) {
    const double goal = f.fires ? 0.9 : 0.97;
    const std::string g = absl::StrFormat(">= %.2f", goal);
    targets.push_back({absl::StrCat(f.workload, " with/without trigger, interleaved"), f.ratio(), g,
                       f.ratio() >= goal});
    targets.push_back({absl::StrCat(f.workload, " with/without trigger, concurrent"), f.ratio_c(), g,
                       f.ratio_c() >= goal});
    targets.push_back({absl::StrCat("(anchor) ", f.workload, ", pgroll-equivalent, interleaved"),
                       f.pgroll_ratio(), "no target", true});
    targets.push_back({absl::StrCat("(anchor) ", f.workload, ", pgroll-equivalent, concurrent"),
                       f.pgroll_ratio_c(), "no target", true});
  }
  std::printf("\nTargets (docs/performance.md):\n");
  for (const auto& t : targets) {
    std::printf("  %-58s %10.3f  %-22s %s\n", t.what.c_str(), t.value, t.goal.c_str(),
                t.goal == "no target" ? "" : t.met ? "met" : "MISSED");
  }

  // ---- JSON ----
  std::vector<std::string> bf_json, target_json, write_json;
  for (const auto& f : writes) {
    write_json.push_back(util::JsonObject()
                             .Str("workload", f.workload)
                             .Bool("trigger_function_runs", f.fires)
                             .Int("clients", cfg.clients)
                             .Int("rows", cfg.write_rows)
                             .Num("interleaved_tps_without_trigger", f.without)
                             .Num("interleaved_tps_with_trigger", f.with)
                             .Num("interleaved_ratio", f.ratio())
                             .Num("concurrent_tps_without_trigger", f.without_c)
                             .Num("concurrent_tps_with_trigger", f.with_c)
                             .Num("concurrent_ratio", f.ratio_c())
                             .Num("interleaved_tps_pgroll_equivalent", f.pgroll)
                             .Num("interleaved_ratio_pgroll_equivalent", f.pgroll_ratio())
                             .Num("concurrent_tps_pgroll_equivalent", f.pgroll_c)
                             .Num("concurrent_ratio_pgroll_equivalent", f.pgroll_ratio_c())
                             .Build());
  }
  for (size_t i = 0; i < backfills.size(); ++i) {
    const BackfillResult& b = backfills[i];
    std::vector<std::string> reps;
    for (double x : rep_ratios[i]) reps.push_back(absl::StrFormat("%.3f", x));
    bf_json.push_back(util::JsonObject()
                          .Int("rows", b.rows)
                          .Raw("ratio_per_repetition", absl::StrCat("[", absl::StrJoin(reps, ","), "]"))
                          .Num("plain_update_seconds", b.plain_seconds)
                          .Num("plain_update_rows_per_second", b.plain_rate())
                          .Num("plain_update_with_trigger_seconds", b.trigger_plain_seconds)
                          .Num("plain_update_with_trigger_rows_per_second", b.trigger_plain_rate())
                          .Num("ratio_to_update_with_trigger", b.pgshift_rate() / b.trigger_plain_rate())
                          .Num("pgshift_seconds", b.pgshift_seconds)
                          .Num("pgshift_wall_seconds", b.pgshift_wall_seconds)
                          .Num("pgshift_rows_per_second", b.pgshift_rate())
                          .Num("ratio", b.ratio())
                          .Int("driver_max_rss_kb", b.driver_max_rss_kb)
                          .Num("pgroll_equivalent_seconds", b.pgroll_seconds)
                          .Num("pgroll_equivalent_ratio", b.pgroll_ratio())
                          .Build());
  }
  for (const auto& t : targets) {
    target_json.push_back(
        util::JsonObject().Str("what", t.what).Num("value", t.value).Str("goal", t.goal).Bool("met", t.met).Build());
  }
  std::string json =
      util::JsonObject()
          .Str("command", cfg.command_line)
          .Str("server", version)
          .Str("settings", settings)
          .Int("cpus", std::thread::hardware_concurrency())
          .Str("operation", op.kind)
          .Raw("backfill", absl::StrCat("[", absl::StrJoin(bf_json, ","), "]"))
          .Num("backfill_rate_largest_over_smallest", trend)
          .Raw("writes", absl::StrCat("[", absl::StrJoin(write_json, ","), "]"))
          .Raw("latency", util::JsonObject()
                              .Int("clients", cfg.clients)
                              .Num("tx_per_second_per_client", cfg.rate)
                              .Int("rows", cfg.latency_rows)
                              .Num("lock_timeout_ms", latency.lock_timeout_ms)
                              .Raw("baseline", LatencyJson(latency.baseline))
                              .Raw("one_busy_backend", LatencyJson(latency.busy))
                              .Raw("pgshift", LatencyJson(latency.pgshift))
                              .Raw("pgshift_guard_off", LatencyJson(latency.unguarded))
                              .Num("guarded_backfill_seconds", latency.pgshift.backfill_seconds)
                              .Num("unguarded_backfill_seconds", latency.unguarded.backfill_seconds)
                              .Raw("naive_alter", LatencyJson(latency.naive))
                              .Num("p99_ratio", p99_ratio)
                              .Build())
          .Raw("targets", absl::StrCat("[", absl::StrJoin(target_json, ","), "]"))
          .Build();
  if (!cfg.svg.empty()) DrawTimeline(cfg, latency, op);
  std::ofstream out(cfg.out);
  out << json << "\n";
  if (!out) Die(absl::StrCat("cannot write ", cfg.out));
  std::printf("\nJSON: %s\n", cfg.out.c_str());
  // In smoke mode the point is that everything ran and verified its data;
  // the figures of a tiny run on a busy CI machine mean nothing.
  return 0;
}

}  // namespace
}  // namespace pgshift::bench

int main(int argc, char** argv) { return pgshift::bench::Main(argc, argv); }
