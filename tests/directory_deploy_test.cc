// Migration directories in deploys (design §10): six migrations applied by
// `pgshift migrate DIR` across three simulated deploys while old and new
// application versions write (tests/support/writers.h), checked against their
// oracles; `kill -9` of migrate mid-backfill and at a phase write, then
// migrate again; two migrates at once (the second waits, or exits 4 with
// --no-wait); pause/resume of a backfill that migrate runs. The quicker
// contract of the commands (refusals, status, baseline, conflicts) is in
// directory_test.cc.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pgshift/pgshift.h"
#include "tests/support/cli.h"
#include "tests/support/pause.h"
#include "tests/support/session.h"
#include "tests/support/spec_builder.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_db.h"
#include "tests/support/writers.h"

namespace pgshift {
namespace {

using ::pgshift::testing::ChildProcess;
using ::pgshift::testing::CliResult;
using ::pgshift::testing::Describe;
using ::pgshift::testing::Field;
using ::pgshift::testing::JsonLines;
using ::pgshift::testing::Lit;
using ::pgshift::testing::Oracle;
using ::pgshift::testing::OracleEntry;
using ::pgshift::testing::ParseJsonObject;
using ::pgshift::testing::Query;
using ::pgshift::testing::QueryInt;
using ::pgshift::testing::QueryValue;
using ::pgshift::testing::ScratchDatabase;
using ::pgshift::testing::Session;
using ::pgshift::testing::Spec;
using ::pgshift::testing::TempDir;
using ::pgshift::testing::Values;
using ::pgshift::testing::WaitUntil;
using ::pgshift::testing::WriteShape;
using ::pgshift::testing::Writer;
using ::testing::HasSubstr;

constexpr int kPauseKey = 515151;

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<ScratchDatabase>(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    dir_ = std::make_unique<TempDir>("migrations");
  }

  const std::string& dsn() const { return db_->dsn(); }
  const std::string& dir() const { return dir_->path(); }

  std::vector<std::string> Args(const std::vector<std::string>& args) const {
    return testing::CliArgv(dsn(), args);
  }
  CliResult Cli(const std::vector<std::string>& args) const {
    return testing::RunCli(dsn(), args, {"PGSHIFT_DSN="});
  }
  void Put(const Spec& spec) const { dir_->Write(spec.proto().name() + ".json", spec.Json()); }

  std::string PhaseOf(const std::string& name) const {
    if (QueryValue(dsn(), "SELECT to_regclass('pgshift.migrations') IS NOT NULL") != "t") return "none";
    return QueryValue(dsn(), absl::StrCat("SELECT coalesce((SELECT phase FROM pgshift.migrations "
                                          "WHERE name = ", Lit(name), "), 'none')"));
  }
  int64_t RowsDone(const std::string& name) const {
    if (QueryValue(dsn(), "SELECT to_regclass('pgshift.checkpoints') IS NOT NULL") != "t") return 0;
    return QueryInt(dsn(), absl::StrCat("SELECT coalesce(max(rows_done), 0) FROM pgshift.checkpoints "
                                        "WHERE migration = ", Lit(name)));
  }
  bool ColumnExists(const std::string& table, const std::string& column) const {
    return QueryValue(dsn(), absl::StrCat("SELECT count(*) FROM pg_attribute WHERE attrelid = ",
                                          Lit(table), "::regclass AND attname = ", Lit(column),
                                          " AND NOT attisdropped")) == "1";
  }
  // Waits until no backend of the CLI process `pid` is left (a killed
  // driver's connections, its directory lock and its lease with them).
  void WaitForBackendsOf(pid_t pid) const {
    ASSERT_TRUE(WaitUntil([&] {
      return QueryValue(dsn(), absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE "
                                            "datname = current_database() AND application_name LIKE ",
                                            Lit(absl::StrCat("%:", pid)))) == "0";
    }));
    ASSERT_TRUE(testing::WaitUntilLeaseReleased(dsn()));
  }
  // The progress events of migration `name` in `err` (JSON lines).
  static std::vector<google::protobuf::Struct> ProgressOf(const std::string& err, const std::string& name) {
    std::vector<google::protobuf::Struct> out;
    for (google::protobuf::Struct& e : JsonLines(err)) {
      if (Field(e, "event") == "progress" && Field(e, "migration") == name) out.push_back(std::move(e));
    }
    return out;
  }

