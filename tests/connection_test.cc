// How pgshift connects: the user's connection string wins over pgshift's
// defaults (connect_timeout, application_name, keepalives), those defaults
// fill only what it leaves out, and a connection string that can never
// connect is bad input (INVALID_ARGUMENT, exit 2) without a secret in the
// message, while a server that is not there is UNAVAILABLE (exit 1: retry).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "lib/pg/connection.h"
#include "pgshift/driver.h"
#include "pgshift/errors.h"
#include "tests/support/cli.h"
#include "tests/support/test_db.h"

namespace {

namespace pt = ::pgshift::testing;

class ConnectionOptions : public ::testing::Test {
 protected:
  void SetUp() override {
    // The test's own environment must not decide what is checked here.
    unsetenv("PGCONNECT_TIMEOUT");
    unsetenv("PGAPPNAME");
  }
  std::unique_ptr<pgshift::pg::Connection> Open(const std::string& dsn) {
    auto c = pgshift::pg::Connection::Open(dsn, "pgshift test");
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  static std::string AppName(pgshift::pg::Connection& c) {
    auto r = c.Exec("SELECT current_setting('application_name')");
    return r.ok() ? r->Get(0, 0) : r.status().ToString();
  }
  pt::ScratchDatabase db_{"connection"};
};

TEST_F(ConnectionOptions, DefaultsFillWhatTheDsnLeavesOut) {
  auto c = Open(db_.dsn());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->conninfo("connect_timeout"), "10");
  EXPECT_EQ(AppName(*c), "pgshift test");
  EXPECT_EQ(c->conninfo("keepalives_idle"), "30");
  EXPECT_EQ(c->conninfo("tcp_user_timeout"), "60000");
}

TEST_F(ConnectionOptions, TheDsnWins) {
  auto c = Open(db_.dsn() + " connect_timeout=2 application_name=deploy_job keepalives_idle=7 "
                            "tcp_user_timeout=5000");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->conninfo("connect_timeout"), "2");
  EXPECT_EQ(AppName(*c), "deploy_job");
  EXPECT_EQ(c->conninfo("keepalives_idle"), "7");
  EXPECT_EQ(c->conninfo("tcp_user_timeout"), "5000");
}

TEST_F(ConnectionOptions, TheEnvironmentWinsOverPgshiftsDefaults) {
  setenv("PGCONNECT_TIMEOUT", "3", 1);
  setenv("PGAPPNAME", "from_env", 1);
  auto c = Open(db_.dsn());
  unsetenv("PGCONNECT_TIMEOUT");
  unsetenv("PGAPPNAME");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->conninfo("connect_timeout"), "3");
  EXPECT_EQ(AppName(*c), "from_env");
}

// As in libpq (and psql), a DSN without "=" that is not a URI is a database
// name; the PG* environment gives the rest.
TEST_F(ConnectionOptions, ABareDatabaseNameIsADatabaseName) {
  auto probe = Open(db_.dsn());
  ASSERT_NE(probe, nullptr);
  setenv("PGHOST", probe->conninfo("host").c_str(), 1);
  setenv("PGPORT", probe->conninfo("port").c_str(), 1);
  setenv("PGUSER", probe->conninfo("user").c_str(), 1);
  auto c = pgshift::pg::Connection::Open(db_.name(), "pgshift test");
  unsetenv("PGHOST");
  unsetenv("PGPORT");
  unsetenv("PGUSER");
  ASSERT_TRUE(c.ok()) << c.status();
  auto r = (*c)->Exec("SELECT current_database()");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->Get(0, 0), db_.name());
}

