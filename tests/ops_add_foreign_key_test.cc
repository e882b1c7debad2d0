// add_foreign_key: FOREIGN KEY NOT VALID (both tables locked, both named)
// then VALIDATE at validate, orphans named before anything changes, the
// referenced key and the types checked by the server at register, rollback
// from every phase, and a constraint of the same name that is not
// pgshift's left alone.
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/ops/names.h"
#include "pgshift/errors.h"
#include "tests/support/cli.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;

class AddForeignKeyTest : public OpsTest {
 protected:
  void SetUp() override {
    OpsTest::SetUp();
    Sql("CREATE TABLE parent (id int PRIMARY KEY, code text NOT NULL UNIQUE, a int, b int, label text,"
        "  UNIQUE (a, b));"
        "CREATE UNIQUE INDEX parent_label_partial ON parent (label) WHERE label IS NOT NULL;"
        "INSERT INTO parent SELECT g, 'c' || g, g, -g, NULL FROM generate_series(1, 100) g;"
        "CREATE TABLE orders (id int PRIMARY KEY, user_id int, code text, a bigint, b int, big bigint);"
        "INSERT INTO orders SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 100 + 1 END, "
        "  'c' || (g % 100 + 1), g % 100 + 1, -(g % 100 + 1), g % 100 + 1 FROM generate_series(1, 500) g");
  }
  static Spec Fk(const std::string& name = "fk") {
    return Spec(name).AddForeignKey("orders", "orders_user_id_fkey", {"user_id"}, "parent", {"id"});
  }
  std::string Constraint(const std::string& name = "orders_user_id_fkey") {
    return Value("SELECT coalesce((SELECT (convalidated, pg_get_constraintdef(oid), "
                 "coalesce(obj_description(oid, 'pg_constraint'), '-'))::text FROM pg_constraint "
                 "WHERE conrelid = 'orders'::regclass AND conname = " + Lit(name) + "), 'none')");
  }
};

TEST_F(AddForeignKeyTest, NothingChangesBeforeValidateThenTheKeyIsValidAndEnforced) {
  const std::string before = Snapshot();
  ASSERT_TRUE(Register(Fk().Json()).ok());
  ASSERT_TRUE(Advance("fk", Phase::kBackfilled).ok());
  EXPECT_EQ(Snapshot(), before) << "no step before validate changes the schema";
  ASSERT_TRUE(Advance("fk", Phase::kValidated).ok());
  EXPECT_THAT(Constraint(), HasSubstr("(t,\"FOREIGN KEY (user_id) REFERENCES parent(id)\","));
  EXPECT_THROW(Sql("INSERT INTO orders (id, user_id) VALUES (9000, 999)"), std::runtime_error);
  Sql("INSERT INTO orders (id, user_id) VALUES (9001, NULL)");
  EXPECT_THROW(Sql("DELETE FROM parent WHERE id = 2"), std::runtime_error) << "NO ACTION by default";
  ASSERT_TRUE(Advance("fk", Phase::kContracted).ok());
  EXPECT_THAT(Constraint(), HasSubstr(",-)")) << "contract removes pgshift's mark";
  // Exactly what a plain ADD CONSTRAINT leaves.
  const std::string ours = Snapshot();
  Sql("ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;"
      "ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES parent (id)");
  EXPECT_EQ(Snapshot(), ours);
}

