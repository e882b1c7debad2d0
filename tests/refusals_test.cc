// Refused up front (issue 10, "Nothing lost, nothing stuck"): what pgshift
// cannot carry out safely is refused by `plan` and `register` — exit 2
// (InvalidArgument / NotFound / AlreadyExists), a message naming the object,
// the reason and what to do, nothing changed — instead of failing half-way or,
// worse, passing every step and losing data. Where the danger can appear after
// register (row-level security turned on later), the step stops instead of
// carrying out a partial job. Real PostgreSQL; some tests drive pgshift as a
// role that is not a superuser (created here with a unique name, dropped at
// the end).
#include <unistd.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/ops/registry.h"
#include "pgshift/errors.h"
#include "pgshift/options.h"
#include "tests/support/cli.h"
#include "tests/support/every_kind.h"
#include "tests/support/ops_fixture.h"

namespace pgshift::testing {
namespace {

using ::testing::HasSubstr;
using google::protobuf::FieldDescriptor;

std::string WithUser(const std::string& dsn, const std::string& user) {
  if (absl::StartsWith(dsn, "postgres")) {
    return absl::StrCat(dsn, absl::StrContains(dsn, "?") ? "&" : "?", "user=", user);
  }
  return absl::StrCat(dsn, " user=", user);
}

class RefusalTest : public OpsTest {
 protected:
  void TearDown() override {
    role_drivers_.clear();
    driver_.reset();
    for (const std::string& role : roles_) {
      Query(dsn(), absl::StrCat("DROP OWNED BY ", Ident(role), " CASCADE"));
      Query(ServerDsn(), absl::StrCat("DROP ROLE IF EXISTS ", Ident(role)));
    }
  }

  // A new login role, neither superuser nor BYPASSRLS (unless `attributes`
  // says so), unique to this test process; dropped (with what it owns) at the
  // end of the test.
  std::string Role(const std::string& stem, const std::string& attributes = "") {
    const std::string role = absl::StrCat("pgshift_", stem, "_", getpid());
    Query(ServerDsn(), absl::StrCat("DROP ROLE IF EXISTS ", Ident(role), "; CREATE ROLE ", Ident(role),
                                    " LOGIN NOSUPERUSER ", attributes.empty() ? "NOBYPASSRLS" : attributes));
    roles_.push_back(role);
    return role;
  }

  // Makes `role` the driver as docs/privileges.md says: it may create the
  // control schema, and owns it (the fixture's one, made by the superuser,
  // goes). Returns a Driver connected as `role`.
  Driver& DriverAs(const std::string& role) {
    Sql(absl::StrCat("DROP SCHEMA IF EXISTS pgshift CASCADE; GRANT CREATE ON DATABASE ",
                     Ident(db_->name()), " TO ", Ident(role)));
    Options options;
    options.max_replication_lag = absl::ZeroDuration();
    options.backfill_batch_rows = 100;
    options.backfill_min_batch_rows = 50;
    auto d = Driver::Connect(WithUser(dsn(), role), options);
    if (!d.ok()) throw std::runtime_error(d.status().ToString());
    absl::Status init = (*d)->Init();
    if (!init.ok()) throw std::runtime_error(init.ToString());
    role_drivers_.push_back(std::move(*d));
    return *role_drivers_.back();
  }


  // The CLI connected as `cli_dsn`: plan and register of `json` exit 2 with
  // every part in the message, and nothing changed.
  void ExpectCliRefused(const std::string& cli_dsn, const std::string& json,
                        const std::vector<std::string>& parts) {
    SCOPED_TRACE(json);
    const std::string before = RefusalState();
    const std::string file = WriteTempFile(json);
    for (const char* command : {"plan", "register"}) {
      CliResult r = RunCli(cli_dsn, {command, file}, {"PGSHIFT_DSN="});
      EXPECT_EQ(r.exit_code, 2) << command << ": " << Describe(r);
      for (const std::string& p : parts) EXPECT_THAT(r.err, HasSubstr(p)) << command;
    }
    EXPECT_EQ(RefusalState(), before);
  }

