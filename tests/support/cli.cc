#include "tests/support/cli.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace pgshift::testing {
namespace {

std::string TempDir() {
  const char* t = std::getenv("TMPDIR");
  return (t != nullptr && t[0] != '\0') ? t : "/tmp";
}

// Files to remove at exit.
std::mutex& FilesMu() {
  static std::mutex mu;
  return mu;
}
std::vector<std::string>& Files() {
  static auto* files = new std::vector<std::string>();
  return *files;
}
void RemoveFiles() {
  std::lock_guard<std::mutex> lock(FilesMu());
  for (const auto& f : Files()) unlink(f.c_str());
}
void Track(const std::string& path) {
  std::lock_guard<std::mutex> lock(FilesMu());
  static bool registered = false;
  if (!registered) {
    std::atexit(RemoveFiles);
    registered = true;
  }
  Files().push_back(path);
}

std::string MakeTemp(const std::string& suffix) {
  std::string templ = TempDir() + "/pgshift-test-XXXXXX" + suffix;
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  int fd = mkstemps(buf.data(), static_cast<int>(suffix.size()));
  if (fd < 0) throw std::runtime_error(std::string("mkstemps: ") + std::strerror(errno));
  close(fd);
  std::string path(buf.data());
  Track(path);
  return path;
}

}  // namespace

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TempPath(const std::string& stem) {
  static std::atomic<int> counter{0};
  return TempDir() + "/pgshift-" + stem + "-" + std::to_string(getpid()) + "-" +
         std::to_string(++counter);
}

std::string Describe(const CliResult& r) {
  return "exit " + std::to_string(r.exit_code) + " signal " + std::to_string(r.signal) +
         "\nstdout: " + r.out + "\nstderr: " + r.err;
}

std::string WriteTempFile(const std::string& content, const std::string& suffix) {
  std::string path = MakeTemp(suffix);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
  return path;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env) {
  if (argv.empty()) throw std::runtime_error("ChildProcess: empty argv");
  out_path_ = MakeTemp(".out");
  err_path_ = MakeTemp(".err");

  std::map<std::string, std::string> vars;
  std::vector<std::string> order;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string k = kv.substr(0, eq);
    if (!vars.count(k)) order.push_back(k);
    vars[k] = kv.substr(eq + 1);
  }
  for (const std::string& kv : env) {
    size_t eq = kv.find('=');
    std::string k = kv.substr(0, eq);
    std::string v = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (v.empty()) {
      vars.erase(k);
      continue;
    }
    if (!vars.count(k)) order.push_back(k);
    vars[k] = v;
  }
  std::vector<std::string> env_strings;
  for (const auto& k : order) {
    if (vars.count(k)) env_strings.push_back(k + "=" + vars[k]);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path_.c_str(), O_WRONLY | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path_.c_str(), O_WRONLY | O_TRUNC, 0600);
  int rc = posix_spawn(&pid_, argp[0], &fa, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
}

bool ChildProcess::Running() {
  if (reaped_) return false;
  pid_t r = waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

void ChildProcess::Kill(int sig) {
  if (!reaped_) kill(pid_, sig);
}

CliResult ChildProcess::Wait(double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  bool timed_out = false;
  while (Running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
      }
      reaped_ = true;
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CliResult r;
  if (WIFEXITED(status_)) r.exit_code = WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) r.signal = WTERMSIG(status_);
  r.out = ReadFile(out_path_);
  r.err = ReadFile(err_path_);
  if (timed_out) {
    r.err += "\n[test: still running after " + std::to_string(timeout_s) + " s; killed]";
  }
  return r;
}

std::string ChildProcess::CurrentErr() const { return ReadFile(err_path_); }

std::vector<std::string> CliArgv(const std::string& dsn, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {PGSHIFT_CLI};
  if (!dsn.empty()) {
    argv.push_back("--dsn");
    argv.push_back(dsn);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

CliResult RunCli(const std::string& dsn, const std::vector<std::string>& args,
                 const std::vector<std::string>& env) {
  ChildProcess p(CliArgv(dsn, args), env);
  return p.Wait();
}

}  // namespace pgshift::testing