  std::unique_ptr<ScratchDatabase> db_;
  std::unique_ptr<TempDir> dir_;
};

// ---------------------------------------------------------------------------
// Three deploys, six migrations, old and new app versions writing.

// Every row of `rel` against the union of `oracles`: the same keys, and
// `condition` (over t, the row, and o.v, the values the oracle holds, 1-based)
// true for each.
void ExpectData(const std::string& dsn, const std::string& rel, const std::vector<const Oracle*>& oracles,
                const std::string& condition, const std::string& when) {
  const std::string json = testing::OracleJson(oracles, [](const OracleEntry&) { return true; });
  ASSERT_EQ(json.find("$oracle$"), std::string::npos);
  const std::string sql = absl::StrCat(
      "WITH o AS (SELECT * FROM jsonb_to_recordset($oracle$", json,
      "$oracle$::jsonb) AS o(id bigint, w text, g int, s bool, v text[])), "
      "bad AS (SELECT coalesce(o.id, t.id) AS id, CASE WHEN t.id IS NULL THEN 'missing row' "
      "WHEN o.id IS NULL THEN 'unexpected row' ELSE 'wrong values' END AS what, o.w, "
      "o.v::text AS oracle, row_to_json(t)::text AS actual FROM ", rel, " t FULL JOIN o ON o.id = t.id "
      "WHERE t.id IS NULL OR o.id IS NULL OR NOT coalesce((", condition, "), false)) "
      "SELECT (SELECT count(*) FROM bad), id, what, w, oracle, actual FROM bad ORDER BY id LIMIT 8");
  testing::Rows bad = Query(dsn, sql);
  if (bad.empty()) return;
  std::string detail;
  for (const testing::Row& r : bad) {
    absl::StrAppend(&detail, "\n  id ", r[1].value_or("?"), ": ", r[2].value_or(""), " (writer ",
                    r[3].value_or("-"), ") oracle ", r[4].value_or("NULL"), " table ", r[5].value_or("NULL"));
  }
  ADD_FAILURE() << *bad[0][0] << " row(s) of " << rel << " disagree with the oracle " << when << ":" << detail;
}

std::string N(int64_t n) { return std::to_string(n); }

// users, as each app version writes it. Values: name (full_name from v3 on),
// email, score (an integer's text; score_num from v3 on), country (v2 on).
WriteShape UsersV1() {
  WriteShape s;
  s.insert_sql = "INSERT INTO users (id, name, email, score) VALUES ($1, $2, $3, $4)";
  s.update_sql = "UPDATE users SET name = $2, email = $3, score = $4 WHERE id = $1";
  s.delete_sql = "DELETE FROM users WHERE id = $1";
  s.make = [](int64_t id, int64_t n, int) {
    return Values{"v1 " + N(id) + "/" + N(n), "v1." + N(n) + "@example.com", N(n % 997)};
  };
  return s;
}
WriteShape UsersV2() {
  WriteShape s;
  s.insert_sql = "INSERT INTO users (id, name, email, score, country) VALUES ($1, $2, $3, $4, $5)";
  s.update_sql = "UPDATE users SET name = $2, email = $3, score = $4, country = $5 WHERE id = $1";
  s.delete_sql = "DELETE FROM users WHERE id = $1";
  s.make = [](int64_t id, int64_t n, int) {
    return Values{"v2 " + N(id) + "/" + N(n), "v2." + N(n) + "@example.com", N(n % 991), "c" + N(n % 7)};
  };
  return s;
}
WriteShape UsersV3() {
  WriteShape s;
  s.insert_sql = "INSERT INTO users (id, full_name, email, score_num, country) VALUES ($1, $2, $3, $4, $5)";
  s.update_sql = "UPDATE users SET full_name = $2, email = $3, score_num = $4, country = $5 WHERE id = $1";
  s.delete_sql = "DELETE FROM users WHERE id = $1";
  s.make = [](int64_t id, int64_t n, int) {
    return Values{"v3 " + N(id) + "/" + N(n), "v3." + N(n) + "@example.com", N(n % 983), "d" + N(n % 5)};
  };
  return s;
}
// orders (v2 and v3 alike): user_id (one of the users 1..100, which no
// writer deletes), amount.
WriteShape Orders() {
  WriteShape s;
  s.insert_sql = "INSERT INTO orders (id, user_id, amount) VALUES ($1, $2, $3)";
  s.update_sql = "UPDATE orders SET user_id = $2, amount = $3 WHERE id = $1";
  s.delete_sql = "DELETE FROM orders WHERE id = $1";
  s.make = [](int64_t id, int64_t n, int) { return Values{N(1 + (id + n) % 100), N(n)}; };
  return s;
}

