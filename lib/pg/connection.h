// RAII wrapper over libpq: a Connection owns a PGconn, a Result owns a
// PGresult, and every result goes through one function that turns server
// errors into absl::Status (SQLSTATE kept with it: lib/util/status.h).
// libpq-fe.h is included only by lib/pg/*.cc.
#ifndef PGSHIFT_LIB_PG_CONNECTION_H_
#define PGSHIFT_LIB_PG_CONNECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct pg_conn;
struct pg_result;

namespace pgshift::pg {

using Param = std::optional<std::string>;
using Params = std::vector<Param>;

// Builds a status for SQLSTATE `sqlstate` with the server's `message`.
absl::Status StatusFromSqlState(absl::string_view sqlstate, absl::string_view message);

// A query result. Movable, not copyable.
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* res);
  Result(Result&&) noexcept = default;
  Result& operator=(Result&&) noexcept = default;

  int rows() const;
  int cols() const;
  bool IsNull(int row, int col) const;
  // Text of a field; "" when NULL.
  std::string Get(int row, int col) const;
  std::optional<std::string> GetOpt(int row, int col) const;
  int64_t GetInt(int row, int col) const;
  bool GetBool(int row, int col) const;
  // Rows affected by INSERT/UPDATE/DELETE, 0 otherwise.
  int64_t Affected() const;

 private:
  struct Deleter {
    void operator()(pg_result* r) const;
  };
  std::unique_ptr<pg_result, Deleter> res_;
};

// The type of one result column: its OID and type modifier (-1 for none).
struct ColumnType {
  uint32_t oid = 0;
  int typmod = -1;
};

// One server session. Not thread-safe; use one per thread. Move-only: it
// owns its session, which ends with it.
class Connection {
 public:
  // Connects to `dsn` (a libpq connection string or URI; libpq's PG*
  // environment fills what it leaves out). Errors never echo a secret of
  // `dsn` (password, sslpassword, a URI's userinfo), libpq's own message
  // included.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& dsn,
                                                          absl::string_view application_name);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;

  // Runs one statement with $n parameters (extended protocol, so one
  // statement only). Parameters are text; NULL as std::nullopt.
  absl::StatusOr<Result> Exec(absl::string_view sql, const Params& params = {});
  // Runs one statement and drops its result.
  absl::Status Run(absl::string_view sql, const Params& params = {});
  // Runs `sql` with the simple query protocol (no parameters). Unlike Run,
  // it leaves no unnamed portal behind, so a session idle in an open
  // transaction afterwards holds no snapshot (no xmin) that VACUUM or
  // CREATE INDEX CONCURRENTLY would wait for.
  absl::Status RunSimple(absl::string_view sql);

  // Parses and analyses `sql` without running or planning it (an unnamed
  // prepared statement): names and types are checked, nothing executes.
  absl::Status Check(absl::string_view sql);

  // The result columns `sql` would return, without running it (an unnamed
  // prepared statement is parsed, analysed and described).
  absl::StatusOr<std::vector<ColumnType>> Describe(absl::string_view sql);

  // Runs `body` inside BEGIN ... COMMIT; rolls back when it fails.
  absl::Status Transaction(const std::function<absl::Status()>& body);

  // Runs `body` and undoes whatever it did: inside BEGIN ... ROLLBACK, or,
  // when a transaction is open already, between a SAVEPOINT and a ROLLBACK
  // TO it (so that a probe nests in a rehearsal, Driver's InspectAll).
  // Returns the body's status, else the rollback's.
  absl::Status RolledBack(const std::function<absl::Status()>& body);

  // The value libpq uses for connection option `keyword` of this session
  // (e.g. "connect_timeout"); "" when it has none.
  std::string conninfo(absl::string_view keyword) const;

  int backend_pid() const;
  int server_version() const;  // server_version_num, e.g. 150004
  // True when the connection is usable; false after the server went away.
  bool ok() const;
  // As ok(), after reading what the server sent while the session was idle:
  // a server that restarted, or a backend that was terminated, sent a FATAL
  // message and closed the socket, which only shows once it is read.
  bool Alive();
  // True inside BEGIN ... COMMIT (or a failed transaction not yet ended).
  bool in_transaction() const;
  // Asks the server to cancel the running statement (thread-safe).
  void Cancel();

  // DSN with every secret masked (each keyword libpq hides: password,
  // sslpassword), for messages.
  static std::string Redact(const std::string& dsn);

 private:
  explicit Connection(pg_conn* conn);
  pg_conn* conn_;
};

}  // namespace pgshift::pg

#endif  // PGSHIFT_LIB_PG_CONNECTION_H_
