// A database session that stays open across statements, for tests that must
// hold a lock, a snapshot or an open transaction while something else runs.
//
// Example:
//   pgshift::testing::Session blocker(dsn, "lock holder");
//   blocker.Exec("BEGIN");
//   blocker.Exec("LOCK TABLE app.t IN SHARE MODE");
//   ... the migration step now waits on the lock ...
//   blocker.Exec("COMMIT");
//
// Not thread-safe. Errors throw std::runtime_error with the server's message.
#ifndef PGSHIFT_TESTS_SUPPORT_SESSION_H_
#define PGSHIFT_TESTS_SUPPORT_SESSION_H_

#include <string>

#include "tests/support/test_db.h"

namespace pgshift::testing {

class Session {
 public:
  Session(const std::string& dsn, const std::string& application_name);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs `sql` (simple protocol); returns the rows of the last result.
  Rows Exec(const std::string& sql);
  // The backend's pid.
  int pid() const;

 private:
  void* conn_;  // PGconn*
};

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_SESSION_H_
