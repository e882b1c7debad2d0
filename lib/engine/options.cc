// pgshift/options.h: the option list every surface is built from, its text
// forms, and the rules every value must follow.
#include <unistd.h>

#include <functional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/pg/quote.h"
#include "lib/sql/sql.h"
#include "pgshift/options.h"

namespace pgshift {

namespace {

struct Entry {
  OptionInfo info;
  std::function<absl::Status(Options&, absl::string_view)> set;
  std::function<std::string(const Options&)> get;
  absl::Duration Options::*duration = nullptr;  // duration options: the field
  int64_t Options::*integer = nullptr;          // integer options: the field
};

std::string Who(const OptionInfo& o) { return absl::StrCat(o.name, " (--", o.flag, ")"); }

absl::Status NotA(const OptionInfo& o, absl::string_view value, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Who(o), ": \"", value, "\" is not ", what));
}

Entry Duration(const char* name, const char* flag, const char* help, absl::Duration Options::*field) {
  Entry e{{name, flag, "duration", help, {}}, nullptr, nullptr, field, nullptr};
  const OptionInfo info = e.info;
  e.set = [info, field](Options& o, absl::string_view v) {
    absl::Duration d;
    if (!absl::ParseDuration(v, &d)) return NotA(info, v, "a duration like 500ms, 1.5s or 2m");
    o.*field = d;
    return absl::OkStatus();
  };
  e.get = [field](const Options& o) { return absl::FormatDuration(o.*field); };
  return e;
}

Entry Integer(const char* name, const char* flag, const char* help, int64_t Options::*field) {
  Entry e{{name, flag, "integer", help, {}}, nullptr, nullptr, nullptr, field};
  const OptionInfo info = e.info;
  e.set = [info, field](Options& o, absl::string_view v) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(v, &n)) return NotA(info, v, "an integer");
    o.*field = n;
    return absl::OkStatus();
  };
  e.get = [field](const Options& o) { return std::to_string(o.*field); };
  return e;
}

Entry Text(const char* name, const char* flag, const char* help, std::string Options::*field) {
  Entry e{{name, flag, "text", help, {}}, nullptr, nullptr};
  e.set = [field](Options& o, absl::string_view v) {
    o.*field = std::string(v);
    return absl::OkStatus();
  };
  e.get = [field](const Options& o) { return o.*field; };
  return e;
}

Entry Bool(const char* name, const char* flag, const char* help, bool Options::*field) {
  Entry e{{name, flag, "bool", help, {}}, nullptr, nullptr};
  const OptionInfo info = e.info;
  e.set = [info, field](Options& o, absl::string_view v) {
    if (v == "true") {
      o.*field = true;
    } else if (v == "false") {
      o.*field = false;
    } else {
      return NotA(info, v, "true or false");
    }
    return absl::OkStatus();
  };
  e.get = [field](const Options& o) { return std::string(o.*field ? "true" : "false"); };
  return e;
}

// A ratio above 1, or "off" (stored as 0).
Entry Ratio(const char* name, const char* flag, const char* help, double Options::*field) {
  Entry e{{name, flag, "ratio", help, {}}, nullptr, nullptr};
  const OptionInfo info = e.info;
  e.set = [info, field](Options& o, absl::string_view v) {
    double x = 0;
    if (v == "off" || v == "0") {
      o.*field = 0;
      return absl::OkStatus();
    }
    if (!absl::SimpleAtod(v, &x) || !(x > 1) || x > 1000) {
      return NotA(info, v, "a ratio above 1 (e.g. 1.5) up to 1000, or off");
    }
    o.*field = x;
    return absl::OkStatus();
  };
  e.get = [field](const Options& o) {
    return o.*field == 0 ? std::string("off") : absl::StrCat(o.*field);
  };
  return e;
}

// An enum option: `names[i]` is the text of enum value i.
template <typename Enum>
Entry Choice(const char* name, const char* flag, const char* help, Enum Options::*field,
             std::vector<const char*> names) {
  Entry e{{name, flag, "choice", help, names}, nullptr, nullptr};
  const OptionInfo info = e.info;
  e.set = [info, field, names](Options& o, absl::string_view v) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (v == names[i]) {
        o.*field = static_cast<Enum>(i);
        return absl::OkStatus();
      }
    }
    return NotA(info, v, absl::StrCat("one of ", absl::StrJoin(names, ", ")));
  };
  e.get = [field, names](const Options& o) { return std::string(names[static_cast<size_t>(o.*field)]); };
  return e;
}

