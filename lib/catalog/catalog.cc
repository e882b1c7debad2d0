#include "lib/catalog/catalog.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "lib/pg/quote.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift::catalog {

namespace {

std::vector<int> ParseIntArray(std::string text) {
  // "{1,2}" (int2[]::text) or "1 2" (int2vector::text)
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, absl::ByAnyChar("{}, "), absl::SkipEmpty())) {
    int v = 0;
    if (absl::SimpleAtoi(part, &v)) out.push_back(v);
  }
  return out;
}

// The type at the bottom of a chain of domains over type `t` (an SQL
// expression over a column or parameter giving a type OID), as a scalar
// subquery: domains over domains are followed to their base type.
std::string BaseTypeOf(absl::string_view t) {
  return absl::StrCat(
      "(WITH RECURSIVE chain(typ, depth) AS (SELECT ", t, "::oid, 0 UNION ALL "
      "SELECT ty.typbasetype, c.depth + 1 FROM chain c JOIN pg_type ty ON ty.oid = c.typ "
      "WHERE ty.typtype = 'd') SELECT typ FROM chain ORDER BY depth DESC LIMIT 1)");
}
const std::string kBaseTypeSql = BaseTypeOf("a.atttypid");

// Built-in types (their OIDs are fixed across PostgreSQL versions) whose
// equality holds only for identical values: bool, "char", name, int8, int2,
// int4, oid, bytea, date, time, timestamp, timestamptz, uuid; text and
// varchar too under a deterministic collation.
bool ExactEquality(uint32_t base_type, bool deterministic_collation) {
  switch (base_type) {
    case 16: case 18: case 19: case 20: case 21: case 23: case 26: case 17:
    case 1082: case 1083: case 1114: case 1184: case 2950:
      return true;
    case 25: case 1043:
      return deterministic_collation;
    default:
      return false;
  }
}

}  // namespace

bool Index::Uses(int attnum) const {
  return std::find(attnums.begin(), attnums.end(), attnum) != attnums.end();
}

bool Constraint::Uses(int attnum) const {
  return std::find(attnums.begin(), attnums.end(), attnum) != attnums.end();
}

