#include "lib/pg/connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/pg/quote.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift {

namespace pg {

absl::Status StatusFromSqlState(absl::string_view sqlstate, absl::string_view message) {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  absl::string_view cls = sqlstate.substr(0, 2);
  if (sqlstate == "55P03" || sqlstate == "40001" || sqlstate == "40P01") {
    code = absl::StatusCode::kAborted;
  } else if (cls == "08" || sqlstate == "57P01" || sqlstate == "57P02" ||
             sqlstate == "57P03") {
    code = absl::StatusCode::kUnavailable;
  } else if (sqlstate == "57014") {
    code = absl::StatusCode::kDeadlineExceeded;  // statement_timeout or cancel
  } else if (sqlstate == "42P01" || sqlstate == "42703" || sqlstate == "42704" ||
             sqlstate == "3F000" || sqlstate == "42883") {
    code = absl::StatusCode::kNotFound;
  } else if (sqlstate == "42P07" || sqlstate == "42701" || sqlstate == "42710" ||
             sqlstate == "42P06") {
    code = absl::StatusCode::kAlreadyExists;
  } else if (sqlstate == "42501") {
    code = absl::StatusCode::kPermissionDenied;
  } else if (cls == "42") {
    code = absl::StatusCode::kInvalidArgument;
  } else if (cls == "22" || cls == "23" || cls == "P0") {
    code = absl::StatusCode::kFailedPrecondition;  // the data does not fit
  } else if (cls == "53") {
    code = absl::StatusCode::kResourceExhausted;
  }
  return util::WithSqlState(absl::Status(code, message), sqlstate);
}

namespace {

absl::Status StatusFromResult(pg_conn* conn, pg_result* res) {
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
    return absl::OkStatus();
  }
  if (res == nullptr || PQstatus(conn) == CONNECTION_BAD) {
    std::string msg(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
    if (PQstatus(conn) == CONNECTION_BAD) {
      return StatusFromSqlState("08006", absl::StrCat("connection to the server was lost: ", msg));
    }
    if (res == nullptr) return absl::UnknownError(msg);
  }
  const char* sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  const char* hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
  std::string msg = primary ? primary
                            : std::string(absl::StripTrailingAsciiWhitespace(
                                  PQresultErrorMessage(res)));
  if (detail) absl::StrAppend(&msg, " (", detail, ")");
  if (hint) absl::StrAppend(&msg, " hint: ", hint);
  std::string code = sqlstate ? sqlstate : "";
  if (!code.empty()) msg = absl::StrCat(msg, " [SQLSTATE ", code, "]");
  return StatusFromSqlState(code, msg);
}

void IgnoreNotice(void*, const char*) {}

// Whether libpq hides the value of `option` (password, sslpassword, and any
// it may add): its dispchar says "*".
bool IsSecret(const PQconninfoOption& option) {
  return option.dispchar != nullptr && std::strchr(option.dispchar, '*') != nullptr;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// `s` with every valid %XX decoded; invalid ones are kept as they are.
std::string PercentDecoded(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Every secret of `dsn` in every form a message could quote it in: the
// values libpq hides (parsed, so decoded), and, read from the text itself
// (also when libpq cannot parse it): a URI's userinfo password and secret
// query parameters, raw and percent-decoded, and the pieces of a raw
// password that a stray "@" or "/" would make libpq read as a host name;
// `keyword=value` pairs of secret keywords.
std::vector<std::string> SecretsOf(const std::string& dsn) {
  std::vector<std::string> out;
  auto add = [&out](absl::string_view v, size_t min_size) {
    if (v.size() >= min_size) out.emplace_back(v);
  };
  auto add_raw = [&](absl::string_view raw) {
    add(raw, 1);
    add(PercentDecoded(raw), 1);
    for (absl::string_view piece : absl::StrSplit(raw, absl::ByAnyChar("@/?#&"))) add(piece, 4);
  };
  std::vector<std::string> secret_keys;
  char* err = nullptr;
  PQconninfoOption* defaults = PQconndefaults();
  if (defaults != nullptr) {
    for (PQconninfoOption* o = defaults; o->keyword != nullptr; ++o) {
      if (IsSecret(*o)) secret_keys.emplace_back(o->keyword);
    }
    PQconninfoFree(defaults);
  }
  if (secret_keys.empty()) secret_keys = {"password", "sslpassword"};
  auto is_secret_key = [&secret_keys](absl::string_view k) {
    return std::find(secret_keys.begin(), secret_keys.end(), k) != secret_keys.end();
  };
  if (PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err)) {
    for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
      if (o->val != nullptr && IsSecret(*o)) add(o->val, 1);
    }
    PQconninfoFree(opts);
  }
  if (err != nullptr) PQfreemem(err);
  absl::string_view text(dsn);
  if (absl::StartsWith(text, "postgresql://") || absl::StartsWith(text, "postgres://")) {
    text.remove_prefix(text.find("://") + 3);
    absl::string_view before_query = text.substr(0, text.find('?'));
    const size_t at = before_query.rfind('@');
    if (at != absl::string_view::npos) {
      absl::string_view userinfo = before_query.substr(0, at);
      const size_t colon = userinfo.find(':');
      if (colon != absl::string_view::npos) add_raw(userinfo.substr(colon + 1));
    }
    const size_t q = text.find('?');
    if (q != absl::string_view::npos) {
      for (absl::string_view pair : absl::StrSplit(text.substr(q + 1), '&')) {
        const size_t eq = pair.find('=');
        if (eq != absl::string_view::npos && is_secret_key(PercentDecoded(pair.substr(0, eq)))) {
          add_raw(pair.substr(eq + 1));
        }
      }
    }
  } else {
    for (absl::string_view word : absl::StrSplit(text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
      const size_t eq = word.find('=');
      if (eq != absl::string_view::npos && is_secret_key(word.substr(0, eq))) {
        absl::string_view v = word.substr(eq + 1);
        add(v, 1);
        add(absl::StripSuffix(absl::StripPrefix(v, "'"), "'"), 1);
      }
    }
  }
  // Longest first, so that a secret containing another is masked whole.
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// `message` with every secret of `dsn` masked.
std::string WithoutSecrets(std::string message, const std::string& dsn) {
  for (const std::string& secret : SecretsOf(dsn)) {
    message = absl::StrReplaceAll(message, {{secret, "********"}});
  }
  return message;
}

}  // namespace

void Result::Deleter::operator()(pg_result* r) const { PQclear(r); }

Result::Result(pg_result* res) : res_(res) {}
int Result::rows() const { return res_ ? PQntuples(res_.get()) : 0; }
int Result::cols() const { return res_ ? PQnfields(res_.get()) : 0; }
bool Result::IsNull(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
std::string Result::Get(int row, int col) const {
  return std::string(PQgetvalue(res_.get(), row, col),
                     static_cast<size_t>(PQgetlength(res_.get(), row, col)));
}
std::optional<std::string> Result::GetOpt(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Get(row, col);
}
int64_t Result::GetInt(int row, int col) const {
  int64_t v = 0;
  if (IsNull(row, col) || !absl::SimpleAtoi(PQgetvalue(res_.get(), row, col), &v)) return 0;
  return v;
}
bool Result::GetBool(int row, int col) const {
  return !IsNull(row, col) && PQgetvalue(res_.get(), row, col)[0] == 't';
}
int64_t Result::Affected() const {
  int64_t v = 0;
  if (!res_ || !absl::SimpleAtoi(PQcmdTuples(res_.get()), &v)) return 0;
  return v;
}

Connection::Connection(pg_conn* conn) : conn_(conn) {}
Connection::~Connection() {
  if (conn_ != nullptr) PQfinish(conn_);
}
Connection::Connection(Connection&& other) noexcept : conn_(other.conn_) { other.conn_ = nullptr; }
Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = other.conn_;
    other.conn_ = nullptr;
  }
  return *this;
}

namespace {

// The values libpq (PostgreSQL 15) accepts for its enumerated connection
// options. A connection string with another value can never connect: that
// is bad input (exit 2), not a server that is down (exit 1, retry).
const std::vector<std::pair<const char*, std::vector<const char*>>>& EnumeratedOptions() {
  static const auto* options = new std::vector<std::pair<const char*, std::vector<const char*>>>{
      {"sslmode", {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
      {"gssencmode", {"disable", "prefer", "require"}},
      {"channel_binding", {"disable", "prefer", "require"}},
      {"target_session_attrs",
       {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}},
  };
  return *options;
}

// Whether `v` is a whole number, or a comma-separated list of them (port).
bool Numbers(absl::string_view v, bool list) {
  std::vector<absl::string_view> pieces = {v};
  if (list) pieces = absl::StrSplit(v, ',');
  for (absl::string_view piece : pieces) {
    int64_t n = 0;
    piece = absl::StripAsciiWhitespace(piece);
    if (!piece.empty() && !absl::SimpleAtoi(piece, &n)) return false;
  }
  return true;
}

// The connection string's own mistakes, found without connecting: syntax,
// an unknown keyword, a value libpq would refuse.
absl::Status CheckConnectionString(const std::string& dsn) {
  // As libpq: a string without "=" that is not a URI is a database name.
  if (dsn.find('=') == std::string::npos && !absl::StartsWith(dsn, "postgresql://") &&
      !absl::StartsWith(dsn, "postgres://")) {
    return absl::OkStatus();
  }
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (opts == nullptr) {
    std::string why = err != nullptr ? std::string(absl::StripTrailingAsciiWhitespace(err))
                                     : std::string("out of memory");
    if (err != nullptr) PQfreemem(err);
    return absl::InvalidArgumentError(absl::StrCat("the connection string is not valid: ", why));
  }
  std::string bad;
  for (PQconninfoOption* o = opts; o->keyword != nullptr && bad.empty(); ++o) {
    if (o->val == nullptr) continue;
    const absl::string_view key = o->keyword, value = o->val;
    for (const auto& [name, values] : EnumeratedOptions()) {
      if (key != name) continue;
      if (std::find_if(values.begin(), values.end(),
                       [&](const char* v) { return value == v; }) == values.end()) {
        bad = absl::StrCat("invalid ", name, " value \"", value, "\" (one of ",
                           absl::StrJoin(values, ", "), ")");
      }
    }
    const bool numeric = key == "connect_timeout" || absl::StartsWith(key, "keepalives") ||
                         key == "tcp_user_timeout";
    if ((key == "port" && !Numbers(value, true)) || (numeric && !Numbers(value, false))) {
      bad = absl::StrCat("invalid ", key, " value \"", value, "\" (a whole number",
                         key == "port" ? ", or a comma-separated list of them" : "", ")");
    }
  }
  PQconninfoFree(opts);
  if (!bad.empty()) return absl::InvalidArgumentError(absl::StrCat("the connection string is not valid: ", bad));
  return absl::OkStatus();
}

// The value libpq uses for connection option `keyword` of `conn` ("" when none).
std::string ConninfoValue(pg_conn* conn, absl::string_view keyword) {
  std::string out;
  if (PQconninfoOption* opts = PQconninfo(conn)) {
    for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
      if (keyword == o->keyword && o->val != nullptr) out = o->val;
    }
    PQconninfoFree(opts);
  }
  return out;
}

// The SQLSTATE with which the server refused a connection, learnt by
// connecting once more with verbose errors: libpq gives a connection
// failure's SQLSTATE nowhere but in its message, and there only when
// verbose ("FATAL:  28000: role ... does not exist"). "" when it cannot
// tell (or the server let this attempt in).
std::string RefusalSqlState(const char* const* keys, const char* const* values, absl::Duration timeout) {
  pg_conn* c = PQconnectStartParams(keys, values, /*expand_dbname=*/1);
  if (c == nullptr) return "";
  PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
  const absl::Time deadline = absl::Now() + timeout;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) break;
    pollfd p{PQsocket(c), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    if (p.fd < 0 || (poll(&p, 1, static_cast<int>(ms)) < 0 && errno != EINTR)) break;
    st = PQconnectPoll(c);
  }
  const std::string message = PQstatus(c) == CONNECTION_BAD ? PQerrorMessage(c) : "";
  PQfinish(c);
  const std::string tag = "FATAL:  ";
  const size_t at = message.find(tag);
  if (at == std::string::npos || message.size() < at + tag.size() + 6) return "";
  const std::string code = message.substr(at + tag.size(), 5);
  const bool well_formed = message[at + tag.size() + 5] == ':' &&
                           std::all_of(code.begin(), code.end(), [](char ch) { return absl::ascii_isalnum(ch); });
  return well_formed ? code : "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& dsn,
                                                             absl::string_view application_name) {
  {
    absl::Status valid = CheckConnectionString(dsn);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(WithoutSecrets(
          absl::StrCat(valid.message(), " (check --dsn or PGSHIFT_DSN); nothing was changed"), dsn));
    }
  }
  // pgshift's defaults come before the connection string, which overrides
  // them (expand_dbname: later values win): what the user's DSN says wins,
  // and so do their PG* variables over the connect timeout. The
  // application name is libpq's fallback, used only where neither the DSN
  // nor PGAPPNAME names one. Keepalives and a TCP user timeout make a
  // connection whose network died fail within about a minute instead of
  // the kernel's two hours (they do nothing on a Unix socket).
  const std::string app(application_name);
  std::vector<const char*> keys = {"fallback_application_name", "keepalives", "keepalives_idle",
                                   "keepalives_interval", "keepalives_count", "tcp_user_timeout"};
  std::vector<const char*> values = {app.c_str(), "1", "30", "10", "3", "60000"};
  if (std::getenv("PGCONNECT_TIMEOUT") == nullptr) {
    keys.push_back("connect_timeout");
    values.push_back("10");
  }
  keys.push_back("dbname");
  values.push_back(dsn.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  pg_conn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("out of memory connecting");
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq's message may quote the connection string (an invalid
    // percent-encoded token of a URI's password, a host name that is the
    // rest of a password with a stray "@"): every secret is masked.
    std::string msg(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
    // The server answered and refused: which refusal decides whether trying
    // again can help (too many connections, starting up) or not (no such
    // role or database: bad input). Not after a password was sent: a second
    // failed login could lock an account sooner (LDAP, PAM), and password
    // authentication does not say whether the role exists anyway.
    int64_t timeout_s = 0;
    if (!absl::SimpleAtoi(ConninfoValue(conn, "connect_timeout"), &timeout_s) || timeout_s <= 0) timeout_s = 10;
    const bool probe = absl::StrContains(msg, "FATAL:") && !PQconnectionUsedPassword(conn);
    PQfinish(conn);
    const std::string refusal = probe ? RefusalSqlState(keys.data(), values.data(), absl::Seconds(timeout_s)) : "";
    if (refusal == "28000" || refusal == "28P01" || refusal == "3D000") {
      return util::WithSqlState(
          absl::InvalidArgumentError(WithoutSecrets(
              absl::StrCat("cannot connect to ", Redact(dsn), ": ", msg,
                           " (the server refused the role, its password or the database: check --dsn, "
                           "PGSHIFT_DSN or the PG* environment); nothing was changed"),
              dsn)),
          refusal);
    }
    absl::Status s = StatusFromSqlState(
        refusal.empty() ? "08001" : refusal,
        WithoutSecrets(absl::StrCat("cannot connect to ", Redact(dsn), ": ", msg,
                                    " (check --dsn, PGSHIFT_DSN or the PG* environment)"),
                       dsn));
    return s;
  }
  PQsetNoticeProcessor(conn, IgnoreNotice, nullptr);
  return std::unique_ptr<Connection>(new Connection(conn));
}

absl::StatusOr<Result> Connection::Exec(absl::string_view sql, const Params& params) {
  std::string text(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
  pg_result* res = PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr,
                                values.data(), nullptr, nullptr, 0);
  Result result(res);
  absl::Status status = StatusFromResult(conn_, res);
  if (!status.ok()) return status;
  return result;
}

absl::Status Connection::Run(absl::string_view sql, const Params& params) {
  return Exec(sql, params).status();
}

absl::Status Connection::RunSimple(absl::string_view sql) {
  std::string text(sql);
  pg_result* res = PQexec(conn_, text.c_str());
  Result owned(res);
  return StatusFromResult(conn_, res);
}

absl::Status Connection::Check(absl::string_view sql) {
  std::string text(sql);
  pg_result* res = PQprepare(conn_, "", text.c_str(), 0, nullptr);
  Result owned(res);
  return StatusFromResult(conn_, res);
}

absl::StatusOr<std::vector<ColumnType>> Connection::Describe(absl::string_view sql) {
  std::string text(sql);
  pg_result* prepared = PQprepare(conn_, "", text.c_str(), 0, nullptr);
  Result owned_prepared(prepared);
  RETURN_IF_ERROR(StatusFromResult(conn_, prepared));
  pg_result* res = PQdescribePrepared(conn_, "");
  Result owned(res);
  RETURN_IF_ERROR(StatusFromResult(conn_, res));
  std::vector<ColumnType> out;
  for (int i = 0; i < PQnfields(res); ++i) {
    out.push_back(ColumnType{static_cast<uint32_t>(PQftype(res, i)), PQfmod(res, i)});
  }
  return out;
}

absl::Status Connection::Transaction(const std::function<absl::Status()>& body) {
  absl::Status s = Run("BEGIN");
  if (!s.ok()) return s;
  s = body();
  if (s.ok()) s = Run("COMMIT");
  if (!s.ok() && PQstatus(conn_) == CONNECTION_OK &&
      PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    (void)Run("ROLLBACK");
  }
  return s;
}

bool Connection::in_transaction() const { return PQtransactionStatus(conn_) != PQTRANS_IDLE; }

absl::Status Connection::RolledBack(const std::function<absl::Status()>& body) {
  const bool nested = in_transaction();
  absl::Status s = Run(nested ? "SAVEPOINT pgshift_scratch" : "BEGIN");
  if (!s.ok()) return s;
  s = body();
  absl::Status undone = Run(nested ? "ROLLBACK TO SAVEPOINT pgshift_scratch" : "ROLLBACK");
  if (nested && undone.ok()) undone = Run("RELEASE SAVEPOINT pgshift_scratch");
  return s.ok() ? undone : s;
}

bool Connection::Alive() {
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) return false;
  // Read while the socket has something (without waiting): the FATAL
  // message first, then the end of the stream, which makes the status bad.
  for (int reads = 0; reads < 8; ++reads) {
    pollfd p{PQsocket(conn_), POLLIN, 0};
    if (p.fd < 0 || poll(&p, 1, 0) <= 0) break;
    if (PQconsumeInput(conn_) == 0) return false;
  }
  return PQstatus(conn_) == CONNECTION_OK;
}

std::string Connection::conninfo(absl::string_view keyword) const {
  return ConninfoValue(conn_, keyword);
}

int Connection::backend_pid() const { return PQbackendPID(conn_); }
int Connection::server_version() const { return PQserverVersion(conn_); }
bool Connection::ok() const { return PQstatus(conn_) == CONNECTION_OK; }

void Connection::Cancel() {
  PGcancel* cancel = PQgetCancel(conn_);
  if (cancel == nullptr) return;
  char err[256];
  PQcancel(cancel, err, sizeof err);
  PQfreeCancel(cancel);
}

std::string Connection::Redact(const std::string& dsn) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (opts == nullptr) {
    if (err) PQfreemem(err);
    return "<unparsable connection string>";
  }
  std::vector<std::string> parts;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || o->val[0] == '\0') continue;
    if (IsSecret(*o)) {  // password, sslpassword
      parts.push_back(absl::StrCat(o->keyword, "=********"));
      continue;
    }
    parts.push_back(absl::StrCat(o->keyword, "=", o->val));
  }
  PQconninfoFree(opts);
  return parts.empty() ? "(default connection from the PG* environment)"
                       : WithoutSecrets(absl::StrJoin(parts, " "), dsn);
}

}  // namespace pg
}  // namespace pgshift