TEST_F(AddForeignKeyTest, PlanNamesBothTablesAndTheirLocks) {
  absl::StatusOr<Plan> plan = PlanOf(Fk().Json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (Phase p : {Phase::kColumnAdded, Phase::kTriggerInstalled, Phase::kBackfilled, Phase::kSwitched}) {
    EXPECT_TRUE(StepStatements(*plan, p).empty()) << PhaseName(p);
  }
  std::vector<PlannedStatement> v = StepStatements(*plan, Phase::kValidated);
  ASSERT_EQ(v.size(), 6u);
  EXPECT_THAT(v[1].sql, HasSubstr("NOT EXISTS (SELECT 1 FROM ONLY \"public\".\"parent\""));
  ASSERT_EQ(v[1].locks.size(), 2u);
  EXPECT_THAT(v[3].sql, HasSubstr("ADD CONSTRAINT \"orders_user_id_fkey\" FOREIGN KEY (\"user_id\") "
                                  "REFERENCES \"public\".\"parent\" (\"id\") NOT VALID"));
  EXPECT_EQ(v[3].lock, "SHARE ROW EXCLUSIVE");
  ASSERT_EQ(v[3].locks.size(), 2u);
  EXPECT_EQ(v[3].locks[0].table, "\"public\".\"orders\"");
  EXPECT_EQ(v[3].locks[1].table, "\"public\".\"parent\"");
  EXPECT_EQ(v[3].locks[1].mode, "SHARE ROW EXCLUSIVE");
  EXPECT_FALSE(v[3].scans_table);
  EXPECT_THAT(v[5].sql, HasSubstr("VALIDATE CONSTRAINT \"orders_user_id_fkey\""));
  ASSERT_EQ(v[5].locks.size(), 2u);
  EXPECT_EQ(v[5].locks[0].mode, "SHARE UPDATE EXCLUSIVE");
  EXPECT_EQ(v[5].locks[1].mode, "ROW SHARE");
  EXPECT_TRUE(v[5].scans_table);
  ASSERT_EQ(plan->rollback.size(), 1u);
  ASSERT_EQ(plan->rollback[0].statements.size(), 1u);
  EXPECT_EQ(plan->rollback[0].statements[0].locks.size(), 2u) << "DROP CONSTRAINT locks the referenced table too";
}

TEST_F(AddForeignKeyTest, OrphansFailTheStepNamingSampleKeysUntilTheyAreFixed) {
  Sql("UPDATE orders SET user_id = 999 WHERE id IN (7, 42)");
  ASSERT_TRUE(Register(Fk().Json()).ok());
  ASSERT_TRUE(Advance("fk", Phase::kBackfilled).ok());
  absl::Status s = Advance("fk", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(ExitCodeFor(s), 1) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("orphans"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("2 row(s), e.g. primary key "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("42"));
  EXPECT_EQ(PhaseOf("fk"), Phase::kBackfilled);
  EXPECT_EQ(Constraint(), "none") << "nothing is added while orphans exist";
  CliResult cli = RunCli(dsn(), {"advance", "fk"});
  EXPECT_EQ(cli.exit_code, 1) << cli.err;
  EXPECT_THAT(cli.err, HasSubstr("orphans"));
  Sql("UPDATE orders SET user_id = NULL WHERE user_id = 999");
  ASSERT_TRUE(Advance("fk", Phase::kValidated).ok());
  EXPECT_THAT(Constraint(), HasSubstr("(t,"));
}

TEST_F(AddForeignKeyTest, ARunCutAfterTheAddContinuesAndStillNamesOrphans) {
  ASSERT_TRUE(Register(Fk().Json()).ok());
  ASSERT_TRUE(Advance("fk", Phase::kBackfilled).ok());
  // A driver killed after the ADD committed, an orphan written before it.
  Sql("UPDATE orders SET user_id = 777 WHERE id = 13;"
      "ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES parent (id) "
      "NOT VALID; COMMENT ON CONSTRAINT orders_user_id_fkey ON orders IS " +
      Value(absl::StrCat("SELECT quote_literal(", Lit(ops::Names("fk", 0).owner_comment()), ")")));
  absl::Status s = Advance("fk", Phase::kValidated);
  EXPECT_EQ(ExitCodeFor(s), 1) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("e.g. primary key 13"));
  Sql("UPDATE orders SET user_id = 1 WHERE id = 13");
  s = Advance("fk", Phase::kValidated);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(Constraint(), HasSubstr("(t,"));
}

TEST_F(AddForeignKeyTest, ActionsCompositeKeysAndCrossTypeColumns) {
  ASSERT_TRUE(Register(Spec("acts")
                           .AddForeignKey("orders", "orders_ab_fkey", {"a", "b"}, "parent", {"a", "b"})
                           .OnDelete(v1::CASCADE)
                           .OnUpdate(v1::SET_NULL)
                           .AddForeignKey("orders", "orders_code_fkey", {"code"}, "parent", {"code"})
                           .OnDelete(v1::RESTRICT)
                           .Json())
                  .ok());
  absl::Status s = Advance("acts", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(Constraint("orders_ab_fkey"),
              HasSubstr("FOREIGN KEY (a, b) REFERENCES parent(a, b) ON UPDATE SET NULL ON DELETE CASCADE"));
  EXPECT_THAT(Constraint("orders_code_fkey"), HasSubstr("ON DELETE RESTRICT"));
  Sql("ALTER TABLE orders DROP CONSTRAINT orders_code_fkey");
  Sql("DELETE FROM parent WHERE id = 5");  // cascades over (a, b) = (5, -5)
  EXPECT_EQ(Value("SELECT count(*) FROM orders WHERE a = 5"), "0");
  // bigint referencing int: the integer operator family compares them.
  EXPECT_TRUE(PlanOf(Spec("big").AddForeignKey("orders", "orders_big_fkey", {"big"}, "parent", {"id"}).Json()).ok());
}

TEST_F(AddForeignKeyTest, BadInputIsRefusedAtRegisterNamingTheFieldAndNothingChanges) {
  auto fk = [](std::vector<std::string> cols, std::string ref, std::vector<std::string> refcols,
               std::string table = "orders", std::string name = "k") {
    return Spec("x").AddForeignKey(table, name, std::move(cols), ref, std::move(refcols));
  };
  ExpectRefused(fk({"user_id"}, "parent", {"id"}, "nope").Json(), absl::StatusCode::kNotFound, {"nope"});
  ExpectRefused(fk({"user_id"}, "nope", {"id"}).Json(), absl::StatusCode::kNotFound,
                {"references_table", "nope"});
  ExpectRefused(fk({"nope"}, "parent", {"id"}).Json(), absl::StatusCode::kNotFound,
                {"add_foreign_key: columns", "\"nope\"", "\"public\".\"orders\""});
  ExpectRefused(fk({"user_id"}, "parent", {"nope"}).Json(), absl::StatusCode::kNotFound,
                {"add_foreign_key: references_columns", "\"nope\"", "\"public\".\"parent\""});
  ExpectRefused(fk({"a", "b"}, "parent", {"id"}).Json(), absl::StatusCode::kInvalidArgument,
                {"add_foreign_key", "\"columns\" has 2", "\"references_columns\" 1"});
  ExpectRefused(fk({"a", "a"}, "parent", {"a", "b"}).Json(), absl::StatusCode::kInvalidArgument,
                {"add_foreign_key.columns", "\"a\" appears twice"});
  // No unique index or key on exactly these columns: none at all, a
  // partial one, a subset of a composite one.
  for (const std::vector<std::string>& refcols :
       std::vector<std::vector<std::string>>{{"label"}, {"a"}}) {
    ExpectRefused(fk({"b"}, "parent", refcols).Json(), absl::StatusCode::kInvalidArgument,
                  {"add_foreign_key: references_columns", "no primary key or unique index", "\"public\".\"parent\""});
  }
  // Types the key's equality cannot compare.
  ExpectRefused(fk({"code"}, "parent", {"id"}).Json(), absl::StatusCode::kInvalidArgument,
                {"add_foreign_key", "cannot reference", "incompatible types: text and integer"});
  // An existing name on the table, a name over 63 bytes.
  Sql("ALTER TABLE orders ADD CONSTRAINT orders_code_check CHECK (code <> '')");
  ExpectRefused(fk({"user_id"}, "parent", {"id"}, "orders", "orders_code_check").Json(),
                absl::StatusCode::kAlreadyExists, {"add_foreign_key", "\"orders_code_check\"", "already exists"});
  ExpectRefused(fk({"user_id"}, "parent", {"id"}, "orders", std::string(64, 'k')).Json(),
                absl::StatusCode::kInvalidArgument, {"add_foreign_key.name", "64 bytes"});
  // Actions: a name that is not one, a number that is not one, missing lists.
  const std::string head =
      R"({"name": "x", "operations": [{"add_foreign_key": {"table": "orders", "name": "k", "columns": ["user_id"],
          "references_table": "parent", "references_columns": ["id"], )";
  for (const char* bad : {"DELETE", "SET NULL", "cascade"}) {
    ExpectRefused(head + R"("on_delete": ")" + bad + R"("}}]})", absl::StatusCode::kInvalidArgument,
                  {"operations[0].add_foreign_key.on_delete", bad,
                   "is not one of NO_ACTION, RESTRICT, CASCADE, SET_NULL, SET_DEFAULT"});
  }
  ExpectRefused(head + R"("on_update": 17}}]})", absl::StatusCode::kInvalidArgument,
                {"add_foreign_key.on_update", "17 is not an action"});
  ExpectRefused(R"({"name": "x", "operations": [{"add_foreign_key": {"table": "orders", "name": "k",
                   "references_table": "parent", "references_columns": ["id"]}}]})",
                absl::StatusCode::kInvalidArgument, {"add_foreign_key", "\"columns\" is missing"});
}

