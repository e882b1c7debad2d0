// The lifecycle harness (docs/architecture.md, docs/operations/): one parameterised test
// drives every operation through every phase while an old-version writer and a
// new-version writer insert, update and delete concurrently, each keeping an
// independent oracle. After each phase it checks the phase's promise and that
// both shapes agree with the oracle on every row; at the end the table must
// equal the oracle. The same harness rolls back from every phase before
// contracted and checks that the catalog is exactly what it was before
// register and that the old shape holds every row. A third mode runs every
// step first in a CLI process that is killed (or whose backend is
// terminated) mid-step while the writers keep going, then runs it again.
//
// Generations: writers record, with every committed write, the harness's
// generation counter at the time the statement started: 2*p while the
// migration rests at phase p, 2*p-1 while the step to p runs, kDuringRollback
// while rollback runs. A row is "synced" (both shapes must agree) when its
// last write started after the trigger was installed, or before the backfill
// finished and the backfill has finished since.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pgshift/pgshift.h"
#include "tests/support/cli.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"
#include "tests/support/writers.h"

namespace {

namespace pt = ::pgshift::testing;
using pgshift::Phase;

constexpr int kSeedRows = 1000;       // ids 1..kSeedRows; the old app owns the lower half
constexpr int kOpsAtRest = 15;        // statements per writer after each step
constexpr int kDuringRollback = 99;   // generation while rollback runs
constexpr int64_t kOldFirstId = 1000000;
constexpr int64_t kNewFirstId = 2000000;

int Gen(Phase p) { return 2 * static_cast<int>(p); }

using pt::Lit;

// ---------------------------------------------------------------------------
// Catalog probes on app.t

// Rows of `sql` on one kept-open connection per database (a test makes many
// probes; each scratch database is dropped WITH (FORCE) at the end).
pt::Rows Probe(const std::string& dsn, const std::string& sql) {
  static std::map<std::string, std::unique_ptr<pt::Session>> sessions;
  std::unique_ptr<pt::Session>& s = sessions[dsn];
  if (!s) s = std::make_unique<pt::Session>(dsn, "harness probe");
  return s->Exec(sql);
}

std::string ProbeValue(const std::string& dsn, const std::string& sql) {
  pt::Rows r = Probe(dsn, sql);
  if (r.empty() || r[0].empty()) throw std::runtime_error("no row from: " + sql);
  return r[0][0].value_or("");
}

int64_t Count(const std::string& dsn, const std::string& sql) {
  return std::stoll(ProbeValue(dsn, sql));
}

bool ColumnExists(const std::string& dsn, const std::string& col) {
  return Count(dsn, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'app.t'::regclass "
                    "AND attnum > 0 AND NOT attisdropped AND attname = " + Lit(col)) == 1;
}
bool ColumnNotNull(const std::string& dsn, const std::string& col) {
  return ProbeValue(dsn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = "
                             "'app.t'::regclass AND NOT attisdropped AND attname = " + Lit(col)) == "t";
}
// The default expression, "" when none.
std::string ColumnDefault(const std::string& dsn, const std::string& col) {
  return ProbeValue(dsn, "SELECT coalesce((SELECT pg_get_expr(d.adbin, d.adrelid) FROM "
                             "pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND "
                             "a.attnum = d.adnum WHERE d.adrelid = 'app.t'::regclass AND "
                             "a.attname = " + Lit(col) + "), '')");
}
std::string ColumnType(const std::string& dsn, const std::string& col) {
  return ProbeValue(dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                             "attrelid = 'app.t'::regclass AND NOT attisdropped AND attname = " +
                                 Lit(col));
}
int64_t UserTriggers(const std::string& dsn, const std::string& rel = "app.t") {
  return Count(dsn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = " + Lit(rel) + "::regclass "
                    "AND NOT tgisinternal");
}
int64_t FunctionsInApp(const std::string& dsn) {
  return Count(dsn, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = "
                    "p.pronamespace WHERE n.nspname = 'app'");
}
int64_t InvalidConstraints(const std::string& dsn, const std::string& rel = "app.t") {
  return Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = " + Lit(rel) + "::regclass "
                    "AND NOT convalidated");
}
int64_t InvalidIndexes(const std::string& dsn, const std::string& rel = "app.t") {
  return Count(dsn, "SELECT count(*) FROM pg_index WHERE indrelid = " + Lit(rel) + "::regclass "
                    "AND NOT (indisvalid AND indisready AND indislive)");
}
// Valid indexes that use column `col` (key, expression or predicate).
int64_t ValidIndexesOn(const std::string& dsn, const std::string& col) {
  return Count(dsn,
               "SELECT count(*) FROM pg_index i, pg_attribute a WHERE i.indrelid = "
               "'app.t'::regclass AND a.attrelid = i.indrelid AND a.attname = " + Lit(col) +
                   " AND i.indisvalid AND i.indisready AND (a.attnum = ANY (i.indkey::int2[]) OR "
                   "pg_get_indexdef(i.indexrelid) ~ ('\\m' || a.attname || '\\M'))");
}
// Validated CHECK constraints whose definition mentions `col`.
int64_t ValidChecksOn(const std::string& dsn, const std::string& col) {
  return Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.t'::regclass "
                    "AND contype = 'c' AND convalidated AND pg_get_constraintdef(oid) ~ ('\\m' || " +
                        Lit(col) + " || '\\M')");
}

// ---------------------------------------------------------------------------
// The operations under test

struct OpCase {
  std::string name;
  // Creates and fills app.t (schema app exists). Ids 1..kSeedRows.
  std::string setup;
  // The operations on app.t (the harness names the migration).
  pt::Spec operations;
  // SELECT id, <values> FROM app.t: the oracle's seeded rows, in the slots
  // the writers use.
  std::string seed_values;
  pt::WriteShape old_app, new_app;
  // SQL conditions over t (app.t) and o (oracle row: o.w writer tag 's', 'o'
  // or 'n'; o.v text[] the values written, 1-based; o.s synced).
  std::string old_unsynced;  // old shape, row not (yet) synced: may be either
  std::string old_synced;    // old shape, row synced
  std::string new_synced;    // new shape, row synced
  std::string contracted;    // after contract (the only shape left)
  // When set: after contract the catalog of app equals setup + this DDL done
  // the naive way.
  std::string reference_ddl;
  // Phase-specific promises beyond the generic ones.
  std::function<void(const std::string& dsn, Phase p)> promise;
  // New app versions run from this phase on (they need the shapes synced).
  Phase new_app_from = Phase::kTriggerInstalled;
  // When set (rename_table), the table's name from switched on, used by the
  // new app and, after contract, by the harness's own checks.
  std::string renamed_to;

  // The relation holding the rows at phase p (reached), quoted for SQL.
  std::string Rel(Phase p) const {
    return renamed_to.empty() || p < Phase::kSwitched ? "app.t" : "app." + renamed_to;
  }
};

pt::WriteShape Shape(std::string insert, std::string update,
                     std::function<pt::Values(int64_t, int64_t, int)> make) {
  pt::WriteShape s;
  s.insert_sql = std::move(insert);
  s.update_sql = std::move(update);
  s.delete_sql = "DELETE FROM app.t WHERE id = $1";
  s.make = std::move(make);
  return s;
}

std::string N(int64_t n) { return std::to_string(n); }

