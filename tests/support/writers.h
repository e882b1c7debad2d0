// Concurrent application writers with an independent oracle, for tests that
// prove "no write is lost" while a migration runs.
//
// A Writer is one simulated application instance: a thread with its own
// libpq connection that inserts, updates and deletes rows of one table, one
// autocommit statement at a time, on keys that only it owns. After each
// statement has committed it records the row's logical value in its oracle
// (a map primary key -> value). Because writers own disjoint key ranges, the
// oracle is exact: at any quiescent point, the table must hold exactly the
// union of the writers' oracles.
//
// Typical use:
//
//   pgshift::testing::WriteShape old_app;
//   old_app.insert_sql = "INSERT INTO app.t (id, v) VALUES ($1, $2)";
//   old_app.update_sql = "UPDATE app.t SET v = $2 WHERE id = $1";
//   old_app.delete_sql = "DELETE FROM app.t WHERE id = $1";
//   old_app.make = [](int64_t id, int64_t n, int generation) {
//     return pgshift::testing::Values{"o" + std::to_string(n)};
//   };
//   std::atomic<int> generation{0};
//   pgshift::testing::Writer w(dsn, "old app", 'o', old_app, initial_oracle,
//                              /*first_new_id=*/1000000, /*seed=*/1, &generation);
//   w.Start();
//   ... run a migration step ...
//   w.WaitForMoreOps(25);
//   w.Stop();
//   EXPECT_TRUE(w.errors().empty());
//   for (const auto& [id, entry] : w.oracle()) ...
//
// Thread-safety: Start/Stop/WaitForMoreOps/ops/errors may be called from any
// thread; oracle() only while the writer is stopped.
#ifndef PGSHIFT_TESTS_SUPPORT_WRITERS_H_
#define PGSHIFT_TESTS_SUPPORT_WRITERS_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace pgshift::testing {

// The values one statement writes ($2, $3, ... of insert_sql/update_sql);
// std::nullopt is SQL NULL. The oracle keeps exactly these.
using Values = std::vector<std::optional<std::string>>;

// What the oracle knows about one row.
struct OracleEntry {
  char writer = 's';  // 's' seeded before the test, else the writer's tag
  // What the last committed write wrote. An update that writes fewer values
  // than the entry holds keeps the trailing ones (e.g. a column the new app
  // version no longer writes keeps its value).
  Values values;
  int generation = 0; // the writer's generation counter when that write started
};
using Oracle = std::map<int64_t, OracleEntry>;

// How one application version writes (its "shape" of the table).
struct WriteShape {
  std::string insert_sql;  // $1 = primary key, $2.. = Values
  std::string update_sql;  // $1 = primary key, $2.. = Values
  std::string delete_sql;  // $1 = primary key
  // The values of the n-th write (n counts this writer's statements) to row
  // `id`, started at `generation`. Must not throw.
  std::function<Values(int64_t id, int64_t n, int generation)> make;
  // Percentages of inserts and deletes; the rest are updates.
  int insert_percent = 35;
  int delete_percent = 15;
};

class Writer {
 public:
  // `initial` holds the rows this writer owns at start (it updates and deletes
  // only those and the ones it inserts); new keys are first_new_id, +1, ...
  // `generation` is read when each statement starts and recorded with it.
  Writer(std::string dsn, std::string application_name, char tag, WriteShape shape,
         Oracle initial, int64_t first_new_id, uint64_t seed,
         const std::atomic<int>* generation);
  ~Writer();

  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Starts (or restarts) the writing thread. Connects first; throws
  // std::runtime_error when it cannot connect.
  void Start();
  // Stops after the statement in flight and joins the thread. Idempotent.
  void Stop();
  bool running() const { return running_.load(); }

  // Blocks until at least `n` more statements ran (committed or failed)
  // since the call, or the writer stopped. Returns false if it stopped first.
  bool WaitForMoreOps(int64_t n);

  int64_t ops() const { return ops_.load(); }
  // Statements that failed (message with the statement). An application
  // writer must never see an error while a migration runs.
  std::vector<std::string> errors() const;
  // Only while stopped.
  const Oracle& oracle() const { return oracle_; }
  char tag() const { return tag_; }

 private:
  void Run();

  std::string dsn_;
  std::string application_name_;
  char tag_;
  WriteShape shape_;
  Oracle oracle_;
  std::vector<int64_t> keys_;  // keys of oracle_, for random picks
  int64_t next_id_;
  std::mt19937_64 rng_;
  const std::atomic<int>* generation_;
  int64_t counter_ = 0;

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<int64_t> ops_{0};       // committed statements
  std::atomic<int64_t> attempts_{0};  // committed or failed
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> errors_;
  void* conn_ = nullptr;  // PGconn*
};

// The JSON array [{"id":..,"w":"o","g":..,"v":[..]}, ...] of `oracles`
// merged, with `synced(entry)` added as "s": true/false. For SQL checks:
//   SELECT ... FROM jsonb_to_recordset($j$<json>$j$::jsonb)
//     AS o(id bigint, w text, g int, s bool, v text[])
std::string OracleJson(const std::vector<const Oracle*>& oracles,
                       const std::function<bool(const OracleEntry&)>& synced);

// JSON string literal of `s` (quotes, backslashes and control characters
// escaped; other bytes, including UTF-8, copied).
std::string JsonQuote(const std::string& s);

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_WRITERS_H_