// A connection string that can never connect: INVALID_ARGUMENT naming what is
// wrong, the password masked; the library and the CLI (exit 2) alike.
TEST_F(ConnectionOptions, AMalformedDsnIsBadInput) {
  const std::string secret = "s3cretpw";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {db_.dsn() + " password=" + secret + " bogus=1", "invalid connection option \"bogus\""},
      {db_.dsn() + " password=" + secret + " sslmode=nope", "invalid sslmode value \"nope\""},
      {db_.dsn() + " password=" + secret + " port=abc", "invalid port value \"abc\""},
      {db_.dsn() + " password=" + secret + " connect_timeout=soon", "invalid connect_timeout"},
      {db_.dsn() + " password=" + secret + " target_session_attrs=rw", "target_session_attrs"},
      {"postgresql://u:" + secret + "@127.0.0.1/db?sslmode=nope", "invalid sslmode value"},
      {"password=" + secret + " host='unterminated", "not valid"},
  };
  for (const auto& [dsn, expect] : cases) {
    SCOPED_TRACE(expect);
    auto d = pgshift::Driver::Connect(dsn, pgshift::Options());
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << d.status();
    EXPECT_NE(d.status().message().find(expect), absl::string_view::npos) << d.status();
    EXPECT_EQ(d.status().message().find(secret), absl::string_view::npos) << d.status();
    pt::CliResult r = pt::RunCli(dsn, {"status"}, {"PGSHIFT_DSN="});
    EXPECT_EQ(r.exit_code, 2) << pt::Describe(r);
    EXPECT_EQ(r.err.find(secret), std::string::npos) << pt::Describe(r);
  }
  // The server answers and refuses: no such role, no such database. Trying
  // again cannot help: INVALID_ARGUMENT with the server's reason (exit 2).
  const std::vector<std::pair<std::string, std::string>> refused = {
      {pt::DsnWithUser(db_.dsn(), "pgshift_no_such_role"), "28000"},
      {pt::DsnForDatabase("pgshift_no_such_database"), "3D000"},
  };
  for (const auto& [dsn, sqlstate] : refused) {
    SCOPED_TRACE(sqlstate);
    auto d = pgshift::Driver::Connect(dsn, pgshift::Options());
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << d.status();
    EXPECT_EQ(pgshift::SqlState(d.status()), sqlstate) << d.status();
    EXPECT_NE(d.status().message().find("does not exist"), absl::string_view::npos) << d.status();
    pt::CliResult r = pt::RunCli(dsn, {"status"}, {"PGSHIFT_DSN="});
    EXPECT_EQ(r.exit_code, 2) << pt::Describe(r);
    r = pt::RunCli(dsn, {"check", "m", "--at-least", "switched"}, {"PGSHIFT_DSN="});
    EXPECT_EQ(r.exit_code, 2) << pt::Describe(r);
  }
  // Nothing listens there: the server may come back, so UNAVAILABLE (exit 1).
  auto d = pgshift::Driver::Connect("host=127.0.0.1 port=1 connect_timeout=5", pgshift::Options());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kUnavailable) << d.status();
  pt::CliResult r = pt::RunCli("host=127.0.0.1 port=1 connect_timeout=5", {"status"}, {"PGSHIFT_DSN="});
  EXPECT_EQ(r.exit_code, 1) << pt::Describe(r);
}

}  // namespace

namespace {

// After the server ended the driver's session (a restart, or the backend
// terminated: the client sees the same FATAL and closed socket), the next
// call connects again instead of failing forever.
TEST(DriverSession, TheNextCallConnectsAgainAfterTheSessionWasEnded) {
  pt::ScratchDatabase db("reconnect");
  pgshift::Options o;
  o.driver_name = "reconnect-test";
  auto d = pgshift::Driver::Connect(db.dsn(), o);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE((*d)->Init().ok());
  const std::string pid = pt::QueryValue(
      db.dsn(), "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgshift reconnect-test'");
  ASSERT_FALSE(pid.empty());
  pt::Query(db.dsn(), "SELECT pg_terminate_backend(" + pid + ", 10000)");
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::vector<pgshift::MigrationStatus>> all = (*d)->List();
    ASSERT_TRUE(all.ok()) << "call " << i << ": " << all.status();
    EXPECT_TRUE(all->empty());
  }
  EXPECT_NE(pt::QueryValue(db.dsn(), "SELECT pid FROM pg_stat_activity WHERE application_name = "
                                     "'pgshift reconnect-test'"),
            pid);
}

}  // namespace
