// A database session that stays open across statements, for tests that must
// hold a lock, a snapshot or an open transaction while something else runs.
//
// Example:
//   pgshift::testing::Session blocker(dsn, "lock holder");
//   blocker.Exec("BEGIN");
//   blocker.Exec("LOCK TABLE app.t IN SHARE MODE");
//   ... the migration step now waits on the lock ...
//   blocker.Exec("COMMIT");
//   EXPECT_EQ(blocker.Value("SHOW lock_timeout"), "0");
//
// Not thread-safe. Errors throw std::runtime_error with the server's message
// (except TryExec, which returns it).
#ifndef PGSHIFT_TESTS_SUPPORT_SESSION_H_
#define PGSHIFT_TESTS_SUPPORT_SESSION_H_

#include <string>

#include "tests/support/test_db.h"

namespace pgshift::testing {

class Session {
 public:
  // Connects to `dsn`, with `application_name` unless it is empty (then the
  // DSN's or libpq's default). Throws when it cannot connect.
  explicit Session(const std::string& dsn, const std::string& application_name = "");
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs `sql` (simple protocol); returns the rows of the last result.
  Rows Exec(const std::string& sql);
  // The first column of the first row of Exec(sql); "" when there is none
  // or it is NULL.
  std::string Value(const std::string& sql);
  // Runs `sql` like Exec; returns the server's error message, "" on success.
  std::string TryExec(const std::string& sql);
  // The backend's pid.
  int pid() const;

 private:
  void* conn_;  // PGconn*
};

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_SESSION_H_
