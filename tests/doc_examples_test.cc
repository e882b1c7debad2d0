// The C examples of docs/api/c.md, compiled from the page itself
// (tests/doc_examples.py, doc_examples_c) and run against a real server:
// the deploy step through a first attempt that finds the migration busy
// (another driver holds it) and a retry that succeeds, printing no stale
// error; the startup check refusing, then passing, then the server down.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "tests/support/cli.h"
#include "tests/support/spec_builder.h"
#include "tests/support/test_db.h"

namespace {

namespace pt = ::pgshift::testing;

constexpr char kName[] = "0042_rename_users_name";

TEST(DocExamplesC, DeployStepRetriesWhileBusyThenSucceedsAndStartupCheckGates) {
  pt::ScratchDatabase db("doc_examples_c");
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

  pt::ChildProcess example({PGSHIFT_DOC_EXAMPLES_C, "deploy", dsn, file, kName});
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
  EXPECT_EQ(r.out, std::string(kName) + " is at validated\n") << pt::Describe(r);
  EXPECT_NE(r.err.find("backfill "), std::string::npos) << "the progress callback ran: " << pt::Describe(r);
  // After the successful retry, no error is printed (it used to print the
  // busy error again, as "OK: ... busy").
  EXPECT_EQ(r.err.find("OK:"), std::string::npos) << pt::Describe(r);
  EXPECT_EQ(r.err.find("ABORTED:"), std::string::npos) << pt::Describe(r);
  EXPECT_EQ(pt::QueryValue(dsn, "SELECT phase FROM pgshift.migrations"), "validated");
  EXPECT_EQ(pt::QueryValue(dsn, "SELECT count(*) FROM app.users WHERE full_name = name"), "2000");

  // The startup check: not switched yet (exit 3), switched (0), server down (1).
  pt::ChildProcess refused({PGSHIFT_DOC_EXAMPLES_C, "startup", dsn});
  r = refused.Wait();
  EXPECT_EQ(r.exit_code, 3) << pt::Describe(r);
  EXPECT_NE(r.err.find("refusing to start (FAILED_PRECONDITION)"), std::string::npos) << pt::Describe(r);
  ASSERT_EQ(pt::RunCli(dsn, {"advance", kName, "--to", "switched"}).exit_code, 0);
  pt::ChildProcess started({PGSHIFT_DOC_EXAMPLES_C, "startup", dsn});
  r = started.Wait();
  EXPECT_EQ(r.exit_code, 0) << pt::Describe(r);
  pt::ChildProcess down({PGSHIFT_DOC_EXAMPLES_C, "startup", "host=127.0.0.1 port=1 connect_timeout=5"});
  r = down.Wait();
  EXPECT_EQ(r.exit_code, 1) << pt::Describe(r);
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << pt::Describe(r);
}

}  // namespace