// A new column promised at column_added: nullable, no default.
void ExpectPlainNewColumn(const std::string& dsn, const std::string& col) {
  EXPECT_TRUE(ColumnExists(dsn, col)) << col;
  EXPECT_FALSE(ColumnNotNull(dsn, col)) << col << " must be nullable before validate";
  EXPECT_EQ(ColumnDefault(dsn, col), "")
      << col << " must have no default before contract (an old app's insert would look like a "
                "new app's)";
}

OpCase RenamePlain() {
  OpCase c;
  c.name = "rename_column";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text DEFAULT 'n', v text);"
      "INSERT INTO app.t (id, v) SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'seed ' || g END "
      "FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations = pt::Spec().RenameColumn("t", "v", "w");
  c.seed_values = "SELECT id, v FROM app.t";
  // NULLs from both apps. A new app's `SET w = NULL` on a row the backfill
  // has not reached yet (w is still NULL) is not a change the trigger can
  // see, and the old column wins (known limitation, see the report), so the
  // new app writes NULL only once every row is backfilled.
  auto value = [](char who) {
    return [who](int64_t, int64_t n, int generation) {
      bool null_ok = who == 'o' || generation >= Gen(Phase::kBackfilled);
      return pt::Values{n % 7 == 3 && null_ok
                            ? std::nullopt
                            : std::optional<std::string>(std::string(1, who) + "'é " + N(n))};
    };
  };
  c.old_app = Shape("INSERT INTO app.t (id, v) VALUES ($1, $2)",
                    "UPDATE app.t SET v = $2 WHERE id = $1", value('o'));
  c.new_app = Shape("INSERT INTO app.t (id, w) VALUES ($1, $2)",
                    "UPDATE app.t SET w = $2 WHERE id = $1", value('n'));
  c.old_unsynced = c.old_synced = "t.v IS NOT DISTINCT FROM o.v[1]";
  c.new_synced = c.contracted = "t.w IS NOT DISTINCT FROM o.v[1]";
  c.reference_ddl = "ALTER TABLE app.t RENAME COLUMN v TO w";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p == Phase::kColumnAdded) {
      ExpectPlainNewColumn(dsn, "w");
      EXPECT_EQ(ColumnType(dsn, "w"), "text");
    }
    if (p >= Phase::kTriggerInstalled && p < Phase::kContracted) EXPECT_GE(UserTriggers(dsn), 1);
    if (p == Phase::kContracted) EXPECT_FALSE(ColumnExists(dsn, "v"));
  };
  return c;
}

// NOT NULL, a default, a CHECK, a UNIQUE constraint, an expression index and
// a comment on the renamed column: all must be on `w` after validate, and
// after contract the table must look exactly like a plain RENAME COLUMN.
OpCase RenameConstrained() {
  OpCase c;
  c.name = "rename_column_constrained";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text, "
      "  v text NOT NULL DEFAULT 'unset' CHECK (length(v) < 50) CONSTRAINT t_v_key UNIQUE);"
      "CREATE INDEX t_lower_v_idx ON app.t (lower(v));"
      "COMMENT ON COLUMN app.t.v IS 'the value';"
      "INSERT INTO app.t (id, v) SELECT g, 'seed ' || g FROM generate_series(1, " +
      N(kSeedRows) + ") g;";
  c.operations = pt::Spec().RenameColumn("t", "v", "w");
  c.seed_values = "SELECT id, v FROM app.t";
  auto value = [](char who) {
    return [who](int64_t, int64_t n, int) { return pt::Values{std::string(1, who) + " " + N(n)}; };
  };
  c.old_app = Shape("INSERT INTO app.t (id, v) VALUES ($1, $2)",
                    "UPDATE app.t SET v = $2 WHERE id = $1", value('o'));
  c.new_app = Shape("INSERT INTO app.t (id, w) VALUES ($1, $2)",
                    "UPDATE app.t SET w = $2 WHERE id = $1", value('n'));
  c.old_unsynced = c.old_synced = "t.v IS NOT DISTINCT FROM o.v[1]";
  c.new_synced = c.contracted = "t.w IS NOT DISTINCT FROM o.v[1]";
  c.reference_ddl = "ALTER TABLE app.t RENAME COLUMN v TO w";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p == Phase::kColumnAdded) ExpectPlainNewColumn(dsn, "w");
    if (p >= Phase::kTriggerInstalled && p < Phase::kContracted) EXPECT_GE(UserTriggers(dsn), 1);
    if (p == Phase::kValidated || p == Phase::kSwitched) {
      EXPECT_TRUE(ColumnNotNull(dsn, "w")) << "NOT NULL copied to w at validate";
      EXPECT_EQ(ColumnDefault(dsn, "w"), "") << "the default moves only at contract";
      EXPECT_EQ(ValidIndexesOn(dsn, "w"), 2) << "unique and expression index copied to w";
      EXPECT_EQ(ValidChecksOn(dsn, "w"), 1) << "CHECK (length(v) < 50) copied to w";
      EXPECT_EQ(Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = "
                           "'app.t'::regclass AND contype = 'u'"),
                2)
          << "the unique constraint is copied as a constraint";
    }
    if (p == Phase::kContracted) {
      EXPECT_FALSE(ColumnExists(dsn, "v"));
      EXPECT_EQ(ColumnDefault(dsn, "w"), "'unset'::text") << "w takes v's default at contract";
    }
  };
  return c;
}

OpCase SetNotNull() {
  OpCase c;
  c.name = "set_not_null";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text, c integer);"
      "INSERT INTO app.t (id, c) SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE g END "
      "FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations = pt::Spec().SetNotNull("t", "c", "0 - id");
  c.seed_values = "SELECT id, c::text FROM app.t";
  c.old_app = Shape("INSERT INTO app.t (id, c) VALUES ($1, $2)",
                    "UPDATE app.t SET c = $2 WHERE id = $1", [](int64_t, int64_t n, int) {
                      return pt::Values{n % 3 == 0 ? std::nullopt
                                                   : std::optional<std::string>(N(n % 100000))};
                    });
  c.new_app = Shape("INSERT INTO app.t (id, c) VALUES ($1, $2)",
                    "UPDATE app.t SET c = $2 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{N(n % 100000 + 1)}; });
  c.old_unsynced = "(t.c IS NOT DISTINCT FROM o.v[1]::int OR (o.v[1] IS NULL AND t.c = 0 - t.id))";
  c.old_synced = c.new_synced = c.contracted = "t.c = coalesce(o.v[1]::int, 0 - t.id)";
  c.reference_ddl = "ALTER TABLE app.t ALTER COLUMN c SET NOT NULL";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p >= Phase::kTriggerInstalled && p < Phase::kContracted) EXPECT_GE(UserTriggers(dsn), 1);
    if (p < Phase::kSwitched) EXPECT_FALSE(ColumnNotNull(dsn, "c")) << "SET NOT NULL is the switch";
    if (p == Phase::kValidated) {
      EXPECT_EQ(Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = "
                           "'app.t'::regclass AND contype = 'c' AND convalidated AND "
                           "pg_get_constraintdef(oid) ~ '\\mc IS NOT NULL'"),
                1)
          << "validate leaves a validated CHECK (c IS NOT NULL)";
    }
    if (p >= Phase::kSwitched) {
      EXPECT_TRUE(ColumnNotNull(dsn, "c"));
      EXPECT_EQ(Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = "
                           "'app.t'::regclass AND contype = 'c'"),
                0)
          << "the helper CHECK is dropped at switch";
    }
  };
  return c;
}

