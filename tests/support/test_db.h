// Helpers for integration tests that need a real PostgreSQL server.
//
// Depends only on libpq and the standard library.  Errors are reported by
// throwing std::runtime_error (GoogleTest turns an escaping exception into a
// test failure); messages never contain passwords.
//
// Typical use:
//
//   TEST(Rename, Works) {
//     pgshift::testing::ScratchDatabase db("rename_works");
//     pgshift::testing::Query(db.dsn(), "CREATE TABLE t (a int)");
//     auto before = pgshift::testing::CatalogSnapshot(db.dsn(), "public");
//     ...
//     EXPECT_EQ(before, pgshift::testing::CatalogSnapshot(db.dsn(), "public"));
//   }
#ifndef PGSHIFT_TESTS_SUPPORT_TEST_DB_H_
#define PGSHIFT_TESTS_SUPPORT_TEST_DB_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pgshift::testing {

// One result row; std::nullopt is SQL NULL.
using Row = std::vector<std::optional<std::string>>;
using Rows = std::vector<Row>;

// The DSN of a server for tests (connecting to its `postgres` database as a
// superuser).  PGSHIFT_TEST_DSN if set and non-empty; otherwise the first call
// (thread-safe, once per process) starts a throwaway cluster with
// `scripts/pgtemp.sh start <tmpdir>`, which is stopped and removed at process
// exit (and by a watchdog if the process dies without running atexit).
// Throws std::runtime_error if the cluster cannot be started (on every call).
const std::string& ServerDsn();

// ServerDsn() with the database replaced by `dbname`.  Works for key=value
// DSNs and postgresql:// URIs.
std::string DsnForDatabase(const std::string& dbname);

// `dsn` connecting as `user` instead (key=value DSNs and postgresql:// URIs).
std::string DsnWithUser(const std::string& dsn, const std::string& user);

// DROP DATABASE IF EXISTS "name" WITH (FORCE) on the ServerDsn() server.
void DropDatabase(const std::string& name);

// A fresh, uniquely named database on the ServerDsn() server, dropped (WITH
// (FORCE)) by the destructor.  Its name is "t_" + prefix (lower-cased, every
// character outside [a-z0-9_] replaced by '_', shortened to fit 63 bytes)
// + "_" + per-process counter + "_" + pid.
class ScratchDatabase {
 public:
  explicit ScratchDatabase(std::string prefix);
  ~ScratchDatabase();

  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;

  const std::string& dsn() const { return dsn_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string dsn_;
};

// Runs `sql` (simple query protocol; may contain several statements, which
// then run in one implicit transaction unless they manage their own) on a new
// connection to `dsn`.  Returns the rows of the last result (empty for
// commands without rows).  Throws std::runtime_error with the server's message
// (and SQLSTATE) on any error.  NOTICE/INFO messages are discarded.
Rows Query(const std::string& dsn, const std::string& sql);

// First column of the first row of Query(dsn, sql); "" if it is NULL.
// Throws std::runtime_error if there is no row (or no column).
std::string QueryValue(const std::string& dsn, const std::string& sql);

// QueryValue(dsn, sql) as an integer (std::stoll: throws when it is not one).
int64_t QueryInt(const std::string& dsn, const std::string& sql);

// `s` as an SQL string literal ('it''s'), for SQL that tests build from
// their own fixed names. Values from elsewhere go as parameters.
std::string Lit(const std::string& s);
// `s` as an SQL quoted identifier ("we""ird").
std::string Ident(const std::string& s);

// Calls `pred` every 20 ms until it returns true (then returns true) or
// `timeout_s` seconds have passed (then returns pred() once more). A guard
// against waiting forever, not a timing assertion.
bool WaitUntil(const std::function<bool()>& pred, double timeout_s = 30);

// A deterministic text listing of the catalog of one schema, for "rollback
// restores the catalog exactly" tests: tables (kind, persistence, replica
// identity, RLS, options, owner, ACL, partitioning, inheritance, comment),
// columns (in attnum order, dropped columns ignored and positions not printed:
// name, type, collation, not null, default, identity, generated, comment),
// indexes (pg_get_indexdef, valid/ready/clustered/replident), constraints
// (pg_get_constraintdef, convalidated, deferrability), non-internal triggers
// (pg_get_triggerdef, enabled), functions (signature, kind, result, md5 of
// prosrc, volatility, security definer, language, config), views and
// materialized views (pg_get_viewdef), sequences (parameters and OWNED BY),
// user-defined types (enum labels, domain definitions) and RLS policies.
// Object OIDs and sequence positions are not included.  Compare with ==.
std::string CatalogSnapshot(const std::string& dsn, const std::string& schema);

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_TEST_DB_H_
