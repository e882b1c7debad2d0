// Reads what pgshift needs to know about a table from the system catalog:
// columns, primary key, indexes, constraints and what depends on a column.
#ifndef PGSHIFT_LIB_CATALOG_CATALOG_H_
#define PGSHIFT_LIB_CATALOG_CATALOG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/pg/connection.h"
#include "lib/sql/sql.h"

namespace pgshift::catalog {

// How pgshift writes and compares values of a type. A value is converted
// with an explicit cast to `raw` (the type alone, no modifier), never to
// `spelled`: the modifier (a length, a precision) is applied by the
// assignment to the column or variable, which raises where a plain ALTER
// ... TYPE would ("value too long") instead of cutting the value as an
// explicit cast to varchar(5) does.
struct TypeInfo {
  std::string spelled;  // format_type(), e.g. "character varying(20)": definitions, variables
  std::string raw;      // "pg_catalog"."varchar": casts
  // "IS DISTINCT FROM" tells every two different values apart: true for
  // integers, uuid, dates and times, bytea, and text with a deterministic
  // collation; false for numeric (1.0 = 1.000), floats, json (no equality at
  // all), intervals, nondeterministic collations, and any type pgshift does
  // not know to be exact. Such values are compared on their text form.
  bool exact_equality = false;
};

struct Column {
  int attnum = 0;
  std::string name;
  std::string type;       // format_type(), e.g. "character varying(20)"
  std::string raw_type;   // TypeInfo::raw
  bool exact_equality = false;  // TypeInfo::exact_equality, collation included
  std::string collation;  // quoted "schema"."name" when not the type's default, else ""
  bool not_null = false;
  std::optional<std::string> default_expr;
  char identity = '\0';   // 'a' / 'd' for identity columns
  char generated = '\0';  // 's' for stored generated columns
  std::optional<std::string> comment;
  // What ALTER TABLE ... ADD COLUMN does not carry over, for a replacement:
  // column privileges as "privilege:grantee:grantable" (grantee quoted or
  // PUBLIC), the statistics target (-1: default), storage and compression
  // when set ('\0' otherwise), and attoptions ("n_distinct=100").
  std::vector<std::string> grants;
  int stats_target = -1;
  char storage = '\0';
  char compression = '\0';
  std::vector<std::string> options;

  TypeInfo type_info() const { return {type, raw_type, exact_equality}; }
};

struct Index {
  std::string name;
  std::string def;        // pg_get_indexdef()
  bool valid = true;
  bool unique = false;
  bool primary = false;
  std::vector<int> attnums;  // every column the index uses (keys, expressions, predicate)
  std::string constraint;    // name of the constraint it backs, or ""
  char constraint_type = '\0';
  bool replica_identity = false;  // the table's REPLICA IDENTITY USING INDEX

  bool Uses(int attnum) const;
};

struct Constraint {
  std::string name;
  char type = '\0';       // 'c' check, 'f' foreign key, 'u' unique, 'p' primary, 'x' exclusion
  std::string def;        // pg_get_constraintdef()
  bool validated = true;
  bool deferrable = false;
  bool deferred = false;  // INITIALLY DEFERRED
  std::vector<int> attnums;  // conkey
  std::string check_expr;        // CHECK: its expression (pg_get_expr), else ""
  std::string referenced_table;  // FOREIGN KEY: quoted qualified table it references, else ""
  std::string referenced_schema, referenced_name;  // FOREIGN KEY: the same, unquoted

  bool Uses(int attnum) const;
};

struct Table {
  uint32_t oid = 0;
  std::string schema;
  std::string name;
  char relkind = 'r';
  int64_t row_estimate = 0;  // reltuples (0 when never analyzed)
  std::vector<Column> columns;
  std::vector<std::string> primary_key;  // column names in key order
  std::vector<Index> indexes;
  std::vector<Constraint> constraints;