const Column* Table::FindColumn(const std::string& name) const {
  for (const Column& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string Table::Qualified() const { return pg::QuoteQualified(schema, name); }

absl::StatusOr<Table> LoadTable(pg::Connection& conn, const std::string& schema,
                                const std::string& table) {
  ASSIGN_OR_RETURN(pg::Result ns, conn.Exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", {schema}));
  if (ns.rows() == 0) {
    return absl::NotFoundError(absl::StrCat("schema \"", schema, "\" does not exist"));
  }
  ASSIGN_OR_RETURN(
      pg::Result rel,
      conn.Exec("SELECT c.oid, c.relkind, greatest(c.reltuples, 0)::bigint "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = $1 AND c.relname = $2",
                {schema, table}));
  if (rel.rows() == 0) {
    return absl::NotFoundError(absl::StrCat("table \"", table, "\" does not exist in schema \"",
                                            schema, "\""));
  }
  Table t;
  t.oid = static_cast<uint32_t>(rel.GetInt(0, 0));
  t.schema = schema;
  t.name = table;
  t.relkind = rel.Get(0, 1)[0];
  t.row_estimate = rel.GetInt(0, 2);
  if (t.relkind == 'p') {
    return absl::InvalidArgumentError(absl::StrCat(
        t.Qualified(), " is a partitioned table; pgshift refuses it: its rows live in its "
        "partitions, and the trigger, backfill and checks of a migration are built for one ordinary "
        "table (a trigger on the partitioned table is cloned to every partition, ADD and DROP "
        "COLUMN recurse to all of them). Change it by hand"));
  }
  if (t.relkind != 'r') {
    const char* what = "not an ordinary table";
    switch (t.relkind) {
      case 'v': what = "a view"; break;
      case 'm': what = "a materialized view"; break;
      case 'f': what = "a foreign table"; break;
      case 'S': what = "a sequence"; break;
      case 'i': case 'I': what = "an index"; break;
      case 'c': what = "a composite type"; break;
      default: break;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        t.Qualified(), " is ", what, " (relkind '", rel.Get(0, 1),
        "'); pgshift changes ordinary tables only: name the table that holds the rows"));
  }
  std::string oid = std::to_string(t.oid);
  ASSIGN_OR_RETURN(
      pg::Result cols,
      conn.Exec(absl::StrCat(
                "SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), "
                "CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation "
                "  THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END, "
                "a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, "
                "a.attgenerated::text, col_description(a.attrelid, a.attnum), "
                "quote_ident(tn.nspname) || '.' || quote_ident(t.typname), ",
                kBaseTypeSql, ", coalesce(co.collisdeterministic, true), "
                "coalesce((SELECT string_agg(x.privilege_type || ':' || CASE WHEN x.grantee = 0 "
                "  THEN 'PUBLIC' ELSE quote_ident(r.rolname) END || ':' || x.is_grantable, ',') "
                "  FROM aclexplode(a.attacl) x LEFT JOIN pg_roles r ON r.oid = x.grantee), ''), "
                "a.attstattarget, "
                "CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text ELSE '' END, ",
                // attcompression exists from PostgreSQL 14 on.
                conn.server_version() >= 140000 ? "a.attcompression::text" : "''::text",
                ", coalesce(array_to_string(a.attoptions, ','), '') "
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "JOIN pg_namespace tn ON tn.oid = t.typnamespace "
                "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
                "LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace "
                "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum"),
                {oid}));
  for (int r = 0; r < cols.rows(); ++r) {
    Column c;
    c.attnum = static_cast<int>(cols.GetInt(r, 0));
    c.name = cols.Get(r, 1);
    c.type = cols.Get(r, 2);
    c.collation = cols.Get(r, 3);
    c.not_null = cols.GetBool(r, 4);
    c.default_expr = cols.GetOpt(r, 5);
    std::string ident = cols.Get(r, 6), gen = cols.Get(r, 7);
    c.identity = ident.empty() ? '\0' : ident[0];
    c.generated = gen.empty() ? '\0' : gen[0];
    c.comment = cols.GetOpt(r, 8);
    c.raw_type = cols.Get(r, 9);
    c.exact_equality = ExactEquality(static_cast<uint32_t>(cols.GetInt(r, 10)), cols.GetBool(r, 11));
    for (absl::string_view g : absl::StrSplit(cols.Get(r, 12), ',', absl::SkipEmpty())) {
      c.grants.emplace_back(g);
    }
    c.stats_target = static_cast<int>(cols.GetInt(r, 13));
    const std::string storage = cols.Get(r, 14), compression = cols.Get(r, 15);
    c.storage = storage.empty() ? '\0' : storage[0];
    c.compression = compression.empty() ? '\0' : compression[0];
    for (absl::string_view o : absl::StrSplit(cols.Get(r, 16), ',', absl::SkipEmpty())) {
      c.options.emplace_back(o);
    }
    t.columns.push_back(std::move(c));
  }
  ASSIGN_OR_RETURN(
      pg::Result pk,
      conn.Exec("SELECT a.attname FROM pg_constraint con, "
                "unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = k.attnum "
                "WHERE con.conrelid = $1 AND con.contype = 'p' ORDER BY k.ord",
                {oid}));
  for (int r = 0; r < pk.rows(); ++r) t.primary_key.push_back(pk.Get(r, 0));
  ASSIGN_OR_RETURN(
      pg::Result idx,
      conn.Exec("SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisunique, "
                "i.indisprimary, i.indisreplident, "
                // Key columns (indkey; an index backing a constraint depends
                // on the constraint, not on its columns) and the columns its
                // expressions and predicate use (pg_depend).
                "ARRAY(SELECT DISTINCT k FROM (SELECT unnest(i.indkey::int2[])::int AS k UNION ALL "
                "      SELECT d.refobjsubid FROM pg_depend d "
                "      WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid "
                "        AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid) u "
                "      WHERE k > 0 ORDER BY k)::text, "
                "coalesce(con.conname, ''), coalesce(con.contype::text, '') "
                "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
                "LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid "
                "  AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x') "
                "WHERE i.indrelid = $1 ORDER BY ic.relname",
                {oid}));
  for (int r = 0; r < idx.rows(); ++r) {
    Index ix;
    ix.name = idx.Get(r, 0);
    ix.def = idx.Get(r, 1);
    ix.valid = idx.GetBool(r, 2);
    ix.unique = idx.GetBool(r, 3);
    ix.primary = idx.GetBool(r, 4);
    ix.replica_identity = idx.GetBool(r, 5);
    ix.attnums = ParseIntArray(idx.Get(r, 6));
    ix.constraint = idx.Get(r, 7);
    std::string ct = idx.Get(r, 8);
    ix.constraint_type = ct.empty() ? '\0' : ct[0];
    t.indexes.push_back(std::move(ix));
  }
  ASSIGN_OR_RETURN(
      pg::Result con,
      conn.Exec("SELECT conname, contype::text, pg_get_constraintdef(oid), convalidated, "
                "coalesce(conkey::text, '{}'), condeferrable, condeferred, "
                "CASE WHEN contype = 'c' THEN pg_get_expr(conbin, conrelid) END, "
                "(SELECT n.nspname FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace "
                " WHERE r.oid = confrelid), (SELECT r.relname FROM pg_class r WHERE r.oid = confrelid) "
                "FROM pg_constraint WHERE conrelid = $1 ORDER BY conname",
                {oid}));
  for (int r = 0; r < con.rows(); ++r) {
    Constraint c;
    c.name = con.Get(r, 0);
    c.type = con.Get(r, 1)[0];
    c.def = con.Get(r, 2);
    c.validated = con.GetBool(r, 3);
    c.attnums = ParseIntArray(con.Get(r, 4));
    c.deferrable = con.GetBool(r, 5);
    c.deferred = con.GetBool(r, 6);
    c.check_expr = con.Get(r, 7);
    if (!con.IsNull(r, 8)) {
      c.referenced_schema = con.Get(r, 8);
      c.referenced_name = con.Get(r, 9);
      c.referenced_table = pg::QuoteQualified(c.referenced_schema, c.referenced_name);
    }
    t.constraints.push_back(std::move(c));
  }
  return t;
}

absl::StatusOr<std::vector<std::string>> ForeignDependents(pg::Connection& conn,
                                                           const Table& table, int attnum,
                                                           const std::string& ignore_prefix) {
  // Everything that records a dependency on the column, less what pgshift
  // handles itself: the table's own indexes and local constraints on the
  // column, the column's default, sequences it owns, and pgshift's triggers.
  ASSIGN_OR_RETURN(
      pg::Result res,
      conn.Exec(
          "SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) "
          "FROM pg_depend d "
          "WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 "
          "  AND d.refobjsubid = $2 AND d.deptype IN ('n', 'a') "
          "  AND NOT (d.classid = 'pg_class'::regclass AND EXISTS ("
          "        SELECT 1 FROM pg_class c WHERE c.oid = d.objid AND ("
          "          (c.relkind IN ('i', 'I') AND EXISTS (SELECT 1 FROM pg_index i "
          "             WHERE i.indexrelid = c.oid AND i.indrelid = $1)) "
          "          OR c.relkind = 'S')))"
          "  AND NOT (d.classid = 'pg_constraint'::regclass AND EXISTS ("
          "        SELECT 1 FROM pg_constraint k WHERE k.oid = d.objid "
          "          AND k.conrelid = $1 AND $2::int2 = ANY (k.conkey)))"
          "  AND NOT (d.classid = 'pg_attrdef'::regclass AND EXISTS ("
          "        SELECT 1 FROM pg_attrdef ad WHERE ad.oid = d.objid AND ad.adnum = $2::int2))"
          "  AND NOT (d.classid = 'pg_trigger'::regclass AND EXISTS ("
          "        SELECT 1 FROM pg_trigger tg WHERE tg.oid = d.objid "
          "          AND starts_with(tg.tgname, $3)))"
          " ORDER BY 1",
          {std::to_string(table.oid), std::to_string(attnum), ignore_prefix}));
  std::vector<std::string> out;
  for (int r = 0; r < res.rows(); ++r) out.push_back(res.Get(r, 0));
  // Foreign keys of this table that reference the column (self references)
  // depend on it too but are filtered above as local constraints; add them.
  ASSIGN_OR_RETURN(pg::Result self,
                   conn.Exec("SELECT conname FROM pg_constraint WHERE contype = 'f' "
                             "AND confrelid = $1 AND $2::int2 = ANY (confkey) ORDER BY 1",
                             {std::to_string(table.oid), std::to_string(attnum)}));
  for (int r = 0; r < self.rows(); ++r) {
    std::string d = absl::StrCat("foreign key ", self.Get(r, 0), " referencing it");
    bool dup = false;
    for (const auto& o : out) dup = dup || absl::StrContains(o, self.Get(r, 0));
    if (!dup) out.push_back(d);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> TriggersReading(pg::Connection& conn, const Table& table,
                                                         const std::string& column) {
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn.Exec("SELECT tg.tgname, p.oid::regprocedure::text, l.lanname, "
                "CASE WHEN l.lanname = 'plpgsql' THEN pg_get_functiondef(p.oid) END, "
                "encode(tg.tgargs, 'escape') "
                "FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid "
                "JOIN pg_language l ON l.oid = p.prolang "
                "WHERE tg.tgrelid = $1 AND NOT tg.tgisinternal AND NOT starts_with(tg.tgname, $2) "
                "ORDER BY tg.tgname",
                {std::to_string(table.oid), "zz_pgshift_"}));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) {
    const std::string trigger = pg::QuoteIdent(r.Get(i, 0)), function = r.Get(i, 1);
    const std::string language = r.Get(i, 2);
    if (language == "plpgsql") {
      absl::StatusOr<std::vector<std::string>> fields = sql::TriggerRecordFields(r.Get(i, 3));
      if (!fields.ok()) {
        out.push_back(absl::StrCat("trigger ", trigger, " (its function ", function,
                                   " could not be read: ", fields.status().message(), ")"));
      } else if (std::find(fields->begin(), fields->end(), column) != fields->end()) {
        out.push_back(absl::StrCat("trigger ", trigger, " (its function ", function, " reads NEW.",
                                   pg::QuoteIdent(column), " or OLD.", pg::QuoteIdent(column), ")"));
      }
    } else if (language == "c" || language == "internal") {
      // Arguments are stored NUL-separated; encode(..., 'escape') writes \000.
      for (absl::string_view arg : absl::StrSplit(r.Get(i, 4), "\\000", absl::SkipEmpty())) {
        if (arg == column) {
          out.push_back(absl::StrCat("trigger ", trigger, " (its function ", function,
                                     " is given column ", pg::QuoteIdent(column), " as an argument)"));
          break;
        }
      }
    } else {
      out.push_back(absl::StrCat("trigger ", trigger, " (its function ", function, " is in LANGUAGE ",
                                 language, ", which pgshift cannot read)"));
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> OwnedSequences(pg::Connection& conn, const Table& table,
                                                        int attnum) {
  ASSIGN_OR_RETURN(pg::Result res,
                   conn.Exec("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
                             "FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
                             "JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE d.classid = 'pg_class'::regclass AND c.relkind = 'S' "
                             "AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 "
                             "AND d.refobjsubid = $2 AND d.deptype = 'a' ORDER BY 1",
                             {std::to_string(table.oid), std::to_string(attnum)}));
  std::vector<std::string> out;
  for (int r = 0; r < res.rows(); ++r) out.push_back(res.Get(r, 0));
  return out;
}

absl::StatusOr<TypeInfo> ResolveType(pg::Connection& conn, const sql::TypeName& type,
                                     const std::string& collation) {
  // The server reads the type as it would in a column definition: its OID
  // from regtype (a domain stays a domain), its typmod from describing a
  // cast to it (regtype drops the typmod; a description reports a domain as
  // its base type, whose typmod then belongs to the domain itself).
  auto columns = conn.Describe(absl::StrCat("SELECT NULL::", type.sql()));
  if (!columns.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("type \"", type.sql(), "\" does not resolve: ", columns.status().message()));
  }
  if (columns->size() != 1) return absl::InternalError("describing a type gave no column");
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn.Exec(absl::StrCat("SELECT format_type(s.t, CASE WHEN s.t = $2::oid THEN $3::int ELSE -1 END), "
                             "quote_ident(n.nspname) || '.' || quote_ident(ty.typname), ",
                             BaseTypeOf("s.t"), ", coalesce((SELECT collisdeterministic FROM "
                             "pg_collation WHERE oid = nullif($4, '')::regcollation), true) "
                             "FROM (SELECT $1::regtype::oid AS t) s JOIN pg_type ty ON ty.oid = s.t "
                             "JOIN pg_namespace n ON n.oid = ty.typnamespace"),
                 {type.sql(), std::to_string((*columns)[0].oid),
                  std::to_string((*columns)[0].typmod), collation}));
  TypeInfo info;
  info.spelled = r.Get(0, 0);
  info.raw = r.Get(0, 1);
  info.exact_equality = ExactEquality(static_cast<uint32_t>(r.GetInt(0, 2)), r.GetBool(0, 3));
  return info;
}

namespace {

void CollectNodeTypes(const google::protobuf::Struct& node, std::vector<std::string>* out) {
  auto type = node.fields().find("Node Type");
  if (type != node.fields().end()) out->push_back(type->second.string_value());
  auto plans = node.fields().find("Plans");
  if (plans == node.fields().end()) return;
  for (const google::protobuf::Value& child : plans->second.list_value().values()) {
    CollectNodeTypes(child.struct_value(), out);
  }
}

}  // namespace

bool Explained::Has(const std::string& node_type) const {
  return std::find(node_types.begin(), node_types.end(), node_type) != node_types.end();
}

absl::StatusOr<Explained> Explain(pg::Connection& conn, const std::string& query) {
  ASSIGN_OR_RETURN(pg::Result r, conn.Exec(absl::StrCat("EXPLAIN (VERBOSE, COSTS, FORMAT JSON) ", query)));
  std::string json;
  for (int i = 0; i < r.rows(); ++i) absl::StrAppend(&json, r.Get(i, 0));
  // The output is a one-element array: [{"Plan": {...}}].
  google::protobuf::Value doc;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &doc);
  if (!parsed.ok() || doc.list_value().values_size() != 1) {
    return absl::InternalError(absl::StrCat("cannot read the server's plan of ", query));
  }
  const auto& top = doc.list_value().values(0).struct_value().fields();
  auto plan = top.find("Plan");
  if (plan == top.end()) return absl::InternalError(absl::StrCat("no plan for ", query));
  Explained out;
  auto rows = plan->second.struct_value().fields().find("Plan Rows");
  if (rows != plan->second.struct_value().fields().end()) {
    out.plan_rows = static_cast<int64_t>(rows->second.number_value());
  }
  CollectNodeTypes(plan->second.struct_value(), &out.node_types);
  return out;
}

absl::StatusOr<bool> IsConstrainedDomain(pg::Connection& conn, const std::string& type) {
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn.Exec("WITH RECURSIVE d(oid) AS (SELECT $1::regtype::oid UNION ALL "
                "SELECT t.typbasetype FROM pg_type t JOIN d ON t.oid = d.oid WHERE t.typtype = 'd') "
                "SELECT EXISTS (SELECT 1 FROM pg_type t JOIN d ON t.oid = d.oid "
                "WHERE t.typtype = 'd' AND (t.typnotnull OR EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.contypid = t.oid)))",
                {type}));
  return r.GetBool(0, 0);
}

absl::Status RefuseConstrainedDomain(pg::Connection& conn, const std::string& type,
                                     absl::string_view what) {
  ASSIGN_OR_RETURN(bool constrained, IsConstrainedDomain(conn, type));
  if (constrained) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": type ", type,
        " is a domain with constraints; PostgreSQL rewrites the whole table under an ACCESS "
        "EXCLUSIVE lock to add a column of such a type. Use its base type plus a CHECK constraint"));
  }
  return absl::OkStatus();
}

