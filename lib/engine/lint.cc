#include "lib/engine/lint.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/pg/quote.h"
#include "lib/sql/lint.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift {

namespace engine {
namespace {

// The linter's questions, answered by the server. An error (a type that
// does not exist, ...) answers "cannot tell": the linter assumes the worst.
class ServerCatalog : public sql::LintCatalog {
 public:
  explicit ServerCatalog(pg::Connection& conn) : conn_(conn) {}

  std::optional<bool> TableExists(const std::string& schema, const std::string& table) override {
    auto r = conn_.Exec("SELECT to_regclass($1) IS NOT NULL", {pg::QuoteQualified(schema, table)});
    if (!r.ok()) return std::nullopt;
    return r->GetBool(0, 0);
  }

  std::optional<bool> IsVolatile(const std::vector<std::string>& functions) override {
    bool any = false;
    for (const std::string& f : functions) {
      // "schema.name" or "name"; every overload of that name counts.
      const size_t dot = f.rfind('.');
      auto r = conn_.Exec(
          "SELECT count(*), coalesce(bool_or(p.provolatile = 'v'), false) FROM pg_proc p "
          "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = $1 "
          "AND ($2::text IS NULL OR n.nspname = $2)",
          {dot == std::string::npos ? f : f.substr(dot + 1),
           dot == std::string::npos ? std::nullopt : pg::Param(f.substr(0, dot))});
      if (!r.ok() || r->GetInt(0, 0) == 0) return std::nullopt;  // unknown function
      any = any || r->GetBool(0, 1);
    }
    return any;
  }

  std::optional<bool> TypeChangeRewrites(const std::string& schema, const std::string& table,
                                         const std::string& column, const std::string& type,
                                         int typmod) override {
    if (typmod == kUnknownTypmod) return std::nullopt;
    // regtype reads the type name and drops its modifiers, which the
    // linter computed (typmod).
    auto r = conn_.Exec(
        "SELECT a.atttypid = $3::regtype, a.atttypmod, t.typname, "
        "EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = a.atttypid "
        "AND c.casttarget = $3::regtype AND c.castmethod = 'b') "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
        {pg::QuoteQualified(schema, table), column, type});
    if (!r.ok() || r->rows() == 0) return std::nullopt;
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

 private:
  pg::Connection& conn_;
};

}  // namespace

absl::StatusOr<LintReport> Lint(pg::Connection* conn, absl::string_view sql, absl::string_view origin,
                                const LintOptions& options) {
  sql::NoCatalog none;
  std::optional<ServerCatalog> server;
  if (conn != nullptr) server.emplace(*conn);
  sql::LintCatalog& catalog = server ? static_cast<sql::LintCatalog&>(*server) : none;
  absl::StatusOr<std::vector<sql::LintedStatement>> linted =
      sql::Lint(sql, options.schema, options.other_runner, catalog);
  if (!linted.ok()) return util::Annotate(linted.status(), origin);
  LintReport report;
  report.origin = std::string(origin);
  for (sql::LintedStatement& l : *linted) {
    LintedStatement s;
    s.sql = std::move(l.sql);
    s.line = l.line;
    s.statement = std::move(l.statement);
    s.verdict = std::move(l.verdict);
    s.lock = std::move(l.lock);
    s.tables = std::move(l.tables);
    s.scans_table = l.scans_table;
    s.rewrites_table = l.rewrites_table;
    for (sql::LintFinding& f : l.findings) {
      s.findings.push_back(LintFinding{std::move(f.rule), std::move(f.level), std::move(f.message)});
    }
    s.operation_json = std::move(l.operation_json);
    s.instead = std::move(l.instead);
    s.assumed = l.assumed;
    report.unsafe = report.unsafe || s.verdict == "convert" || s.verdict == "refuse";
    report.statements.push_back(std::move(s));
  }
  return report;
}

}  // namespace engine

absl::StatusOr<LintReport> LintSql(absl::string_view sql, absl::string_view origin,
                                   const LintOptions& options) {
  return engine::Lint(nullptr, sql, origin, options);
}

}  // namespace pgshift
