#include "tests/support/writers.h"

#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace pgshift::testing {
namespace {

PGconn* AsConn(void* p) { return static_cast<PGconn*>(p); }

void QuietNotices(void*, const PGresult*) {}

}  // namespace

Writer::Writer(std::string dsn, std::string application_name, char tag, WriteShape shape,
               Oracle initial, int64_t first_new_id, uint64_t seed,
               const std::atomic<int>* generation)
    : dsn_(std::move(dsn)),
      application_name_(std::move(application_name)),
      tag_(tag),
      shape_(std::move(shape)),
      oracle_(std::move(initial)),
      next_id_(first_new_id),
      rng_(seed),
      generation_(generation) {
  for (const auto& [id, entry] : oracle_) keys_.push_back(id);
}

Writer::~Writer() {
  Stop();
  if (conn_ != nullptr) PQfinish(AsConn(conn_));
}

void Writer::Start() {
  if (running_.load()) return;
  if (conn_ == nullptr || PQstatus(AsConn(conn_)) != CONNECTION_OK) {
    if (conn_ != nullptr) PQfinish(AsConn(conn_));
    const char* keys[] = {"dbname", "application_name", nullptr};
    const char* values[] = {dsn_.c_str(), application_name_.c_str(), nullptr};
    PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    conn_ = c;
    if (PQstatus(c) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(c);
      throw std::runtime_error("writer " + application_name_ + " cannot connect: " + msg);
    }
    PQsetNoticeProcessor(c, nullptr, nullptr);
    PQsetNoticeReceiver(c, QuietNotices, nullptr);
  }
  stop_.store(false);
  running_.store(true);
  thread_ = std::thread([this] { Run(); });
}

void Writer::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  running_.store(false);
  cv_.notify_all();
}

bool Writer::WaitForMoreOps(int64_t n) {
  // Counts failed statements too, so that a writer whose every statement
  // fails cannot hang the test (the failures are in errors()).
  const int64_t target = attempts_.load() + n;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return attempts_.load() >= target || !running_.load(); });
  return attempts_.load() >= target;
}

std::vector<std::string> Writer::errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

void Writer::Run() {
  PGconn* c = AsConn(conn_);
  std::uniform_int_distribution<int> percent(0, 99);
  while (!stop_.load()) {
    const int generation = generation_ != nullptr ? generation_->load() : 0;
    int roll = percent(rng_);
    enum { kInsert, kUpdate, kDelete } kind;
    if (keys_.empty() || roll < shape_.insert_percent) {
      kind = kInsert;
    } else if (roll < shape_.insert_percent + shape_.delete_percent) {
      kind = kDelete;
    } else {
      kind = kUpdate;
    }
    size_t pick = 0;
    int64_t id;
    if (kind == kInsert) {
      id = next_id_;
    } else {
      pick = std::uniform_int_distribution<size_t>(0, keys_.size() - 1)(rng_);
      id = keys_[pick];
    }
    Values values;
    if (kind != kDelete) values = shape_.make(id, counter_++, generation);

    const std::string& sql = kind == kInsert   ? shape_.insert_sql
                             : kind == kUpdate ? shape_.update_sql
                                               : shape_.delete_sql;
    std::vector<std::string> storage;
    storage.push_back(std::to_string(id));
    std::vector<const char*> params;
    params.push_back(storage[0].c_str());
    for (const auto& v : values) params.push_back(v ? v->c_str() : nullptr);

    PGresult* res = PQexecParams(c, sql.c_str(), static_cast<int>(params.size()), nullptr,
                                 params.data(), nullptr, nullptr, 0);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    std::string affected = ok ? PQcmdTuples(res) : "";
    std::string error = ok ? "" : PQresultErrorMessage(res);
    const char* sqlstate = ok ? nullptr : PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (sqlstate != nullptr) error = std::string("[") + sqlstate + "] " + error;
    PQclear(res);

    if (ok && affected != "1") {
      ok = false;
      error = "statement affected " + affected + " rows, expected 1";
    }
    if (!ok) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        errors_.push_back(application_name_ + ": " + error + "  while running: " + sql +
                          " with id " + std::to_string(id) + " at generation " +
                          std::to_string(generation));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        attempts_.fetch_add(1);
      }
      cv_.notify_all();
      if (PQstatus(c) != CONNECTION_OK) break;
      // Keep writing: a real application would retry; the test fails on
      // errors() anyway, and stopping would hide later problems.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    // Committed (autocommit): record it.
    switch (kind) {
      case kInsert:
        ++next_id_;
        oracle_[id] = OracleEntry{tag_, values, generation};
        keys_.push_back(id);
        break;
      case kUpdate: {
        // Values the update does not write keep what the oracle had.
        Values merged = values;
        const Values& before = oracle_[id].values;
        for (size_t i = merged.size(); i < before.size(); ++i) merged.push_back(before[i]);
        oracle_[id] = OracleEntry{tag_, std::move(merged), generation};
        break;
      }
      case kDelete:
        oracle_.erase(id);
        keys_[pick] = keys_.back();
        keys_.pop_back();
        break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ops_.fetch_add(1);
      attempts_.fetch_add(1);
    }
    cv_.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.store(false);
  }
  cv_.notify_all();
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  out += "\"";
  return out;
}

std::string OracleJson(const std::vector<const Oracle*>& oracles,
                       const std::function<bool(const OracleEntry&)>& synced) {
  std::string out = "[";
  bool first = true;
  for (const Oracle* o : oracles) {
    for (const auto& [id, e] : *o) {
      if (!first) out += ",";
      first = false;
      out += "{\"id\":" + std::to_string(id) + ",\"w\":\"" + std::string(1, e.writer) +
             "\",\"g\":" + std::to_string(e.generation) + ",\"s\":" +
             (synced(e) ? "true" : "false") + ",\"v\":[";
      for (size_t i = 0; i < e.values.size(); ++i) {
        if (i) out += ",";
        out += e.values[i] ? JsonQuote(*e.values[i]) : "null";
      }
      out += "]}";
    }
  }
  out += "]";
  return out;
}

}  // namespace pgshift::testing
