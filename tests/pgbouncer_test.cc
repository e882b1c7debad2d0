// pgshift through PgBouncer in transaction pooling mode: consecutive
// transactions of one client may run on different server connections, so
// nothing may rely on session state (docs/runbook.md). The test
// starts a real pgbouncer on a free loopback port in front of the test server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/pgshift.h"
#include "tests/support/cli.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace pgshift {
namespace {

using ::pgshift::testing::ChildProcess;
using ::pgshift::testing::CliArgv;
using ::pgshift::testing::CliResult;
using ::pgshift::testing::Describe;
using ::pgshift::testing::Query;
using ::pgshift::testing::QueryValue;
using ::pgshift::testing::RunCli;
using ::pgshift::testing::ScratchDatabase;
using ::pgshift::testing::Session;
using ::pgshift::testing::Spec;
using ::pgshift::testing::WaitUntil;
using ::testing::HasSubstr;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::string ConninfoValue(const std::string& dsn, const std::string& key, const std::string& fallback) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (opts == nullptr) {
    if (err) PQfreemem(err);
    return fallback;
  }
  std::string out = fallback;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (key == o->keyword && o->val != nullptr && o->val[0] != '\0') out = o->val;
  }
  PQconninfoFree(opts);
  return out;
}

std::string Which(const std::string& program) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"}) {
    std::string p = absl::StrCat(dir, "/", program);
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// A pgbouncer in transaction pooling mode in front of the test server, for
// the lifetime of the test program.
class Bouncer {
 public:
  static Bouncer& Get() {
    static Bouncer* b = new Bouncer();
    return *b;
  }
  bool ok() const { return !error_.empty() ? false : port_ > 0; }
  const std::string& error() const { return error_; }
  // `server_dsn` (a database on the test server) seen through the bouncer.
  std::string Through(const std::string& server_dsn) const {
    return absl::StrCat("host=127.0.0.1 port=", port_, " dbname=",
                        ConninfoValue(server_dsn, "dbname", "postgres"), " user=",
                        ConninfoValue(server_dsn, "user", "postgres"));
  }
  ~Bouncer() = default;

 private:
  Bouncer() {
    const std::string binary = Which("pgbouncer");
    if (binary.empty()) {
      error_ = "pgbouncer is not installed (Debian package pgbouncer; scripts/deps.sh installs it)";
      return;
    }
    const std::string server = testing::ServerDsn();
    dir_ = testing::TempPath("pgbouncer");
    std::string mk = absl::StrCat("mkdir -p ", dir_);
    if (std::system(mk.c_str()) != 0) {
      error_ = "cannot create " + dir_;
      return;
    }
    port_ = FreePort();
    const std::string user = ConninfoValue(server, "user", "postgres");
    std::ofstream(dir_ + "/users.txt") << "\"" << user << "\" \"\"\n";
    std::ofstream(dir_ + "/pgbouncer.ini")
        << "[databases]\n* = host=" << ConninfoValue(server, "host", "127.0.0.1")
        << " port=" << ConninfoValue(server, "port", "5432") << "\n"
        << "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = " << port_
        << "\nunix_socket_dir =\nauth_type = trust\nauth_file = " << dir_
        << "/users.txt\npool_mode = transaction\ndefault_pool_size = 3\nmax_client_conn = 200\n"
        << "server_reset_query =\nignore_startup_parameters = extra_float_digits\n"
        << "logfile = " << dir_ << "/pgbouncer.log\npidfile = " << dir_ << "/pgbouncer.pid\n";
    // PgBouncer refuses to run as root.
    std::string as = getuid() == 0 ? absl::StrCat("chown -R postgres: ", dir_, " && runuser -u postgres -- ") : "";
    std::string cmd = absl::StrCat(as, binary, " -d ", dir_, "/pgbouncer.ini >>", dir_, "/start.log 2>&1");
    if (std::system(cmd.c_str()) != 0) {
      error_ = "pgbouncer did not start: " + testing::ReadFile(dir_ + "/pgbouncer.log");
      return;
    }
    const std::string probe = absl::StrCat("host=127.0.0.1 port=", port_, " dbname=postgres user=", user);
    if (!WaitUntil([&] {
          PGconn* c = PQconnectdb(probe.c_str());
          bool up = PQstatus(c) == CONNECTION_OK;
          PQfinish(c);
          return up;
        }, 20)) {
      error_ = "pgbouncer is not accepting connections: " + testing::ReadFile(dir_ + "/pgbouncer.log");
      return;
    }
    std::atexit([] {
      Bouncer& b = Get();
      std::string pid = testing::ReadFile(b.dir_ + "/pgbouncer.pid");
      if (!pid.empty()) kill(std::atoi(pid.c_str()), SIGTERM);
      std::string rm = absl::StrCat("sleep 0.2; rm -rf ", b.dir_);
      (void)std::system(rm.c_str());
    });
  }
  std::string dir_;
  int port_ = 0;
  std::string error_;
};

