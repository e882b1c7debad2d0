#include "lib/catalog/lint_catalog.h"

#include "lib/pg/quote.h"

namespace pgshift::catalog {

namespace {

// `sql`'s result, or nullopt when it fails (a type name that does not
// exist, ...). Inside a transaction the caller has open (a rehearsal) it
// runs in a savepoint, so that a failure does not end that transaction.
std::optional<pg::Result> Ask(pg::Connection& conn, const std::string& sql, const pg::Params& params) {
  if (!conn.in_transaction()) {
    absl::StatusOr<pg::Result> r = conn.Exec(sql, params);
    if (!r.ok()) return std::nullopt;
    return std::move(*r);
  }
  std::optional<pg::Result> out;
  absl::Status s = conn.RolledBack([&]() -> absl::Status {
    absl::StatusOr<pg::Result> r = conn.Exec(sql, params);
    if (!r.ok()) return r.status();
    out = std::move(*r);
    return absl::OkStatus();
  });
  if (!s.ok()) return std::nullopt;
  return out;
}

}  // namespace

std::optional<bool> ServerLintCatalog::TableExists(const std::string& schema, const std::string& table) {
  auto r = Ask(conn_, "SELECT to_regclass($1) IS NOT NULL", {pg::QuoteQualified(schema, table)});
  if (!r) return std::nullopt;
  return r->GetBool(0, 0);
}

std::optional<bool> ServerLintCatalog::IsVolatile(const std::vector<std::string>& functions) {
  bool any = false;
  for (const std::string& f : functions) {
    // "schema.name" or "name"; every overload of that name counts.
    const size_t dot = f.rfind('.');
    auto r = Ask(conn_,
        "SELECT count(*), coalesce(bool_or(p.provolatile = 'v'), false) FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = $1 "
        "AND ($2::text IS NULL OR n.nspname = $2)",
        {dot == std::string::npos ? f : f.substr(dot + 1),
         dot == std::string::npos ? std::nullopt : pg::Param(f.substr(0, dot))});
    if (!r || r->GetInt(0, 0) == 0) return std::nullopt;  // unknown function
    any = any || r->GetBool(0, 1);
  }
  return any;
}

std::optional<bool> ServerLintCatalog::TypeChangeRewrites(const std::string& schema,
                                                       const std::string& table,
                                                       const std::string& column,
                                                       const std::string& type, int typmod) {
  if (typmod == kUnknownTypmod) return std::nullopt;
  // regtype reads the type name and drops its modifiers, which the
  // linter computed (typmod).
  auto r = Ask(conn_,
      "SELECT a.atttypid = $3::regtype, a.atttypmod, t.typname, "
      "EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = a.atttypid "
      "AND c.casttarget = $3::regtype AND c.castmethod = 'b') "
      "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
      "WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
      {pg::QuoteQualified(schema, table), column, type});
  if (!r || r->rows() == 0) return std::nullopt;
  const bool same = r->GetBool(0, 0);
  const int old_typmod = static_cast<int>(r->GetInt(0, 1));
  const bool binary = r->GetBool(0, 3);
  if (same) {
    if (typmod == -1) return false;  // the modifier dropped: varchar(n) -> varchar
    if (old_typmod == -1) return true;  // a limit added: every row is checked
    if (r->Get(0, 2) == "numeric") {
      // (precision << 16 | scale) + 4: a larger precision with the same scale.
      const int old_scale = (old_typmod - 4) & 0xffff, scale = (typmod - 4) & 0xffff;
      return !(scale == old_scale && typmod >= old_typmod);
    }
    return typmod < old_typmod;  // varchar(n) -> varchar(m), m >= n
  }
  // A binary-coercible cast to a type without a limit (varchar -> text).
  return !(binary && typmod == -1);
}

}  // namespace pgshift::catalog