class ThreeDeploys : public DeployTest {
 protected:
  // A new app version taking over the rows of a stopped writer.
  std::unique_ptr<Writer> TakeOver(const std::unique_ptr<Writer>& old, const std::string& app, char tag,
                                   WriteShape shape, int64_t first_new_id, uint64_t seed) {
    old->Stop();
    Expect(old);
    auto w = std::make_unique<Writer>(dsn(), app, tag, std::move(shape), old->oracle(), first_new_id, seed,
                                      nullptr);
    w->Start();
    return w;
  }
  void Expect(const std::unique_ptr<Writer>& w) {
    for (const std::string& e : w->errors()) ADD_FAILURE() << "application write failed: " << e;
  }
  void Run(const std::vector<Writer*>& writers) {
    for (Writer* w : writers) w->WaitForMoreOps(30);
  }
  void StopAll(const std::vector<Writer*>& writers) {
    for (Writer* w : writers) {
      w->Stop();
      for (const std::string& e : w->errors()) ADD_FAILURE() << "application write failed: " << e;
    }
  }
  void StartAll(const std::vector<Writer*>& writers) {
    for (Writer* w : writers) w->Start();
  }
  // `--json migrate DIR <extra>`: exit 0 and its report.
  google::protobuf::Struct MigrateOk(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--json", "migrate", dir()};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    if (r.exit_code != 0) return {};
    return ParseJsonObject(r.out);
  }
  static std::vector<std::string> Moved(const google::protobuf::Struct& report) {
    std::vector<std::string> out;
    auto it = report.fields().find("migrations");
    if (it == report.fields().end()) return out;
    for (const auto& v : it->second.list_value().values()) {
      out.push_back(Field(v.struct_value(), "name") + "->" + Field(v.struct_value(), "to"));
    }
    return out;
  }
};

