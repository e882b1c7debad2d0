// The SQL linter's questions (lib/sql/lint.h), answered by the live
// catalog: does a table exist, is a function volatile, does a type change
// rewrite the table. An error (a type that does not exist, ...) answers
// "cannot tell", and the linter then assumes the worst.
#ifndef PGSHIFT_LIB_CATALOG_LINT_CATALOG_H_
#define PGSHIFT_LIB_CATALOG_LINT_CATALOG_H_

#include <optional>
#include <string>
#include <vector>

#include "lib/pg/connection.h"
#include "lib/sql/lint.h"

namespace pgshift::catalog {

class ServerLintCatalog : public sql::LintCatalog {
 public:
  explicit ServerLintCatalog(pg::Connection& conn) : conn_(conn) {}

  std::optional<bool> TableExists(const std::string& schema, const std::string& table) override;
  std::optional<bool> IsVolatile(const std::vector<std::string>& functions) override;
  std::optional<bool> TypeChangeRewrites(const std::string& schema, const std::string& table,
                                         const std::string& column, const std::string& type,
                                         int typmod) override;

 private:
  pg::Connection& conn_;
};

}  // namespace pgshift::catalog

#endif  // PGSHIFT_LIB_CATALOG_LINT_CATALOG_H_
