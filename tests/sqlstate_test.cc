// SQLSTATE -> absl::Status mapping, and that real server errors carry it.
#include "gtest/gtest.h"
#include "lib/pg/connection.h"
#include "pgshift/errors.h"
#include "tests/support/test_db.h"

namespace pgshift::pg {
namespace {

TEST(StatusFromSqlState, LockTimeoutSerializationAndDeadlockAreAborted) {
  for (const char* code : {"55P03", "40001", "40P01"}) {
    absl::Status s = StatusFromSqlState(code, "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << code;
    EXPECT_EQ(SqlState(s), code);
  }
}

TEST(StatusFromSqlState, LostConnectionIsUnavailable) {
  EXPECT_EQ(StatusFromSqlState("08006", "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromSqlState("57P01", "x").code(), absl::StatusCode::kUnavailable);
}

TEST(StatusFromSqlState, MissingObjectsAreNotFound) {
  EXPECT_EQ(StatusFromSqlState("42P01", "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusFromSqlState("42703", "x").code(), absl::StatusCode::kNotFound);
}

TEST(Connection, ServerErrorKeepsSqlState) {
  testing::ScratchDatabase db("sqlstate");
  auto conn = Connection::Open(db.dsn(), "pgshift test");
  ASSERT_TRUE(conn.ok()) << conn.status();
  absl::Status s = (*conn)->Run("SELECT * FROM no_such_table");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SqlState(s), "42P01");
  EXPECT_NE(s.message().find("no_such_table"), absl::string_view::npos);
}

TEST(Connection, ParametersAreNeverInterpretedAsSql) {
  testing::ScratchDatabase db("params");
  auto conn = Connection::Open(db.dsn(), "pgshift test");
  ASSERT_TRUE(conn.ok());
  auto r = (*conn)->Exec("SELECT $1::text", {std::string("'); DROP TABLE x; --")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->Get(0, 0), "'); DROP TABLE x; --");
}

TEST(Connection, LockTimeoutIsAborted) {
  testing::ScratchDatabase db("locktimeout");
  testing::Query(db.dsn(), "CREATE TABLE t (id int)");
  auto holder = Connection::Open(db.dsn(), "holder");
  auto waiter = Connection::Open(db.dsn(), "waiter");
  ASSERT_TRUE(holder.ok() && waiter.ok());
  ASSERT_TRUE((*holder)->Run("BEGIN").ok());
  ASSERT_TRUE((*holder)->Run("LOCK TABLE t IN ACCESS EXCLUSIVE MODE").ok());
  ASSERT_TRUE((*waiter)->Run("SET lock_timeout = '100ms'").ok());
  absl::Status s = (*waiter)->Run("SELECT * FROM t");
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(SqlState(s), "55P03");
  ASSERT_TRUE((*holder)->Run("ROLLBACK").ok());
}

TEST(Connection, RedactHidesThePassword) {
  std::string r = Connection::Redact("host=localhost user=app password=s3cr3t dbname=x");
  EXPECT_EQ(r.find("s3cr3t"), std::string::npos);
  EXPECT_NE(r.find("host=localhost"), std::string::npos);
  std::string u = Connection::Redact("postgresql://app:s3cr3t@localhost:5432/x");
  EXPECT_EQ(u.find("s3cr3t"), std::string::npos);
}

TEST(Connection, FailedConnectNeverPrintsThePassword) {
  auto conn = Connection::Open("host=127.0.0.1 port=1 user=app password=s3cr3t connect_timeout=2",
                               "pgshift test");
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(std::string(conn.status().message()).find("s3cr3t"), std::string::npos);
}

}  // namespace
}  // namespace pgshift::pg
