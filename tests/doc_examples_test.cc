// The C and C++ examples of docs/api/c.md and cpp.md, compiled from the pages
// (tests/doc_examples.py, doc_examples_c and _cpp) and run against a real server:
// the deploy step through a first attempt that finds the migration busy
// (another driver holds it) and a retry that succeeds, printing no stale
// error; the startup check refusing, then passing, then the server down.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/support/cli.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace {

namespace pt = ::pgshift::testing;

constexpr char kName[] = "0042_rename_users_name";

struct Example {
  const char* lang;
  const char* binary;
  // The deploy step's arguments after "deploy DSN FILE" (the C one takes the
  // migration's name too), what it prints on stdout (the C one its result,
  // the C++ one its progress), and how the startup check answers a server
  // that is down.
  std::vector<std::string> deploy_extra;
  std::string deployed_out;
  int startup_down_exit;
  std::string startup_refused;
};

class DocExamples : public ::testing::TestWithParam<Example> {};

TEST_P(DocExamples, DeployStepRetriesWhileBusyThenSucceedsAndStartupCheckGates) {
  const Example& e = GetParam();
  pt::ScratchDatabase db(std::string("doc_examples_") + e.lang);
  const std::string dsn = db.dsn();
  pt::Query(dsn, "CREATE SCHEMA app; CREATE TABLE app.users (id int PRIMARY KEY, name text NOT NULL);"
                 "INSERT INTO app.users SELECT g, 'user ' || g FROM generate_series(1, 2000) g; ANALYZE app.users");
  const std::string file = pt::Spec(kName).Schema("app").RenameColumn("users", "name", "full_name").File();
  ASSERT_EQ(pt::RunCli(dsn, {"init"}).exit_code, 0);
  ASSERT_EQ(pt::RunCli(dsn, {"register", file}).exit_code, 0);
  // Another driver holds the migration: paused in its backfill, lease held.
  ASSERT_EQ(pt::RunCli(dsn, {"pause", kName}).exit_code, 0);
  pt::ChildProcess holder(pt::CliArgv(dsn, {"advance", kName, "--to", "validated", "--batch-rows", "100"}),
                          {"PGSHIFT_DSN="});
  for (int i = 0; i < 3000 && holder.Running(); ++i) {
    if (pt::QueryValue(dsn, "SELECT coalesce(running_step, '') FROM pgshift.migrations") == "backfilled") break;
    usleep(10000);
  }
  ASSERT_TRUE(holder.Running()) << pt::Describe(holder.Wait(1));
  ASSERT_EQ(pt::QueryValue(dsn, "SELECT running_step FROM pgshift.migrations"), "backfilled");

  std::vector<std::string> argv = {e.binary, "deploy", dsn, file};
  argv.insert(argv.end(), e.deploy_extra.begin(), e.deploy_extra.end());
  pt::ChildProcess example(argv);
  for (int i = 0; i < 3000 && example.Running(); ++i) {
    if (example.CurrentErr().find("busy, retrying") != std::string::npos) break;
    usleep(10000);
  }
  ASSERT_NE(example.CurrentErr().find("busy, retrying"), std::string::npos)
      << "the first attempt found the migration busy: " << example.CurrentErr();
  holder.Kill(SIGKILL);  // its lease goes with its connections
  holder.Wait();
  ASSERT_EQ(pt::RunCli(dsn, {"resume", kName}).exit_code, 0);
  pt::CliResult r = example.Wait();
  EXPECT_EQ(r.exit_code, 0) << pt::Describe(r);
  // The progress callback ran (the C example prints on stderr, the C++ one on stdout).
  EXPECT_NE((r.out + r.err).find("backfill "), std::string::npos) << pt::Describe(r);
  EXPECT_NE(r.out.find(e.deployed_out), std::string::npos) << pt::Describe(r);
  // After the successful retry, nothing but the retry notices and progress
  // is printed on stderr (the C example used to print the busy error again,
  // as "OK: ...").
  std::string err;
  std::stringstream lines(r.err);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("busy, retrying", 0) != 0 && line.rfind("backfill ", 0) != 0) err += line + "\n";
  }
  EXPECT_EQ(err, "") << pt::Describe(r);
  EXPECT_EQ(pt::QueryValue(dsn, "SELECT phase FROM pgshift.migrations"), "validated");
  EXPECT_EQ(pt::QueryValue(dsn, "SELECT count(*) FROM app.users WHERE full_name = name"), "2000");

  // The startup check: not switched yet (exit 3), switched (0), server down.
  r = pt::ChildProcess({e.binary, "startup", dsn}).Wait();
  EXPECT_EQ(r.exit_code, 3) << pt::Describe(r);
  EXPECT_NE(r.err.find(e.startup_refused), std::string::npos) << pt::Describe(r);
  ASSERT_EQ(pt::RunCli(dsn, {"advance", kName, "--to", "switched"}).exit_code, 0);
  r = pt::ChildProcess({e.binary, "startup", dsn}).Wait();
  EXPECT_EQ(r.exit_code, 0) << pt::Describe(r);
  r = pt::ChildProcess({e.binary, "startup", "host=127.0.0.1 port=1 connect_timeout=5"}).Wait();
  EXPECT_EQ(r.exit_code, e.startup_down_exit) << pt::Describe(r);
}

INSTANTIATE_TEST_SUITE_P(
    Docs, DocExamples,
    ::testing::Values(Example{"c", PGSHIFT_DOC_EXAMPLES_C, {kName}, std::string(kName) + " is at validated\n", 1,
                              "refusing to start (FAILED_PRECONDITION)"},
                      Example{"cpp", PGSHIFT_DOC_EXAMPLES_CPP, {}, "backfill ", 3,
                              "refusing to start: migration"}),
    [](const ::testing::TestParamInfo<Example>& info) { return std::string(info.param.lang); });

}  // namespace
