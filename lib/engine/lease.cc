#include "lib/engine/lease.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/util/status_macros.h"

namespace pgshift::engine {

std::string LeaseKeyText(const std::string& control_schema, const std::string& name) {
  return absl::StrCat(control_schema, ".", name);
}

std::string LeaseLockCondition(absl::string_view alias, int key_param, absl::string_view class_key) {
  // Advisory locks are per database: the same migration name in another
  // database of the server is another migration.
  return absl::StrCat(alias, ".locktype = 'advisory' AND ", alias, ".granted AND ", alias,
                      ".database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                      "AND ", alias, ".classid = ", class_key, "::oid AND ", alias,
                      ".objid = hashtext($", key_param, ")::oid AND ", alias, ".objsubid = 2");
}

namespace {

absl::StatusOr<std::string> DescribeHolder(pg::Connection& conn, absl::string_view class_key,
                                           const std::string& key_text) {
  ASSIGN_OR_RETURN(
      pg::Result who,
      conn.Exec(
          absl::StrCat(
              "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), "
              "coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "
              "coalesce(a.usename::text, '') "
              "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE ",
              LeaseLockCondition("l", 1, class_key)),
          {key_text}));
  if (who.rows() == 0) return std::string();
  std::string app = who.Get(0, 1);
  return absl::StrCat(app.empty() ? "a driver" : absl::StrCat("driver \"", app, "\""),
                      " (backend pid ", who.Get(0, 0), ", role ", who.Get(0, 4), ", from ",
                      who.Get(0, 2), ", driving since ", who.Get(0, 3), ")");
}

}  // namespace

absl::StatusOr<std::string> DescribeLeaseHolder(pg::Connection& conn,
                                                const std::string& control_schema,
                                                const std::string& name) {
  return DescribeHolder(conn, kAdvisoryClassKey, LeaseKeyText(control_schema, name));
}

absl::StatusOr<std::string> DescribeRunnerHolder(pg::Connection& conn,
                                                 const std::string& control_schema) {
  return DescribeHolder(conn, kRunnerClassKey, control_schema);
}

absl::StatusOr<std::unique_ptr<Lease>> Lease::TryAcquire(std::unique_ptr<pg::Connection>& conn,
                                                         absl::string_view class_key,
                                                         const std::string& key_text,
                                                         const std::string& name,
                                                         absl::Duration heartbeat) {
  RETURN_IF_ERROR(conn->Run("BEGIN"));
  auto rollback = [&conn]() { (void)conn->Run("ROLLBACK"); };
  // The lease transaction must survive long steps: a server-wide
  // idle_in_transaction_session_timeout would end it (and the lease) while
  // the driver is busy on its other connection.
  absl::StatusOr<pg::Result> got = conn->Exec(
      absl::StrCat("SELECT pg_try_advisory_xact_lock(", class_key, ", hashtext($1)), "
                   "pg_backend_pid(), set_config('idle_in_transaction_session_timeout', '0', true)"),
      {key_text});
  if (!got.ok()) {
    rollback();
    return got.status();
  }
  if (!got->GetBool(0, 0)) {
    rollback();
    return std::unique_ptr<Lease>();
  }
  int pid = static_cast<int>(got->GetInt(0, 1));
  // The parameterised query left its portal, and with it a snapshot, in
  // the open transaction: CREATE INDEX CONCURRENTLY would wait for the
  // whole lease. A simple-protocol statement drops it.
  absl::Status clear = conn->RunSimple("SELECT 1");
  if (!clear.ok()) {
    rollback();
    return clear;
  }
  return std::unique_ptr<Lease>(new Lease(std::move(conn), name, pid, heartbeat));
}

absl::StatusOr<std::unique_ptr<Lease>> Lease::Acquire(std::unique_ptr<pg::Connection> conn,
                                                      const std::string& control_schema,
                                                      const std::string& name,
                                                      absl::Duration heartbeat) {
  ASSIGN_OR_RETURN(std::unique_ptr<Lease> lease,
                   TryAcquire(conn, kAdvisoryClassKey, LeaseKeyText(control_schema, name),
                              absl::StrCat("driver lease of migration \"", name, "\""), heartbeat));
  if (lease) return lease;
  absl::StatusOr<std::string> who = DescribeLeaseHolder(*conn, control_schema, name);
  std::string holder = who.ok() && !who->empty() ? *who : "another session";
  return absl::AbortedError(absl::StrCat(
      "migration \"", name, "\" is busy: ", holder,
      " is driving it; nothing was changed. Wait for it to finish (or stop it), then run the "
      "command again"));
}

absl::StatusOr<std::unique_ptr<Lease>> Lease::TryAcquireRunner(std::unique_ptr<pg::Connection>& conn,
                                                               const std::string& control_schema,
                                                               absl::Duration heartbeat) {
  return TryAcquire(conn, kRunnerClassKey, control_schema,
                    absl::StrCat("lock of the migration directory runner of \"", control_schema, "\""),
                    heartbeat);
}

Lease::Lease(std::unique_ptr<pg::Connection> conn, std::string name, int pid,
             absl::Duration heartbeat)
    : conn_(std::move(conn)), name_(std::move(name)), holder_pid_(pid), heartbeat_(heartbeat) {
  if (heartbeat_ > absl::ZeroDuration()) thread_ = std::thread([this] { HeartbeatLoop(); });
}

Lease::~Lease() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (conn_->ok()) (void)conn_->Run("COMMIT");
}

void Lease::HeartbeatLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  const auto period = absl::ToChronoMilliseconds(heartbeat_);
  while (!stop_) {
    if (cv_.wait_for(lock, period, [this] { return stop_; })) break;
    // An empty query: a round trip that takes no snapshot, so the lease
    // never holds an xmin that another session's index build would wait for.
    absl::Status s = conn_->RunSimple(";");
    if (!s.ok()) {
      lost_reason_ = std::string(s.message());
      lost_.store(true);
      return;
    }
  }
}

absl::Status Lease::Check() const {
  if (!lost_.load()) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat(
      "lost the ", name_, " (its connection failed: ", lost_reason_,
      "); stopped before recording anything further. The finished work is kept; run the command "
      "again to continue"));
}

}  // namespace pgshift::engine
