#include "lib/ops/index_build.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/pg/quote.h"
#include "lib/sql/sql.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

std::string BuildName(const Names& names) { return names.helper("ix"); }

absl::StatusOr<std::string> IndexElement(const catalog::Table& t, const std::string& value,
                                         const std::string& field) {
  if (t.FindColumn(value) != nullptr) return pg::QuoteIdent(value);
  absl::StatusOr<sql::Expression> e = sql::Expression::Parse(value, field);
  if (!e.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", value, "\" is neither a column of ", t.Qualified(),
        " nor one SQL expression (", e.status().message(), ")"));
  }
  // A bare name: a column that does not exist.
  if (e->columns().size() == 1 &&
      (e->sql() == e->columns()[0] || e->sql() == pg::QuoteIdent(e->columns()[0]))) {
    const std::string& c = e->columns()[0];
    if (t.FindColumn(c) == nullptr) {
      return absl::NotFoundError(absl::StrCat(field, ": column \"", value, "\" does not exist in ",
                                              t.Qualified()));
    }
    return pg::QuoteIdent(c);
  }
  for (const std::string& c : e->columns()) {
    if (t.FindColumn(c) == nullptr) {
      return absl::NotFoundError(absl::StrCat(field, ": expression \"", value, "\" reads column \"", c,
                                              "\", which does not exist in ", t.Qualified()));
    }
  }
  return absl::StrCat("(", e->sql(), ")");
}

std::string CreateIndexSql(const IndexDefinition& def, const std::string& table,
                           const std::string& name, bool concurrently) {
  std::string out = absl::StrCat("CREATE ", def.unique ? "UNIQUE " : "", "INDEX ",
                                 concurrently ? "CONCURRENTLY " : "", name.empty() ? "" : pg::QuoteIdent(name),
                                 name.empty() ? "" : " ", "ON ", table);
  if (!def.method.empty()) absl::StrAppend(&out, " USING ", pg::QuoteIdent(def.method));
  absl::StrAppend(&out, " (", absl::StrJoin(def.elements, ", "), ")");
  if (!def.include.empty()) absl::StrAppend(&out, " INCLUDE (", absl::StrJoin(def.include, ", "), ")");
  if (!def.where.empty()) absl::StrAppend(&out, " WHERE (", def.where, ")");
  return out;
}

absl::Status DryRunIndex(pg::Connection& conn, const catalog::Table& t, const IndexDefinition& def,
                         const std::string& what) {
  absl::Status built = absl::OkStatus();
  RETURN_IF_ERROR(conn.RolledBack([&]() -> absl::Status {
    absl::Status made = conn.Run(absl::StrCat("CREATE TEMP TABLE pgshift_index_probe (LIKE ",
                                              t.Qualified(), ") ON COMMIT DROP"));
    if (made.ok()) {
      built = conn.Run(CreateIndexSql(def, "pg_temp.pgshift_index_probe", "", /*concurrently=*/false));
    }
    return absl::OkStatus();
  }));
  if (built.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": PostgreSQL refuses this index on ", t.Qualified(), ": ", built.message()));
}

Action DuplicatesAssert(const catalog::Table& t, const IndexDefinition& def, std::string what,
                        Guard skip_if) {
  const std::string key = absl::StrJoin(def.elements, ", ");
  const std::string pred = def.where.empty() ? "" : absl::StrCat("(", def.where, ")");
  const std::string where = absl::StrCat(
      "(", key, ") IN (SELECT ", key, " FROM ", t.Qualified(), pred.empty() ? "" : " WHERE ", pred,
      " GROUP BY ", key, " HAVING count(*) > 1)", pred.empty() ? "" : " AND ", pred);
  Action a = Assert(t, absl::StrCat("check that no two rows share a key of ", what), where,
                    absl::StrCat("rows whose (", key, ") is not unique, so ", what,
                                 " cannot be built; remove the duplicates, then advance again"),
                    std::move(skip_if));
  // The duplicated values themselves.
  a.assert_spec.sample = def.elements.size() == 1 ? absl::StrCat("(", key, ")::text")
                                                  : absl::StrCat("ROW(", key, ")::text");
  a.assert_spec.sample_label = "duplicated key";
  return a;
}

Action DropIndexConcurrently(const catalog::Table& t, std::string description,
                             const std::string& name, Guard done_if) {
  Action a;
  a.kind = Action::Kind::kConcurrently;
  a.description = std::move(description);
  a.locks = {{t.Qualified(), pg::LockMode::kShareUpdateExclusive}};
  a.statements = {absl::StrCat("DROP INDEX CONCURRENTLY IF EXISTS ", pg::QuoteQualified(t.schema, name))};
  a.done_if = std::move(done_if);
  return a;
}

Guard IndexOurs(const std::string& schema, const std::string& name, const Names& names) {
  return Guard::Of({absl::StrCat("index \"", name, "\" exists and is pgshift's"),
                    "SELECT coalesce((SELECT obj_description(c.oid, 'pg_class') = $3 FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 "
                    "AND c.relkind IN ('i', 'I')), false)",
                    {schema, name, names.owner_comment()},
                    absl::StrCat("index \"", name, "\" is gone or not pgshift's")});
}

Guard RelationMissing(const std::string& schema, const std::string& name) {
  return Guard::Not(Guard::Of({absl::StrCat("\"", name, "\" exists"),
                               "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)",
                               {schema, name}, absl::StrCat("\"", name, "\" is gone")}));
}

absl::StatusOr<std::string> DescribeRelation(pg::Connection& conn, const std::string& schema,
                                             const std::string& name) {
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn.Exec("SELECT CASE c.relkind WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' WHEN 'r' THEN 'table' "
                "WHEN 'p' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' "
                "WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' ELSE 'relation' END "
                "|| ' ' || quote_ident(c.relname) || coalesce(' of table ' || i.indrelid::regclass::text, '') "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_index i ON i.indexrelid = c.oid WHERE n.nspname = $1 AND c.relname = $2",
                {schema, name}));
  return r.rows() == 0 ? std::string() : r.Get(0, 0);
}

absl::StatusOr<bool> IsOurIndex(pg::Connection& conn, const std::string& schema, const std::string& name,
                                const Names& names) {
  const Guard g = IndexOurs(schema, name, names);
  ASSIGN_OR_RETURN(pg::Result r, conn.Exec(g.probe().sql, g.probe().params));
  return r.GetBool(0, 0);
}

}  // namespace pgshift::ops