TEST_F(ThreeDeploys, SixMigrationsWhileOldAndNewAppsWrite) {
  Query(dsn(), "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, score text);"
               "INSERT INTO users SELECT g, 'seed ' || g, 'seed' || g || '@example.com', (g % 1000)::text "
               "FROM generate_series(1, 3000) g;"
               "ANALYZE users;");
  // Users 1..100 are nobody's (orders point at them); the two v1 instances
  // own the rest.
  Oracle fixed, a, b;
  for (const testing::Row& r : Query(dsn(), "SELECT id, name, email, score FROM users")) {
    const int64_t id = std::stoll(*r[0]);
    OracleEntry e{'s', Values(r.begin() + 1, r.end()), 0};
    (id <= 100 ? fixed : id <= 1500 ? a : b)[id] = e;
  }
  Put(Spec("0001_create_orders").CreateTable("orders").Column("id", "bigint").Column("user_id", "bigint")
          .Column("amount", "integer").NotNull().PrimaryKey({"id"}));
  Put(Spec("0002_add_users_country").AddColumn("users", "country", "text").Default("'xx'"));
  Put(Spec("0003_index_users_email").CreateIndex("users", "users_email_idx", {"email"}));

  auto v1a = std::make_unique<Writer>(dsn(), "app v1 a", 'a', UsersV1(), a, 1000000, 1, nullptr);
  auto v1b = std::make_unique<Writer>(dsn(), "app v1 b", 'b', UsersV1(), b, 1500000, 2, nullptr);
  StartAll({v1a.get(), v1b.get()});
  Run({v1a.get(), v1b.get()});

  // Deploy 1, pre-deploy: migrate (no init before it).
  google::protobuf::Struct report = MigrateOk({});
  EXPECT_THAT(Moved(report), ::testing::ElementsAre("0001_create_orders->switched",
                                                    "0002_add_users_country->switched",
                                                    "0003_index_users_email->switched"));
  for (const char* m : {"0001_create_orders", "0002_add_users_country", "0003_index_users_email"}) {
    EXPECT_EQ(PhaseOf(m), "switched") << m;
  }
  EXPECT_EQ(QueryValue(dsn(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass"), "t");
  EXPECT_EQ(QueryValue(dsn(), "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = "
                              "'users'::regclass AND adnum = (SELECT attnum FROM pg_attribute WHERE "
                              "attrelid = 'users'::regclass AND attname = 'country')"),
            "'xx'::text");
  // Rolling deploy of v2: v1 b is replaced, v1 a still runs; v2 writes orders.
  auto v2b = TakeOver(v1b, "app v2 b", 'B', UsersV2(), 2000000, 3);
  auto orders = std::make_unique<Writer>(dsn(), "app v2 orders", 'O', Orders(), Oracle(), 1, 4, nullptr);
  orders->Start();
  Run({v1a.get(), v2b.get(), orders.get()});
  StopAll({v1a.get(), v2b.get(), orders.get()});
  const std::string v2_condition =
      "t.name = o.v[1] AND t.email = o.v[2] AND t.score IS NOT DISTINCT FROM o.v[3] AND "
      "t.country = coalesce(o.v[4], 'xx')";
  ExpectData(dsn(), "users", {&fixed, &v1a->oracle(), &v2b->oracle()}, v2_condition, "after deploy 1");
  ExpectData(dsn(), "orders", {&orders->oracle()}, "t.user_id::text = o.v[1] AND t.amount::text = o.v[2]",
             "after deploy 1");

  // Deploy 2: v1 is gone; post-deploy contract, then the next three files.
  auto v2a = TakeOver(v1a, "app v2 a", 'A', UsersV2(), 2500000, 5);
  StartAll({v2b.get(), orders.get()});
  report = MigrateOk({"--contract"});
  EXPECT_THAT(Moved(report), ::testing::ElementsAre("0001_create_orders->contracted",
                                                    "0002_add_users_country->contracted",
                                                    "0003_index_users_email->contracted"));
  for (const char* m : {"0001_create_orders", "0002_add_users_country", "0003_index_users_email"}) {
    EXPECT_EQ(PhaseOf(m), "contracted") << m;
  }
  EXPECT_THAT(testing::CatalogSnapshot(dsn(), "public"), ::testing::Not(HasSubstr("pgshift")))
      << "nothing of pgshift's is left once every migration is contracted";
  Put(Spec("0004_rename_users_name").RenameColumn("users", "name", "full_name"));
  Put(Spec("0005_fk_orders_users").AddForeignKey("orders", "orders_user_fk", {"user_id"}, "users", {"id"}));
  Put(Spec("0006_users_score_integer").ChangeType("users", "score", "score_num", "integer", "score::integer",
                                                  "score_num::text"));
  Run({v2a.get(), v2b.get(), orders.get()});
  report = MigrateOk({});
  EXPECT_THAT(Moved(report), ::testing::ElementsAre("0004_rename_users_name->switched",
                                                    "0005_fk_orders_users->switched",
                                                    "0006_users_score_integer->switched"));
  for (const char* m : {"0004_rename_users_name", "0005_fk_orders_users", "0006_users_score_integer"}) {
    EXPECT_EQ(PhaseOf(m), "switched") << m;
  }
  Run({v2a.get(), v2b.get(), orders.get()});
  StopAll({v2a.get(), v2b.get(), orders.get()});
  EXPECT_EQ(QueryValue(dsn(), "SELECT convalidated FROM pg_constraint WHERE conname = 'orders_user_fk'"), "t");
  ExpectData(dsn(), "users", {&fixed, &v2a->oracle(), &v2b->oracle()},
             v2_condition + " AND t.full_name = o.v[1] AND t.score_num::text IS NOT DISTINCT FROM o.v[3]",
             "after deploy 2 (both shapes)");

  // Rolling deploy of v3 (the new shape): v2 b is replaced, v2 a still runs.
  auto v3b = TakeOver(v2b, "app v3 b", 'c', UsersV3(), 3000000, 6);
  StartAll({v2a.get(), orders.get()});
  Run({v2a.get(), v3b.get(), orders.get()});
  // Deploy 3: v2 is gone; contract.
  auto v3a = TakeOver(v2a, "app v3 a", 'C', UsersV3(), 3500000, 7);
  report = MigrateOk({"--contract"});
  EXPECT_THAT(Moved(report), ::testing::ElementsAre("0004_rename_users_name->contracted",
                                                    "0005_fk_orders_users->contracted",
                                                    "0006_users_score_integer->contracted"));
  Run({v3a.get(), v3b.get(), orders.get()});
  StopAll({v3a.get(), v3b.get(), orders.get()});

  // Every migration contracted, the schema is the new one and nothing of
  // pgshift's is left; every row either version wrote is there.
  google::protobuf::Struct st = ParseJsonObject(Cli({"--json", "status", dir()}).out);
  EXPECT_EQ(Field(st, "ok"), "true");
  EXPECT_EQ(Field(st, "pending"), "0");
  ASSERT_EQ(st.fields().at("files").list_value().values_size(), 6);
  for (const auto& v : st.fields().at("files").list_value().values()) {
    const google::protobuf::Struct& f = v.struct_value();
    EXPECT_EQ(Field(f, "state"), "applied") << Field(f, "name");
    EXPECT_EQ(Field(f.fields().at("migration").struct_value(), "phase"), "contracted") << Field(f, "name");
  }
  EXPECT_EQ(QueryValue(dsn(), "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || "
                              "CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attname) "
                              "FROM pg_attribute WHERE attrelid = 'users'::regclass AND attnum > 0 AND "
                              "NOT attisdropped"),
            "country text, email text not null, full_name text not null, id bigint not null, score_num integer");
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('users'::regclass, "
                              "'orders'::regclass) AND NOT tgisinternal"),
            "0");
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgshift%'"), "0");
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_constraint WHERE conrelid IN ('users'::regclass, "
                              "'orders'::regclass) AND NOT convalidated"),
            "0");
  EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass AND "
                              "indexrelid = 'users_email_idx'::regclass AND indisvalid"),
            "1");
  EXPECT_THAT(testing::CatalogSnapshot(dsn(), "public"), ::testing::Not(HasSubstr("pgshift")));
  ExpectData(dsn(), "users", {&fixed, &v3a->oracle(), &v3b->oracle()},
             "t.full_name = o.v[1] AND t.email = o.v[2] AND t.score_num::text IS NOT DISTINCT FROM o.v[3] AND "
             "t.country = coalesce(o.v[4], 'xx')",
             "after deploy 3");
  ExpectData(dsn(), "orders", {&orders->oracle()}, "t.user_id::text = o.v[1] AND t.amount::text = o.v[2]",
             "after deploy 3");
  // Each version really wrote.
  EXPECT_GT(QueryInt(dsn(), "SELECT count(*) FROM users WHERE full_name LIKE 'v1 %'"), 0);
  EXPECT_GT(QueryInt(dsn(), "SELECT count(*) FROM users WHERE full_name LIKE 'v2 %'"), 0);
  EXPECT_GT(QueryInt(dsn(), "SELECT count(*) FROM users WHERE full_name LIKE 'v3 %'"), 0);
}