const std::vector<Entry>& Entries() {
  static const std::vector<Entry>* entries = new std::vector<Entry>{
      Text("control_schema", "control-schema", "schema of pgshift's tables (default pgshift)",
           &Options::control_schema),
      Text("driver_name", "driver-name",
           "name recorded as the driver in history and shown to a second driver (default host:pid)",
           &Options::driver_name),
      Duration("lock_timeout", "lock-timeout", "lock_timeout of each DDL transaction (default 1s)",
               &Options::lock_timeout),
      Duration("statement_timeout", "statement-timeout",
               "statement_timeout of short DDL and of each backfill batch (default 30s)",
               &Options::statement_timeout),
      Duration("long_statement_timeout", "long-statement-timeout",
               "statement_timeout of VALIDATE and index builds; 0 for none (default 0)",
               &Options::long_statement_timeout),
      Duration("retry_initial_backoff", "retry-initial-backoff",
               "first pause before retrying a lock not granted (default 200ms)",
               &Options::retry_initial_backoff),
      Duration("retry_max_backoff", "retry-max-backoff", "longest pause between retries (default 5s)",
               &Options::retry_max_backoff),
      Duration("retry_deadline", "retry-deadline", "give up taking a lock after this long (default 2m)",
               &Options::retry_deadline),
      Integer("backfill_batch_rows", "batch-rows", "initial backfill batch size, in rows (default 1000)",
              &Options::backfill_batch_rows),
      Duration("backfill_target_batch_time", "batch-time",
               "target duration of one backfill batch; the size adapts to it (default 100ms)",
               &Options::backfill_target_batch_time),
      Integer("backfill_min_batch_rows", "batch-min-rows", "smallest backfill batch (default 100)",
              &Options::backfill_min_batch_rows),
      Integer("backfill_max_batch_rows", "batch-max-rows", "largest backfill batch (default 100000)",
              &Options::backfill_max_batch_rows),
      Duration("backfill_lock_timeout", "batch-lock-timeout",
               "lock_timeout of a backfill batch; on timeout the batch is rolled back, halved and "
               "retried (default 200ms)",
               &Options::backfill_lock_timeout),
      Duration("backfill_batch_delay", "batch-delay", "pause between backfill batches (default 0)",
               &Options::backfill_batch_delay),
      Duration("max_replication_lag", "max-replication-lag",
               "pause the backfill while a standby lags more; 0 for off (default 10s)",
               &Options::max_replication_lag),
      Duration("backfill_poll_interval", "poll-interval",
               "how often a paused or throttled backfill looks again (default 1s)",
               &Options::backfill_poll_interval),
      Ratio("latency_guard", "latency-guard",
            "rest between backfill batches while they make a probe query this many times slower "
            "than at rest; off for full speed (default 1.5)",
            &Options::latency_guard),
      Text("throttle_query", "throttle-query",
           "SELECT returning a boolean; the backfill waits while it returns true (default none)",
           &Options::throttle_query),
      Integer("backfill_max_batches", "max-batches",
              "stop the backfill after this many batches, to resume later; 0 for no limit (default 0)",
              &Options::backfill_max_batches),
      Choice("backfill_walk", "backfill-walk",
             "walk the table by primary key or by ctid page ranges (auto: pages on PostgreSQL 14+)",
             &Options::backfill_walk, {"auto", "key", "pages"}),
      Choice("preflight", "preflight",
             "before a step taking ACCESS EXCLUSIVE, long transactions on the table are reported and: "
             "wait (default, up to the retry deadline), refuse (exit 4) or off",
             &Options::preflight, {"wait", "refuse", "off"}),
      Duration("long_transaction", "long-transaction",
               "what counts as a long transaction for the preflight (default 5s)",
               &Options::long_transaction),
      Bool("force_contract", "force",
           "advance to contracted although instances that declared the old shape are live "
           "(default false)",
           &Options::force_contract),
      Integer("max_locked_scan_rows", "max-locked-scan-rows",
              "refuse a scan or rewrite under ACCESS EXCLUSIVE of a table with more rows; negative "
              "for no limit (default 10000)",
              &Options::max_locked_scan_rows),
      Duration("lease_heartbeat", "lease-heartbeat",
               "how often the driver lease is refreshed on its connection (default 5s)",
               &Options::lease_heartbeat),
  };
  return *entries;
}

const Entry* Find(absl::string_view name) {
  for (const Entry& e : Entries()) {
    if (name == e.info.name) return &e;
  }
  return nullptr;
}

const OptionInfo& Info(absl::string_view name) { return Find(name)->info; }

std::string DefaultDriverName() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] ? host : "localhost", ":", getpid());
}

}  // namespace

const std::vector<OptionInfo>& OptionList() {
  static const std::vector<OptionInfo>* list = [] {
    auto* out = new std::vector<OptionInfo>;
    for (const Entry& e : Entries()) out->push_back(e.info);
    return out;
  }();
  return *list;
}

absl::Status SetOption(Options& options, absl::string_view name, absl::string_view value) {
  const Entry* e = Find(name);
  if (e == nullptr) {
    std::vector<std::string> names;
    for (const Entry& x : Entries()) names.push_back(x.info.name);
    return absl::InvalidArgumentError(absl::StrCat("unknown option \"", name, "\"; options are: ",
                                                   absl::StrJoin(names, ", ")));
  }
  return e->set(options, value);
}

absl::StatusOr<std::string> GetOption(const Options& options, absl::string_view name) {
  const Entry* e = Find(name);
  if (e == nullptr) return absl::NotFoundError(absl::StrCat("unknown option \"", name, "\""));
  return e->get(options);
}