absl::Status CheckExpression(pg::Connection& conn, const Table& table, const sql::Expression& expr,
                             const std::string& type, const std::string& what,
                             const std::vector<std::pair<std::string, std::string>>& extra_columns) {
  std::string from = absl::StrCat("ONLY ", table.Qualified());
  if (!extra_columns.empty()) {
    // The same row with the missing columns added, under the table's name so
    // that qualified references still resolve.
    std::string extra;
    for (const auto& [name, col_type] : extra_columns) {
      absl::StrAppend(&extra, ", NULL::", col_type, " AS ", pg::QuoteIdent(name));
    }
    from = absl::StrCat("(SELECT *", extra, " FROM ONLY ", table.Qualified(), ") AS ",
                        pg::QuoteIdent(table.name));
  }
  absl::Status s = conn.Check(absl::StrCat("SELECT (", expr.sql(), ")::", type, " FROM ", from,
                                           " WHERE false"));
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " \"", expr.sql(), "\" is not valid over ",
                                                   table.Qualified(), " as ", type, ": ",
                                                   s.message()));
  }
  // pgshift evaluates the expression for one row at a time (in a trigger,
  // in batched UPDATEs): an aggregate, window or set-returning function
  // would fail there on every run. The server allows none of them in WHERE.
  s = conn.Check(
      absl::StrCat("SELECT 1 FROM ", from, " WHERE ((", expr.sql(), ")::", type, ") IS NULL"));
  if (!s.ok()) {
    const std::string state = util::SqlStateOf(s);
    // grouping_error, windowing_error, feature_not_supported (SRF)
    const bool not_per_row = state == "42803" || state == "42P20" || state == "0A000";
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", expr.sql(), "\" ",
        not_per_row ? "is an aggregate, window or set-returning expression"
                    : absl::StrCat("is not valid over one row (", s.message(), ")"),
        "; pgshift computes it for one row at a time, from that row's columns "
        "(in its trigger and in batched UPDATEs, where such functions are not allowed): write an "
        "expression over the row's own columns"));
  }
  // A name the server accepted that is no column is a table's name, read
  // as its whole row; pgshift's trigger declares only the row's columns.
  for (const std::string& name : expr.columns()) {
    if (table.FindColumn(name) != nullptr) continue;
    bool extra = false;
    for (const auto& c : extra_columns) extra = extra || c.first == name;
    if (extra) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", expr.sql(), "\" refers to \"", name, "\", which is not a column of ",
        table.Qualified(), " (the server reads a table's name as its whole row, which pgshift's "
        "trigger cannot evaluate); name the columns themselves"));
  }
  return absl::OkStatus();
}

