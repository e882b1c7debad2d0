#include "tests/support/test_db.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

#ifndef PGSHIFT_SOURCE_DIR
#define PGSHIFT_SOURCE_DIR ""
#endif

namespace pgshift::testing {
namespace {

// ---------------------------------------------------------------------------
// DSN helpers

bool IsUri(const std::string& dsn) {
  return dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0;
}

// Quotes a value for a key=value conninfo string.
std::string QuoteConninfoValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += "'";
  return out;
}

struct ConninfoOptionsDeleter {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};
using ConninfoOptions =
    std::unique_ptr<PQconninfoOption, ConninfoOptionsDeleter>;

ConninfoOptions ParseConninfo(const std::string& dsn, std::string* error) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (opts == nullptr) {
    if (error != nullptr) {
      *error = err != nullptr ? err : "out of memory";
      while (!error->empty() && error->back() == '\n') error->pop_back();
    }
    if (err != nullptr) PQfreemem(err);
  }
  return ConninfoOptions(opts);
}

// A password-free description of a DSN for error messages.
std::string DescribeDsn(const std::string& dsn) {
  ConninfoOptions opts = ParseConninfo(dsn, nullptr);
  if (!opts) return "(unparsable DSN)";
  std::string out;
  for (PQconninfoOption* o = opts.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr || o->val[0] == '\0') continue;
    const std::string k = o->keyword;
    if (k == "host" || k == "hostaddr" || k == "port" || k == "dbname" ||
        k == "user") {
      if (!out.empty()) out += ' ';
      out += k + "=" + o->val;
    }
  }
  return out.empty() ? "(libpq defaults)" : out;
}

std::string ReplaceDbname(const std::string& dsn, const std::string& dbname) {
  if (!IsUri(dsn)) {
    // In key=value form the last occurrence of a keyword wins.
    std::string out = dsn;
    if (!out.empty()) out += ' ';
    out += "dbname=" + QuoteConninfoValue(dbname);
    return out;
  }
  std::string error;
  ConninfoOptions opts = ParseConninfo(dsn, &error);
  if (!opts) {
    throw std::runtime_error("cannot parse DSN URI: " + error);
  }
  std::string out;
  for (PQconninfoOption* o = opts.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    if (std::strcmp(o->keyword, "dbname") == 0) continue;
    if (!out.empty()) out += ' ';
    out += std::string(o->keyword) + "=" + QuoteConninfoValue(o->val);
  }
  if (!out.empty()) out += ' ';
  out += "dbname=" + QuoteConninfoValue(dbname);
  return out;
}

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(s.find_last_not_of(ws) + 1);
  s.erase(0, s.find_first_not_of(ws));
  return s;
}

// ---------------------------------------------------------------------------
// Connection

