// A deploy driver in C++: the kind of program deployment tooling links
// pgshift into. It takes one migration through its phases across three
// simulated deploys while application versions keep writing, and gates every
// deploy on the phase the new version needs (the same RequirePhase call the
// application makes at startup). At the end it verifies that no write of any
// version was lost.
//
//   deploy_driver --dsn "host=... dbname=..." [--rows 20000] [--batches-per-run 3]
//
// The applications (threads writing through their own libpq connections):
//   v1  the old version: reads and writes accounts.email
//   v2  the new version: reads and writes accounts.email_address; needs
//       migration 0001_rename_accounts_email at least at "switched"
//
// The deploys:
//   1. expand         v1 runs. Advance registered -> validated, one step at a
//                     time; the backfill is done in bounded runs (at most
//                     --batches-per-run batches per call, resumed from its
//                     checkpoint), as a pipeline with a time budget would.
//   2. roll out v2    Gate: v2's startup check. It refuses at validated, so
//                     the driver advances to switched, checks again, then
//                     starts v2. v1 and v2 now run side by side.
//   3. retire v1      Stop v1, then contract (drops the old column).
//
// Busy (another driver) and lock timeouts are retried with backoff; a step
// that fails is rolled back (possible until contract). Everything lives in
// schema "deploy_example" (recreated at start) with its own control schema
// "deploy_example_pgshift", so the example can run again and again.
// Exit 0 when the migration is contracted and every write is accounted for.
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pgshift/pgshift.h"

namespace {

constexpr char kMigration[] = "0001_rename_accounts_email";
constexpr char kControlSchema[] = "deploy_example_pgshift";
constexpr char kSpec[] = R"({
  "name": "0001_rename_accounts_email",
  "schema": "deploy_example",
  "operations": [
    {"rename_column": {"table": "accounts", "from": "email", "to": "email_address"}}
  ]
})";

// A libpq connection; Exec runs one statement with $n text parameters.
class Conn {
 public:
  explicit Conn(const std::string& dsn) : c_(PQconnectdb(dsn.c_str())) {
    if (PQstatus(c_) != CONNECTION_OK) {
      std::fprintf(stderr, "deploy_driver: cannot connect: %s", PQerrorMessage(c_));
      std::exit(1);
    }
    PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);
  }
  ~Conn() { PQfinish(c_); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Returns "" on success (the first value of the first row in *out), else
  // the error message.
  std::string Exec(const std::string& sql, const std::vector<std::string>& params = {},
                   std::string* out = nullptr) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    PGresult* r = PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0);
    std::string err;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
      err = PQresultErrorMessage(r);
    } else if (out != nullptr && PQntuples(r) > 0) {
      *out = PQgetvalue(r, 0, 0);
    }
    PQclear(r);
    return err;
  }

  void MustExec(const std::string& sql, const std::vector<std::string>& params = {},
                std::string* out = nullptr) {
    std::string err = Exec(sql, params, out);
    if (!err.empty()) {
      std::fprintf(stderr, "deploy_driver: %s: %s", sql.c_str(), err.c_str());
      std::exit(1);
    }
  }

 private:
  PGconn* c_;
};

// One application version: a thread inserting and updating rows through the
// column its code knows. Versions own disjoint rows (existing rows by id
// parity, inserted rows by id range), so what each one wrote is exact.
class App {
 public:
  App(std::string version, std::string dsn, std::string column, int64_t parity,
      int64_t first_insert_id, int64_t rows)
      : version_(std::move(version)), dsn_(std::move(dsn)), column_(std::move(column)),
        parity_(parity), next_id_(first_insert_id), rows_(rows) {}

  void Start() {
    std::printf("   %s starts (writes \"%s\")\n", version_.c_str(), column_.c_str());
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    std::printf("   %s stopped after %lld writes (%lld failed)\n", version_.c_str(),
                static_cast<long long>(writes_.load()), static_cast<long long>(failures_.load()));
  }

  // Blocks until this version has committed `n` more writes: the apps are
  // seen writing in every phase, without relying on timing.
  void WaitForWrites(int64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    int64_t target = writes_ + n;
    cv_.wait(lock, [&] { return writes_ >= target || failures_ > 0 || stop_; });
  }

  int64_t failures() const { return failures_; }
  const std::string& version() const { return version_; }
  const std::map<int64_t, std::string>& wrote() const { return wrote_; }

 private:
  void Run() {
    Conn conn(dsn_);
    std::mt19937_64 rng(static_cast<uint64_t>(parity_) * 7919 + 17);
    const std::string col = "\"" + column_ + "\"";
    const std::string insert = "INSERT INTO deploy_example.accounts (id, " + col + ") VALUES ($1, $2)";
    const std::string update = "UPDATE deploy_example.accounts SET " + col + " = $2 WHERE id = $1";
    for (int64_t n = 1; !stop_; ++n) {
      int64_t id;
      std::string sql;
      if (rng() % 5 == 0) {
        id = next_id_++;
        sql = insert;
      } else {
        id = static_cast<int64_t>(rng() % static_cast<uint64_t>(rows_ / 2)) * 2 + 1 + parity_;
        sql = update;
      }
      std::string value = version_ + "-" + std::to_string(n) + "@example.com";
      std::string err = conn.Exec(sql, {std::to_string(id), value});
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (err.empty()) {
          wrote_[id] = value;
          ++writes_;
        } else {
          std::fprintf(stderr, "   %s: write failed: %s", version_.c_str(), err.c_str());
          ++failures_;
        }
      }
      cv_.notify_all();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    cv_.notify_all();
  }