// Without fill: the apps already never write NULL; nothing is installed, and
// the column becomes NOT NULL through the same validated CHECK.
OpCase SetNotNullWithoutFill() {
  OpCase c;
  c.name = "set_not_null_without_fill";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text, c integer);"
      "INSERT INTO app.t (id, c) SELECT g, g FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations = pt::Spec().SetNotNull("t", "c");
  c.seed_values = "SELECT id, c::text FROM app.t";
  c.old_app = c.new_app = Shape("INSERT INTO app.t (id, c) VALUES ($1, $2)",
                                "UPDATE app.t SET c = $2 WHERE id = $1",
                                [](int64_t, int64_t n, int) { return pt::Values{N(n % 100000 + 1)}; });
  c.old_unsynced = c.old_synced = c.new_synced = c.contracted = "t.c = o.v[1]::int";
  c.reference_ddl = "ALTER TABLE app.t ALTER COLUMN c SET NOT NULL";
  c.promise = [](const std::string& dsn, Phase p) {
    EXPECT_EQ(UserTriggers(dsn), 0) << "no fill: no trigger at any phase";
    if (p < Phase::kSwitched) EXPECT_FALSE(ColumnNotNull(dsn, "c")) << "SET NOT NULL is the switch";
    if (p >= Phase::kSwitched) EXPECT_TRUE(ColumnNotNull(dsn, "c"));
  };
  return c;
}

OpCase AddColumnBackfilled() {
  OpCase c;
  c.name = "add_column_up";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, name text);"
      "INSERT INTO app.t (id, name) SELECT g, 'seed ' || g FROM generate_series(1, " +
      N(kSeedRows) + ") g;";
  c.operations = pt::Spec().AddColumn("t", "score", "integer").Default("0").NotNull().Up("id * 3");
  c.seed_values = "SELECT id, name FROM app.t";
  c.old_app = Shape("INSERT INTO app.t (id, name) VALUES ($1, $2)",
                    "UPDATE app.t SET name = $2 WHERE id = $1", [](int64_t, int64_t n, int) {
                      return pt::Values{n % 5 == 0 ? std::nullopt
                                                   : std::optional<std::string>("o " + N(n))};
                    });
  c.new_app = Shape("INSERT INTO app.t (id, name, score) VALUES ($1, $2, $3)",
                    "UPDATE app.t SET name = $2, score = $3 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{"n " + N(n), N(2 * n + 1)}; });
  c.old_unsynced = c.old_synced = "t.name IS NOT DISTINCT FROM o.v[1]";
  c.new_synced = "t.score = coalesce(o.v[2]::int, t.id * 3)";
  c.contracted = c.old_synced + " AND " + c.new_synced;
  c.reference_ddl = "ALTER TABLE app.t ADD COLUMN score integer NOT NULL DEFAULT 0";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p == Phase::kColumnAdded) {
      ExpectPlainNewColumn(dsn, "score");
      EXPECT_EQ(ColumnType(dsn, "score"), "integer");
    }
    if (p >= Phase::kTriggerInstalled && p < Phase::kContracted) EXPECT_GE(UserTriggers(dsn), 1);
    if (p == Phase::kValidated || p == Phase::kSwitched) {
      EXPECT_TRUE(ColumnNotNull(dsn, "score")) << "new shape complete at validate: NOT NULL";
      EXPECT_EQ(ColumnDefault(dsn, "score"), "")
          << "a default before contract would make an old app's insert look like a new app's";
    }
    if (p == Phase::kContracted) EXPECT_EQ(ColumnDefault(dsn, "score"), "0");
  };
  return c;
}

OpCase AddColumnInstant() {
  OpCase c;
  c.name = "add_column_instant";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, name text);"
      "INSERT INTO app.t (id, name) SELECT g, 'seed ' || g FROM generate_series(1, " +
      N(kSeedRows) + ") g;";
  c.operations = pt::Spec().AddColumn("t", "score", "integer").Default("7").NotNull();
  c.seed_values = "SELECT id, name FROM app.t";
  c.old_app = Shape("INSERT INTO app.t (id, name) VALUES ($1, $2)",
                    "UPDATE app.t SET name = $2 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{"o " + N(n)}; });
  c.new_app = Shape("INSERT INTO app.t (id, name, score) VALUES ($1, $2, $3)",
                    "UPDATE app.t SET name = $2, score = $3 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{"n " + N(n), N(2 * n + 1)}; });
  c.old_unsynced = c.old_synced = "t.name IS NOT DISTINCT FROM o.v[1]";
  c.new_synced = "t.score = coalesce(o.v[2]::int, 7)";
  c.contracted = c.old_synced + " AND " + c.new_synced;
  c.reference_ddl = "ALTER TABLE app.t ADD COLUMN score integer NOT NULL DEFAULT 7";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p >= Phase::kColumnAdded) {
      // PG >= 11, non-volatile default, no `up`: one statement, no trigger.
      EXPECT_TRUE(ColumnNotNull(dsn, "score"));
      EXPECT_EQ(ColumnDefault(dsn, "score"), "7");
      EXPECT_EQ(UserTriggers(dsn), 0) << "the instant path needs no trigger";
    }
  };
  return c;
}

// NOT NULL without a default: new app versions (which no longer write the
// column) must keep inserting; `down` fills it.
OpCase DropColumnNotNull() {
  OpCase c;
  c.name = "drop_column_down";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, name text, legacy text NOT NULL);"
      "CREATE INDEX t_legacy_idx ON app.t (legacy);"
      "INSERT INTO app.t (id, name, legacy) SELECT g, 'seed ' || g, 'L' || g "
      "FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations = pt::Spec().DropColumn("t", "legacy").Down("'legacy-' || id");
  c.seed_values = "SELECT id, name, legacy FROM app.t";
  c.old_app = Shape("INSERT INTO app.t (id, name, legacy) VALUES ($1, $2, $3)",
                    "UPDATE app.t SET name = $2, legacy = $3 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{"o " + N(n), "old " + N(n)}; });
  c.new_app = Shape("INSERT INTO app.t (id, name) VALUES ($1, $2)",
                    "UPDATE app.t SET name = $2 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{"n " + N(n)}; });
  c.old_unsynced = c.old_synced =
      "t.name IS NOT DISTINCT FROM o.v[1] AND t.legacy = coalesce(o.v[2], 'legacy-' || t.id)";
  c.new_synced = c.contracted = "t.name IS NOT DISTINCT FROM o.v[1]";
  c.reference_ddl = "ALTER TABLE app.t DROP COLUMN legacy";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p < Phase::kContracted) EXPECT_TRUE(ColumnExists(dsn, "legacy")) << "nothing removed before contract";
    if (p == Phase::kContracted) EXPECT_FALSE(ColumnExists(dsn, "legacy"));
  };
  return c;
}