void NoticeReceiver(void*, const PGresult* res) {
  const char* sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (sev == nullptr) sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
  if (sev != nullptr &&
      (std::strcmp(sev, "NOTICE") == 0 || std::strcmp(sev, "INFO") == 0 ||
       std::strcmp(sev, "DEBUG") == 0 || std::strcmp(sev, "LOG") == 0)) {
    return;
  }
  const char* msg = PQresultErrorMessage(res);
  if (msg != nullptr) std::fprintf(stderr, "%s", msg);
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

std::string Abbreviate(const std::string& sql) {
  constexpr size_t kMax = 300;
  if (sql.size() <= kMax) return sql;
  return sql.substr(0, kMax) + "...";
}

std::string ResultError(const PGresult* res, const std::string& sql) {
  std::string msg = Trim(PQresultErrorMessage(res));
  const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  std::string out = "SQL error";
  if (state != nullptr) out += std::string(" [") + state + "]";
  out += ": " + (msg.empty() ? std::string("unknown error") : msg);
  out += "\n  while running: " + Abbreviate(sql);
  return out;
}

Rows ToRows(const PGresult* res) {
  Rows rows;
  if (res == nullptr || PQresultStatus(res) != PGRES_TUPLES_OK) return rows;
  const int n = PQntuples(res);
  const int m = PQnfields(res);
  rows.reserve(n);
  for (int i = 0; i < n; ++i) {
    Row row;
    row.reserve(m);
    for (int j = 0; j < m; ++j) {
      if (PQgetisnull(res, i, j)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(res, i, j),
                                     static_cast<size_t>(PQgetlength(res, i, j))));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

class Connection {
 public:
  explicit Connection(const std::string& dsn) : conn_(PQconnectdb(dsn.c_str())) {
    if (conn_ == nullptr) {
      throw std::runtime_error("cannot connect to " + DescribeDsn(dsn) +
                               ": out of memory");
    }
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = Trim(PQerrorMessage(conn_));
      PQfinish(conn_);
      conn_ = nullptr;
      throw std::runtime_error("cannot connect to " + DescribeDsn(dsn) + ": " +
                               msg);
    }
    PQsetNoticeReceiver(conn_, &NoticeReceiver, nullptr);
  }
  ~Connection() {
    if (conn_ != nullptr) PQfinish(conn_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Simple query protocol; returns the rows of the last result.
  Rows Simple(const std::string& sql) {
    if (!PQsendQuery(conn_, sql.c_str())) {
      throw std::runtime_error("cannot send query: " +
                               Trim(PQerrorMessage(conn_)) +
                               "\n  while running: " + Abbreviate(sql));
    }
    Result last;
    std::string error;
    while (PGresult* raw = PQgetResult(conn_)) {
      Result res(raw);
      switch (PQresultStatus(raw)) {
        case PGRES_FATAL_ERROR:
          if (error.empty()) error = ResultError(raw, sql);
          break;
        case PGRES_COPY_IN:
          PQputCopyEnd(conn_, "COPY FROM STDIN is not supported by Query()");
          if (error.empty()) error = "COPY FROM STDIN is not supported by Query()";
          break;
        case PGRES_COPY_OUT: {
          char* buf = nullptr;
          while (PQgetCopyData(conn_, &buf, 0) > 0) PQfreemem(buf);
          if (error.empty()) error = "COPY TO STDOUT is not supported by Query()";
          break;
        }
        default:
          last = std::move(res);
          break;
      }
    }
    if (PQstatus(conn_) != CONNECTION_OK && error.empty()) {
      error = "connection lost: " + Trim(PQerrorMessage(conn_));
    }
    if (!error.empty()) throw std::runtime_error(error);
    return ToRows(last.get());
  }

  // Extended protocol, one statement, text parameters.
  Rows Params(const std::string& sql, const std::vector<std::string>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p.c_str());
    Result res(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                            nullptr, values.data(), nullptr, nullptr, 0));
    if (!res) {
      throw std::runtime_error("query failed: " + Trim(PQerrorMessage(conn_)));
    }
    const ExecStatusType st = PQresultStatus(res.get());
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      throw std::runtime_error(ResultError(res.get(), sql));
    }
    return ToRows(res.get());
  }

 private:
  PGconn* conn_;
};

// ---------------------------------------------------------------------------
// Throwaway cluster

// Runs `bash <script> args...`, returning its exit status (or -1) and its
// stdout in *out.  stderr is inherited.  `extra_env` entries are added to
// (and override) the environment.
int RunScript(const std::string& script, const std::vector<std::string>& args,
              const std::vector<std::string>& extra_env, std::string* out) {
  std::vector<std::string> argv_s = {"bash", script};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_s;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry = *e;
    bool overridden = false;
    for (const auto& x : extra_env) {
      const std::string key = x.substr(0, x.find('=') + 1);
      if (entry.rfind(key, 0) == 0) overridden = true;
    }
    if (!overridden) env_s.push_back(std::move(entry));
  }
  env_s.insert(env_s.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int fds[2] = {-1, -1};
  if (out != nullptr && pipe2(fds, O_CLOEXEC) != 0) return -1;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (out != nullptr) {
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                     O_WRONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/bin/bash", &actions, nullptr, argv.data(),
                             envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (out != nullptr) close(fds[1]);
  if (rc != 0) {
    if (out != nullptr) close(fds[0]);
    return -1;
  }
  if (out != nullptr) {
    char buf[4096];
    for (;;) {
      const ssize_t n = read(fds[0], buf, sizeof buf);
      if (n > 0) {
        out->append(buf, static_cast<size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        break;
      }
    }
    close(fds[0]);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string PgtempScript() {
  std::string src = PGSHIFT_SOURCE_DIR;
  if (src.empty()) {
    const char* env = std::getenv("PGSHIFT_SOURCE_DIR");
    if (env != nullptr) src = env;
  }
  if (src.empty()) {
    throw std::runtime_error(
        "PGSHIFT_TEST_DSN is not set and PGSHIFT_SOURCE_DIR is unknown, so "
        "scripts/pgtemp.sh cannot be located");
  }
  return src + "/scripts/pgtemp.sh";
}

// Owned by the atexit handler; deliberately leaked so that it outlives every
// static destructor.
std::string* g_cluster_dir = nullptr;
std::string* g_cluster_script = nullptr;
pid_t g_cluster_owner = 0;

void StopClusterAtExit() {
  if (g_cluster_dir == nullptr || getpid() != g_cluster_owner) return;
  RunScript(*g_cluster_script, {"stop", *g_cluster_dir}, {}, nullptr);
}

struct Server {
  std::string dsn;
  std::string error;
};

Server StartServer() {
  Server s;
  const char* env = std::getenv("PGSHIFT_TEST_DSN");
  if (env != nullptr && env[0] != '\0') {
    s.dsn = env;
    return s;
  }
  std::string script;
  try {
    script = PgtempScript();
  } catch (const std::exception& e) {
    s.error = e.what();
    return s;
  }
  // As root the server runs as `postgres`, which must be able to reach the
  // directory; /tmp always works, $TMPDIR might not.
  std::string base = "/tmp";
  const char* tmpdir = std::getenv("TMPDIR");
  if (geteuid() != 0 && tmpdir != nullptr && tmpdir[0] != '\0') base = tmpdir;
  std::string templ = base + "/pgshift-test-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    s.error = "mkdtemp(" + templ + ") failed: " + std::strerror(errno);
    return s;
  }
  const std::string dir = templ;
  std::string out;
  const int rc = RunScript(
      script, {"start", dir},
      {"PGTEMP_WATCH_PID=" + std::to_string(static_cast<long>(getpid()))},
      &out);
  if (rc != 0) {
    RunScript(script, {"stop", dir}, {}, nullptr);
    s.error = "`" + script + " start " + dir + "` failed (exit status " +
              std::to_string(rc) + "); see its stderr above";
    return s;
  }
  s.dsn = Trim(out);
  g_cluster_dir = new std::string(dir);
  g_cluster_script = new std::string(script);
  g_cluster_owner = getpid();
  std::atexit(&StopClusterAtExit);
  if (s.dsn.empty()) {
    s.error = "`" + script + " start` printed no DSN";
  }
  return s;
}

std::string SanitizePrefix(const std::string& prefix) {
  std::string out;
  for (char c : prefix) {
    if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
      out += c;
    } else {
      out += '_';
    }
  }
  return out;
}

std::atomic<unsigned> g_db_counter{0};

// ---------------------------------------------------------------------------
// Catalog snapshot queries ($1 = schema name).  Everything is ordered with
// COLLATE "C" and printed under search_path = pg_catalog so that names are
// schema-qualified the same way regardless of the caller's settings.

struct Section {
  const char* title;
  const char* sql;
};

const Section kSections[] = {
    {"schema",
     R"sql(
SELECT n.nspname, pg_get_userbyid(n.nspowner), coalesce(n.nspacl::text, ''),
       coalesce(obj_description(n.oid, 'pg_namespace'), '')
FROM pg_namespace n WHERE n.nspname = $1)sql"},
    {"tables",
     R"sql(
SELECT c.relname, c.relkind, c.relpersistence, c.relreplident,
       c.relrowsecurity, c.relforcerowsecurity,
       coalesce(array_to_string(c.reloptions, ','), ''),
       pg_get_userbyid(c.relowner), coalesce(c.relacl::text, ''),
       coalesce(pg_get_partkeydef(c.oid), ''),
       coalesce(pg_get_expr(c.relpartbound, c.oid), ''),
       coalesce((SELECT string_agg(i.inhparent::regclass::text, ','
                                   ORDER BY i.inhseqno)
                 FROM pg_inherits i WHERE i.inhrelid = c.oid), ''),
       coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'f')
ORDER BY c.relname COLLATE "C")sql"},
    {"columns",
     R"sql(
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce(quote_ident(cn.nspname) || '.' || quote_ident(co.collname), ''),
       a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN coalesce(pg_get_expr(d.adbin, d.adrelid), '')
            ELSE '' END,
       a.attidentity,
       CASE WHEN a.attgenerated <> '' THEN
              a.attgenerated::text || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
            ELSE '' END,
       coalesce(col_description(c.oid, a.attnum), '')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'c')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname COLLATE "C", a.attnum)sql"},
    {"indexes",
     R"sql(
SELECT t.relname, i.relname, pg_get_indexdef(x.indexrelid), x.indisvalid,
       x.indisready, x.indisclustered, x.indisreplident,
       coalesce(obj_description(i.oid, 'pg_class'), '')
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE n.nspname = $1
ORDER BY t.relname COLLATE "C", i.relname COLLATE "C")sql"},
    {"constraints",
     R"sql(
SELECT coalesce(c.relname, ty.typname, ''), k.conname, k.contype,
       pg_get_constraintdef(k.oid), k.convalidated, k.condeferrable,
       k.condeferred, k.connoinherit
FROM pg_constraint k
JOIN pg_namespace n ON n.oid = k.connamespace
LEFT JOIN pg_class c ON c.oid = k.conrelid
LEFT JOIN pg_type ty ON ty.oid = k.contypid
WHERE n.nspname = $1
ORDER BY coalesce(c.relname, ty.typname, '') COLLATE "C",
         k.conname COLLATE "C", pg_get_constraintdef(k.oid) COLLATE "C")sql"},
    {"triggers",
     R"sql(
SELECT c.relname, g.tgname, pg_get_triggerdef(g.oid), g.tgenabled
FROM pg_trigger g
JOIN pg_class c ON c.oid = g.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND NOT g.tgisinternal
ORDER BY c.relname COLLATE "C", g.tgname COLLATE "C")sql"},
    {"functions",
     R"sql(
SELECT p.proname, pg_get_function_identity_arguments(p.oid), p.prokind,
       coalesce(pg_get_function_result(p.oid), ''),
       md5(coalesce(p.prosrc, '')), p.provolatile, p.prosecdef, l.lanname,
       coalesce(array_to_string(p.proconfig, ','), ''),
       pg_get_userbyid(p.proowner)
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = $1
ORDER BY p.proname COLLATE "C",
         pg_get_function_identity_arguments(p.oid) COLLATE "C")sql"},
    {"views",
     R"sql(
SELECT c.relname, c.relkind, pg_get_viewdef(c.oid),
       coalesce(array_to_string(c.reloptions, ','), ''),
       pg_get_userbyid(c.relowner), coalesce(c.relacl::text, ''),
       coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('v', 'm')
ORDER BY c.relname COLLATE "C")sql"},
    {"sequences",
     R"sql(
SELECT c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle, c.relpersistence,
       coalesce((SELECT d.refobjid::regclass::text || '.' ||
                        quote_ident(a.attname) || ' (' || d.deptype::text || ')'
                 FROM pg_depend d
                 JOIN pg_attribute a
                   ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.refclassid = 'pg_class'::regclass
                   AND d.deptype IN ('a', 'i')
                 ORDER BY 1 LIMIT 1), ''),
       pg_get_userbyid(c.relowner), coalesce(c.relacl::text, '')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_sequence s ON s.seqrelid = c.oid
WHERE n.nspname = $1 AND c.relkind = 'S'
ORDER BY c.relname COLLATE "C")sql"},
    {"types",
     R"sql(
SELECT t.typname, t.typtype,
       CASE t.typtype
         WHEN 'e' THEN coalesce((SELECT string_agg(quote_literal(e.enumlabel), ','
                                                   ORDER BY e.enumsortorder)
                                 FROM pg_enum e WHERE e.enumtypid = t.oid), '')
         WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) ||
                       ' notnull=' || t.typnotnull::text ||
                       ' default=' || coalesce(t.typdefault, '')
         ELSE '' END,
       pg_get_userbyid(t.typowner),
       coalesce(obj_description(t.oid, 'pg_type'), '')
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_class c ON c.oid = t.typrelid
WHERE n.nspname = $1 AND (t.typrelid = 0 OR c.relkind = 'c')
  AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
ORDER BY t.typname COLLATE "C")sql"},
    {"policies",
     R"sql(
SELECT c.relname, p.polname, p.polcmd, p.polpermissive,
       coalesce((SELECT string_agg(s.role, ',' ORDER BY s.role COLLATE "C")
                 FROM (SELECT CASE WHEN r = 0 THEN 'public'
                                   ELSE pg_get_userbyid(r)::text END AS role
                       FROM unnest(p.polroles) AS r) s), ''),
       coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
       coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
FROM pg_policy p
JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1
ORDER BY c.relname COLLATE "C", p.polname COLLATE "C")sql"},
};

}  // namespace