TEST_F(AddForeignKeyTest, ADriverWithoutTheReferencesPrivilegeIsRefused) {
  // A role that owns orders (and may plan) but has no REFERENCES on parent.
  const std::string role = absl::StrCat("pgshift_fk_noref_", getpid());
  Sql(absl::StrCat("DROP ROLE IF EXISTS ", role, "; CREATE ROLE ", role, " LOGIN NOSUPERUSER;"
                   "ALTER TABLE orders OWNER TO ", role, "; GRANT SELECT ON parent TO ", role, ";"
                   "GRANT USAGE ON SCHEMA pgshift TO ", role, ";"
                   "GRANT SELECT ON ALL TABLES IN SCHEMA pgshift TO ", role));
  const std::string before = RefusalState();
  CliResult r = RunCli(absl::StrCat(dsn(), " user=", role), {"plan", Fk().File()}, {"PGSHIFT_DSN="});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("add_foreign_key: references_table"));
  EXPECT_THAT(r.err, HasSubstr("REFERENCES privilege on \"public\".\"parent\""));
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("GRANT REFERENCES ON \"public\".\"parent\" TO \"", role, "\"")));
  EXPECT_EQ(RefusalState(), before);
  // With the privilege the same plan passes (the type probe needs only TEMP).
  Sql(absl::StrCat("GRANT REFERENCES ON parent TO ", role));
  r = RunCli(absl::StrCat(dsn(), " user=", role), {"plan", Fk().File()}, {"PGSHIFT_DSN="});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Sql(absl::StrCat("ALTER TABLE orders OWNER TO CURRENT_USER; DROP OWNED BY ", role, "; DROP ROLE ", role));
}