OpCase DropColumnNullable() {
  OpCase c;
  c.name = "drop_column_nullable";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, name text, legacy text);"
      "INSERT INTO app.t (id, name, legacy) SELECT g, 'seed ' || g, "
      "CASE WHEN g % 4 = 0 THEN NULL ELSE 'L' || g END FROM generate_series(1, " +
      N(kSeedRows) + ") g;";
  c.operations = pt::Spec().DropColumn("t", "legacy");
  c.seed_values = "SELECT id, name, legacy FROM app.t";
  c.old_app = Shape("INSERT INTO app.t (id, name, legacy) VALUES ($1, $2, $3)",
                    "UPDATE app.t SET name = $2, legacy = $3 WHERE id = $1",
                    [](int64_t, int64_t n, int) {
                      return pt::Values{"o " + N(n), n % 3 == 0 ? std::nullopt
                                                                : std::optional<std::string>(N(n))};
                    });
  c.new_app = Shape("INSERT INTO app.t (id, name) VALUES ($1, $2)",
                    "UPDATE app.t SET name = $2 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{"n " + N(n)}; });
  c.old_unsynced = c.old_synced =
      "t.name IS NOT DISTINCT FROM o.v[1] AND t.legacy IS NOT DISTINCT FROM o.v[2]";
  c.new_synced = c.contracted = "t.name IS NOT DISTINCT FROM o.v[1]";
  c.reference_ddl = "ALTER TABLE app.t DROP COLUMN legacy";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p < Phase::kContracted) EXPECT_TRUE(ColumnExists(dsn, "legacy"));
    if (p == Phase::kContracted) EXPECT_FALSE(ColumnExists(dsn, "legacy"));
  };
  return c;
}

// numeric -> integer: `down` is lossy only in that direction's image; the
// backfill must never touch price (12.34 stays 12.34, not 12.00).
OpCase ChangeType() {
  OpCase c;
  c.name = "change_type";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text, "
      "  price numeric(10,2) DEFAULT 0 CONSTRAINT t_price_check CHECK (price >= 0));"
      "CREATE INDEX t_price_idx ON app.t (price);"
      "INSERT INTO app.t (id, price) SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g * 1.25 END "
      "FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations = pt::Spec().ChangeType("t", "price", "price_int", "integer",
                                       "round(price)::integer", "price_int::numeric(10,2)");
  c.seed_values = "SELECT id, price::text FROM app.t";
  c.old_app = Shape("INSERT INTO app.t (id, price) VALUES ($1, $2)",
                    "UPDATE app.t SET price = $2 WHERE id = $1", [](int64_t, int64_t n, int) {
                      if (n % 6 == 0) return pt::Values{std::nullopt};
                      return pt::Values{N(n % 100000) + "." + N(10 + (n * 7) % 90)};
                    });
  // A new app always writes the new column (a NULL there reads as "written
  // by an old app", by design).
  c.new_app = Shape("INSERT INTO app.t (id, price_int) VALUES ($1, $2)",
                    "UPDATE app.t SET price_int = $2 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{N(n % 100000)}; });
  c.old_unsynced = c.old_synced = "t.price IS NOT DISTINCT FROM o.v[1]::numeric";
  c.new_synced = c.contracted =
      "t.price_int IS NOT DISTINCT FROM CASE WHEN o.w = 'n' THEN o.v[1]::int "
      "ELSE round(o.v[1]::numeric)::int END";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p == Phase::kColumnAdded) {
      ExpectPlainNewColumn(dsn, "price_int");
      EXPECT_EQ(ColumnType(dsn, "price_int"), "integer");
    }
    if (p >= Phase::kTriggerInstalled && p < Phase::kContracted) EXPECT_GE(UserTriggers(dsn), 1);
    if (p >= Phase::kValidated) {
      EXPECT_EQ(ValidIndexesOn(dsn, "price_int"), 1) << "index on price copied to price_int";
      EXPECT_EQ(ValidChecksOn(dsn, "price_int"), 1) << "CHECK (price >= 0) copied to price_int";
    }
    if (p == Phase::kContracted) {
      EXPECT_FALSE(ColumnExists(dsn, "price"));
      EXPECT_EQ(ColumnType(dsn, "price_int"), "integer");
    }
  };
  return c;
}

// integer NOT NULL UNIQUE -> bigint: NOT NULL and the UNIQUE constraint are
// copied at validate, and old apps keep inserting through rollback.
OpCase ChangeTypeNotNull() {
  OpCase c;
  c.name = "change_type_not_null";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text, "
      "  qty integer NOT NULL CONSTRAINT t_qty_key UNIQUE);"
      "INSERT INTO app.t (id, qty) SELECT g, g FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations =
      pt::Spec().ChangeType("t", "qty", "qty_big", "bigint", "qty::bigint", "qty_big::integer");
  c.seed_values = "SELECT id, qty::text FROM app.t";
  c.old_app = Shape("INSERT INTO app.t (id, qty) VALUES ($1, $2)",
                    "UPDATE app.t SET qty = $2 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{N(1000000 + n)}; });
  c.new_app = Shape("INSERT INTO app.t (id, qty_big) VALUES ($1, $2)",
                    "UPDATE app.t SET qty_big = $2 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{N(2000000 + n)}; });
  c.old_unsynced = c.old_synced = "t.qty = o.v[1]::int";
  c.new_synced = c.contracted = "t.qty_big = o.v[1]::bigint";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p == Phase::kColumnAdded) {
      ExpectPlainNewColumn(dsn, "qty_big");
      EXPECT_EQ(ColumnType(dsn, "qty_big"), "bigint");
    }
    if (p >= Phase::kValidated) {
      EXPECT_TRUE(ColumnNotNull(dsn, "qty_big")) << "NOT NULL copied at validate";
      EXPECT_EQ(ValidIndexesOn(dsn, "qty_big"), 1) << "unique index copied";
      EXPECT_EQ(Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = "
                           "'app.t'::regclass AND contype = 'u' AND "
                           "pg_get_constraintdef(oid) = 'UNIQUE (qty_big)'"),
                1)
          << "the UNIQUE constraint is copied as a constraint";
    }
    if (p == Phase::kContracted) EXPECT_FALSE(ColumnExists(dsn, "qty"));
  };
  return c;
}

// Two operations in one migration advance together: a rename and a
// set_not_null on another column of the same table.
OpCase TwoOperations() {
  OpCase c;
  c.name = "rename_and_set_not_null";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, c integer, v text);"
      "INSERT INTO app.t (id, v, c) SELECT g, 'seed ' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE g "
      "END FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations = pt::Spec().RenameColumn("t", "v", "w").SetNotNull("t", "c", "-1");
  c.seed_values = "SELECT id, v, c::text FROM app.t";
  c.old_app = Shape("INSERT INTO app.t (id, v, c) VALUES ($1, $2, $3)",
                    "UPDATE app.t SET v = $2, c = $3 WHERE id = $1", [](int64_t, int64_t n, int) {
                      return pt::Values{"o " + N(n), n % 3 == 0 ? std::nullopt
                                                                : std::optional<std::string>(N(n))};
                    });
  c.new_app = Shape("INSERT INTO app.t (id, w, c) VALUES ($1, $2, $3)",
                    "UPDATE app.t SET w = $2, c = $3 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{"n " + N(n), N(n)}; });
  c.old_unsynced =
      "t.v IS NOT DISTINCT FROM o.v[1] AND (t.c IS NOT DISTINCT FROM o.v[2]::int OR "
      "(o.v[2] IS NULL AND t.c = -1))";
  c.old_synced = "t.v IS NOT DISTINCT FROM o.v[1] AND t.c = coalesce(o.v[2]::int, -1)";
  c.new_synced = c.contracted =
      "t.w IS NOT DISTINCT FROM o.v[1] AND t.c = coalesce(o.v[2]::int, -1)";
  c.reference_ddl =
      "ALTER TABLE app.t RENAME COLUMN v TO w; ALTER TABLE app.t ALTER COLUMN c SET NOT NULL";
  c.promise = [](const std::string& dsn, Phase p) {
    if (p == Phase::kColumnAdded) ExpectPlainNewColumn(dsn, "w");
    if (p >= Phase::kTriggerInstalled && p < Phase::kContracted) EXPECT_GE(UserTriggers(dsn), 2);
    if (p >= Phase::kSwitched) EXPECT_TRUE(ColumnNotNull(dsn, "c"));
  };
  return c;
}

