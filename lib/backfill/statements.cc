#include "lib/backfill/statements.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/pg/quote.h"

namespace pgshift::backfill {

namespace {

std::string KeyList(const std::vector<std::string>& key) {
  std::vector<std::string> q;
  for (const auto& k : key) q.push_back(pg::QuoteIdent(k));
  return absl::StrCat("(", absl::StrJoin(q, ", "), ")");
}

// ($1::int, $2::text) with parameters numbered from `first`.
std::string KeyParams(const std::vector<std::string>& types, int first) {
  std::vector<std::string> q;
  for (size_t i = 0; i < types.size(); ++i) {
    q.push_back(absl::StrCat("$", first + static_cast<int>(i), "::", types[i]));
  }
  return absl::StrCat("(", absl::StrJoin(q, ", "), ")");
}

Updates KeyUpdates(const ops::BackfillSpec& b, const std::string& set) {
  const std::string keys = KeyList(b.key);
  const int n = static_cast<int>(b.key.size());
  const std::string after_last = absl::StrCat(keys, " > ", KeyParams(b.key_types, 1));
  const std::string needs = absl::StrCat("(", b.needs_work, ")");
  const std::string update = absl::StrCat("UPDATE ", b.table, " SET ", set, " WHERE ");
  Updates u;
  u.first = absl::StrCat(update, keys, " <= ", KeyParams(b.key_types, 1), " AND ", needs);
  u.next = absl::StrCat(update, after_last, " AND ", keys, " <= ", KeyParams(b.key_types, n + 1),
                        " AND ", needs);
  // Counted in the same statement (same snapshot) as the update.
  u.first_last = absl::StrCat("WITH u AS (", update, needs,
                              " RETURNING 1) SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ",
                              b.table, ")");
  u.last = absl::StrCat("WITH u AS (", update, after_last, " AND ", needs,
                        " RETURNING 1) SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ",
                        b.table, " WHERE ", after_last, ")");
  return u;
}

Updates PageUpdates(const ops::BackfillSpec& b, const std::string& set) {
  Updates u;
  u.next = absl::StrCat("UPDATE ", b.table, " SET ", set,
                        " WHERE ctid >= $1::tid AND ctid < $2::tid AND (", b.needs_work, ")");
  return u;
}

}  // namespace

bool WalksByPages(const ops::BackfillSpec& spec, const Options& options, int server_version) {
  return spec.key.empty() || options.backfill_walk == BackfillWalk::kPages ||
         (options.backfill_walk == BackfillWalk::kAuto && server_version >= 140000);
}

Statements BuildStatements(const ops::BackfillSpec& b, bool by_pages, int server_version) {
  Statements s;
  s.by_pages = by_pages || b.key.empty();
  // synchronous_commit off: a batch's commit does not wait for its WAL to be
  // flushed, so its row locks are released sooner. Nothing can be lost: the
  // batch and its checkpoint commit together, a crash before the flush
  // takes both back and the backfill redoes them, and any later durable
  // commit (an application's write, the step's phase record) flushes the
  // WAL up to it first. Not with a synchronous standby: there waiting for
  // it is the backfill's backpressure, or it would run ahead of the
  // standby and the applications' commits would queue behind its WAL.
  s.settings =
      "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true), "
      "set_config('pgshift.backfill', $3, true), set_config('row_security', 'off', true), "
      "set_config('synchronous_commit', CASE current_setting('synchronous_standby_names') WHEN '' "
      "THEN 'off' ELSE current_setting('synchronous_commit') END, true)";
  if (s.by_pages) {
    s.lock = absl::StrCat("LOCK TABLE ", b.table, " IN ROW EXCLUSIVE MODE");
    // Before 14 a ctid range is a sequential scan with a filter: it returns
    // every row of the table, so its count says nothing about the range.
    s.counts_rows = server_version >= 140000;
    s.position = absl::StrCat(
        "SELECT pg_relation_filenode($1::regclass)::text, "
        "pg_relation_size($1::regclass) / current_setting('block_size')::bigint",
        s.counts_rows ? ", pg_stat_get_xact_tuples_returned($1::regclass)" : "");
    if (s.counts_rows) s.rows_seen = "SELECT pg_stat_get_xact_tuples_returned($1::regclass)";
    s.plain = PageUpdates(b, b.set_clause);
    if (!b.fallback_set_clause.empty()) s.fallback = PageUpdates(b, b.fallback_set_clause);
    return s;
  }
  std::vector<std::string> casts, order;
  for (size_t i = 0; i < b.key.size(); ++i) {
    // Aliased: ORDER BY must see the typed key, not its text.
    casts.push_back(absl::StrCat(pg::QuoteIdent(b.key[i]), "::text AS pgshift_k", i));
    order.push_back(absl::StrCat(b.table, ".", pg::QuoteIdent(b.key[i])));
  }
  const std::string select = absl::StrCat("SELECT ", absl::StrJoin(casts, ", "), " FROM ", b.table);
  const std::string order_by = absl::StrCat(" ORDER BY ", absl::StrJoin(order, ", "));
  const int n = static_cast<int>(b.key.size());
  s.first_end = absl::StrCat(select, order_by, " OFFSET $1::bigint LIMIT 1");
  s.next_end = absl::StrCat(select, " WHERE ", KeyList(b.key), " > ", KeyParams(b.key_types, 1),
                            order_by, " OFFSET $", n + 1, "::bigint LIMIT 1");
  s.plain = KeyUpdates(b, b.set_clause);
  if (!b.fallback_set_clause.empty()) s.fallback = KeyUpdates(b, b.fallback_set_clause);
  return s;
}

std::vector<Statements::Shown> Statements::All() const {
  std::vector<Shown> out;
  out.push_back({settings, "every batch, in its own transaction, first ($3: the operation's prefix, "
                           "which only its own sync trigger skips)"});
  if (by_pages) {
    out.push_back({lock, "every batch (walking ctid page ranges)"});
    out.push_back({position, counts_rows ? "every batch: where the walk stands (a rewritten table "
                                           "restarts it) and the rows scanned so far"
                                         : "every batch: where the walk stands (a rewritten table "
                                           "restarts it)"});
    out.push_back({plain.next, "every batch: the rows of its page range still to do"});
    if (!fallback.next.empty()) {
      out.push_back({fallback.next, "instead, for a batch in which the plain expression raised"});
    }
    if (counts_rows) {
      out.push_back({rows_seen, "every batch, after its UPDATE: the rows its page range holds "
                                "(counted by the scan, for progress)"});
    }
    return out;
  }
  out.push_back({first_end, "first batch: its end key (walking the primary key)"});
  out.push_back({plain.first, "first batch"});
  out.push_back({next_end, "later batches: their end key"});
  out.push_back({plain.next, "later batches"});
  out.push_back({plain.first_last, "when the whole table fits in the first batch"});
  out.push_back({plain.last, "last batch: the rest of the table, counted"});
  if (!fallback.next.empty()) {
    for (const std::string* f : {&fallback.first, &fallback.next, &fallback.first_last, &fallback.last}) {
      out.push_back({*f, "instead of the same form above, for a batch in which the plain expression raised"});
    }
  }
  return out;
}

}  // namespace pgshift::backfill