  std::string version_, dsn_, column_;
  int64_t parity_, next_id_, rows_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> writes_{0}, failures_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, std::string> wrote_;
};

// Advances one step, retrying while the migration is busy or locks are not
// granted (exit code 4 in the CLI), and resuming a bounded backfill
// (Cancelled: "stopped after N batches as asked").
absl::StatusOr<pgshift::MigrationStatus> StepWithRetry(pgshift::Driver& d, int* runs) {
  auto backoff = std::chrono::milliseconds(100);
  for (int attempt = 1;; ++attempt) {
    ++*runs;
    absl::StatusOr<pgshift::MigrationStatus> st = d.Advance(kMigration);
    if (st.ok()) return st;
    if (absl::IsCancelled(st.status())) continue;  // bounded run: resume from the checkpoint
    bool busy = absl::IsAborted(st.status()) || absl::IsDeadlineExceeded(st.status());
    if (!busy || attempt == 5) return st.status();
    std::printf("   busy (attempt %d): %s; retrying\n", attempt,
                std::string(st.status().message()).c_str());
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
}

// Takes the migration step by step up to `target`, letting every running
// app write between steps. On a failed step, rolls back (before contract).
bool AdvanceTo(pgshift::Driver& d, pgshift::Phase target, const std::vector<App*>& running) {
  absl::StatusOr<pgshift::Phase> phase = d.CurrentPhase(kMigration);
  while (phase.ok() && *phase != target) {
    int runs = 0;
    auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<pgshift::MigrationStatus> st = StepWithRetry(d, &runs);
    if (!st.ok()) {
      std::fprintf(stderr, "deploy_driver: step failed (exit code %d): %s\n",
                   pgshift::ExitCodeFor(st.status()), std::string(st.status().message()).c_str());
      if (*phase != pgshift::Phase::kContracted) {
        auto rb = d.Rollback(kMigration);
        std::fprintf(stderr, "deploy_driver: rolled back: %s\n",
                     rb.ok() ? "ok" : std::string(rb.status().message()).c_str());
      }
      return false;
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("-> %-18s %7.1f ms%s\n", std::string(pgshift::PhaseName(st->phase)).c_str(), ms,
                runs > 1 ? (" in " + std::to_string(runs) + " bounded runs").c_str() : "");
    for (App* app : running) app->WaitForWrites(20);
    phase = st->phase;
  }
  if (!phase.ok()) {
    std::fprintf(stderr, "deploy_driver: %s\n", std::string(phase.status().message()).c_str());
    return false;
  }
  return true;
}

// The deploy gate: would `version`'s startup check pass now?
bool Gate(const std::string& dsn, const std::string& version, pgshift::Phase needs) {
  absl::Status ready = pgshift::RequirePhase(dsn, kMigration, needs, kControlSchema);
  std::printf("   gate for %s (needs %s): %s\n", version.c_str(),
              std::string(pgshift::PhaseName(needs)).c_str(),
              ready.ok() ? "ready" : std::string(ready.message()).c_str());
  return ready.ok();
}

}  // namespace

int main(int argc, char** argv) {
  std::string dsn = std::getenv("PGSHIFT_DSN") ? std::getenv("PGSHIFT_DSN") : "";
  int64_t rows = 20000;
  int64_t batches_per_run = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dsn" && i + 1 < argc) {
      dsn = argv[++i];
    } else if (a == "--rows" && i + 1 < argc) {
      rows = std::atoll(argv[++i]);
    } else if (a == "--batches-per-run" && i + 1 < argc) {
      batches_per_run = std::atoll(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: deploy_driver [--dsn DSN] [--rows N] [--batches-per-run N]\n");
      return 2;
    }
  }
  if (rows < 100) rows = 100;

  std::printf("== setup: deploy_example.accounts with %lld rows\n", static_cast<long long>(rows));
  Conn admin(dsn);
  admin.MustExec(std::string("DROP SCHEMA IF EXISTS ") + kControlSchema + " CASCADE");
  admin.MustExec("DROP SCHEMA IF EXISTS deploy_example CASCADE");
  admin.MustExec("CREATE SCHEMA deploy_example");
  admin.MustExec("CREATE TABLE deploy_example.accounts (id bigint PRIMARY KEY, email text NOT NULL, "
                 "created_at timestamptz NOT NULL DEFAULT now())");
  admin.MustExec("INSERT INTO deploy_example.accounts (id, email) "
                 "SELECT g, 'user' || g || '@example.com' FROM generate_series(1, $1::bigint) g",
                 {std::to_string(rows)});
  admin.MustExec("ANALYZE deploy_example.accounts");

  pgshift::Options options;
  options.control_schema = kControlSchema;
  options.driver_name = "deploy_driver example";
  options.lock_timeout = absl::Milliseconds(500);
  options.backfill_batch_rows = 1000;
  options.backfill_max_batch_rows = 1000;
  options.backfill_max_batches = batches_per_run;  // bounded work per call
  options.max_replication_lag = absl::ZeroDuration();
  options.on_progress = [](const pgshift::Progress& p) {
    if (p.finished) {
      std::printf("   backfill done: %lld rows\n", static_cast<long long>(p.rows_done));
    }
  };
  absl::StatusOr<std::unique_ptr<pgshift::Driver>> driver = pgshift::Driver::Connect(dsn, options);
  if (!driver.ok()) {
    std::fprintf(stderr, "deploy_driver: %s\n", std::string(driver.status().message()).c_str());
    return 1;
  }
  pgshift::Driver& d = **driver;
  absl::StatusOr<pgshift::v1::Migration> spec = pgshift::ParseMigrationJson(kSpec, "deploy_driver");
  absl::Status s = spec.ok() ? d.Init() : spec.status();
  if (s.ok()) s = d.Register(*spec).status();
  if (!s.ok()) {
    std::fprintf(stderr, "deploy_driver: %s\n", std::string(s.message()).c_str());
    return pgshift::ExitCodeFor(s);
  }

  App v1("v1", dsn, "email", 0, rows + 1, rows);
  App v2("v2", dsn, "email_address", 1, 10 * rows + 1, rows);
  v1.Start();
  v1.WaitForWrites(20);

  std::printf("== deploy 1: expand (v1 running)\n");
  if (!AdvanceTo(d, pgshift::Phase::kValidated, {&v1})) return 1;

  std::printf("== deploy 2: roll out v2\n");
  if (Gate(dsn, "v2", pgshift::Phase::kSwitched)) {
    std::fprintf(stderr, "deploy_driver: v2's gate passed before switch; it must not\n");
    return 1;
  }
  if (!AdvanceTo(d, pgshift::Phase::kSwitched, {&v1})) return 1;
  if (!Gate(dsn, "v2", pgshift::Phase::kSwitched)) return 1;
  v2.Start();
  v1.WaitForWrites(50);
  v2.WaitForWrites(50);

  std::printf("== deploy 3: retire v1, contract\n");
  v1.Stop();
  if (!AdvanceTo(d, pgshift::Phase::kContracted, {&v2})) return 1;
  v2.WaitForWrites(50);
  v2.Stop();

  std::printf("== verify\n");
  std::map<int64_t, std::string> expected;
  for (App* app : {&v1, &v2}) {
    for (const auto& [id, value] : app->wrote()) expected[id] = value;
  }
  std::string total, old_column, wrong;
  admin.MustExec("SELECT count(*) FROM deploy_example.accounts", {}, &total);
  admin.MustExec("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                 "'deploy_example.accounts'::regclass AND attname = 'email' AND NOT attisdropped",
                 {}, &old_column);
  // One round trip: every (id, value) an app wrote, against the table; rows
  // no app touched must still hold their original value.
  std::string ids, values;
  for (const auto& [id, value] : expected) {
    ids += (ids.empty() ? "" : ",") + std::to_string(id);
    values += (values.empty() ? "" : "\x1f") + value;
  }
  admin.MustExec(
      "WITH w AS (SELECT unnest(string_to_array($1, ','))::bigint AS id, "
      "                  unnest(string_to_array($2, chr(31))) AS v) "
      "SELECT (SELECT count(*) FROM w LEFT JOIN deploy_example.accounts a USING (id) "
      "        WHERE a.email_address IS DISTINCT FROM w.v) + "
      "       (SELECT count(*) FROM deploy_example.accounts a WHERE a.id <= $3 "
      "        AND a.id NOT IN (SELECT id FROM w) "
      "        AND a.email_address IS DISTINCT FROM 'user' || a.id || '@example.com')",
      {ids, values, std::to_string(rows)}, &wrong);
  int64_t inserted = 0;
  for (const auto& [id, value] : expected) inserted += id > rows ? 1 : 0;
  bool ok = wrong == "0" && old_column == "0" && v1.failures() == 0 && v2.failures() == 0 &&
            std::atoll(total.c_str()) == rows + inserted;
  std::printf("   %s rows (%lld inserted by the apps), %zu written rows checked, %s wrong, "
              "old column %s, failed writes: v1 %lld, v2 %lld\n",
              total.c_str(), static_cast<long long>(inserted), expected.size(), wrong.c_str(),
              old_column == "0" ? "gone" : "STILL THERE", static_cast<long long>(v1.failures()),
              static_cast<long long>(v2.failures()));
  std::printf("%s\n", ok ? "OK: contracted, no write was lost" : "FAILED");
  return ok ? 0 : 1;
}
