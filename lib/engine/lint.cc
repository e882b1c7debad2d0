#include "lib/engine/lint.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/catalog/lint_catalog.h"
#include "lib/spec/sql_migration.h"
#include "lib/sql/lint.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift {

namespace engine {

absl::StatusOr<LintReport> Lint(pg::Connection* conn, absl::string_view sql, absl::string_view origin,
                                const LintOptions& options) {
  sql::NoCatalog none;
  std::optional<catalog::ServerLintCatalog> server;
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

absl::StatusOr<v1::Migration> ConvertSql(absl::string_view sql, absl::string_view origin,
                                         const std::string& name) {
  sql::NoCatalog none;
  return ConvertSqlMigration(sql, origin, name, none);
}

}  // namespace pgshift
