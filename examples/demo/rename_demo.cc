// pgshift demo: rename a column of a live, million-row table across simulated
// deploys, while an old and a new application version keep writing, then
// prove that no write was lost.
//
//   pgshift_demo --dsn "host=... dbname=..." [--rows 1000000]
//
// Deploy 0: the old app version runs; the driver expands (column_added ..
//           validated). Deploy 1: the new app version starts (its startup
//           check refuses until the migration is switched); old and new run
//           side by side. Deploy 2: the old app version is gone; contract.
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
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

using Clock = std::chrono::steady_clock;

struct Conn {
  PGconn* c = nullptr;
  explicit Conn(const std::string& dsn) {
    c = PQconnectdb(dsn.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      std::fprintf(stderr, "demo: cannot connect: %s", PQerrorMessage(c));
      std::exit(1);
    }
    PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  }
  ~Conn() { PQfinish(c); }
  // Runs one statement with text parameters; returns false on error.
  bool Exec(const char* sql, const std::vector<std::string>& params, std::string* out = nullptr) {
    std::vector<const char*> v;
    for (const auto& p : params) v.push_back(p.c_str());
    PGresult* r = PQexecParams(c, sql, static_cast<int>(v.size()), nullptr, v.data(), nullptr,
                               nullptr, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) std::fprintf(stderr, "demo: %s", PQresultErrorMessage(r));
    if (ok && out && PQntuples(r) > 0) *out = PQgetvalue(r, 0, 0);
    PQclear(r);
    return ok;
  }
};

// One application version writing through its own connection. Each version
// owns disjoint keys, so its oracle of what it wrote is exact.
class AppVersion {
 public:
  AppVersion(std::string name, std::string dsn, std::string column, int64_t parity,
             int64_t insert_base, int64_t rows)
      : name_(std::move(name)), dsn_(std::move(dsn)), column_(std::move(column)),
        parity_(parity), next_insert_(insert_base), rows_(rows) {}

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t writes() const { return writes_; }
  int64_t failures() const { return failures_; }
  // id -> expected value (std::nullopt = deleted)
  const std::map<int64_t, std::optional<std::string>>& oracle() const { return oracle_; }

 private:
  void Loop() {
    Conn conn(dsn_);
    std::mt19937_64 rng(parity_ * 7919 + 1);
    const std::string col = "\"" + column_ + "\"";
    const std::string insert = "INSERT INTO demo.accounts (id, " + col + ", balance) VALUES ($1, $2, 0)";
    const std::string update = "UPDATE demo.accounts SET " + col + " = $2 WHERE id = $1";
    const std::string del = "DELETE FROM demo.accounts WHERE id = $1";
    int64_t n = 0;
    while (!stop_) {
      ++n;
      int what = static_cast<int>(rng() % 10);
      bool ok = false;
      if (what < 2) {  // insert a new row
        int64_t id = next_insert_++;
        std::string v = name_ + "-insert-" + std::to_string(n) + "@example.com";
        ok = conn.Exec(insert.c_str(), {std::to_string(id), v});
        if (ok) oracle_[id] = v;
      } else if (what < 9) {  // update an existing row this version owns
        int64_t id = static_cast<int64_t>(rng() % (rows_ / 2)) * 2 + 1 + parity_;
        if (oracle_.count(id) && !oracle_[id]) continue;  // deleted earlier
        std::string v = name_ + "-update-" + std::to_string(n) + "@example.com";
        ok = conn.Exec(update.c_str(), {std::to_string(id), v});
        if (ok) oracle_[id] = v;
      } else {  // delete one
        int64_t id = static_cast<int64_t>(rng() % (rows_ / 2)) * 2 + 1 + parity_;
        ok = conn.Exec(del.c_str(), {std::to_string(id)});
        if (ok) oracle_[id] = std::nullopt;
      }
      ok ? ++writes_ : ++failures_;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::string name_, dsn_, column_;
  int64_t parity_, next_insert_, rows_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> writes_{0}, failures_{0};
  std::map<int64_t, std::optional<std::string>> oracle_;
};

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "demo: %s failed: %s\n", what, std::string(s.message()).c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dsn = std::getenv("PGSHIFT_DSN") ? std::getenv("PGSHIFT_DSN") : "";
  int64_t rows = 1000000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--dsn") dsn = argv[i + 1];
    if (a == "--rows") rows = std::atoll(argv[i + 1]);
  }
  if (rows < 1000) rows = 1000;
  Conn admin(dsn);
  auto t0 = Clock::now();
  std::printf("== setup: demo.accounts with %lld rows\n", static_cast<long long>(rows));
  admin.Exec("DROP SCHEMA IF EXISTS demo CASCADE", {});
  admin.Exec("DROP SCHEMA IF EXISTS pgshift CASCADE", {});
  admin.Exec("CREATE SCHEMA demo", {});
  admin.Exec("CREATE TABLE demo.accounts (id bigint PRIMARY KEY, email text NOT NULL, "
             "balance integer NOT NULL DEFAULT 0)", {});
  admin.Exec("INSERT INTO demo.accounts (id, email) SELECT g, 'user' || g || '@example.com' "
             "FROM generate_series(1, $1::bigint) g", {std::to_string(rows)});
  admin.Exec("CREATE UNIQUE INDEX accounts_email_key ON demo.accounts (email)", {});
  admin.Exec("ANALYZE demo.accounts", {});
  std::printf("   created in %.1fs\n", Since(t0));