// add_check: nothing changes before validate; the CHECK is added NOT VALID
// and validated while both apps write values that satisfy it (or NULL).
OpCase AddCheck() {
  OpCase c;
  c.name = "add_check";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text, qty integer);"
      "INSERT INTO app.t (id, qty) SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE g % 500 END "
      "FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations = pt::Spec().AddCheck("t", "t_qty_range", "qty >= 0 AND qty < 100000");
  c.seed_values = "SELECT id, qty::text FROM app.t";
  auto value = [](int64_t, int64_t n, int) {
    return pt::Values{n % 4 == 0 ? std::nullopt : std::optional<std::string>(N(n % 100000))};
  };
  c.old_app = Shape("INSERT INTO app.t (id, qty) VALUES ($1, $2)",
                    "UPDATE app.t SET qty = $2 WHERE id = $1", value);
  c.new_app = c.old_app;
  c.old_unsynced = c.old_synced = c.new_synced = c.contracted = "t.qty IS NOT DISTINCT FROM o.v[1]::int";
  c.reference_ddl = "ALTER TABLE app.t ADD CONSTRAINT t_qty_range CHECK (qty >= 0 AND qty < 100000)";
  c.promise = [](const std::string& dsn, Phase p) {
    const int64_t checks =
        Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.t'::regclass AND "
                   "conname = 't_qty_range' AND convalidated");
    EXPECT_EQ(checks, p >= Phase::kValidated ? 1 : 0) << "the CHECK exists, VALID, from validate on";
    if (p < Phase::kValidated) {
      EXPECT_EQ(Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.t'::regclass "
                           "AND contype = 'c'"),
                0)
          << "nothing before validate";
    }
    EXPECT_EQ(UserTriggers(dsn), 0) << "add_check needs no trigger";
  };
  return c;
}

// create_table and drop_table: the table the apps write (app.t) is not the
// one created or dropped, so the oracle proves the writers lose nothing while
// every step runs, is interrupted and is rolled back beside them.
OpCase TableCase(std::string name, std::string setup_extra, pt::Spec operations, std::string reference_ddl,
                 std::function<void(const std::string& dsn, Phase p)> promise) {
  OpCase c;
  c.name = std::move(name);
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text, v text);"
      "INSERT INTO app.t (id, v) SELECT g, 's' || g FROM generate_series(1, " + N(kSeedRows) + ") g;" +
      setup_extra;
  c.operations = std::move(operations);
  c.seed_values = "SELECT id, v FROM app.t";
  c.old_app = Shape("INSERT INTO app.t (id, v) VALUES ($1, $2)", "UPDATE app.t SET v = $2 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{"o " + N(n)}; });
  c.new_app = Shape("INSERT INTO app.t (id, v) VALUES ($1, $2)", "UPDATE app.t SET v = $2 WHERE id = $1",
                    [](int64_t, int64_t n, int) { return pt::Values{"n " + N(n)}; });
  c.old_unsynced = c.old_synced = c.new_synced = c.contracted = "t.v IS NOT DISTINCT FROM o.v[1]";
  c.reference_ddl = std::move(reference_ddl);
  c.promise = std::move(promise);
  return c;
}

int64_t TablesNamed(const std::string& dsn, const std::string& name) {
  return Count(dsn, "SELECT count(*) FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relkind = 'r' "
                    "AND relname = " + Lit(name));
}

OpCase CreateTable() {
  return TableCase("create_table", "",
                   pt::Spec().CreateTable("audit").Column("id", "bigint").NotNull().Column("at", "timestamptz")
                       .Default("now()").PrimaryKey({"id"}),
                   "CREATE TABLE app.audit (id bigint NOT NULL, at timestamptz DEFAULT now(), PRIMARY KEY (id))",
                   [](const std::string& dsn, Phase p) {
                     EXPECT_EQ(TablesNamed(dsn, "audit"), p >= Phase::kColumnAdded ? 1 : 0)
                         << "the table exists from column_added on";
                   });
}

OpCase DropTable() {
  return TableCase("drop_table",
                   "CREATE TABLE app.legacy (id bigint PRIMARY KEY, code text);"
                   "INSERT INTO app.legacy SELECT g, 'c' || g FROM generate_series(1, 100) g;",
                   pt::Spec().DropTable("legacy"), "DROP TABLE app.legacy", [](const std::string& dsn, Phase p) {
                     EXPECT_EQ(TablesNamed(dsn, "legacy"), p >= Phase::kContracted ? 0 : 1)
                         << "nothing is dropped before contract";
                   });
}

// add_foreign_key: nothing changes before validate; the key is added NOT
// VALID (both tables locked briefly) and validated while both apps write
// keys that exist (or NULL). ON DELETE CASCADE is carried to the constraint.
OpCase AddForeignKey() {
  OpCase c;
  c.name = "add_foreign_key";
  c.setup =
      "CREATE TABLE app.parent (id integer PRIMARY KEY, label text);"
      "INSERT INTO app.parent SELECT g, 'p' || g FROM generate_series(1, 200) g;"
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text, pid integer);"
      "INSERT INTO app.t (id, pid) SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE g % 200 + 1 END "
      "FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations =
      pt::Spec().AddForeignKey("t", "t_pid_fkey", {"pid"}, "parent", {"id"}).OnDelete(pgshift::v1::CASCADE);
  c.seed_values = "SELECT id, pid::text FROM app.t";
  auto value = [](int64_t, int64_t n, int) {
    return pt::Values{n % 5 == 0 ? std::nullopt : std::optional<std::string>(N(n % 200 + 1))};
  };
  c.old_app = Shape("INSERT INTO app.t (id, pid) VALUES ($1, $2)",
                    "UPDATE app.t SET pid = $2 WHERE id = $1", value);
  c.new_app = c.old_app;
  c.old_unsynced = c.old_synced = c.new_synced = c.contracted = "t.pid IS NOT DISTINCT FROM o.v[1]::int";
  c.reference_ddl =
      "ALTER TABLE app.t ADD CONSTRAINT t_pid_fkey FOREIGN KEY (pid) REFERENCES app.parent (id) "
      "ON DELETE CASCADE";
  c.promise = [](const std::string& dsn, Phase p) {
    EXPECT_EQ(Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.t'::regclass AND "
                         "conname = 't_pid_fkey' AND convalidated AND confdeltype = 'c' AND "
                         "confrelid = 'app.parent'::regclass"),
              p >= Phase::kValidated ? 1 : 0)
        << "the key exists, VALID, from validate on";
    if (p < Phase::kValidated) {
      EXPECT_EQ(Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.t'::regclass "
                           "AND contype = 'f'"),
                0)
          << "nothing before validate";
    }
    EXPECT_EQ(UserTriggers(dsn), 0) << "add_foreign_key needs no trigger of pgshift's";
  };
  return c;
}