namespace {

// `s` quoted as an identifier, for the SQL that messages suggest.
std::string Q(const std::string& s) { return pg::QuoteIdent(s); }

// SQL building "schema"."name" of pg_class row `rel` joined to pg_namespace `ns`.
constexpr char kQuotedName[] =
    "'\"' || replace(ns.nspname, '\"', '\"\"') || '\".\"' || replace(rel.relname, '\"', '\"\"') || '\"'";

}  // namespace

absl::Status CheckTableForMigration(pg::Connection& conn, const Table& table, absl::string_view what,
                                    const TableNeeds& needs) {
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn.Exec(absl::StrCat(
          "SELECT c.relispartition, "
          // its parents (the partitioned table of a partition), and up to
          // five children with their count
          "  (SELECT string_agg(q, ', ') FROM (SELECT ", kQuotedName, " AS q FROM pg_inherits i "
          "     JOIN pg_class rel ON rel.oid = i.inhparent "
          "     JOIN pg_namespace ns ON ns.oid = rel.relnamespace "
          "     WHERE i.inhrelid = c.oid ORDER BY 1) s), "
          "  (SELECT string_agg(q, ', ') FROM (SELECT ", kQuotedName, " AS q FROM pg_inherits i "
          "     JOIN pg_class rel ON rel.oid = i.inhrelid "
          "     JOIN pg_namespace ns ON ns.oid = rel.relnamespace "
          "     WHERE i.inhparent = c.oid ORDER BY 1 LIMIT 5) s), "
          "  (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid), "
          // ownership as PostgreSQL checks it (the privileges of the owning
          // role, by membership too), CREATE on the schema
          "  pg_get_userbyid(c.relowner), current_user, pg_has_role(c.relowner, 'USAGE'), "
          "  has_schema_privilege(c.relnamespace, 'CREATE'), "
          // row-level security (check_enable_rls)
          "  c.relrowsecurity, c.relforcerowsecurity, "
          "  (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) "
          "FROM pg_class c WHERE c.oid = $1"),
                {std::to_string(table.oid)}));
  const std::string t = table.Qualified();
  if (r.rows() == 0) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": ", t, " was dropped meanwhile"));
  }
  const bool partition = r.GetBool(0, 0);
  const std::string parents = r.Get(0, 1), children = r.Get(0, 2);
  const int64_t child_count = r.GetInt(0, 3);
  const std::string owner = r.Get(0, 4), user = r.Get(0, 5);
  const bool owns = r.GetBool(0, 6), can_create = r.GetBool(0, 7);
  const bool rls = r.GetBool(0, 8), forced = r.GetBool(0, 9), bypass = r.GetBool(0, 10);

  // What the table is.
  if (partition) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", t, " is a partition of ", parents,
        "; pgshift refuses partitions: a partition cannot get a column of its own (ADD COLUMN "
        "fails) nor drop or rename one it shares with its partitioned table (DROP COLUMN of an "
        "inherited column fails), and what pgshift would set up on one partition alone does not "
        "hold for the others. Change the partitioned table by hand"));
  }
  if (child_count > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", t, " is the parent of inheritance children (", children,
        child_count > 5 ? absl::StrCat(" and ", child_count - 5, " more") : "",
        "); pgshift refuses it: its triggers would exist only on the parent, so writes of old app "
        "versions to the children would not be synced and their values would be lost at contract, "
        "and the backfill and checks would reach the children's rows through the parent. Detach "
        "the children first (ALTER TABLE <child> NO INHERIT ", t, "), or change these tables by hand"));
  }
  if (!parents.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", t, " is an inheritance child of ", parents,
        "; pgshift refuses it: DROP COLUMN of an inherited column fails (contract would be stuck), "
        "and a column changed on the child alone no longer matches its parent's. Detach it first "
        "(ALTER TABLE ", t, " NO INHERIT ", absl::StrContains(parents, ", ") ? "<parent>" : parents,
        "), or change these tables by hand"));
  }

  // What the later steps need (docs/privileges.md).
  if (!owns) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": role ", Q(user), " does not own ", t, " (its owner is ", Q(owner),
        "), and the later steps need ownership (ALTER TABLE, CREATE TRIGGER). Run pgshift as the "
        "owner, or make the driver the owner (ALTER TABLE ", t, " OWNER TO ", Q(user),
        ") or a member of the owning role (GRANT ", Q(owner), " TO ", Q(user),
        "); see docs/privileges.md"));
  }
  if (needs.creates_functions && !can_create) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": role ", Q(user), " lacks CREATE on schema ", Q(table.schema),
        ", where pgshift creates its trigger and helper functions next to ", t,
        ". GRANT CREATE ON SCHEMA ", Q(table.schema), " TO ", Q(user), "; see docs/privileges.md"));
  }

  // Row-level security: the table's policies apply to the driver unless it
  // is a superuser or BYPASSRLS, or owns the table and RLS is not forced.
  if (needs.reads_rows && rls && !bypass && (forced || !owns)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", t, " has row-level security enabled", forced ? " and forced" : "", ", and role ",
        Q(user),
        " is subject to its policies: the backfill would copy only the rows they let it see, "
        "validate would count only those, and contract would drop the old column with the values "
        "of the hidden rows. Run pgshift as a role that bypasses row-level security (a superuser, "
        "or ALTER ROLE ",
        Q(user), " BYPASSRLS)",
        forced && owns ? absl::StrCat(", or lift FORCE while the migration runs (ALTER TABLE ", t,
                                      " NO FORCE ROW LEVEL SECURITY: the owner then bypasses the "
                                      "policies)")
                       : "",
        "; see docs/privileges.md"));
  }
  return absl::OkStatus();
}

