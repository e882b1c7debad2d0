// Running the pgshift CLI (or any program) as a child process from tests.
//
// Example:
//   pgshift::testing::CliResult r =
//       pgshift::testing::RunProgram({PGSHIFT_CLI, "--dsn", dsn, "init"});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
//
//   pgshift::testing::ChildProcess p({PGSHIFT_CLI, "--dsn", dsn, "advance", "m"});
//   ... wait for it to be half-way ...
//   p.Kill(SIGKILL);
//   pgshift::testing::CliResult killed = p.Wait();  // killed.signal == SIGKILL
//
// Output goes to temporary files (no pipes, so a child can never block on a
// full pipe); they are read by Wait() and removed.
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
  // Waits for the child to exit and returns what it printed.
  CliResult Wait();

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::string out_path_, err_path_;
};

// Runs `argv` to completion.
CliResult RunProgram(const std::vector<std::string>& argv,
                     const std::vector<std::string>& env = {});

// Writes `content` to a new file under $TMPDIR (or /tmp) and returns its path.
// The file is removed at process exit.
std::string WriteTempFile(const std::string& content, const std::string& suffix = ".json");

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_CLI_H_
