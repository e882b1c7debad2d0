#include "tests/support/session.h"

#include <libpq-fe.h>

#include <stdexcept>

namespace pgshift::testing {
namespace {
PGconn* C(void* p) { return static_cast<PGconn*>(p); }
void Quiet(void*, const PGresult*) {}
}  // namespace

Session::Session(const std::string& dsn, const std::string& application_name) {
  const char* keys[] = {"dbname", application_name.empty() ? nullptr : "application_name", nullptr};
  const char* values[] = {dsn.c_str(), application_name.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (PQstatus(C(conn_)) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(C(conn_));
    PQfinish(C(conn_));
    conn_ = nullptr;
    throw std::runtime_error("Session: cannot connect: " + msg);
  }
  PQsetNoticeReceiver(C(conn_), Quiet, nullptr);
}

Session::~Session() {
  if (conn_ != nullptr) PQfinish(C(conn_));
}

int Session::pid() const { return PQbackendPID(C(conn_)); }

Rows Session::Exec(const std::string& sql) {
  if (!PQsendQuery(C(conn_), sql.c_str())) {
    throw std::runtime_error(std::string("Session: ") + PQerrorMessage(C(conn_)));
  }
  Rows rows;
  std::string error;
  while (PGresult* res = PQgetResult(C(conn_))) {
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK) {
      rows.clear();
      for (int i = 0; i < PQntuples(res); ++i) {
        Row row;
        for (int j = 0; j < PQnfields(res); ++j) {
          if (PQgetisnull(res, i, j)) {
            row.emplace_back(std::nullopt);
          } else {
            row.emplace_back(std::string(PQgetvalue(res, i, j)));
          }
        }
        rows.push_back(std::move(row));
      }
    } else if (st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY && error.empty()) {
      error = PQresultErrorMessage(res);
    }
    PQclear(res);
  }
  if (!error.empty()) throw std::runtime_error("Session: " + error + " while running: " + sql);
  return rows;
}

std::string Session::Value(const std::string& sql) {
  Rows rows = Exec(sql);
  if (rows.empty() || rows[0].empty()) return "";
  return rows[0][0].value_or("");
}

std::string Session::TryExec(const std::string& sql) {
  try {
    Exec(sql);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace pgshift::testing