absl::StatusOr<Options> SanitizeOptions(Options o) {
  // control_schema's default is in Options itself: an empty one was set
  // empty (e.g. --control-schema ''), and pgshift must not quietly use
  // another schema than the one asked for.
  if (o.control_schema.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Who(Info("control_schema")), ": the control schema is empty; give a schema name, or leave "
        "the option out for the default \"pgshift\""));
  }
  if (o.driver_name.empty()) o.driver_name = DefaultDriverName();
  absl::Status schema = pg::CheckIdentifier(o.control_schema, "the control schema");
  if (!schema.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(Who(Info("control_schema")), ": ", schema.message()));
  }
  auto bad = [](const char* name, absl::string_view rule, absl::string_view got) {
    return absl::InvalidArgumentError(absl::StrCat(Who(Info(name)), " must be ", rule, ", got ", got));
  };
  for (const char* name : {"lock_timeout", "backfill_target_batch_time", "backfill_lock_timeout",
                           "backfill_poll_interval", "lease_heartbeat"}) {
    const absl::Duration d = o.*(Find(name)->duration);
    if (d <= absl::ZeroDuration()) return bad(name, "positive", absl::FormatDuration(d));
  }
  // PostgreSQL's timeouts are int milliseconds: a longer one fails at the
  // server mid-step (SQLSTATE 22023), a shorter one than 1ms would be sent
  // as 0, which turns the timeout off. Every duration keeps to the same
  // ceiling, so that no pause, deadline or TTL is silently infinite.
  constexpr int64_t kMaxMs = 2147483647;
  for (const Entry& e : Entries()) {
    if (e.duration == nullptr) continue;
    const absl::Duration d = o.*e.duration;
    if (d < absl::ZeroDuration()) return bad(e.info.name, "zero or positive", absl::FormatDuration(d));
    if (d > absl::Milliseconds(kMaxMs)) {
      return bad(e.info.name, "at most 2147483647ms (24d20h31m23.647s, PostgreSQL's longest timeout)",
                 absl::FormatDuration(d));
    }
  }
  for (const char* name : {"lock_timeout", "statement_timeout", "long_statement_timeout",
                           "backfill_lock_timeout"}) {
    const absl::Duration d = o.*(Find(name)->duration);
    if (d > absl::ZeroDuration() && d < absl::Milliseconds(1)) {
      return bad(name, "at least 1ms (PostgreSQL counts it in milliseconds; 0 would turn it off)",
                 absl::FormatDuration(d));
    }
  }
  for (const char* name : {"backfill_batch_rows", "backfill_min_batch_rows", "backfill_max_batch_rows"}) {
    const int64_t n = o.*(Find(name)->integer);
    if (n < 1) return bad(name, "at least 1", std::to_string(n));
  }
  if (o.backfill_max_batches < 0) {
    return bad("backfill_max_batches", "zero or positive", std::to_string(o.backfill_max_batches));
  }
  if (o.latency_guard != 0 && !(o.latency_guard > 1 && o.latency_guard <= 1000)) {
    return bad("latency_guard", "above 1 and at most 1000, or 0 for off", absl::StrCat(o.latency_guard));
  }
  if (!o.throttle_query.empty()) {
    absl::Status q = sql::CheckReadQuery(o.throttle_query);
    if (!q.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(Who(Info("throttle_query")), ": ", q.message()));
    }
  }
  if (o.retry_max_backoff < o.retry_initial_backoff) {
    return bad("retry_max_backoff",
               absl::StrCat("at least ", Who(Info("retry_initial_backoff")), " (",
                            absl::FormatDuration(o.retry_initial_backoff), ")"),
               absl::FormatDuration(o.retry_max_backoff));
  }
  // The batch bounds and the initial size settle into min <= initial <= max.
  // A bound left at its default gives way to what was set; two set bounds
  // that contradict each other are an error.
  const Options defaults;
  if (o.backfill_min_batch_rows > o.backfill_max_batch_rows) {
    if (o.backfill_min_batch_rows != defaults.backfill_min_batch_rows) {
      return bad("backfill_min_batch_rows",
                 absl::StrCat("at most ", Who(Info("backfill_max_batch_rows")), " (",
                              o.backfill_max_batch_rows, ")"),
                 std::to_string(o.backfill_min_batch_rows));
    }
    o.backfill_min_batch_rows = o.backfill_max_batch_rows;
  }
  // A smaller initial size lowers the floor (small batches from the start).
  o.backfill_min_batch_rows = std::min(o.backfill_min_batch_rows, o.backfill_batch_rows);
  // A larger one raises a ceiling left at its default, or is capped by one
  // that was set.
  if (o.backfill_batch_rows > o.backfill_max_batch_rows) {
    if (o.backfill_max_batch_rows == defaults.backfill_max_batch_rows) {
      o.backfill_max_batch_rows = o.backfill_batch_rows;
    } else {
      o.backfill_batch_rows = o.backfill_max_batch_rows;
    }
  }
  return o;
}

}  // namespace pgshift