  const Column* FindColumn(const std::string& name) const;
  std::string Qualified() const;  // "schema"."table"
};

// NotFound with a message naming the schema/table when it does not exist;
// InvalidArgument when the relation is not an ordinary table (saying what it
// is and why pgshift refuses it).
absl::StatusOr<Table> LoadTable(pg::Connection& conn, const std::string& schema,
                                const std::string& table);

// What an operation's later steps need from its table and the driver.
struct TableNeeds {
  bool reads_rows = false;         // a backfill or a validate check reads its rows
  bool creates_functions = false;  // trigger or helper functions go in its schema
};

// Checks at register that the operations' steps can be carried out on
// `table` as the connected role, so that they are refused up front rather
// than failing half-way or losing data. InvalidArgument (`what` first, then
// the table, what it is or what is missing, why, and what to do) when:
//   - it is a partition, the parent of inheritance children, or an
//     inheritance child (triggers exist only on the table they are created
//     on; DROP COLUMN of an inherited column fails);
//   - the role does not own it (by membership in the owning role, too):
//     ALTER TABLE and CREATE TRIGGER need ownership;
//   - with needs.creates_functions, the role lacks CREATE on its schema;
//   - with needs.reads_rows, row-level security applies to the role (RLS
//     enabled, and the role is neither superuser nor BYPASSRLS, nor an owner
//     of a table whose RLS is not forced): the backfill and the checks would
//     see only the rows its policies allow.
// docs/privileges.md lists the privileges.
absl::Status CheckTableForMigration(pg::Connection& conn, const Table& table, absl::string_view what,
                                    const TableNeeds& needs);

// Describes every object that depends on column `attnum` of `table` and that
// pgshift does not manage itself (views, rules, policies, generated columns,
// statistics, triggers, foreign keys of other tables referencing it, ...).
// Objects whose names start with `ignore_prefix` are left out.
absl::StatusOr<std::vector<std::string>> ForeignDependents(pg::Connection& conn,
                                                           const Table& table, int attnum,
                                                           const std::string& ignore_prefix);

// The user triggers on `table` (not internal, not pgshift's) that read
// column `column`, described for the user: a PL/pgSQL function naming
// NEW.column or OLD.column (read with the PL/pgSQL parser), a function given
// the column's name as a trigger argument (tsvector_update_trigger, ...), or
// a function in a language pgshift cannot read (PL/Python, ...). Once the
// column is gone every write would fail in them.
absl::StatusOr<std::vector<std::string>> TriggersReading(pg::Connection& conn, const Table& table,
                                                         const std::string& column);

// Sequences owned by the column (serial columns): their qualified quoted names.
absl::StatusOr<std::vector<std::string>> OwnedSequences(pg::Connection& conn, const Table& table,
                                                        int attnum);

// Resolves a type name the way the server does: its format_type() spelling,
// typmod included ("numeric(12,2)", "character varying(5)", "integer[]"),
// its raw name for casts, and whether its equality is exact under
// `collation` (quoted "schema"."name", or "" for the type's default).
// InvalidArgument when it does not resolve.
absl::StatusOr<TypeInfo> ResolveType(pg::Connection& conn, const sql::TypeName& type,
                                     const std::string& collation = "");

// What the planner says of `query` (EXPLAIN (FORMAT JSON), read as JSON):
// the top plan node's row estimate, and whether any node of the plan is of
// type `node_type` (e.g. "CTE Scan"). Plans only; runs nothing.
struct Explained {
  int64_t plan_rows = 0;
  std::vector<std::string> node_types;  // every node of the plan, depth first
  bool Has(const std::string& node_type) const;
};
absl::StatusOr<Explained> Explain(pg::Connection& conn, const std::string& query);

// Whether `type` (format_type spelling) is a domain with constraints (CHECK
// or NOT NULL, at any level): adding a column of such a type rewrites the
// whole table under ACCESS EXCLUSIVE.
absl::StatusOr<bool> IsConstrainedDomain(pg::Connection& conn, const std::string& type);

// InvalidArgument when IsConstrainedDomain(type). `what` names the
// operation in the message.
absl::Status RefuseConstrainedDomain(pg::Connection& conn, const std::string& type,
                                     absl::string_view what);

// Checks that `expr` is a valid SQL expression over `table`'s columns whose
// value can be cast to `type` (format_type spelling), by having the server
// analyse `SELECT (expr)::type FROM ONLY table WHERE false`; that it is a
// value of one row (no aggregate, window or set-returning function: the
// server analyses it again in a WHERE clause, where those are not allowed);
// and that every name it reads is a column (a table's name would read as
// its whole row). InvalidArgument with the server's message otherwise.
// `extra_columns` ({name, type} pairs) are columns the expression may use
// that do not exist yet (e.g. the new column of a change_type): they are
// added to the row as NULLs of their type.
absl::Status CheckExpression(
    pg::Connection& conn, const Table& table, const sql::Expression& expr, const std::string& type,
    const std::string& what,
    const std::vector<std::pair<std::string, std::string>>& extra_columns = {});

// Checks that values of `default_expr` and of `up` (either may be null) can
// be stored in column `column` of `type` the way PostgreSQL stores a value
// in a column: an implicit or assignment cast, and the type's length or
// precision enforced ("value too long") — unlike the explicit cast that
// CheckExpression allows, which cuts a varchar silently. The default is
// evaluated once, as INSERT ... DEFAULT VALUES does; `up` reads rows, so it
// is only analysed (INSERT ... SELECT up FROM ONLY table). Both run on a
// temporary table, in a transaction that is rolled back: nothing of the
// user's is touched, but the role needs the TEMP privilege on the database
// (InvalidArgument saying so when it lacks it). InvalidArgument starting
// with `what` otherwise.
absl::Status CheckAssignment(pg::Connection& conn, const Table& table, const std::string& column,
                             const std::string& type, const sql::Expression* default_expr,
                             const sql::Expression* up, absl::string_view what);

}  // namespace pgshift::catalog

#endif  // PGSHIFT_LIB_CATALOG_CATALOG_H_
