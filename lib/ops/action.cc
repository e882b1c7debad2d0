#include "lib/ops/action.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/pg/quote.h"

namespace pgshift::ops {

Guard Guard::Of(Probe probe) {
  Guard g;
  g.op_ = Op::kProbe;
  g.probe_ = std::make_shared<const Probe>(std::move(probe));
  return g;
}

Guard Guard::Not(Guard guard) {
  Guard g;
  g.op_ = Op::kNot;
  g.children_.push_back(std::move(guard));
  return g;
}

Guard Guard::All(std::vector<Guard> guards) {
  Guard g;
  g.op_ = Op::kAll;
  g.children_ = std::move(guards);
  return g;
}

Guard Guard::Any(std::vector<Guard> guards) {
  Guard g;
  g.op_ = Op::kAny;
  g.children_ = std::move(guards);
  return g;
}

std::string Guard::Describe() const {
  auto join = [this](absl::string_view sep) {
    std::vector<std::string> parts;
    for (const Guard& c : children_) {
      parts.push_back(c.op_ == Op::kAll || c.op_ == Op::kAny ? absl::StrCat("(", c.Describe(), ")")
                                                             : c.Describe());
    }
    return absl::StrJoin(parts, sep);
  };
  switch (op_) {
    case Op::kNever:
      return "never";
    case Op::kProbe:
      return probe_->description;
    case Op::kNot: {
      const Guard& c = children_.front();
      if (c.op_ == Op::kProbe && !c.probe_->negation.empty()) return c.probe_->negation;
      return absl::StrCat("not ", c.op_ == Op::kProbe ? c.Describe() : absl::StrCat("(", c.Describe(), ")"));
    }
    case Op::kAll:
      return join(" and ");
    case Op::kAny:
      return join(" or ");
  }
  return "";
}

const char AssertSpec::kSettingsSql[] = "SELECT set_config('row_security', 'off', true)";

std::string AssertSpec::CountSql() const {
  return absl::StrCat("SELECT count(*) FROM ", table, " WHERE ", where);
}

std::string AssertSpec::SampleSql() const {
  if (!sample.empty()) {
    return absl::StrCat("SELECT DISTINCT ", sample, " FROM ", table, " WHERE ", where, " LIMIT 5");
  }
  std::vector<std::string> quoted;
  for (const auto& k : key) quoted.push_back(pg::QuoteIdent(k));
  std::string shown = key.empty()        ? "ctid::text"
                      : key.size() == 1 ? absl::StrCat(quoted[0], "::text")
                                        : absl::StrCat("(", absl::StrJoin(quoted, ", "), ")::text");
  return absl::StrCat("SELECT ", shown, " FROM ", table, " WHERE ", where, " LIMIT 5");
}

const std::string& Action::table() const {
  static const std::string kNone;
  return locks.empty() ? kNone : locks.front().table;
}

pg::LockMode Action::strongest_lock() const {
  pg::LockMode m = pg::LockMode::kNone;
  for (const TableLock& l : locks) m = std::max(m, l.mode);
  return m;
}

Action Transaction(const catalog::Table& t, std::string description, std::vector<std::string> sql,
                   pg::LockMode mode, Guard done_if) {
  Action a;
  a.kind = Action::Kind::kTransaction;
  a.description = std::move(description);
  a.locks = {{t.Qualified(), mode}};
  a.statements = std::move(sql);
  a.done_if = std::move(done_if);
  return a;
}

Action CatalogOnly(std::string description, std::vector<std::string> sql, Guard done_if) {
  Action a;
  a.kind = Action::Kind::kTransaction;
  a.description = std::move(description);
  a.statements = std::move(sql);
  a.done_if = std::move(done_if);
  return a;
}

Action LongTransaction(const catalog::Table& t, std::string description,
                       std::vector<std::string> sql, pg::LockMode mode, Guard done_if) {
  Action a = Transaction(t, std::move(description), std::move(sql), mode, std::move(done_if));
  a.long_running = true;
  a.scans_table = true;
  return a;
}

Action BuildIndex(const catalog::Table& t, std::string description, std::string create_sql,
                  const std::string& name) {
  Action a;
  a.kind = Action::Kind::kConcurrently;
  a.description = std::move(description);
  a.locks = {{t.Qualified(), pg::LockMode::kShareUpdateExclusive}};
  a.statements = {std::move(create_sql)};
  a.index_schema = t.schema;
  a.index_name = name;
  a.drop_invalid =
      absl::StrCat("DROP INDEX CONCURRENTLY IF EXISTS ", pg::QuoteQualified(t.schema, name));
  a.scans_table = true;
  a.long_running = true;
  return a;
}

BackfillSpec BackfillOf(const catalog::Table& t, std::string set_clause, std::string needs_work) {
  BackfillSpec b;
  b.table = t.Qualified();
  b.key = t.primary_key;
  for (const auto& k : b.key) {
    const catalog::Column* c = t.FindColumn(k);
    b.key_types.push_back(c != nullptr ? c->type : "text");
  }
  b.set_clause = std::move(set_clause);
  b.needs_work = std::move(needs_work);
  return b;
}

Action Backfill(const catalog::Table& t, std::string description, BackfillSpec spec) {
  Action a;
  a.kind = Action::Kind::kBackfill;
  a.description = std::move(description);
  a.locks = {{t.Qualified(), pg::LockMode::kRowExclusive}};
  a.scans_table = true;
  a.long_running = true;
  a.backfill = std::move(spec);
  return a;
}

Action Assert(const catalog::Table& t, std::string description, std::string where,
              std::string failure, Guard skip_if) {
  Action a;
  a.kind = Action::Kind::kAssert;
  a.description = std::move(description);
  a.locks = {{t.Qualified(), pg::LockMode::kAccessShare}};
  a.scans_table = true;
  a.done_if = std::move(skip_if);
  a.assert_spec.table = t.Qualified();
  a.assert_spec.key = t.primary_key;
  a.assert_spec.where = std::move(where);
  a.assert_spec.failure = std::move(failure);
  return a;
}

void AddColumnHazard(Action& a, const catalog::Table& t, absl::string_view column) {
  a.hazards.push_back(absl::StrCat(
      "applications holding a server-side prepared statement that reads every column of ",
      t.Qualified(), " (SELECT *) get \"cached plan must not change result type\" once after ",
      column, " is added, and must prepare it again (PostgreSQL's rule for any ADD COLUMN)"));
}

}  // namespace pgshift::ops