absl::Status CheckAssignment(pg::Connection& conn, const Table& table, const std::string& column,
                             const std::string& type, const sql::Expression* default_expr,
                             const sql::Expression* up, absl::string_view what) {
  if (default_expr == nullptr && up == nullptr) return absl::OkStatus();
  const std::string probe = "pg_temp.pgshift_probe", col = Q(column);
  ASSIGN_OR_RETURN(pg::Result who, conn.Exec("SELECT current_user, current_database()"));
  absl::Status s = conn.RolledBack([&]() -> absl::Status {
    absl::Status created =
        conn.Run(absl::StrCat("CREATE TEMP TABLE pgshift_probe (", col, " ", type, ") ON COMMIT DROP"));
    if (!created.ok()) {
      if (util::SqlStateOf(created) != "42501") return created;
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": checking that ", default_expr ? "the default" : "up", " fits type ", type,
          " needs the TEMP privilege on database ", Q(who.Get(0, 1)), ", which role ", Q(who.Get(0, 0)),
          " lacks (pgshift assigns the value to a temporary table, in a transaction it rolls back). "
          "GRANT TEMPORARY ON DATABASE ", Q(who.Get(0, 1)), " TO ", Q(who.Get(0, 0)),
          "; see docs/privileges.md"));
    }
    if (default_expr != nullptr) {
      // Analysed as a column default (assignment to the type), then
      // evaluated once and stored, typmod enforced.
      absl::Status d = conn.Run(absl::StrCat("ALTER TABLE ", probe, " ALTER COLUMN ", col,
                                             " SET DEFAULT (", default_expr->sql(), ")"));
      if (d.ok()) d = conn.Run(absl::StrCat("INSERT INTO ", probe, " DEFAULT VALUES"));
      if (!d.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, ": default \"", default_expr->sql(), "\" does not fit column ", col, " of type ",
            type, " as PostgreSQL assigns a column default: ", d.message(),
            ". Once it is the column's default, every INSERT that relies on it would fail this way "
            "(and the backfill's explicit cast would cut values silently). Give a default whose "
            "values fit the type, or a type they fit"));
      }
    }
    if (up != nullptr) {
      absl::Status u = conn.Check(absl::StrCat("INSERT INTO ", probe, " (", col, ") SELECT (", up->sql(),
                                               ") FROM ONLY ", table.Qualified()));
      if (!u.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, ": up \"", up->sql(), "\" cannot be stored in column ", col, " of type ", type,
            " the way a column takes a value: ", u.message(), ". Make up yield a value of type ", type));
      }
    }
    return absl::OkStatus();
  });
  return s;
}

}  // namespace pgshift::catalog