class ThroughPgBouncer : public ::testing::Test {
 protected:
  void SetUp() override {
    Bouncer& b = Bouncer::Get();
    ASSERT_TRUE(b.ok()) << b.error();
  }
  void Make(const std::string& prefix, int rows) {
    db_ = std::make_unique<ScratchDatabase>(prefix);
    pooled_ = Bouncer::Get().Through(db_->dsn());
    Query(direct(), absl::StrCat(
                        "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);"
                        "CREATE INDEX users_name_idx ON users (name);"
                        "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, ", rows, ") g;"
                        "CREATE TABLE oracle AS SELECT id, name FROM users"));
    spec_ = Spec("0200_rename").RenameColumn("users", "name", "full_name").File();
  }
  const std::string& direct() const { return db_->dsn(); }
  const std::string& pooled() const { return pooled_; }
  std::vector<std::string> Args(const std::vector<std::string>& rest) const { return CliArgv(pooled_, rest); }
  CliResult Cli(const std::vector<std::string>& rest) const { return RunCli(pooled_, rest); }
  std::string Phase() const { return QueryValue(direct(), "SELECT phase FROM pgshift.migrations"); }
  std::string OracleDiff() const {
    return QueryValue(direct(), "SELECT count(*) FROM ((SELECT id, full_name FROM users EXCEPT ALL SELECT id, name "
                                "FROM oracle) UNION ALL (SELECT id, name FROM oracle EXCEPT ALL SELECT id, "
                                "full_name FROM users)) d");
  }

  std::unique_ptr<ScratchDatabase> db_;
  std::string pooled_;
  std::string spec_;  // the migration file
};

// A whole migration through transaction pooling, with application writes
// through the same pool, and no session setting left behind on any server
// connection.
TEST_F(ThroughPgBouncer, AWholeMigrationWithTrafficAndNoLeakedSessionState) {
  Make("bouncer_full", 3000);
  {
    Session s(pooled());
    // Really behind a pooler: the pid libpq was told is not the server's.
    ASSERT_NE(std::to_string(s.pid()), s.Value("SELECT pg_backend_pid()"));
  }
  std::atomic<bool> stop{false}, new_app{false};
  std::atomic<int> writes{0};
  std::string writer_error;
  std::thread writer([&] {
    try {
      Session app(pooled());
      for (int i = 1; !stop; ++i) {
        const std::string col = new_app ? "full_name" : "name";
        const int id = 100000 + i;
        app.Exec(absl::StrCat("BEGIN; INSERT INTO users (id, ", col, ") VALUES (", id, ", 'w", i, "');"
                              "UPDATE users SET ", col, " = ", col, " || '+' WHERE id = ", 1 + i % 3000, ";"
                              "INSERT INTO oracle VALUES (", id, ", 'w", i, "');"
                              "UPDATE oracle SET name = name || '+' WHERE id = ", 1 + i % 3000, "; COMMIT"));
        ++writes;
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      }
    } catch (const std::exception& e) {
      writer_error = e.what();
    }
  });
  std::vector<std::vector<std::string>> commands = {
      {"init"}, {"plan", spec_}, {"register", spec_},
      {"--batch-rows", "200", "advance", "0200_rename", "--to", "validated"},
      {"advance", "0200_rename", "--to", "switched"}};
  for (const auto& cmd : commands) {
    CliResult r = Cli(cmd);
    ASSERT_EQ(r.exit_code, 0) << cmd[0] << ": " << Describe(r);
  }
  new_app = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CliResult done = Cli({"advance", "0200_rename"});
  stop = true;
  writer.join();
  ASSERT_EQ(done.exit_code, 0) << Describe(done);
  EXPECT_EQ(writer_error, "");
  EXPECT_GT(writes.load(), 10);
  EXPECT_EQ(Phase(), "contracted");
  EXPECT_EQ(OracleDiff(), "0");
  EXPECT_EQ(QueryValue(direct(), "SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass AND indisvalid "
                                 "AND indexrelid::regclass::text = 'users_name_idx'"),
            "1");
  // Every server connection of the pool (pinned by open transactions) still
  // has the server's defaults.
  std::vector<std::unique_ptr<Session>> pinned;
  std::vector<std::string> pids;
  for (int i = 0; i < 3; ++i) {
    pinned.push_back(std::make_unique<Session>(pooled()));
    pinned.back()->Exec("BEGIN");
    pids.push_back(pinned.back()->Value("SELECT pg_backend_pid()"));
    EXPECT_EQ(pinned.back()->Value("SHOW lock_timeout"), "0");
    EXPECT_EQ(pinned.back()->Value("SHOW statement_timeout"), "0");
    EXPECT_EQ(pinned.back()->Value("SELECT coalesce(current_setting('pgshift.backfill', true), '')"), "");
  }
  for (auto& s : pinned) s->Exec("COMMIT");
}