// ---------------------------------------------------------------------------
// Public API

const std::string& ServerDsn() {
  static const Server server = StartServer();
  if (!server.error.empty()) {
    throw std::runtime_error("no test server: " + server.error);
  }
  return server.dsn;
}

std::string DsnWithUser(const std::string& dsn, const std::string& user) {
  if (dsn.rfind("postgres", 0) == 0) {
    return dsn + (dsn.find('?') != std::string::npos ? "&" : "?") + "user=" + user;
  }
  return dsn + " user=" + user;
}

std::string DsnForDatabase(const std::string& dbname) {
  return ReplaceDbname(ServerDsn(), dbname);
}

void DropDatabase(const std::string& name) {
  Connection conn(ServerDsn());
  conn.Simple("DROP DATABASE IF EXISTS " + Ident(name) + " WITH (FORCE)");
}

ScratchDatabase::ScratchDatabase(std::string prefix) {
  const std::string suffix =
      "_" + std::to_string(g_db_counter.fetch_add(1) + 1) + "_" +
      std::to_string(static_cast<long>(getpid()));
  std::string p = SanitizePrefix(prefix);
  constexpr size_t kMaxIdentifier = 63;
  const size_t room = kMaxIdentifier - 2 - suffix.size();
  if (p.size() > room) p.resize(room);
  name_ = "t_" + p + suffix;

  Connection conn(ServerDsn());
  const std::string create = "CREATE DATABASE " + Ident(name_);
  try {
    conn.Simple(create);
  } catch (const std::runtime_error& e) {
    // A leftover from an earlier process that had the same pid: it is dead
    // (we have its pid now), so its database can go.
    if (std::string(e.what()).find("[42P04]") == std::string::npos) throw;
    conn.Simple("DROP DATABASE IF EXISTS " + Ident(name_) + " WITH (FORCE)");
    conn.Simple(create);
  }
  dsn_ = ReplaceDbname(ServerDsn(), name_);
}