// No primary key (and no index at all): the writers find their rows by id.
OpCase RenameWithoutPrimaryKey() {
  OpCase c = RenamePlain();
  c.name = "rename_column_no_primary_key";
  c.setup =
      "CREATE TABLE app.t (id bigint NOT NULL, note text DEFAULT 'n', v text);"
      "INSERT INTO app.t (id, v) SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'seed ' || g END "
      "FROM generate_series(1, " + N(kSeedRows) + ") g;";
  return c;
}

// Index operations: the shape of the rows never changes; both app versions
// write the same columns, and every value written is unique.
OpCase IndexCase(std::string name, std::string setup_extra, pt::Spec operations, std::string reference_ddl,
                 std::function<void(const std::string& dsn, Phase p)> promise) {
  OpCase c;
  c.name = std::move(name);
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, note text, v text);"
      "INSERT INTO app.t (id, note, v) SELECT g, 'n' || g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'Seed ' || g END "
      "FROM generate_series(1, " + N(kSeedRows) + ") g;" + setup_extra;
  c.operations = std::move(operations);
  c.seed_values = "SELECT id, v FROM app.t";
  auto value = [](char who) {
    return [who](int64_t id, int64_t n, int) {
      return pt::Values{n % 5 == 2 ? std::nullopt
                                   : std::optional<std::string>(std::string(1, who) + " " + N(id) + "-" + N(n))};
    };
  };
  c.old_app = Shape("INSERT INTO app.t (id, v) VALUES ($1, $2)", "UPDATE app.t SET v = $2 WHERE id = $1",
                    value('o'));
  c.new_app = Shape("INSERT INTO app.t (id, v) VALUES ($1, $2)", "UPDATE app.t SET v = $2 WHERE id = $1",
                    value('n'));
  c.old_unsynced = c.old_synced = c.new_synced = c.contracted = "t.v IS NOT DISTINCT FROM o.v[1]";
  c.reference_ddl = std::move(reference_ddl);
  c.promise = std::move(promise);
  return c;
}

int64_t IndexesNamed(const std::string& dsn, const std::string& name) {
  return Count(dsn, "SELECT count(*) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE "
                    "i.indrelid = 'app.t'::regclass AND i.indisvalid AND c.relname = " + Lit(name));
}