TEST_F(ThroughPgBouncer, OneDriverAtATimeAndAKilledDriverFreesTheMigrationAtOnce) {
  Make("bouncer_lease", 2000);
  ASSERT_EQ(Cli({"init"}).exit_code, 0);
  ASSERT_EQ(Cli({"register", spec_}).exit_code, 0);
  ChildProcess first(Args({"--batch-rows", "50", "--batch-delay", "30ms", "advance", "0200_rename", "--to", "contracted"}));
  ASSERT_TRUE(WaitUntil([&] {
    return QueryValue(direct(), "SELECT count(*) FROM pgshift.checkpoints WHERE rows_done >= 200") != "0";
  })) << first.CurrentErr();
  CliResult second = Cli({"advance", "0200_rename"});
  EXPECT_EQ(second.exit_code, 4) << Describe(second);
  EXPECT_THAT(second.err, HasSubstr("is busy"));
  EXPECT_THAT(second.err, HasSubstr(absl::StrCat(":", first.pid())));
  first.Kill(SIGKILL);
  first.Wait();
  // PgBouncer closes the server connection of a client that left mid
  // transaction: the lease goes with it, no expiry to wait for.
  ASSERT_TRUE(WaitUntil([&] {
    return QueryValue(direct(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                                "classid = 1885827944::oid AND database = (SELECT oid FROM pg_database WHERE datname = current_database())") == "0";
  }, 10));
  CliResult r = Cli({"advance", "0200_rename", "--to", "contracted"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(OracleDiff(), "0");
}

TEST_F(ThroughPgBouncer, TheGiveUpMessageNamesTheBlocker) {
  Make("bouncer_blocker", 100);
  ASSERT_EQ(Cli({"init"}).exit_code, 0);
  ASSERT_EQ(Cli({"register", spec_}).exit_code, 0);
  Session blocker(direct());
  blocker.Exec("BEGIN");
  blocker.Exec("SELECT count(*) FROM users /* held open */");
  CliResult r = Cli({"--preflight", "off", "--lock-timeout", "300ms", "--retry-deadline", "1500ms",
                     "advance", "0200_rename"});
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("pid ", blocker.pid())));
  EXPECT_THAT(r.err, HasSubstr("/* held open */"));
  EXPECT_EQ(Phase(), "registered");
  blocker.Exec("ROLLBACK");
}

TEST_F(ThroughPgBouncer, InstancesDeclareAndTheContractGuardHolds) {
  Make("bouncer_instances", 100);
  ASSERT_EQ(Cli({"init"}).exit_code, 0);
  ASSERT_EQ(Cli({"register", spec_}).exit_code, 0);
  ASSERT_EQ(Cli({"advance", "0200_rename", "--to", "switched"}).exit_code, 0);
  InstanceOptions o;
  o.instance_id = "pooled-app";
  auto reg = InstanceRegistration::Start(pooled(), "0200_rename", Shape::kOld, o);
  ASSERT_TRUE(reg.ok()) << reg.status();
  EXPECT_TRUE(RequirePhase(pooled(), "0200_rename", Phase::kSwitched).ok());
  CliResult refused = Cli({"advance", "0200_rename"});
  EXPECT_EQ(refused.exit_code, 1) << Describe(refused);
  EXPECT_THAT(refused.err, HasSubstr("pooled-app"));
  reg->reset();
  EXPECT_EQ(Cli({"advance", "0200_rename"}).exit_code, 0);
}

}  // namespace
}  // namespace pgshift