  pgshift::Options options;
  int64_t last_print = 0;
  options.on_progress = [&last_print](const pgshift::Progress& p) {
    if (p.finished || p.rows_done - last_print >= 100000) {
      last_print = p.rows_done;
      std::printf("   backfill %lld/%lld rows, %.0f rows/s%s\n", static_cast<long long>(p.rows_done),
                  static_cast<long long>(p.rows_estimate), p.rows_per_second,
                  p.finished ? " (done)" : "");
      std::fflush(stdout);
    }
  };
  auto driver = pgshift::Driver::Connect(dsn, options);
  Check(driver.status(), "connect");
  pgshift::Driver& d = **driver;
  Check(d.Init(), "init");
  auto spec = pgshift::ParseMigrationJson(R"({"name": "0001_rename_accounts_email", "schema": "demo",
    "operations": [{"rename_column": {"table": "accounts", "from": "email", "to": "email_address"}}]})");
  Check(spec.status(), "parse");

  std::printf("== deploy 0: old app version (writes \"email\") is running\n");
  AppVersion old_app("old", dsn, "email", 0, rows + 1, rows);
  AppVersion new_app("new", dsn, "email_address", 1, rows * 3 + 1, rows);
  old_app.Start();
  Check(d.Register(*spec).status(), "register");
  std::printf("   registered %s\n", spec->name().c_str());
  for (pgshift::Phase p : {pgshift::Phase::kColumnAdded, pgshift::Phase::kTriggerInstalled,
                           pgshift::Phase::kBackfilled, pgshift::Phase::kValidated}) {
    auto t = Clock::now();
    Check(d.Advance(spec->name(), p).status(), "advance");
    std::printf("-> %-18s %.2fs   (old app: %lld writes so far)\n",
                std::string(pgshift::PhaseName(p)).c_str(), Since(t),
                static_cast<long long>(old_app.writes()));
  }

  std::printf("== deploy 1: new app version (writes \"email_address\") starts\n");
  absl::Status ready = pgshift::RequirePhase(dsn, spec->name(), pgshift::Phase::kSwitched);
  std::printf("   new app startup check before switch: %s\n",
              ready.ok() ? "ready (unexpected!)" : std::string(ready.message()).c_str());
  auto t = Clock::now();
  Check(d.Advance(spec->name(), pgshift::Phase::kSwitched).status(), "advance");
  std::printf("-> %-18s %.2fs\n", "switched", Since(t));
  Check(pgshift::RequirePhase(dsn, spec->name(), pgshift::Phase::kSwitched), "new app startup check");
  std::printf("   new app startup check: ready; old and new versions now run side by side\n");
  new_app.Start();
  std::this_thread::sleep_for(std::chrono::seconds(3));

  std::printf("== deploy 2: old app version is gone\n");
  old_app.Stop();
  t = Clock::now();
  Check(d.Advance(spec->name(), pgshift::Phase::kContracted).status(), "advance");
  std::printf("-> %-18s %.2fs\n", "contracted", Since(t));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  new_app.Stop();

  std::printf("== verification\n");
  Conn check(dsn);
  std::string has_old;
  check.Exec("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'demo' "
             "AND table_name = 'accounts' AND column_name = 'email'", {}, &has_old);
  int64_t mismatches = 0, checked = 0;
  std::map<int64_t, std::optional<std::string>> expected;
  for (auto* app : {&old_app, &new_app}) {
    for (const auto& [id, v] : app->oracle()) expected[id] = v;
  }
  for (const auto& [id, v] : expected) {
    std::string got, count;
    check.Exec("SELECT count(*) FROM demo.accounts WHERE id = $1", {std::to_string(id)}, &count);
    if (!v) {
      if (count != "0") ++mismatches;
    } else {
      check.Exec("SELECT email_address FROM demo.accounts WHERE id = $1", {std::to_string(id)}, &got);
      if (count != "1" || got != *v) ++mismatches;
    }
    ++checked;
  }
  // Rows no app touched keep their original value.
  check.Exec("CREATE TEMP TABLE touched (id bigint PRIMARY KEY)", {});
  std::string ids;
  for (const auto& [id, v] : expected) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  check.Exec("INSERT INTO touched SELECT unnest(string_to_array($1, ',')::bigint[])", {ids});
  std::string untouched_bad, total;
  check.Exec("SELECT count(*) FROM demo.accounts a WHERE a.id <= $1 AND NOT EXISTS "
             "(SELECT 1 FROM touched t WHERE t.id = a.id) AND a.email_address IS DISTINCT FROM "
             "'user' || a.id || '@example.com'", {std::to_string(rows)}, &untouched_bad);
  check.Exec("SELECT count(*) FROM demo.accounts", {}, &total);
  mismatches += std::atoll(untouched_bad.c_str());
  std::printf("   old app: %lld writes (%lld failed), new app: %lld writes (%lld failed)\n",
              static_cast<long long>(old_app.writes()), static_cast<long long>(old_app.failures()),
              static_cast<long long>(new_app.writes()), static_cast<long long>(new_app.failures()));
  std::printf("   %lld rows in the table, %lld written rows checked against the oracle, "
              "old column present: %s\n",
              std::atoll(total.c_str()), static_cast<long long>(checked), has_old == "0" ? "no" : "yes");
  bool ok = mismatches == 0 && has_old == "0" && old_app.failures() == 0 && new_app.failures() == 0;
  std::printf("%s: %lld mismatches, total time %.1fs\n",
              ok ? "OK, no write was lost" : "FAILED", static_cast<long long>(mismatches), Since(t0));
  return ok ? 0 : 1;
}