  std::vector<std::string> roles_;
  std::vector<std::unique_ptr<Driver>> role_drivers_;
};

// ---------------------------------------------------------------------------
// Row-level security (item 1)

class RowSecurityRefusalTest : public RefusalTest {
 protected:
  // docs(id, tenant, body) owned by `owner_`, 200 rows, half of them of
  // tenant 1, with RLS enabled and a policy showing only tenant 1 (which
  // binds the owner only when forced).
  void SetUp() override {
    RefusalTest::SetUp();
    owner_ = Role("rls_owner");
    Sql(absl::StrCat(
        "CREATE TABLE docs (id int PRIMARY KEY, tenant int NOT NULL, body text);"
        "INSERT INTO docs SELECT g, g % 2, 'b' || g FROM generate_series(1, 200) g;"
        "GRANT CREATE ON SCHEMA public TO ", Ident(owner_), ";"
        "ALTER TABLE docs OWNER TO ", Ident(owner_), ";"
        "ALTER TABLE docs ENABLE ROW LEVEL SECURITY;"
        "CREATE POLICY tenant_one ON docs USING (tenant = 1)"));
  }
  void Force(bool on) {
    Sql(absl::StrCat("ALTER TABLE docs ", on ? "" : "NO ", "FORCE ROW LEVEL SECURITY"));
  }
  std::string owner_;
};

TEST_F(RowSecurityRefusalTest, ForcedRowSecurityOnTheDriversOwnTableIsRefusedAtRegister) {
  Force(true);
  Driver& d = DriverAs(owner_);
  ASSERT_EQ(QueryValue(WithUser(dsn(), owner_), "SELECT count(*) FROM docs"), "100");  // what it would see
  for (const std::string& json :
       {Spec("r").RenameColumn("docs", "body", "content").Json(),
        Spec("c").ChangeType("docs", "body", "body_v", "varchar(40)", "body", "body_v").Json(),
        Spec("s").SetNotNull("docs", "body", "''").Json(),
        Spec("a").AddColumn("docs", "n", "bigint").Up("id * 2").Json(),
        // NOT NULL without a default is dropped; rollback counts NULLs to restore it
        Spec("d").DropColumn("docs", "tenant").Json()}) {
    ExpectRefused(d, json, absl::StatusCode::kInvalidArgument,
                  {"\"public\".\"docs\"", "row-level security", owner_, "BYPASSRLS",
                   "NO FORCE ROW LEVEL SECURITY"});
  }
  ExpectCliRefused(WithUser(dsn(), owner_), Spec("r").RenameColumn("docs", "body", "content").Json(),
                   {"\"public\".\"docs\"", "row-level security"});
}

TEST_F(RowSecurityRefusalTest, RowSecurityTheDriverBypassesIsAccepted) {
  // Not forced: the owner is not subject to its policies.
  Driver& d = DriverAs(owner_);
  const std::string rename = Spec("r").RenameColumn("docs", "body", "content").Json();
  absl::StatusOr<Plan> plan = d.PlanMigration(Load(rename));
  EXPECT_TRUE(plan.ok()) << plan.status();
  // Forced, but the operation reads no row (an instant add_column, a
  // drop_column of a nullable column).
  Force(true);
  plan = d.PlanMigration(Load(Spec("i").AddColumn("docs", "flag", "boolean").Default("false").Json()));
  EXPECT_TRUE(plan.ok()) << plan.status();
  plan = d.PlanMigration(Load(Spec("d").DropColumn("docs", "body").Json()));
  EXPECT_TRUE(plan.ok()) << plan.status();
  // Forced, and a BYPASSRLS role that owns the table through membership.
  const std::string bypass = Role("rls_bypass", "BYPASSRLS");
  Sql(absl::StrCat("GRANT ", Ident(owner_), " TO ", Ident(bypass), "; GRANT CREATE ON SCHEMA public TO ",
                   Ident(bypass)));
  Driver& b = DriverAs(bypass);
  plan = b.PlanMigration(Load(rename));
  EXPECT_TRUE(plan.ok()) << plan.status();
}

TEST_F(RowSecurityRefusalTest, RowSecurityForcedAfterRegisterStopsTheBackfillInsteadOfSkippingRows) {
  Driver& d = DriverAs(owner_);
  ASSERT_TRUE(d.Register(Load(Spec("r").RenameColumn("docs", "body", "content").Json())).ok());
  ASSERT_TRUE(d.Advance("r", Phase::kTriggerInstalled).ok());
  Force(true);  // from now on the driver sees only tenant 1
  absl::Status s = d.Advance("r", Phase::kValidated).status();
  EXPECT_FALSE(s.ok()) << "the backfill ran over the rows RLS let it see and called it done";
  EXPECT_THAT(std::string(s.message()), HasSubstr("row-level security"));
  EXPECT_EQ(PhaseOf("r"), Phase::kTriggerInstalled);
}

TEST_F(RowSecurityRefusalTest, RowSecurityForcedBeforeValidateStopsTheChecks) {
  Driver& d = DriverAs(owner_);
  ASSERT_TRUE(d.Register(Load(Spec("r").RenameColumn("docs", "body", "content").Json())).ok());
  ASSERT_TRUE(d.Advance("r", Phase::kBackfilled).ok());
  // Rows the driver will not see: their new column disagrees with the old.
  Sql("ALTER TABLE docs DISABLE TRIGGER USER; UPDATE docs SET content = 'lost' WHERE tenant = 0;"
      "ALTER TABLE docs ENABLE TRIGGER USER");
  Force(true);
  absl::Status s = d.Advance("r", Phase::kValidated).status();
  EXPECT_FALSE(s.ok()) << "validate counted only the rows RLS let it see";
  EXPECT_THAT(std::string(s.message()), HasSubstr("row-level security"));
  EXPECT_EQ(PhaseOf("r"), Phase::kBackfilled);
}

// ---------------------------------------------------------------------------
// Inheritance and partitions (item 3)

class InheritanceRefusalTest : public RefusalTest {
 protected:
  void SetUp() override {
    RefusalTest::SetUp();
    Sql("CREATE TABLE animals (id int PRIMARY KEY, name text, legs int);"
        "CREATE TABLE dogs (good boolean) INHERITS (animals);"
        "INSERT INTO animals VALUES (1, 'cat', 4); INSERT INTO dogs VALUES (2, 'rex', NULL, true);"
        "CREATE TABLE events (id int, name text, legs int) PARTITION BY RANGE (id);"
        "CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (1000);"
        "INSERT INTO events VALUES (1, 'e', 0)");
  }
  static std::vector<std::string> EveryOperationOn(const std::string& table) {
    return {Spec("r").RenameColumn(table, "name", "title").Json(),
            Spec("s").SetNotNull(table, "legs", "0").Json(),
            Spec("a").AddColumn(table, "n", "int").Up("legs").Json(),
            Spec("i").AddColumn(table, "m", "int").Default("0").Json(),
            Spec("d").DropColumn(table, "legs").Json(),
            Spec("c").ChangeType(table, "legs", "legs_big", "bigint", "legs", "legs_big").Json()};
  }
};

TEST_F(InheritanceRefusalTest, ParentOfInheritanceChildrenIsRefused) {
  for (const std::string& json : EveryOperationOn("animals")) {
    ExpectRefused(json, absl::StatusCode::kInvalidArgument,
                  {"\"public\".\"animals\"", "parent of", "\"public\".\"dogs\"", "only on"});
  }
}

TEST_F(InheritanceRefusalTest, InheritanceChildIsRefused) {
  for (const std::string& json : EveryOperationOn("dogs")) {
    ExpectRefused(json, absl::StatusCode::kInvalidArgument,
                  {"\"public\".\"dogs\"", "child of", "\"public\".\"animals\"", "DROP COLUMN"});
  }
}

TEST_F(InheritanceRefusalTest, PartitionIsRefused) {
  for (const std::string& json : EveryOperationOn("events_1")) {
    ExpectRefused(json, absl::StatusCode::kInvalidArgument,
                  {"\"public\".\"events_1\"", "partition of", "\"public\".\"events\""});
  }
}

TEST_F(InheritanceRefusalTest, PartitionedTableIsRefusedSayingWhy) {
  for (const std::string& json : EveryOperationOn("events")) {
    ExpectRefused(json, absl::StatusCode::kInvalidArgument,
                  {"\"public\".\"events\"", "is a partitioned table", "partitions"});
  }
}

// ---------------------------------------------------------------------------
// Privileges the later steps need (the "also" item)

TEST_F(RefusalTest, DriverThatDoesNotOwnTheTableIsRefused) {
  const std::string role = Role("not_owner");
  Sql(absl::StrCat("CREATE TABLE users (id int PRIMARY KEY, name text);"
                   "INSERT INTO users VALUES (1, 'a');"
                   "GRANT SELECT, INSERT, UPDATE ON users TO ", Ident(role), ";"
                   "GRANT CREATE ON SCHEMA public TO ", Ident(role)));
  Driver& d = DriverAs(role);
  for (const std::string& json : {Spec("r").RenameColumn("users", "name", "full_name").Json(),
                                  Spec("i").AddColumn("users", "n", "int").Json(),
                                  Spec("d").DropColumn("users", "name").Json()}) {
    ExpectRefused(d, json, absl::StatusCode::kInvalidArgument,
                  {"\"public\".\"users\"", "owner", role, "ALTER TABLE \"public\".\"users\" OWNER TO"});
  }
  ExpectCliRefused(WithUser(dsn(), role), Spec("r").RenameColumn("users", "name", "full_name").Json(),
                   {"\"public\".\"users\"", "owner"});
}

TEST_F(RefusalTest, DriverWithoutCreateOnTheSchemaIsRefusedWhenPgshiftCreatesFunctionsThere) {
  const std::string role = Role("no_create");
  Sql(absl::StrCat("CREATE SCHEMA shop; GRANT USAGE ON SCHEMA shop TO ", Ident(role), ";"
                   "CREATE TABLE shop.users (id int PRIMARY KEY, name text);"
                   "ALTER TABLE shop.users OWNER TO ", Ident(role)));
  Driver& d = DriverAs(role);
  ExpectRefused(d, Spec("r").Schema("shop").RenameColumn("users", "name", "full_name").Json(),
                absl::StatusCode::kInvalidArgument,
                {"\"shop\".\"users\"", "CREATE", "schema \"shop\"", "GRANT CREATE ON SCHEMA \"shop\" TO"},
                "shop");
  // An instant add_column creates no function: nothing more is needed.
  absl::StatusOr<Plan> plan =
      d.PlanMigration(Load(Spec("i").Schema("shop").AddColumn("users", "n", "int").Default("0").Json()));
  EXPECT_TRUE(plan.ok()) << plan.status();
}

TEST_F(RefusalTest, DefaultCheckWithoutTheTempPrivilegeSaysSo) {
  const std::string role = Role("no_temp");
  Sql(absl::StrCat("CREATE TABLE orders (id int PRIMARY KEY, qty int);"
                   "ALTER TABLE orders OWNER TO ", Ident(role), ";"
                   "REVOKE TEMPORARY ON DATABASE ", Ident(db_->name()), " FROM PUBLIC"));
  Driver& d = DriverAs(role);
  ExpectRefused(d, Spec("a").AddColumn("orders", "status", "text").Default("'new'").Json(),
                absl::StatusCode::kInvalidArgument,
                {"add_column", "TEMP", "GRANT TEMPORARY ON DATABASE"});
}

// ---------------------------------------------------------------------------
// rename_column of a column whose type is a domain with constraints (item 6)

TEST_F(RefusalTest, RenameOfAColumnOfAConstrainedDomainIsRefusedAndNothingIsRewritten) {
  Sql("CREATE DOMAIN short_code AS text CHECK (length(VALUE) <= 8);"
      "CREATE TABLE items (id int PRIMARY KEY, code short_code);"
      "INSERT INTO items SELECT g, 'c' || g FROM generate_series(1, 500) g");
  const std::string filenode = Value("SELECT pg_relation_filenode('items')");
  ExpectRefused(Spec("r").RenameColumn("items", "code", "sku").Json(), absl::StatusCode::kInvalidArgument,
                {"rename_column", "\"code\"", "\"public\".\"items\"", "short_code", "domain with constraints",
                 "rewrite"});
  EXPECT_EQ(Value("SELECT pg_relation_filenode('items')"), filenode);
}

// ---------------------------------------------------------------------------
// Expressions: qualified column references (item 7), aggregates, window and
// set-returning functions (item 15)

// For every expression field of every operation: the JSON of a migration
// whose field holds `value` (the operation's other fields valid).
struct FieldCase {
  std::string kind, field, json;
};
std::vector<FieldCase> EveryExpressionFieldHolding(const std::string& value) {
  std::vector<FieldCase> out;
  for (const ops::OperationType* t : ops::Registry()) {
    auto base = BaseOperations().find(t->name);
    if (base == BaseOperations().end()) {
      ADD_FAILURE() << "add a valid " << t->name << " to BaseOperations()";
      continue;
    }
    auto base_m = ParseMigrationJson(absl::StrCat(R"({"name": "x", "operations": [)", base->second, "]}"));
    if (!base_m.ok()) {
      ADD_FAILURE() << base_m.status();
      continue;
    }
    const FieldDescriptor* op_field = v1::Operation::descriptor()->FindFieldByName(t->name);
    // The expression fields of the operation's message and of the messages
    // it holds (create_table's columns[i].default), as set in the base
    // operation: `path` and how to reach the field in a copy.
    struct Found {
      std::string path;
      std::vector<std::pair<const FieldDescriptor*, int>> parents;
      const FieldDescriptor* field;
    };
    std::vector<Found> found;
    std::function<void(const google::protobuf::Message&, std::vector<std::pair<const FieldDescriptor*, int>>,
                       const std::string&)>
        walk = [&](const google::protobuf::Message& m, std::vector<std::pair<const FieldDescriptor*, int>> parents,
                   const std::string& prefix) {
          const google::protobuf::Reflection* r = m.GetReflection();
          for (int i = 0; i < m.GetDescriptor()->field_count(); ++i) {
            const FieldDescriptor* f = m.GetDescriptor()->field(i);
            if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
              const int n = f->is_repeated() ? r->FieldSize(m, f) : (r->HasField(m, f) ? 1 : 0);
              for (int j = 0; j < n; ++j) {
                auto down = parents;
                down.emplace_back(f, f->is_repeated() ? j : -1);
                walk(f->is_repeated() ? r->GetRepeatedMessage(m, f, j) : r->GetMessage(m, f), down,
                     absl::StrCat(prefix, f->name(), f->is_repeated() ? absl::StrCat("[", j, "]") : "", "."));
              }
            } else if (!f->is_repeated() && f->options().GetExtension(v1::kind) == v1::FIELD_EXPRESSION) {
              found.push_back({absl::StrCat(prefix, f->name()), parents, f});
            }
          }
        };
    walk(base_m->operations(0).GetReflection()->GetMessage(base_m->operations(0), op_field), {}, "");
    for (const Found& x : found) {
      v1::Migration m = *base_m;
      google::protobuf::Message* body =
          m.mutable_operations(0)->GetReflection()->MutableMessage(m.mutable_operations(0), op_field);
      for (const auto& [f, j] : x.parents) {
        body = j < 0 ? body->GetReflection()->MutableMessage(body, f)
                     : body->GetReflection()->MutableRepeatedMessage(body, f, j);
      }
      body->GetReflection()->SetString(body, x.field, value);
      static int n = 0;  // a name of its own: a refusal must not hide behind an earlier one
      m.set_name(absl::StrCat("expr_", n++));
      out.push_back({t->name, x.path, CanonicalJson(m)});
    }
  }
  return out;
}

class ExpressionRefusalTest : public RefusalTest {
 protected:
  void SetUp() override {
    RefusalTest::SetUp();
    Sql(kEveryKindTable);
  }
};

TEST_F(ExpressionRefusalTest, TheBaseOperationsAreValid) {
  for (const auto& [kind, op] : BaseOperations()) {
    absl::StatusOr<Plan> plan =
        PlanOf(absl::StrCat(R"({"name": "base", "operations": [)", op, "]}"));
    EXPECT_TRUE(plan.ok()) << kind << ": " << plan.status();
  }
}

TEST(ExpressionFields, IncludeTheFieldsOfNestedMessages) {
  int nested = 0;
  for (const FieldCase& c : EveryExpressionFieldHolding("1")) nested += absl::StartsWith(c.field, "columns[");
  EXPECT_EQ(nested, 2) << "create_table's columns[0].default and columns[1].default";
}

TEST_F(ExpressionRefusalTest, QualifiedColumnReferencesAreRefusedInEveryExpressionField) {
  int tried = 0;
  // Refused when the file loads (lib/sql): the message names the field's path.
  for (const std::string& value : {"users.id", "public.users.id", "users.id + 1"}) {
    for (const FieldCase& c : EveryExpressionFieldHolding(value)) {
      SCOPED_TRACE(absl::StrCat(c.kind, ".", c.field, " = ", value));
      ExpectCliRefused(dsn(), c.json, {absl::StrCat(c.kind, ".", c.field), "qualifies a column"});
      ++tried;
    }
  }
  // The table's name as a whole-row value: it reads as a column name, which
  // the table does not have; refused against the catalog.
  for (const std::string& value : {"(users).id", "length(users::text)"}) {
    for (const FieldCase& c : EveryExpressionFieldHolding(value)) {
      SCOPED_TRACE(absl::StrCat(c.kind, ".", c.field, " = ", value));
      // (A default may not refer to columns at all, which says so first.)
      ExpectCliRefused(dsn(), c.json,
                       {absl::StrCat(c.kind, ": ", c.field), "users",
                        absl::EndsWith(c.field, "default") ? "must not refer to columns" : "not a column"});
      ++tried;
    }
  }
  EXPECT_GE(tried, 30);
}

TEST_F(ExpressionRefusalTest, AggregateWindowAndSetReturningExpressionsAreRefusedInEveryExpressionField) {
  int tried = 0;
  for (const std::string& value : {"count(*)", "row_number() OVER ()", "generate_series(1, 2)"}) {
    for (const FieldCase& c : EveryExpressionFieldHolding(value)) {
      SCOPED_TRACE(absl::StrCat(c.kind, ".", c.field, " = ", value));
      ExpectRefused(c.json, absl::StatusCode::kInvalidArgument,
                    {absl::StrCat(c.kind, ": ", c.field), "aggregate, window or set-returning",
                     "one row"});
      ++tried;
    }
  }
  EXPECT_GE(tried, 18);
}

// ---------------------------------------------------------------------------
// add_column defaults (items 9 and 18)

class AddColumnDefaultRefusalTest : public RefusalTest {
 protected:
  void SetUp() override {
    RefusalTest::SetUp();
    Sql("CREATE TABLE orders (id int PRIMARY KEY, qty int);"
        "INSERT INTO orders SELECT g, g FROM generate_series(1, 300) g");
  }
};

TEST_F(AddColumnDefaultRefusalTest, DefaultThatDoesNotFitTheTypeAsAssignedIsRefused) {
  // A volatile default (trigger path: the backfill would cast it explicitly,
  // truncating silently) and a constant (instant path).
  for (const std::string& def : {"md5(random()::text)", "'abcdefghijk'"}) {
    ExpectRefused(Spec("a").AddColumn("orders", "token", "varchar(8)").Default(def).NotNull().Json(),
                  absl::StatusCode::kInvalidArgument,
                  {"add_column: default", "character varying(8)", "value too long"});
  }
  // A value the type takes only by an explicit cast.
  ExpectRefused(Spec("a").AddColumn("orders", "flag", "boolean").Default("1").Json(),
                absl::StatusCode::kInvalidArgument, {"add_column: default", "boolean"});
  // What fits is accepted.
  EXPECT_TRUE(PlanOf(Spec("a").AddColumn("orders", "token", "varchar(8)").Default("'abc'").Json()).ok());
}

TEST_F(AddColumnDefaultRefusalTest, UpThatDoesNotFitTheTypeAsAssignedIsRefused) {
  ExpectRefused(Spec("a").AddColumn("orders", "flag", "boolean").Up("qty").Json(),
                absl::StatusCode::kInvalidArgument, {"add_column: up", "boolean", "integer"});
  EXPECT_TRUE(PlanOf(Spec("a").AddColumn("orders", "n", "bigint").Up("qty * 2").Json()).ok());
}

TEST_F(AddColumnDefaultRefusalTest, DefaultThatNeedsParenthesesIsAddedAndKept) {
  // Instant path (now() is stable): ADD COLUMN ... DEFAULT takes only a
  // restricted expression; AT TIME ZONE needs parentheses.
  ASSERT_TRUE(Register(Spec("t").AddColumn("orders", "created", "timestamp")
                           .Default("now() AT TIME ZONE 'utc'").NotNull().Json()).ok());
  absl::Status s = Advance("t", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Value("SELECT count(*) FROM orders WHERE created IS NOT NULL"), "300");
  // Trigger path (volatile): the default is set at contract.
  ASSERT_TRUE(Register(Spec("v").AddColumn("orders", "seen", "timestamp")
                           .Default("clock_timestamp() AT TIME ZONE 'utc'").NotNull().Json()).ok());
  s = Advance("v", Phase::kContracted);
  ASSERT_TRUE(s.ok()) << s;
  Sql("INSERT INTO orders (id, qty) VALUES (1000, 1)");
  EXPECT_EQ(Value("SELECT created IS NOT NULL AND seen IS NOT NULL FROM orders WHERE id = 1000"), "t");
}

// ---------------------------------------------------------------------------
// The migration file and the options (the "also" items)

TEST_F(RefusalTest, MalformedMigrationFilesExit2AndChangeNothing) {
  Sql("CREATE TABLE users (id int PRIMARY KEY, name text)");
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {R"({"name": "x", "name": "y", "operations": [{"rename_column":
          {"table": "users", "from": "name", "to": "full_name"}}]})",
       {"\"name\"", "twice"}},
      {R"({"name": "x", "operations": {"rename_column":
          {"table": "users", "from": "name", "to": "full_name"}}})",
       {"operations", "list"}},
      {R"({"name": "x", "operations": [{"add_column":
          {"table": "users", "column": "c", "type": "int", "default": "0", "not_null": "yes"}}]})",
       {"operations[0].add_column.not_null", "true or false"}},
      {R"({"name": "  ", "operations": [{"rename_column":
          {"table": "users", "from": "name", "to": "full_name"}}]})",
       {"\"name\"", "whitespace"}},
  };
  for (const auto& [json, parts] : cases) ExpectCliRefused(dsn(), json, parts);
}

TEST(ControlSchemaRefusal, AnEmptyControlSchemaIsRefusedNotReplacedByTheDefault) {
  ScratchDatabase db("empty_control_schema");
  Options o;
  o.control_schema = "";
  absl::StatusOr<Options> s = SanitizeOptions(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("control_schema (--control-schema)"));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("empty"));
  // An empty driver name still means the default one.
  o.control_schema = "pgshift";
  o.driver_name = "";
  EXPECT_TRUE(SanitizeOptions(o).ok());

  CliResult r = RunCli(db.dsn(), {"--control-schema", "", "init"}, {"PGSHIFT_DSN="});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("control_schema"));
  EXPECT_EQ(QueryValue(db.dsn(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgshift'"), "0");
}

}  // namespace
}  // namespace pgshift::testing
