// Helpers shared by the safety, fault and PgBouncer tests: running the CLI as
// a child process (so that it can be killed with SIGKILL like a real driver),
// waiting for conditions on the server, and temporary migration files.
#ifndef PGSHIFT_TESTS_SAFETY_SUPPORT_H_
#define PGSHIFT_TESTS_SAFETY_SUPPORT_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>

#include "tests/support/test_db.h"

namespace pgshift::testing {

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string TempPath(const std::string& stem) {
  static int counter = 0;
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/pgshift-" + stem + "-" +
         std::to_string(getpid()) + "-" + std::to_string(++counter);
}

// A file that is removed when the object goes away.
class TempFile {
 public:
  TempFile(const std::string& stem, const std::string& content) : path_(TempPath(stem)) {
    std::ofstream(path_) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct CliResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out, err;
};

// The pgshift CLI running as a child process; stdout and stderr go to files.
class CliProcess {
 public:
  explicit CliProcess(const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env = {})
      : out_path_(TempPath("cli-out")), err_path_(TempPath("cli-err")) {
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(out, 1);
      dup2(err, 2);
      int devnull = open("/dev/null", O_RDONLY);
      dup2(devnull, 0);
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> argv;
      static std::string cli = PGSHIFT_CLI;
      argv.push_back(cli.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(cli.c_str(), argv.data());
      _exit(127);
    }
  }
  ~CliProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      int st;
      waitpid(pid_, &st, 0);
    }
    std::remove(out_path_.c_str());
    std::remove(err_path_.c_str());
  }
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;

  pid_t pid() const { return pid_; }

  bool Running() {
    if (reaped_) return false;
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = st;
      return false;
    }
    return true;
  }

  // SIGKILL, like `kill -9`: no clean-up runs in the driver.
  void Kill9() {
    if (!reaped_) kill(pid_, SIGKILL);
  }

  // Waits for the process (SIGKILL after `timeout_s` seconds, and the
  // result then says so in err).
  CliResult Wait(double timeout_s = 120) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    bool timed_out = false;
    while (Running()) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        timed_out = true;
        int st;
        waitpid(pid_, &st, 0);
        reaped_ = true;
        status_ = st;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CliResult r;
    r.exit_code = WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
    r.out = ReadWholeFile(out_path_);
    r.err = ReadWholeFile(err_path_);
    if (timed_out) r.err += "\n[test: CLI timed out and was killed]";
    return r;
  }

  std::string CurrentErr() const { return ReadWholeFile(err_path_); }

 private:
  std::string out_path_, err_path_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Runs the CLI to completion.
inline CliResult RunCli(const std::vector<std::string>& args,
                        const std::map<std::string, std::string>& env = {},
                        double timeout_s = 120) {
  CliProcess p(args, env);
  return p.Wait(timeout_s);
}

// Polls `pred` every 20 ms until it is true (returns true) or `timeout_s`
// passes (returns false).
inline bool WaitUntil(const std::function<bool()>& pred, double timeout_s = 30) {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

inline std::string Describe(const CliResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// SQL string literal (tests build some setup SQL from fixed test names).
inline std::string Lit(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// An open libpq session for tests that must hold a transaction open
// (blockers) or read values repeatedly. Throws on errors.
class Session {
 public:
  explicit Session(const std::string& dsn) : conn_(PQconnectdb(dsn.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(conn_);
      PQfinish(conn_);
      conn_ = nullptr;
      throw std::runtime_error("test session: cannot connect: " + msg);
    }
    PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  }
  ~Session() {
    if (conn_) PQfinish(conn_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs `sql` (simple protocol); returns the first column of the first row
  // or "" when there is none. Throws with the server's message on error.
  std::string Exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      std::string msg = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error("test session: " + sql + ": " + msg);
    }
    std::string v = (PQntuples(r) > 0 && PQnfields(r) > 0) ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    return v;
  }
  // Like Exec, but returns the error message ("" on success).
  std::string TryExec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    std::string msg = (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) ? PQresultErrorMessage(r) : "";
    PQclear(r);
    return msg;
  }
  int pid() { return PQbackendPID(conn_); }

 private:
  PGconn* conn_;
};

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SAFETY_SUPPORT_H_