// ---------------------------------------------------------------------------
// kill -9, then migrate again.

class MigrateCrash : public DeployTest {
 protected:
  // users(id, name NOT NULL, tag) with `rows` rows, and its oracle: the
  // same rows as the application sees them, kept by the test.
  void MakeUsers(int rows) {
    Query(dsn(), absl::StrCat("CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, tag int);"
                              "INSERT INTO users SELECT g, 'user ' || g, g % 7 FROM generate_series(1, ", rows,
                              ") g; ANALYZE users;"
                              "CREATE TABLE oracle AS SELECT id, name FROM users;"));
    Put(Spec("0001_index_users_tag").CreateIndex("users", "users_tag_idx", {"tag"}));
    Put(Spec("0002_rename_users_name").RenameColumn("users", "name", "full_name"));
    Put(Spec("0003_check_users_tag").AddCheck("users", "users_tag_small", "tag < 100"));
  }
  // Writes of the old app version (name), to the table and the oracle.
  void AppWrites(int round) {
    const int id = 1000000 + round;
    for (const char* rel : {"users", "oracle"}) {
      Query(dsn(), absl::StrCat("INSERT INTO ", rel, " (id, name) VALUES (", id, ", 'app ", round, "');"
                                "UPDATE ", rel, " SET name = name || '*' WHERE id % 97 = ", round % 97, ";"
                                "DELETE FROM ", rel, " WHERE id = ", 50 + round));
    }
  }
  void ExpectEqualToOracle(const std::string& column) {
    EXPECT_EQ(QueryValue(dsn(), absl::StrCat("SELECT count(*) FROM ((SELECT id, ", column, " FROM users EXCEPT ALL "
                                             "SELECT id, name FROM oracle) UNION ALL (SELECT id, name FROM oracle "
                                             "EXCEPT ALL SELECT id, ", column, " FROM users)) d")),
              "0");
    EXPECT_EQ(QueryValue(dsn(), "SELECT count(*) FROM users"), QueryValue(dsn(), "SELECT count(*) FROM oracle"));
  }
  void FinishAndCheck() {
    CliResult r = Cli({"migrate", dir()});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    for (const char* m : {"0001_index_users_tag", "0002_rename_users_name", "0003_check_users_tag"}) {
      EXPECT_EQ(PhaseOf(m), "switched") << m;
    }
    ExpectEqualToOracle("full_name");
    r = Cli({"migrate", dir(), "--contract"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(PhaseOf("0003_check_users_tag"), "contracted");
    EXPECT_FALSE(ColumnExists("users", "name"));
    ExpectEqualToOracle("full_name");
    EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM pgshift.migrations"), 3) << "each registered once";
  }
};

TEST_F(MigrateCrash, KillInTheMiddleOfTheBackfillThenMigrateAgain) {
  MakeUsers(3000);
  // At most 50 rows a batch, 20 ms apart (the size would otherwise grow and
  // the backfill could finish before the kill on a fast machine).
  ChildProcess cli(Args({"--json", "--batch-rows", "50", "--batch-max-rows", "50", "--batch-delay", "20ms",
                         "migrate", dir()}));
  ASSERT_TRUE(WaitUntil([&] { return RowsDone("0002_rename_users_name") >= 1000 || !cli.Running(); }))
      << cli.CurrentErr();
  ASSERT_TRUE(cli.Running()) << Describe(cli.Wait());
  cli.Kill(SIGKILL);
  EXPECT_EQ(cli.Wait().signal, SIGKILL);
  const int64_t done_at_kill = RowsDone("0002_rename_users_name");
  EXPECT_LT(done_at_kill, 3000);
  EXPECT_EQ(PhaseOf("0001_index_users_tag"), "switched");
  EXPECT_EQ(PhaseOf("0002_rename_users_name"), "trigger_installed");
  EXPECT_EQ(PhaseOf("0003_check_users_tag"), "none");
  AppWrites(1);
  WaitForBackendsOf(cli.pid());

  // Again: the backfill continues from its checkpoint.
  CliResult r = Cli({"--json", "--batch-rows", "50", "migrate", dir()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::vector<google::protobuf::Struct> progress = ProgressOf(r.err, "0002_rename_users_name");
  ASSERT_FALSE(progress.empty()) << r.err;
  EXPECT_GE(std::stoll(Field(progress.front(), "rows_done")), done_at_kill)
      << "the first report continues from the checkpoint: " << r.err;
  EXPECT_EQ(Field(progress.back(), "finished"), "true");
  EXPECT_LE(std::stoll(Field(progress.back(), "rows_updated")), 3000 - done_at_kill + 200)
      << "rows before the checkpoint are not backfilled again";
  google::protobuf::Struct report = ParseJsonObject(r.out);
  ASSERT_GE(report.fields().at("migrations").list_value().values_size(), 2) << r.out;
  const google::protobuf::Struct& resumed = report.fields().at("migrations").list_value().values(0).struct_value();
  EXPECT_EQ(Field(resumed, "name"), "0002_rename_users_name") << r.out;
  EXPECT_EQ(Field(resumed, "from"), "trigger_installed") << r.out;
  EXPECT_EQ(Field(resumed, "registered"), "false") << r.out;
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM pgshift.history WHERE migration = '0002_rename_users_name' "
                            "AND step = 'backfilled' AND ok"),
            1);
  AppWrites(2);
  FinishAndCheck();
}

// kill -9 while migrate records a phase (the pause trigger holds the write):
// the phase stays, and migrate continues from there.
TEST_F(MigrateCrash, KillAtAPhaseWriteThenMigrateAgain) {
  MakeUsers(500);
  ASSERT_EQ(Cli({"init"}).exit_code, 0);
  Query(dsn(), "CREATE TABLE test_pause_at (label text PRIMARY KEY);"
               "INSERT INTO test_pause_at VALUES ('phase:validated')");
  Query(dsn(), testing::PauseTriggerSql(kPauseKey));
  Session pauser(dsn());
  pauser.Exec(absl::StrCat("SELECT pg_advisory_lock(", kPauseKey, ")"));
  ChildProcess cli(Args({"migrate", dir()}));
  auto paused_backend = [&] {
    return QueryInt(dsn(), absl::StrCat("SELECT coalesce(max(pid), 0) FROM pg_locks WHERE locktype = "
                                        "'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid = ", kPauseKey));
  };
  ASSERT_TRUE(WaitUntil([&] { return paused_backend() != 0 || !cli.Running(); })) << cli.CurrentErr();
  ASSERT_TRUE(cli.Running()) << Describe(cli.Wait());
  const int64_t backend = paused_backend();
  cli.Kill(SIGKILL);
  cli.Wait();
  Query(dsn(), absl::StrCat("SELECT pg_terminate_backend(", backend, ")"));
  pauser.Exec(absl::StrCat("SELECT pg_advisory_unlock(", kPauseKey, ")"));
  Query(dsn(), "DELETE FROM test_pause_at");
  WaitForBackendsOf(cli.pid());
  // The first file was on its way to validated.
  EXPECT_EQ(PhaseOf("0001_index_users_tag"), "backfilled");
  EXPECT_EQ(PhaseOf("0002_rename_users_name"), "none");
  AppWrites(1);
  FinishAndCheck();
}

// ---------------------------------------------------------------------------
// Two migrates at once.

TEST_F(DeployTest, SecondMigrateWaitsThenFindsNothingToDo) {
  Query(dsn(), "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);"
               "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 1000) g; ANALYZE users;");
  Put(Spec("0001_rename_users_name").RenameColumn("users", "name", "full_name"));
  Put(Spec("0002_index_users_id").CreateIndex("users", "users_id_idx", {"id"}));
  ASSERT_EQ(Cli({"init"}).exit_code, 0);
  Query(dsn(), "CREATE TABLE test_pause_at (label text PRIMARY KEY);"
               "INSERT INTO test_pause_at VALUES ('phase:backfilled')");
  Query(dsn(), testing::PauseTriggerSql(kPauseKey));
  Session pauser(dsn());
  pauser.Exec(absl::StrCat("SELECT pg_advisory_lock(", kPauseKey, ")"));

  // A holds the directory, held up inside its first migration.
  ChildProcess first(Args({"--driver-name", "deploy-A", "migrate", dir()}));
  ASSERT_TRUE(WaitUntil([&] {
    return QueryInt(dsn(), absl::StrCat("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                                        "NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid = ", kPauseKey)) > 0 ||
           !first.Running();
  })) << first.CurrentErr();
  ASSERT_TRUE(first.Running()) << Describe(first.Wait());

  // B waits, saying for whom.
  ChildProcess second(Args({"--json", "--driver-name", "deploy-B", "migrate", dir()}));
  ASSERT_TRUE(WaitUntil([&] {
    return absl::StrContains(second.CurrentErr(), "waiting") || !second.Running();
  })) << second.CurrentErr();
  EXPECT_TRUE(second.Running()) << "B waits for A";
  EXPECT_THAT(second.CurrentErr(), HasSubstr("deploy-A"));

  // C does not wait: exit 4 naming A, nothing done.
  CliResult third = Cli({"--driver-name", "deploy-C", "migrate", dir(), "--no-wait"});
  EXPECT_EQ(third.exit_code, 4) << Describe(third);
  EXPECT_THAT(third.err, HasSubstr("deploy-A")) << Describe(third);
  // The library alike: Aborted.
  {
    Options o;
    o.driver_name = "deploy-D";
    auto d = Driver::Connect(dsn(), o);
    ASSERT_TRUE(d.ok()) << d.status();
    MigrateOptions mo;
    mo.wait = false;
    auto rep = (*d)->Migrate(dir(), mo);
    EXPECT_TRUE(absl::IsAborted(rep.status())) << rep.status();
    EXPECT_THAT(std::string(rep.status().message()), HasSubstr("deploy-A"));
    EXPECT_EQ(ExitCodeFor(rep.status()), 4);
    // status DIR only reads: it does not wait.
    auto st = (*d)->DirectoryStatus(dir());
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->files.size(), 2u);
  }
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM pgshift.migrations"), 1) << "only A registered";

  pauser.Exec(absl::StrCat("SELECT pg_advisory_unlock(", kPauseKey, ")"));
  CliResult a = first.Wait();
  EXPECT_EQ(a.exit_code, 0) << Describe(a);
  CliResult b = second.Wait();
  EXPECT_EQ(b.exit_code, 0) << Describe(b);
  // B's events: waiting (naming A), then locked once A was done.
  std::vector<std::string> actions;
  for (const auto& e : JsonLines(b.err)) {
    if (Field(e, "event") != "migrate") continue;
    actions.push_back(Field(e, "action"));
    if (Field(e, "action") == "waiting") EXPECT_THAT(Field(e, "message"), HasSubstr("deploy-A"));
  }
  ASSERT_GE(actions.size(), 2u) << b.err;
  EXPECT_EQ(actions[0], "waiting") << b.err;
  EXPECT_EQ(actions[1], "locked") << b.err;
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "register"), 0) << b.err;
  google::protobuf::Struct report = ParseJsonObject(b.out);
  EXPECT_EQ(report.fields().at("migrations").list_value().values_size(), 0) << "B found nothing to do: " << b.out;
  EXPECT_EQ(PhaseOf("0001_rename_users_name"), "switched");
  EXPECT_EQ(PhaseOf("0002_index_users_id"), "switched");
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM pgshift.migrations"), 2);
  EXPECT_EQ(QueryValue(dsn(), "SELECT coalesce(string_agg(migration || '/' || step, ', '), '') FROM "
                              "(SELECT migration, step FROM pgshift.history WHERE ok GROUP BY 1, 2 "
                              "HAVING count(*) > 1) d"),
            "")
      << "no step ran twice";
  EXPECT_EQ(QueryValue(dsn(), "SELECT string_agg(DISTINCT driver, ',') FROM pgshift.history WHERE ok"),
            "deploy-A")
      << "A did everything";
}

// ---------------------------------------------------------------------------
// pause / resume while migrate runs a backfill.

TEST_F(DeployTest, PauseAndResumeABackfillThatMigrateRuns) {
  Query(dsn(), "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);"
               "INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 3000) g; ANALYZE users;");
  const std::string name = "0001_rename_users_name";
  Put(Spec(name).RenameColumn("users", "name", "full_name"));
  // Batches of 50 rows at most, 20 ms apart: about 1.2 s of backfill, so
  // that the pause lands in the middle (the batch size would otherwise grow
  // to its target time and finish first on a fast machine).
  ChildProcess cli(Args({"--json", "--batch-rows", "50", "--batch-max-rows", "50", "--batch-delay", "20ms",
                         "--poll-interval", "100ms", "migrate", dir()}));
  ASSERT_TRUE(WaitUntil([&] { return RowsDone(name) >= 300 || !cli.Running(); })) << cli.CurrentErr();
  ASSERT_TRUE(cli.Running()) << Describe(cli.Wait());
  CliResult r = Cli({"pause", name});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto paused_events = [&] {
    int n = 0;
    for (const auto& e : ProgressOf(cli.CurrentErr(), name)) n += Field(e, "waiting") == "paused";
    return n;
  };
  ASSERT_TRUE(WaitUntil([&] { return paused_events() >= 2 || !cli.Running(); })) << cli.CurrentErr();
  ASSERT_TRUE(cli.Running()) << "migrate waits while paused\n" << Describe(cli.Wait());
  const int64_t at_pause = RowsDone(name);
  EXPECT_LT(at_pause, 3000);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(RowsDone(name), at_pause) << "no batch runs while paused";
  EXPECT_TRUE(cli.Running());
  EXPECT_EQ(PhaseOf(name), "trigger_installed");
  r = Cli({"--json", "status", name});
  EXPECT_EQ(Field(ParseJsonObject(r.out), "paused"), "true") << r.out;

  r = Cli({"resume", name});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  CliResult done = cli.Wait();
  ASSERT_EQ(done.exit_code, 0) << Describe(done);
  EXPECT_EQ(PhaseOf(name), "switched");
  std::vector<google::protobuf::Struct> progress = ProgressOf(done.err, name);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(Field(progress.back(), "finished"), "true");
  EXPECT_EQ(Field(progress.back(), "waiting"), "");
  // Reports after the pause go on from where it stopped.
  bool after_pause = false;
  int64_t last = 0;
  for (const auto& e : progress) {
    const int64_t rows = std::stoll(Field(e, "rows_done"));
    EXPECT_GE(rows, last) << "rows_done never decreases";
    last = rows;
    if (Field(e, "waiting") == "paused") after_pause = true;
    else if (after_pause) EXPECT_GE(rows, at_pause);
  }
  EXPECT_TRUE(after_pause);
  EXPECT_EQ(QueryInt(dsn(), "SELECT count(*) FROM users WHERE full_name = 'user ' || id"), 3000);
}

}  // namespace
}  // namespace pgshift