ScratchDatabase::~ScratchDatabase() {
  try {
    DropDatabase(name_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: could not drop scratch database %s: %s\n",
                 name_.c_str(), e.what());
  }
}

Rows Query(const std::string& dsn, const std::string& sql) {
  Connection conn(dsn);
  return conn.Simple(sql);
}

std::string QueryValue(const std::string& dsn, const std::string& sql) {
  Rows rows = Query(dsn, sql);
  if (rows.empty()) {
    throw std::runtime_error("query returned no rows: " + Abbreviate(sql));
  }
  if (rows.front().empty()) {
    throw std::runtime_error("query returned no columns: " + Abbreviate(sql));
  }
  return rows.front().front().value_or("");
}

int64_t QueryInt(const std::string& dsn, const std::string& sql) {
  return std::stoll(QueryValue(dsn, sql));
}

namespace {
std::string Quoted(const std::string& s, char quote) {
  std::string out(1, quote);
  for (char c : s) {
    if (c == quote) out += quote;
    out += c;
  }
  return out + quote;
}
}  // namespace

std::string Lit(const std::string& s) { return Quoted(s, '\''); }
std::string Ident(const std::string& s) { return Quoted(s, '"'); }

bool WaitUntil(const std::function<bool()>& pred, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

std::string CatalogSnapshot(const std::string& dsn, const std::string& schema) {
  Connection conn(dsn);
  // One read-only snapshot of the catalog, names qualified the same way.
  conn.Simple(
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
      "SET LOCAL search_path = pg_catalog");
  std::string out;
  for (const Section& section : kSections) {
    out += "[";
    out += section.title;
    out += "]\n";
    for (const Row& row : conn.Params(section.sql, {schema})) {
      bool first = true;
      for (const auto& value : row) {
        if (!first) out += " | ";
        first = false;
        out += value.has_value() ? *value : "NULL";
      }
      out += '\n';
    }
  }
  conn.Simple("COMMIT");
  return out;
}

}  // namespace pgshift::testing
