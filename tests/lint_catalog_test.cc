// What the linter asks the live catalog (lib/engine/lint.cc): whether a type
// change rewrites, whether a default is volatile, whether a table exists —
// and that without a database it assumes the worst and says so. The corpus
// of statements is in lint_corpus_test.cc.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/driver.h"
#include "pgshift/lint.h"
#include "tests/support/test_db.h"

namespace pgshift {
namespace {

using ::testing::HasSubstr;
using testing::Query;
using testing::ScratchDatabase;

class LintCatalog : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<ScratchDatabase>("lint_catalog");
    Query(db_->dsn(),
          "CREATE TABLE items (id bigint PRIMARY KEY, label varchar(50), code text, price numeric(10,2),"
          " qty int, at timestamp);"
          "CREATE FUNCTION pick() RETURNS int LANGUAGE sql STABLE AS 'SELECT 1';"
          "CREATE FUNCTION roll() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'");
    auto d = Driver::Connect(db_->dsn());
    ASSERT_TRUE(d.ok()) << d.status();
    driver_ = std::move(*d);
  }

  // The one statement of `sql`, linted with the catalog.
  LintedStatement With(const std::string& sql) {
    absl::StatusOr<LintReport> r = driver_->Lint(sql, "test.sql");
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->statements.size(), 1u);
    return r->statements.at(0);
  }

  std::unique_ptr<ScratchDatabase> db_;
  std::unique_ptr<Driver> driver_;
};

TEST_F(LintCatalog, TypeChangesThatOnlyTouchTheCatalogAreSafe) {
  for (const char* sql : {"ALTER TABLE items ALTER COLUMN label TYPE text",
                          "ALTER TABLE items ALTER COLUMN label TYPE varchar(80)",
                          "ALTER TABLE items ALTER COLUMN label TYPE varchar",
                          "ALTER TABLE items ALTER COLUMN price TYPE numeric(12,2)",
                          "ALTER TABLE items ALTER COLUMN price TYPE numeric"}) {
    LintedStatement s = With(sql);
    EXPECT_EQ(s.verdict, "safe") << sql;
    EXPECT_FALSE(s.rewrites_table) << sql;
    EXPECT_FALSE(s.assumed) << sql;
  }
}

TEST_F(LintCatalog, TypeChangesThatRewriteOrCheckEveryRowAreRefused) {
  for (const char* sql : {"ALTER TABLE items ALTER COLUMN label TYPE varchar(20)",
                          "ALTER TABLE items ALTER COLUMN code TYPE varchar(20)",
                          "ALTER TABLE items ALTER COLUMN price TYPE numeric(12,3)",
                          "ALTER TABLE items ALTER COLUMN price TYPE numeric(8,2)",
                          "ALTER TABLE items ALTER COLUMN qty TYPE bigint",
                          "ALTER TABLE items ALTER COLUMN at TYPE timestamptz",
                          "ALTER TABLE items ALTER COLUMN at TYPE timestamp(3)",
                          "ALTER TABLE items ALTER COLUMN code TYPE text USING upper(code)"}) {
    LintedStatement s = With(sql);
    EXPECT_EQ(s.verdict, "refuse") << sql;
    ASSERT_FALSE(s.findings.empty()) << sql;
    EXPECT_EQ(s.findings[0].rule, "type-change-rewrites") << sql;
    EXPECT_THAT(s.operation_json, HasSubstr("\"change_type\"")) << sql;
  }
}

TEST_F(LintCatalog, WithoutADatabaseEveryTypeChangeIsAssumedToRewrite) {
  absl::StatusOr<LintReport> r = LintSql("ALTER TABLE items ALTER COLUMN label TYPE text;", "x.sql");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->statements[0].verdict, "refuse");
  EXPECT_TRUE(r->statements[0].assumed);
  EXPECT_TRUE(r->unsafe);
}

TEST_F(LintCatalog, ADefaultIsVolatileWhenAFunctionItCallsIs) {
  EXPECT_EQ(With("ALTER TABLE items ADD COLUMN a int DEFAULT pick()").verdict, "safe");
  EXPECT_EQ(With("ALTER TABLE items ADD COLUMN b timestamptz DEFAULT now()").verdict, "safe");
  EXPECT_EQ(With("ALTER TABLE items ADD COLUMN c text DEFAULT 'x' || 'y'").verdict, "safe");
  LintedStatement v = With("ALTER TABLE items ADD COLUMN d int DEFAULT roll() + pick()");
  EXPECT_EQ(v.verdict, "convert");
  EXPECT_FALSE(v.assumed);
  EXPECT_THAT(v.operation_json, HasSubstr("\"add_column\""));
  EXPECT_EQ(With("ALTER TABLE items ADD COLUMN e uuid DEFAULT gen_random_uuid()").verdict, "convert");
  // A function the server does not know: the worst is assumed.
  LintedStatement unknown = With("ALTER TABLE items ADD COLUMN f int DEFAULT no_such_function()");
  EXPECT_EQ(unknown.verdict, "convert");
  EXPECT_TRUE(unknown.assumed);
}

TEST_F(LintCatalog, ATableThatDoesNotExistIsNewAndSaidToBeMissing) {
  LintedStatement s = With("CREATE INDEX ghosts_x ON ghosts (x)");
  EXPECT_EQ(s.verdict, "safe");
  ASSERT_FALSE(s.findings.empty());
  EXPECT_EQ(s.findings[0].rule, "table-not-found");
  // Without a database the table is assumed to exist (and be busy).
  absl::StatusOr<LintReport> r = LintSql("CREATE INDEX ghosts_x ON ghosts (x);", "x.sql");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->statements[0].verdict, "convert");
}

}  // namespace
}  // namespace pgshift