TEST_F(AddForeignKeyTest, RollbackFromEveryPhaseRestoresCatalog) {
  ExpectRollbackFromEveryPhaseRestores(
      "rb", [](const std::string& n) { return Fk(n).OnDelete(v1::SET_NULL).Json(); }, "public",
      "SELECT * FROM orders ORDER BY id");
}

TEST_F(AddForeignKeyTest, AConstraintOfTheSameNameThatIsNotOursIsNeverDropped) {
  ASSERT_TRUE(Register(Fk().Json()).ok());
  ASSERT_TRUE(Advance("fk", Phase::kBackfilled).ok());
  Sql("ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (big) REFERENCES parent (id)");
  const std::string theirs = Snapshot();
  absl::Status s = Advance("fk", Phase::kValidated);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("did not create"));
  ASSERT_TRUE(RollbackMigration("fk").ok());
  EXPECT_EQ(Snapshot(), theirs) << "rollback dropped a constraint pgshift did not create";
}

TEST_F(AddForeignKeyTest, SelfReferencingKeyLocksItsOneTable) {
  Sql("CREATE TABLE staff (id int PRIMARY KEY, manager_id int);"
      "INSERT INTO staff SELECT g, CASE WHEN g = 1 THEN NULL ELSE g / 2 END FROM generate_series(1, 300) g");
  const std::string json =
      Spec("self").AddForeignKey("staff", "staff_manager_fkey", {"manager_id"}, "staff", {"id"}).Json();
  absl::StatusOr<Plan> plan = PlanOf(json);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const PlannedStatement& st : StepStatements(*plan, Phase::kValidated)) EXPECT_EQ(st.locks.size(), 1u) << st.sql;
  ASSERT_TRUE(Register(json).ok());
  ASSERT_TRUE(Advance("self", Phase::kContracted).ok());
  EXPECT_EQ(Value("SELECT convalidated FROM pg_constraint WHERE conname = 'staff_manager_fkey'"), "t");
  EXPECT_THROW(Sql("UPDATE staff SET manager_id = 5000 WHERE id = 3"), std::runtime_error);
}

TEST_F(AddForeignKeyTest, ConflictsWithMigrationsChangingItsColumns) {
  ASSERT_TRUE(Register(Spec("code_fk").AddForeignKey("orders", "orders_code_fkey", {"code"}, "parent", {"code"})
                           .Json())
                  .ok());
  // Its own column, changed by another migration.
  absl::Status s = Register(Spec("t").ChangeType("orders", "code", "code2", "varchar(20)", "code", "code2").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // The referenced column it reads, changed by another migration.
  s = Register(Spec("r").RenameColumn("parent", "code", "sku").Json());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("code_fk"));
  // Other columns are free.
  EXPECT_TRUE(Register(Spec("n").RenameColumn("parent", "label", "title").Json()).ok());
}

TEST_F(AddForeignKeyTest, ReservedWordAndMixedCaseNames) {
  Sql(R"(CREATE SCHEMA "Ops"; CREATE TABLE "Ops"."Parent" ("ID" int PRIMARY KEY);
         INSERT INTO "Ops"."Parent" SELECT generate_series(1, 10);
         CREATE TABLE "Ops"."Order" ("ID" int PRIMARY KEY, "Parent ID" int);
         INSERT INTO "Ops"."Order" SELECT g, g % 10 + 1 FROM generate_series(1, 100) g)");
  const std::string json = Spec("rw").Schema("Ops")
                               .AddForeignKey("Order", "Order \"Parent\"", {"Parent ID"}, "Parent", {"ID"})
                               .Json();
  ASSERT_TRUE(Register(json).ok());
  absl::Status s = Advance("rw", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value(R"(SELECT convalidated FROM pg_constraint WHERE conrelid = '"Ops"."Order"'::regclass
                    AND conname = 'Order "Parent"')"),
            "t");
  EXPECT_THROW(Sql(R"(INSERT INTO "Ops"."Order" VALUES (1000, 99))"), std::runtime_error);
}

}  // namespace
}  // namespace pgshift::testing