OpCase CreateIndex() {
  return IndexCase(
      "create_index", "",
      pt::Spec().CreateIndex("t", "t_lower_v_key", {"lower(v)"}).Unique().Where("id > 0").Include({"note"}),
      "CREATE UNIQUE INDEX t_lower_v_key ON app.t (lower(v)) INCLUDE (note) WHERE (id > 0)",
      [](const std::string& dsn, Phase p) {
        EXPECT_EQ(IndexesNamed(dsn, "t_lower_v_key"), p >= Phase::kValidated ? 1 : 0);
        EXPECT_EQ(Count(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgshift%'"), 0);
      });
}

OpCase DropIndex() {
  return IndexCase("drop_index", "CREATE INDEX t_v_idx ON app.t (v);", pt::Spec().DropIndex("t_v_idx"),
                   "DROP INDEX app.t_v_idx", [](const std::string& dsn, Phase p) {
                     EXPECT_EQ(IndexesNamed(dsn, "t_v_idx"), p >= Phase::kContracted ? 0 : 1)
                         << "nothing is dropped before contract";
                   });
}

OpCase AddUnique() {
  return IndexCase("add_unique", "", pt::Spec().AddUnique("t", "t_v_key", {"v"}),
                   "ALTER TABLE app.t ADD CONSTRAINT t_v_key UNIQUE (v)", [](const std::string& dsn, Phase p) {
                     EXPECT_EQ(Count(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.t'::regclass "
                                          "AND contype = 'u' AND conname = 't_v_key'"),
                               p >= Phase::kValidated ? 1 : 0);
                     EXPECT_EQ(IndexesNamed(dsn, "t_v_key"), p >= Phase::kValidated ? 1 : 0);
                   });
}

// rename_table: old app versions keep using the old name through the view
// from switched on (inserts relying on a default and a serial, RETURNING,
// ON CONFLICT); new ones use the new name from switched on.
OpCase RenameTable() {
  OpCase c;
  c.name = "rename_table";
  c.setup =
      "CREATE TABLE app.t (id bigint PRIMARY KEY, serial_no bigserial, note text DEFAULT 'n', v text,"
      "  CONSTRAINT t_v_len CHECK (length(v) < 100));"
      "CREATE INDEX t_v_idx ON app.t (v);"
      "INSERT INTO app.t (id, v) SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'seed ' || g END "
      "FROM generate_series(1, " + N(kSeedRows) + ") g;";
  c.operations = pt::Spec().RenameTable("t", "t2");
  c.seed_values = "SELECT id, v FROM app.t";
  auto value = [](char who) {
    return [who](int64_t, int64_t n, int) {
      return pt::Values{n % 7 == 3 ? std::nullopt : std::optional<std::string>(std::string(1, who) + " " + N(n))};
    };
  };
  c.old_app = Shape("INSERT INTO app.t (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = excluded.v "
                    "RETURNING id, serial_no, note",
                    "UPDATE app.t SET v = $2 WHERE id = $1 RETURNING *", value('o'));
  c.new_app = Shape("INSERT INTO app.t2 (id, v) VALUES ($1, $2) RETURNING serial_no",
                    "UPDATE app.t2 SET v = $2 WHERE id = $1", value('n'));
  c.new_app.delete_sql = "DELETE FROM app.t2 WHERE id = $1";
  c.old_unsynced = c.old_synced = c.new_synced = c.contracted =
      "t.v IS NOT DISTINCT FROM o.v[1] AND t.serial_no IS NOT NULL AND t.note = 'n'";
  c.reference_ddl = "ALTER TABLE app.t RENAME TO t2";
  c.new_app_from = Phase::kSwitched;
  c.renamed_to = "t2";
  c.promise = [](const std::string& dsn, Phase p) {
    const std::string kinds =
        "SELECT coalesce(string_agg(relname || ':' || relkind::text, ',' ORDER BY relname), '') FROM pg_class "
        "WHERE relnamespace = 'app'::regnamespace AND relname IN ('t', 't2')";
    if (p < Phase::kSwitched) EXPECT_EQ(ProbeValue(dsn, kinds), "t:r") << "nothing changes before switched";
    if (p == Phase::kSwitched) EXPECT_EQ(ProbeValue(dsn, kinds), "t:v,t2:r") << "the old name is a view";
    if (p == Phase::kContracted) EXPECT_EQ(ProbeValue(dsn, kinds), "t2:r") << "contract drops the view";
    if (p == Phase::kSwitched) {
      EXPECT_EQ(ProbeValue(dsn, "SELECT count(*) = (SELECT count(*) FROM app.t2) FROM app.t"), "t");
    }
  };
  return c;
}

std::vector<OpCase> AllCases() {
  return {RenamePlain(),        RenameConstrained(),  SetNotNull(),
          SetNotNullWithoutFill(),
          AddColumnBackfilled(), AddColumnInstant(),  DropColumnNotNull(),
          DropColumnNullable(),  ChangeType(),        ChangeTypeNotNull(),
          TwoOperations(),       RenameWithoutPrimaryKey(), CreateIndex(),
          DropIndex(),           AddUnique(),               AddCheck(),
          AddForeignKey(),       RenameTable(),             CreateTable(),
          DropTable()};
}

// ---------------------------------------------------------------------------
// The harness

struct HarnessParam {
  OpCase op;
  std::optional<Phase> rollback_from;  // nullopt: all the way to contracted
  // Each step first runs in a CLI process that is killed (or whose backend
  // is terminated) while it waits for a lock the test holds; the step is
  // then run again.
  bool interrupt_each_step = false;
  // How the backfill walks the table (kAuto: pages on PostgreSQL 14+).
  pgshift::BackfillWalk walk = pgshift::BackfillWalk::kAuto;
};

void PrintTo(const HarnessParam& p, std::ostream* os) {
  *os << p.op.name << (p.rollback_from ? " rolled back from " : " to contracted")
      << (p.rollback_from ? pgshift::PhaseName(*p.rollback_from) : "")
      << (p.interrupt_each_step ? ", every step interrupted once" : "")
      << (p.walk == pgshift::BackfillWalk::kPrimaryKey ? ", backfill walks the primary key" : "");
}

std::string ParamName(const ::testing::TestParamInfo<HarnessParam>& info) {
  const HarnessParam& p = info.param;
  if (p.interrupt_each_step) return p.op.name + "_EveryStepInterrupted";
  if (p.walk == pgshift::BackfillWalk::kPrimaryKey) return p.op.name + "_ToContracted_KeyWalk";
  std::string phase = p.rollback_from ? std::string(pgshift::PhaseName(*p.rollback_from)) : "";
  return p.op.name + (p.rollback_from ? "_RollbackFrom_" + phase : "_ToContracted");
}

std::vector<HarnessParam> AllParams() {
  std::vector<HarnessParam> out;
  for (const OpCase& c : AllCases()) {
    out.push_back({c, std::nullopt, false});
    out.push_back({c, std::nullopt, true});
    out.push_back({c, std::nullopt, false, pgshift::BackfillWalk::kPrimaryKey});
    for (Phase p : pgshift::PhaseLadder()) {
      if (p != Phase::kContracted) out.push_back({c, p, false});
    }
  }
  return out;
}

class LifecycleHarness : public ::testing::TestWithParam<HarnessParam> {
 protected:
  // Checks every row of app.t against the oracles with `condition(o.s)`;
  // also that the table holds exactly the oracle's keys.
  void ExpectData(const std::string& dsn, const std::string& condition, const std::string& when,
                  const std::string& rel = "app.t") {
    std::vector<const pt::Oracle*> oracles = {&old_->oracle(), &new_->oracle()};
    const Phase reached = reached_;
    std::string json = pt::OracleJson(oracles, [reached](const pt::OracleEntry& e) {
      if (e.generation == kDuringRollback) return false;
      if (e.generation >= Gen(Phase::kTriggerInstalled)) return true;
      return reached >= Phase::kBackfilled && e.generation < Gen(Phase::kBackfilled);
    });
    ASSERT_EQ(json.find("$oracle$"), std::string::npos);
    const std::string sql =
        "WITH o AS (SELECT * FROM jsonb_to_recordset($oracle$" + json +
        "$oracle$::jsonb) AS o(id bigint, w text, g int, s bool, v text[])), "
        "bad AS (SELECT coalesce(o.id, t.id) AS id, CASE WHEN t.id IS NULL THEN 'missing row' "
        "WHEN o.id IS NULL THEN 'unexpected row' ELSE 'wrong values' END AS what, "
        "o.w, o.g, o.s, o.v::text AS oracle, row_to_json(t)::text AS actual "
        "FROM " + rel + " t FULL JOIN o ON o.id = t.id "
        "WHERE t.id IS NULL OR o.id IS NULL OR NOT coalesce((" + condition + "), false)) "
        "SELECT (SELECT count(*) FROM bad), id, what, w, g, s, oracle, actual FROM bad "
        "ORDER BY id LIMIT 8";
    pt::Rows bad = Probe(dsn, sql);
    if (bad.empty()) return;
    std::string detail;
    for (const pt::Row& r : bad) {
      detail += "\n  id " + r[1].value_or("?") + ": " + r[2].value_or("") + " (writer " +
                r[3].value_or("-") + ", generation " + r[4].value_or("-") + ", synced " +
                r[5].value_or("-") + ") oracle " + r[6].value_or("NULL") + " table " +
                r[7].value_or("NULL");
    }
    ADD_FAILURE() << *bad[0][0] << " row(s) disagree with the oracle " << when
                  << " (condition: " << condition << "):" << detail;
  }

  // The data condition at rest at phase p.
  std::string ConditionAt(Phase p) const {
    const OpCase& c = GetParam().op;
    const std::string both = "(" + c.old_synced + ") AND (" + c.new_synced + ")";
    switch (p) {
      case Phase::kRegistered:
      case Phase::kColumnAdded:
        return c.old_unsynced;
      case Phase::kTriggerInstalled:
        return "CASE WHEN o.s THEN " + both + " ELSE " + c.old_unsynced + " END";
      case Phase::kContracted:
        return c.contracted;
      default:
        return both;
    }
  }

  // Runs the step to `p` in a CLI process, catches it waiting for a SHARE
  // lock the test holds on app.t (after whatever the step did before that
  // committed), and kills the process (SIGKILL) or terminates its backend.
  // Steps that take no lock on the table just finish. The writers keep
  // going (stalled while the test holds the lock).
  void InterruptStep(const std::string& dsn, const std::string& name, Phase p, bool kill) {
    pt::Session blocker(dsn, "harness lock holder");
    blocker.Exec("BEGIN; LOCK TABLE app.t IN SHARE MODE");
    pt::ChildProcess cli(
        pt::CliArgv(dsn, {"advance", name, "--to", std::string(pgshift::PhaseName(p)),
                          "--lock-timeout", "200ms", "--batch-rows", "100"}));
    // Its backends (application_name "pgshift <host>:<pid>").
    const std::string its =
        "a.datname = current_database() AND a.application_name LIKE " +
        Lit("pgshift %:" + std::to_string(cli.pid()));
    bool waiting = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (cli.Running() && std::chrono::steady_clock::now() < deadline) {
      if (Count(dsn, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                     "WHERE NOT l.granted AND " + its) > 0) {
        waiting = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!waiting) {
      if (cli.Running()) {
        ADD_FAILURE() << "the CLI neither waited for the test's lock nor finished";
        cli.Kill(SIGKILL);
      }
      pt::CliResult r = cli.Wait();
      blocker.Exec("COMMIT");
      EXPECT_EQ(r.exit_code, 0) << "a step that needs no table lock just runs: " << r.err;
      return;
    }
    if (kill) {
      cli.Kill(SIGKILL);
    } else {
      pt::Query(dsn, "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE " + its);
    }
    pt::CliResult r = cli.Wait();
    if (!kill) EXPECT_EQ(r.exit_code, 1) << r.err;
    blocker.Exec("COMMIT");
    for (int i = 0; i < 9000 && Count(dsn, "SELECT count(*) FROM pg_stat_activity a WHERE " + its) > 0;
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(ProbeValue(dsn, "SELECT phase || '/' || coalesce(running_step, '') FROM "
                                  "pgshift.migrations WHERE name = " + Lit(name)),
              std::string(pgshift::PhaseName(reached_)) + "/" + std::string(pgshift::PhaseName(p)))
        << "an interrupted step leaves the phase where it was and shows the step running";
  }

  void StopWriters() {
    old_->Stop();
    new_->Stop();
    for (pt::Writer* w : {old_.get(), new_.get()}) {
      for (const std::string& e : w->errors()) ADD_FAILURE() << "application write failed: " << e;
    }
  }

  std::unique_ptr<pt::Writer> old_, new_;
  Phase reached_ = Phase::kRegistered;
};

TEST_P(LifecycleHarness, WritersNeverLoseDataAndEveryPhaseKeepsItsPromise) {
  const OpCase& c = GetParam().op;
  const std::optional<Phase> rollback_from = GetParam().rollback_from;
  pt::ScratchDatabase db("lifecycle_" + c.name);
  const std::string dsn = db.dsn();
  pt::Query(dsn, "CREATE SCHEMA app; " + c.setup + " ANALYZE app.t;");

  pgshift::Options options;
  options.driver_name = "lifecycle harness";
  options.backfill_batch_rows = 100;
  options.backfill_min_batch_rows = 50;
  options.backfill_max_batch_rows = 100;
  options.backfill_batch_delay = absl::Milliseconds(2);
  options.retry_deadline = absl::Seconds(60);
  options.backfill_walk = GetParam().walk;
  auto driver_or = pgshift::Driver::Connect(dsn, options);
  ASSERT_TRUE(driver_or.ok()) << driver_or.status();
  pgshift::Driver& driver = **driver_or;
  ASSERT_TRUE(driver.Init().ok());

  // Seeded rows: the old app owns the lower half, the new app the rest.
  pt::Oracle old_rows, new_rows;
  for (const pt::Row& r : pt::Query(dsn, c.seed_values)) {
    int64_t id = std::stoll(*r[0]);
    pt::OracleEntry e{'s', pt::Values(r.begin() + 1, r.end()), 0};
    (id <= kSeedRows / 2 ? old_rows : new_rows)[id] = e;
  }
  std::atomic<int> generation{Gen(Phase::kRegistered)};
  old_ = std::make_unique<pt::Writer>(dsn, "old app", 'o', c.old_app, old_rows, kOldFirstId, 1,
                                      &generation);
  new_ = std::make_unique<pt::Writer>(dsn, "new app", 'n', c.new_app, new_rows, kNewFirstId, 2,
                                      &generation);

  const std::string before = pt::CatalogSnapshot(dsn, "app");
  const std::string name = "harness_" + c.name;
  auto registered = driver.Register(pt::Spec(c.operations).Name(name).Schema("app").Migration());
  ASSERT_TRUE(registered.ok()) << registered.status();
  EXPECT_EQ(registered->phase, Phase::kRegistered);
  EXPECT_EQ(pt::CatalogSnapshot(dsn, "app"), before) << "register changes nothing in the schema";

  // The old app writes at registered.
  old_->Start();
  old_->WaitForMoreOps(kOpsAtRest);
  StopWriters();
  ExpectData(dsn, ConditionAt(Phase::kRegistered), "at registered");

  const Phase last = rollback_from.value_or(Phase::kContracted);
  for (Phase p : pgshift::PhaseLadder()) {
    if (p == Phase::kRegistered || p > last) continue;
    SCOPED_TRACE(std::string("step to ") + std::string(pgshift::PhaseName(p)));
    // Old app versions run until contract; new ones once the trigger keeps
    // the shapes in sync.
    const bool old_runs = p != Phase::kContracted;
    const bool new_runs_during = reached_ >= c.new_app_from;
    generation = Gen(p) - 1;
    if (old_runs) old_->Start();
    if (new_runs_during) new_->Start();
    if (GetParam().interrupt_each_step) {
      InterruptStep(dsn, name, p, /*kill=*/static_cast<int>(p) % 2 == 1);
    }
    auto st = driver.Advance(name, p);
    generation = Gen(p);
    if (st.ok()) reached_ = p;
    if (p >= c.new_app_from) new_->Start();
    if (old_runs && old_->running()) old_->WaitForMoreOps(kOpsAtRest);
    if (new_->running()) new_->WaitForMoreOps(kOpsAtRest);
    StopWriters();
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->phase, p);
    EXPECT_EQ(st->last_error, "");

    // Generic promises.
    if (p == Phase::kColumnAdded && c.name.rfind("set_not_null", 0) == 0) {
      EXPECT_EQ(pt::CatalogSnapshot(dsn, "app"), before) << "column_added is a no-op here";
    }
    if (p >= Phase::kValidated) {
      EXPECT_EQ(InvalidConstraints(dsn, c.Rel(p)), 0) << "validated: every constraint is VALID";
      EXPECT_EQ(InvalidIndexes(dsn, c.Rel(p)), 0) << "validated: every index is valid";
    }
    if (p == Phase::kContracted) {
      EXPECT_EQ(UserTriggers(dsn, c.Rel(p)), 0) << "contract removes the sync trigger";
      EXPECT_EQ(FunctionsInApp(dsn), 0) << "contract removes the trigger function";
      const std::string after = pt::CatalogSnapshot(dsn, "app");
      EXPECT_EQ(after.find("pgshift"), std::string::npos)
          << "no pgshift object or comment is left after contract:\n" << after;
      if (!c.reference_ddl.empty()) {
        pt::ScratchDatabase ref("lifecycle_ref_" + c.name);
        pt::Query(ref.dsn(),
                  "CREATE SCHEMA app; " + c.setup + " TRUNCATE app.t; " + c.reference_ddl);
        EXPECT_EQ(after, pt::CatalogSnapshot(ref.dsn(), "app"))
            << "after contract the table must look exactly like the naive DDL's result";
      }
    }
    c.promise(dsn, p);
    ExpectData(dsn, ConditionAt(p), std::string("at ") + std::string(pgshift::PhaseName(p)),
               p == Phase::kContracted ? c.Rel(p) : "app.t");
  }

  if (!rollback_from) {
    auto status = driver.Status(name);
    ASSERT_TRUE(status.ok());
    EXPECT_EQ(status->phase, Phase::kContracted);
    // Contract is the end: no rollback.
    auto rb = driver.Rollback(name);
    EXPECT_TRUE(absl::IsFailedPrecondition(rb.status())) << rb.status();
    return;
  }

  // Rollback: new app versions are gone; the old app keeps writing.
  generation = kDuringRollback;
  old_->Start();
  auto rb = driver.Rollback(name);
  old_->WaitForMoreOps(kOpsAtRest);
  StopWriters();
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(rb->phase, Phase::kRolledBack);
  EXPECT_EQ(pt::CatalogSnapshot(dsn, "app"), before)
      << "rollback from " << pgshift::PhaseName(*rollback_from)
      << " must restore the catalog exactly";
  ExpectData(dsn, "CASE WHEN o.s THEN " + c.old_synced + " ELSE " + c.old_unsynced + " END",
             "after rollback (the old shape holds every row)");
  EXPECT_EQ(ProbeValue(dsn, "SELECT count(*) FROM pgshift.checkpoints WHERE migration = " +
                                    Lit(name)),
            "0");
  // Idempotent.
  auto again = driver.Rollback(name);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->phase, Phase::kRolledBack);
  EXPECT_EQ(pt::CatalogSnapshot(dsn, "app"), before);
}

INSTANTIATE_TEST_SUITE_P(Ops, LifecycleHarness, ::testing::ValuesIn(AllParams()), ParamName);

}  // namespace
