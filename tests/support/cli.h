// Running the pgshift CLI (or any program) as a child process from tests,
// and the temporary files they hand it.
//
// Example:
//   pgshift::testing::CliResult r = pgshift::testing::RunCli(dsn, {"init"});
//   EXPECT_EQ(r.exit_code, 0) << pgshift::testing::Describe(r);
//
//   pgshift::testing::ChildProcess p(pgshift::testing::CliArgv(dsn, {"advance", "m"}));
//   ... wait for it to be half-way (p.CurrentErr() shows its progress) ...
//   p.Kill(SIGKILL);                              // like kill -9: no clean-up runs
//   pgshift::testing::CliResult killed = p.Wait();  // killed.signal == SIGKILL
//
// Output goes to temporary files (no pipes, so a child can never block on a
// full pipe); they are read by Wait() and removed at exit. Not thread-safe
// per object; distinct objects may be used from distinct threads.
#ifndef PGSHIFT_TESTS_SUPPORT_CLI_H_
#define PGSHIFT_TESTS_SUPPORT_CLI_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace pgshift::testing {

struct CliResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that killed it, or 0
  std::string out;     // stdout
  std::string err;     // stderr
};

// "exit 1 signal 0\nstdout: ...\nstderr: ...", for failure messages.
std::string Describe(const CliResult& r);

// How long Wait() and RunCli() let a child run before killing it: a guard
// against a hung child, not a timing assertion.
inline constexpr double kChildTimeoutSeconds = 300;

class ChildProcess {
 public:
  // Starts argv[0] (a path) with `argv`; `env` entries "K=V" are added to
  // (or replace in) the test's environment; entries "K=" with an empty value
  // remove K. Throws std::runtime_error when it cannot start.
  explicit ChildProcess(const std::vector<std::string>& argv,
                        const std::vector<std::string>& env = {});
  ~ChildProcess();  // kills (SIGKILL) and reaps the child if still running

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // True while the child has not exited (reaps it when it has).
  bool Running();
  void Kill(int sig);
  // Waits for the child to exit and returns what it printed. After
  // `timeout_s` seconds it is killed (SIGKILL) and `err` ends with a line
  // saying so.
  CliResult Wait(double timeout_s = kChildTimeoutSeconds);
  // What the child has written to stderr so far.
  std::string CurrentErr() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::string out_path_, err_path_;
};

// The argv of the CLI built with the tests (PGSHIFT_CLI) connecting to
// `dsn`: {cli, "--dsn", dsn, args...}; without "--dsn" when `dsn` is empty.
std::vector<std::string> CliArgv(const std::string& dsn, const std::vector<std::string>& args);

// Runs CliArgv(dsn, args) to completion; `env` as for ChildProcess.
CliResult RunCli(const std::string& dsn, const std::vector<std::string>& args,
                 const std::vector<std::string>& env = {});

// Writes `content` to a new file under $TMPDIR (or /tmp) and returns its path.
// The file is removed at process exit.
std::string WriteTempFile(const std::string& content, const std::string& suffix = ".json");

// A new path under $TMPDIR (or /tmp) that nothing uses yet, for a file or
// directory the caller creates (and removes).
std::string TempPath(const std::string& stem);

// The whole content of `path`; "" when it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_CLI_H_
