// The driver lease: at most one driver works on a migration at a time
// (docs/architecture.md, "The phase ladder"), without relying on session state, so that it holds through a
// transaction-pooling PgBouncer as well as on a direct connection.
//
// How: a dedicated connection opens a transaction and takes the transaction
// -level advisory lock pg_try_advisory_xact_lock(1885827944,
// hashtext('<control schema>.<migration>')), then stays idle in that
// transaction for as long as the driver works. A pooler pins a client to one
// server connection for the length of a transaction, so the lock lives on one
// backend for exactly the lease. It is released when the lease commits, and
// also, at once and without clean-up, when the driver process dies: the
// server (or PgBouncer, which closes a server connection whose client left in
// the middle of a transaction) ends the backend and its transaction.
//
// The lease transaction takes no snapshot between its statements (READ
// COMMITTED, no writes), so it holds back neither VACUUM nor CREATE INDEX
// CONCURRENTLY; it disables idle_in_transaction_session_timeout for itself
// with SET LOCAL, and a background heartbeat (an empty query in the transaction)
// keeps a pooler's idle_transaction_timeout from firing and notices a lost
// lease early.
//
// Fencing: every phase write checks, in the same statement, that the lease's
// backend still holds the lock (Control::SetPhase), so a driver that lost its
// lease can never record a phase.
#ifndef PGSHIFT_LIB_ENGINE_LEASE_H_
#define PGSHIFT_LIB_ENGINE_LEASE_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/pg/connection.h"
#include "lib/util/advisory_keys.h"

namespace pgshift::engine {

// First key of every pgshift advisory lock ("pgsh").
using util::kAdvisoryClassKey;

// First key of the directory runner's lock (Driver::Migrate, Baseline: one
// at a time per database and control schema), whose second key is
// hashtext('<control schema>'). Taken and held like a lease.
using util::kRunnerClassKey;

// The text whose hashtext() is the second key of migration `name`'s lock:
// "<schema>.<name>".
std::string LeaseKeyText(const std::string& control_schema, const std::string& name);

// The one SQL condition recognising a lease lock: true for the granted row
// `alias` of pg_locks holding the lease whose LeaseKeyText is parameter
// $<key_param> of the enclosing statement, in this database.
std::string LeaseLockCondition(absl::string_view alias, int key_param,
                               absl::string_view class_key = kAdvisoryClassKey);

// "driver \"pgshift host:42 [lease]\" (backend pid 7, role r, from 10.0.0.2,
// driving since 2026-...Z)" for whoever holds migration `name`'s lease, or
// "" when nobody does.
absl::StatusOr<std::string> DescribeLeaseHolder(pg::Connection& conn,
                                                const std::string& control_schema,
                                                const std::string& name);

// The same for whoever holds the directory runner's lock of
// `control_schema`, or "".
absl::StatusOr<std::string> DescribeRunnerHolder(pg::Connection& conn,
                                                 const std::string& control_schema);

class Lease {
 public:
  // Takes the directory runner's lock of `control_schema` on `conn` (a
  // connection used for nothing else, moved into the lease); nullptr when
  // another session holds it (see DescribeRunnerHolder), `conn` left as it
  // was, to try again.
  static absl::StatusOr<std::unique_ptr<Lease>> TryAcquireRunner(std::unique_ptr<pg::Connection>& conn,
                                                                 const std::string& control_schema,
                                                                 absl::Duration heartbeat);

  // Takes the lease of migration `name` on `conn` (a connection used for
  // nothing else). Aborted naming the current holder (its application name,
  // backend pid, client address and since when it drives) when another
  // driver holds it; nothing is changed then.
  static absl::StatusOr<std::unique_ptr<Lease>> Acquire(std::unique_ptr<pg::Connection> conn,
                                                        const std::string& control_schema,
                                                        const std::string& name,
                                                        absl::Duration heartbeat);
  // Releases the lease (COMMIT) and closes its connection.
  ~Lease();

  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  // Server pid of the backend holding the lock (pg_backend_pid() inside the
  // lease transaction: the real one, also behind a pooler).
  int holder_pid() const { return holder_pid_; }

  // OK while the lease is held; Aborted saying so once the heartbeat found the
  // lease connection gone (terminated backend, server restart, pooler
  // timeout). Cheap: reads a flag.
  absl::Status Check() const;

 private:
  Lease(std::unique_ptr<pg::Connection> conn, std::string name, int pid, absl::Duration heartbeat);
  // Takes advisory lock (class_key, hashtext(key_text)) in the lease
  // transaction; nullptr when another session holds it (`conn` closed).
  static absl::StatusOr<std::unique_ptr<Lease>> TryAcquire(std::unique_ptr<pg::Connection>& conn,
                                                           absl::string_view class_key,
                                                           const std::string& key_text,
                                                           const std::string& name,
                                                           absl::Duration heartbeat);
  void HeartbeatLoop();

  std::unique_ptr<pg::Connection> conn_;
  std::string name_;  // for messages: driver lease of migration "x"
  int holder_pid_;
  absl::Duration heartbeat_;
  std::mutex mu_;                // guards conn_ use and stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> lost_{false};
  std::string lost_reason_;      // written once before lost_ is set
  std::thread thread_;
};

}  // namespace pgshift::engine

#endif  // PGSHIFT_LIB_ENGINE_LEASE_H_
