#include "lib/ops/common.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <functional>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

bool IdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' ||
         (static_cast<unsigned char>(c) & 0x80);
}

std::string Q(const std::string& s) { return pg::QuoteIdent(s); }

}  // namespace

std::string ObjectPrefix(const std::string& migration, int index) {
  return absl::StrFormat("pgshift_%010x_%d", Fnv1a(migration) & 0xffffffffffULL, index);
}

std::string OwnerComment(const Context& ctx) {
  return absl::StrCat("pgshift: created by migration ", ctx.migration, " (", ctx.prefix, ")");
}

std::string CopyName(const Context& ctx, const std::string& original) {
  return absl::StrFormat("%s_c%08x", ctx.prefix, Fnv1a(original) & 0xffffffffULL);
}

std::string RewriteColumn(absl::string_view sql, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  auto prev_nonspace = [&out]() -> std::string {
    size_t j = out.size();
    while (j > 0 && out[j - 1] == ' ') --j;
    return out.substr(j >= 2 ? j - 2 : 0, j >= 2 ? 2 : j);
  };
  auto next_nonspace = [&sql](size_t j) -> char {
    while (j < sql.size() && sql[j] == ' ') ++j;
    return j < sql.size() ? sql[j] : '\0';
  };
  while (i < sql.size()) {
    char c = sql[i];
    if (c == '\'') {  // string literal, '' escapes
      size_t j = i + 1;
      while (j < sql.size()) {
        if (sql[j] == '\'' && j + 1 < sql.size() && sql[j + 1] == '\'') { j += 2; continue; }
        if (sql[j] == '\'') break;
        ++j;
      }
      out.append(sql.data() + i, std::min(sql.size(), j + 1) - i);
      i = j + 1;
      continue;
    }
    std::string name;
    size_t j = i;
    bool quoted = false;
    if (c == '"') {
      quoted = true;
      j = i + 1;
      while (j < sql.size()) {
        if (sql[j] == '"' && j + 1 < sql.size() && sql[j + 1] == '"') { name.push_back('"'); j += 2; continue; }
        if (sql[j] == '"') break;
        name.push_back(sql[j++]);
      }
      ++j;
    } else if (IdentChar(c) && !std::isdigit(static_cast<unsigned char>(c)) &&
               (out.empty() || !IdentChar(out.back()))) {
      while (j < sql.size() && IdentChar(sql[j])) name.push_back(sql[j++]);
    } else {
      out.push_back(c);
      ++i;
      continue;
    }
    std::string before = prev_nonspace();
    bool qualified = !before.empty() && before.back() == '.';
    bool type_name = before == "::";
    bool function = next_nonspace(j) == '(';
    // Bare tokens are compared as the server prints them (lower case, or
    // quoted when not); a quoted token compares exactly.
    bool match = quoted ? name == from : (name == from && absl::AsciiStrToLower(name) == name);
    if (match && !qualified && !type_name && !function) {
      out += Q(to);
    } else {
      out.append(sql.data() + i, std::min(sql.size(), j) - i);
    }
    i = j;
  }
  return out;
}

Guard ColumnExists(const catalog::Table& t, const std::string& column) {
  return {"SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass "
          "AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
          {t.Qualified(), column}};
}
Guard ColumnMissing(const catalog::Table& t, const std::string& column) {
  return {"SELECT NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass "
          "AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
          {t.Qualified(), column}};
}
Guard ColumnNotNull(const catalog::Table& t, const std::string& column) {
  return {"SELECT coalesce((SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass "
          "AND attname = $2 AND NOT attisdropped), false)",
          {t.Qualified(), column}};
}
Guard ColumnNullable(const catalog::Table& t, const std::string& column) {
  return {"SELECT NOT coalesce((SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass "
          "AND attname = $2 AND NOT attisdropped), true)",
          {t.Qualified(), column}};
}
Guard ConstraintExists(const catalog::Table& t, const std::string& name) {
  return {"SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2)",
          {t.Qualified(), name}};
}
Guard ConstraintValidatedOrGone(const catalog::Table& t, const std::string& name) {
  return {"SELECT coalesce((SELECT convalidated FROM pg_constraint WHERE conrelid = $1::regclass "
          "AND conname = $2), true)",
          {t.Qualified(), name}};
}
Guard ColumnNotOurs(const catalog::Table& t, const std::string& column, const Context& ctx) {
  return {"SELECT coalesce((SELECT col_description(attrelid, attnum) IS DISTINCT FROM $3 "
          "FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped), true)",
          {t.Qualified(), column, OwnerComment(ctx)}};
}

Guard TriggersGone(const catalog::Table& t, const Context& ctx) {
  return {"SELECT NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass "
          "AND tgname IN ($2, $3)) AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n "
          "ON n.oid = p.pronamespace WHERE n.nspname = $4 AND p.proname = $5)",
          {t.Qualified(), absl::StrCat("zz_", ctx.prefix, "_ins"), absl::StrCat("zz_", ctx.prefix, "_upd"),
           t.schema, absl::StrCat(ctx.prefix, "_sync")}};
}
Guard TriggerInstalled(const catalog::Table& t, const Context& ctx) {
  return {"SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2)",
          {t.Qualified(), absl::StrCat("zz_", ctx.prefix, "_ins")}};
}

Guard Either(const Guard& a, const Guard& b) {
  auto body = [](const std::string& sql) {
    return absl::StartsWith(sql, "SELECT ") ? sql.substr(7) : absl::StrCat("(", sql, ")");
  };
  std::string bsql;
  const std::string& src = b.sql;
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '$' && i + 1 < src.size() && std::isdigit(static_cast<unsigned char>(src[i + 1]))) {
      size_t j = i + 1;
      int n = 0;
      while (j < src.size() && std::isdigit(static_cast<unsigned char>(src[j]))) n = n * 10 + (src[j++] - '0');
      absl::StrAppend(&bsql, "$", n + static_cast<int>(a.params.size()));
      i = j - 1;
    } else {
      bsql.push_back(src[i]);
    }
  }
  Guard g;
  g.sql = absl::StrCat("SELECT (", body(a.sql), ") OR (", body(bsql), ")");
  g.params = a.params;
  for (const auto& p : b.params) g.params.push_back(p);
  return g;
}

Guard Negate(const Guard& g) {
  std::string body = absl::StartsWith(g.sql, "SELECT ") ? g.sql.substr(7) : absl::StrCat("(", g.sql, ")");
  return {absl::StrCat("SELECT NOT (", body, ")"), g.params};
}

Guard Both(const Guard& a, const Guard& b) { return Negate(Either(Negate(a), Negate(b))); }

Guard FunctionMissing(const catalog::Table& t, const std::string& name) {
  return {"SELECT NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
          "WHERE n.nspname = $1 AND p.proname = $2)",
          {t.schema, name}};
}

Action Transaction(const catalog::Table& t, std::string description, std::vector<std::string> sql,
                   std::string lock, Guard done_if) {
  Action a;
  a.kind = Action::Kind::kTransaction;
  a.description = std::move(description);
  a.table = t.Qualified();
  a.statements = std::move(sql);
  a.lock = std::move(lock);
  a.done_if = std::move(done_if.sql);
  a.done_if_params = std::move(done_if.params);
  return a;
}

namespace {

// True when `expr` may refer to column `name`: its text holds the name as
// written bare (any case) or quoted. Over-matching only declares an unused
// variable.
bool Mentions(const std::string& expr, const std::string& name) {
  return absl::StrContains(absl::AsciiStrToLower(expr), absl::AsciiStrToLower(name)) ||
         absl::StrContains(expr, Q(name));
}

// Declarations "name" type [COLLATE c] := <source(column)>; for every column
// of `t` whose name occurs in `expr` (case-insensitively), so that `expr`
// reads in plpgsql exactly as it does in SQL over the row. Columns named
// "new"/"old" go last: once declared they hide the NEW/OLD records.
std::vector<std::string> RowDeclarations(const catalog::Table& t, const std::string& expr,
                                         const std::function<std::string(const catalog::Column&)>& source) {
  std::vector<std::string> decls, late;
  for (const catalog::Column& c : t.columns) {
    if (!Mentions(expr, c.name)) continue;
    std::string d = absl::StrCat(Q(c.name), " ", c.type,
                                 c.collation.empty() ? "" : absl::StrCat(" COLLATE ", c.collation),
                                 " := ", source(c), ";");
    std::string ln = absl::AsciiStrToLower(c.name);
    (ln == "new" || ln == "old" ? late : decls).push_back(d);
  }
  for (auto& d : late) decls.push_back(d);
  return decls;
}

}  // namespace

std::string CastTo(const std::string& expr, const std::string& type) {
  return absl::StrCat("(", expr, ")::", type);
}

std::string EvalIntoSql(const catalog::Table& t, const std::string& expr, const std::string& target) {
  std::vector<std::string> decls =
      RowDeclarations(t, expr, [](const catalog::Column& c) { return absl::StrCat("NEW.", Q(c.name)); });
  if (decls.empty()) return absl::StrCat(target, " := (", expr, ");");
  return absl::StrCat("DECLARE ", absl::StrJoin(decls, " "), " BEGIN ", target, " := (", expr,
                      "); END;");
}

std::string HelperFunction(const catalog::Table& t, const Context& ctx, const std::string& suffix) {
  return pg::QuoteQualified(t.schema, absl::StrCat(ctx.prefix, "_", suffix));
}

RowFunction LenientRowFunction(const catalog::Table& t, const Context& ctx, const std::string& suffix,
                               const std::string& expr, const std::string& type) {
  std::vector<const catalog::Column*> args;
  for (const catalog::Column& c : t.columns) {
    if (Mentions(expr, c.name)) args.push_back(&c);
  }
  std::vector<std::string> arg_types, call_args;
  std::map<std::string, int> position;
  for (size_t i = 0; i < args.size(); ++i) {
    arg_types.push_back(args[i]->type);
    call_args.push_back(Q(args[i]->name));
    position[args[i]->name] = static_cast<int>(i) + 1;
  }
  std::vector<std::string> decls = RowDeclarations(
      t, expr, [&position](const catalog::Column& c) { return absl::StrCat("$", position[c.name]); });
  std::string body = absl::StrCat(
      "-- pgshift helper of ", ctx.prefix, ": NULL where the expression raises (validate reports those rows)\n",
      decls.empty() ? "" : absl::StrCat("DECLARE ", absl::StrJoin(decls, " "), "\n"), "BEGIN\n  RETURN ",
      CastTo(expr, type), ";\nEXCEPTION WHEN others THEN\n  RETURN NULL;\nEND");
  std::string tag = "$pgshift$";
  for (int i = 0; absl::StrContains(body, tag); ++i) tag = absl::StrCat("$pgshift", i, "$");
  RowFunction f;
  f.create_sql = absl::StrCat("CREATE OR REPLACE FUNCTION ", HelperFunction(t, ctx, suffix), "(",
                              absl::StrJoin(arg_types, ", "), ") RETURNS ", type,
                              " LANGUAGE plpgsql VOLATILE AS ", tag, "\n", body, "\n", tag);
  f.call = absl::StrCat(HelperFunction(t, ctx, suffix), "(", absl::StrJoin(call_args, ", "), ")");
  f.drop_sql = absl::StrCat("DROP FUNCTION IF EXISTS ", HelperFunction(t, ctx, suffix));
  return f;
}

namespace {

std::string FunctionName(const catalog::Table& t, const Context& ctx) {
  return pg::QuoteQualified(t.schema, absl::StrCat(ctx.prefix, "_sync"));
}
std::string InsertTrigger(const Context& ctx) { return Q(absl::StrCat("zz_", ctx.prefix, "_ins")); }
std::string UpdateTrigger(const Context& ctx) { return Q(absl::StrCat("zz_", ctx.prefix, "_upd")); }

// A dollar-quote tag that does not occur in `body`.
std::string DollarTag(const std::string& body) {
  std::string tag = "$pgshift$";
  for (int i = 0; absl::StrContains(body, tag); ++i) tag = absl::StrCat("$pgshift", i, "$");
  return tag;
}

std::string FunctionSql(const catalog::Table& t, const Context& ctx, const std::string& body) {
  std::string tag = DollarTag(body);
  return absl::StrCat("CREATE OR REPLACE FUNCTION ", FunctionName(t, ctx),
                      "() RETURNS trigger LANGUAGE plpgsql AS ", tag, "\n", body, "\n", tag);
}

// The trigger function (no table lock), then both triggers in one short
// transaction (SHARE ROW EXCLUSIVE), skipped when they already exist.
std::vector<Action> TriggerActions(const catalog::Table& t, const Context& ctx,
                                   const std::string& function_sql, const std::string& ins_when,
                                   const std::string& upd_when, const std::string& kind) {
  Action fn = Transaction(t, absl::StrCat("create the ", kind, " function"), {function_sql}, "none");
  Guard both = {"SELECT count(*) = 2 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname IN ($2, $3)",
                {t.Qualified(), absl::StrCat("zz_", ctx.prefix, "_ins"),
                 absl::StrCat("zz_", ctx.prefix, "_upd")}};
  Action trg = Transaction(
      t, absl::StrCat("install the ", kind, " triggers"),
      {absl::StrCat("CREATE TRIGGER ", InsertTrigger(ctx), " BEFORE INSERT ON ", t.Qualified(),
                    " FOR EACH ROW", ins_when, " EXECUTE FUNCTION ", FunctionName(t, ctx), "()"),
       absl::StrCat("CREATE TRIGGER ", UpdateTrigger(ctx), " BEFORE UPDATE ON ", t.Qualified(),
                    " FOR EACH ROW", upd_when, " EXECUTE FUNCTION ", FunctionName(t, ctx), "()")},
      "SHARE ROW EXCLUSIVE", both);
  return {fn, trg};
}

}  // namespace

std::string SyncFunctionSql(const catalog::Table& t, const Context& ctx, const SyncSpec& s,
                            bool new_wins) {
  const std::string o = Q(s.old_col), n = Q(s.new_col);
  const std::string set_new =
      s.up.empty() ? absl::StrCat("NEW.", n, " := NEW.", o, ";")
                   : absl::StrCat(EvalIntoSql(t, CastTo(s.up, s.new_type), "pgshift$up"), " NEW.", n,
                                  " := pgshift$up;");
  const std::string set_old =
      s.down.empty() ? absl::StrCat("NEW.", o, " := NEW.", n, ";")
                     : absl::StrCat(EvalIntoSql(t, CastTo(s.down, s.old_type), "pgshift$down"), " NEW.", o,
                                    " := pgshift$down;");
  std::string declare;
  if (!s.up.empty()) declare += absl::StrCat("pgshift$up ", s.new_type, "; ");
  if (!s.down.empty()) declare += absl::StrCat("pgshift$down ", s.old_type, "; ");
  // INSERT: an old app version leaves the new column NULL (it has no default
  // before contract), a new app version sets it. UPDATE: the column the app
  // changed wins; when both changed, the authoritative one wins.
  std::string update_branch =
      new_wins ? absl::StrCat("  ELSIF NEW.", o, " IS DISTINCT FROM OLD.", o, " AND NEW.", n,
                              " IS NOT DISTINCT FROM OLD.", n, " THEN\n    ", set_new,
                              "\n  ELSE\n    ", set_old, "\n")
               : absl::StrCat("  ELSIF NEW.", n, " IS DISTINCT FROM OLD.", n, " AND NEW.", o,
                              " IS NOT DISTINCT FROM OLD.", o, " THEN\n    ", set_old,
                              "\n  ELSE\n    ", set_new, "\n");
  std::string body = absl::StrCat(
      "-- pgshift sync for ", ctx.migration, " (", new_wins ? "new" : "old", " column wins)\n",
      declare.empty() ? "" : absl::StrCat("DECLARE ", declare, "\n"), "BEGIN\n",
      "  IF TG_OP = 'INSERT' THEN\n",
      "    IF NEW.", n, " IS NULL THEN ", set_new, " ELSE ", set_old, " END IF;\n",
      update_branch, "  END IF;\n  RETURN NEW;\nEND");
  return FunctionSql(t, ctx, body);
}

std::vector<Action> InstallSyncTrigger(const catalog::Table& t, const Context& ctx,
                                       const SyncSpec& s) {
  const std::string o = Q(s.old_col), n = Q(s.new_col);
  std::string ins_when, upd_when;
  if (s.up.empty() && s.down.empty()) {
    // Same type both ways: nothing to do for rows whose columns agree, which
    // includes every row the backfill writes. UPDATE only: a WHEN clause is
    // compiled for every statement that fires the trigger (about 2 us for
    // this one, more than calling the function), which the backfill's
    // thousand-row statements amortize but single-row INSERTs do not, and
    // the backfill never inserts; the function handles equal columns itself.
    upd_when = absl::StrCat(" WHEN (NEW.", o, " IS DISTINCT FROM NEW.", n, ")");
  } else {
    // Also every update of a row whose new column is still NULL (a row the
    // backfill has not reached): the update may move the row (new ctid, or
    // a new key) behind the backfill's walk, so it must be synced here.
    // The backfill's own writes skip the trigger (it computes `up` itself).
    upd_when = absl::StrCat(" WHEN ((NEW.", o, " IS DISTINCT FROM OLD.", o, " OR NEW.", n,
                            " IS DISTINCT FROM OLD.", n, " OR NEW.", n, " IS NULL",
                            ") AND current_setting('pgshift.backfill', true) IS DISTINCT FROM 'on')");
  }
  return TriggerActions(t, ctx, SyncFunctionSql(t, ctx, s, /*new_wins=*/false), ins_when, upd_when,
                        "sync");
}

Action SwitchSyncTrigger(const catalog::Table& t, const Context& ctx, const SyncSpec& s) {
  return Transaction(t, "make the new column win conflicting writes",
                     {SyncFunctionSql(t, ctx, s, /*new_wins=*/true)}, "none");
}

std::vector<Action> InstallFillTrigger(const catalog::Table& t, const Context& ctx,
                                       const std::string& column, const std::string& type,
                                       const std::string& expr) {
  const std::string c = Q(column);
  std::string body = absl::StrCat("-- pgshift fill for ", ctx.migration, "\nDECLARE pgshift$fill ", type,
                                  ";\nBEGIN\n  ", EvalIntoSql(t, CastTo(expr, type), "pgshift$fill"),
                                  "\n  NEW.", c, " := pgshift$fill;\n  RETURN NEW;\nEND");
  std::string when = absl::StrCat(" WHEN (NEW.", c, " IS NULL)");
  return TriggerActions(t, ctx, FunctionSql(t, ctx, body), when, when, "fill");
}

std::vector<std::string> DropTriggerSql(const catalog::Table& t, const Context& ctx) {
  return {absl::StrCat("DROP TRIGGER IF EXISTS ", InsertTrigger(ctx), " ON ", t.Qualified()),
          absl::StrCat("DROP TRIGGER IF EXISTS ", UpdateTrigger(ctx), " ON ", t.Qualified()),
          absl::StrCat("DROP FUNCTION IF EXISTS ", FunctionName(t, ctx), "()")};
}

std::string NotNullCheckName(const Context& ctx) { return absl::StrCat(ctx.prefix, "_nn"); }

std::vector<Action> NotNullCheckActions(const catalog::Table& t, const Context& ctx,
                                        const std::string& column) {
  const std::string check = NotNullCheckName(ctx);
  const std::string c = Q(column), k = Q(check);
  Guard add_done = {"SELECT coalesce((SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass "
                    "AND attname = $2 AND NOT attisdropped), false) OR EXISTS (SELECT 1 FROM "
                    "pg_constraint WHERE conrelid = $1::regclass AND conname = $3)",
                    {t.Qualified(), column, check}};
  Action add = Transaction(t, absl::StrCat("add CHECK (", column, " IS NOT NULL) NOT VALID"),
                           {absl::StrCat("ALTER TABLE ", t.Qualified(), " ADD CONSTRAINT ", k,
                                         " CHECK (", c, " IS NOT NULL) NOT VALID")},
                           "ACCESS EXCLUSIVE", add_done);
  Action validate = Transaction(t, "validate the NOT NULL check",
                                {absl::StrCat("ALTER TABLE ", t.Qualified(),
                                              " VALIDATE CONSTRAINT ", k)},
                                "SHARE UPDATE EXCLUSIVE", ConstraintValidatedOrGone(t, check));
  validate.long_running = true;
  validate.scans_table = true;
  return {add, validate};
}

Action NotNullFromCheckAction(const catalog::Table& t, const Context& ctx, const std::string& column) {
  const std::string check = NotNullCheckName(ctx);
  Guard set_done = {"SELECT coalesce((SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass "
                    "AND attname = $2 AND NOT attisdropped), false) AND NOT EXISTS (SELECT 1 FROM "
                    "pg_constraint WHERE conrelid = $1::regclass AND conname = $3)",
                    {t.Qualified(), column, check}};
  Action set = Transaction(
      t, absl::StrCat("SET NOT NULL on ", column, " using the validated check, drop the check"),
      {absl::StrCat("ALTER TABLE ", t.Qualified(), " ALTER COLUMN ", Q(column), " SET NOT NULL"),
       absl::StrCat("ALTER TABLE ", t.Qualified(), " DROP CONSTRAINT IF EXISTS ", Q(check))},
      "ACCESS EXCLUSIVE", set_done);
  if (ctx.server_version < 120000) set.scans_table = true;  // PG 11 scans under the lock
  return set;
}

std::vector<Action> SetNotNullActions(const catalog::Table& t, const Context& ctx,
                                      const std::string& column) {
  std::vector<Action> out = NotNullCheckActions(t, ctx, column);
  out.push_back(NotNullFromCheckAction(t, ctx, column));
  return out;
}

namespace {

// Splits "FOREIGN KEY (a, b) REFERENCES ..." into the local column list and
// the rest, rewriting only the local list.
std::string RewriteForeignKey(const std::string& def, const std::string& from, const std::string& to) {
  size_t open = def.find('(');
  size_t close = std::string::npos;
  bool in_quote = false;
  for (size_t i = open + 1; open != std::string::npos && i < def.size(); ++i) {
    if (def[i] == '"') in_quote = !in_quote;
    if (!in_quote && def[i] == ')') { close = i; break; }
  }
  if (close == std::string::npos) return RewriteColumn(def, from, to);
  return absl::StrCat(def.substr(0, open), RewriteColumn(def.substr(open, close - open + 1), from, to),
                      def.substr(close + 1));
}

std::string StripNotValid(std::string def) {
  if (absl::EndsWith(def, " NOT VALID")) def.resize(def.size() - 10);
  return def;
}

}  // namespace

namespace {

// The indexes and constraints on a column that move to its replacement:
// valid indexes other than the primary key (an INVALID index enforces
// nothing; copying it would invent a constraint), CHECKs and foreign keys
// (unique constraints travel with their index), never pgshift's own.
bool CopiedIndex(const catalog::Index& ix, int attnum) {
  return ix.Uses(attnum) && !ix.primary && ix.valid && !absl::StartsWith(ix.name, "pgshift_");
}

bool CopiedConstraint(const catalog::Constraint& c, int attnum) {
  return c.Uses(attnum) && (c.type == 'c' || c.type == 'f') && !absl::StartsWith(c.name, "pgshift_");
}

}  // namespace

absl::StatusOr<std::vector<Action>> CopyColumnObjects(const catalog::Table& t, const Context& ctx,
                                                      const std::string& from, const std::string& to) {
  const catalog::Column* col = t.FindColumn(from);
  if (col == nullptr) return absl::NotFoundError(absl::StrCat("column \"", from, "\" is gone"));
  std::vector<Action> out;
  for (const catalog::Index& ix : t.indexes) {
    if (!CopiedIndex(ix, col->attnum)) continue;
    const std::string copy = CopyName(ctx, ix.name);
    // pg_get_indexdef: CREATE [UNIQUE] INDEX name ON [ONLY] tbl USING am (...)
    size_t using_pos = ix.def.find(" USING ");
    if (using_pos == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read the definition of index \"",
                                                     ix.name, "\""));
    }
    std::string head = ix.unique ? "CREATE UNIQUE INDEX CONCURRENTLY " : "CREATE INDEX CONCURRENTLY ";
    size_t on_pos = ix.def.find(" ON ");
    std::string sql = absl::StrCat(head, Q(copy), ix.def.substr(on_pos, using_pos - on_pos),
                                   RewriteColumn(ix.def.substr(using_pos), from, to));
    Action a;
    a.kind = Action::Kind::kConcurrently;
    a.description = absl::StrCat("build the copy of index ", ix.name, " on ", to);
    a.table = t.Qualified();
    a.statements = {sql};
    a.index_schema = t.schema;
    a.index_name = copy;
    a.lock = "SHARE UPDATE EXCLUSIVE";
    a.scans_table = true;
    a.long_running = true;
    out.push_back(std::move(a));
    if (ix.constraint_type == 'u') {
      // ADD CONSTRAINT ... USING INDEX keeps the index's name.
      std::string deferrable;
      for (const catalog::Constraint& c : t.constraints) {
        if (c.name == ix.constraint && absl::StrContains(c.def, "DEFERRABLE")) {
          deferrable = absl::StrContains(c.def, "INITIALLY DEFERRED")
                           ? " DEFERRABLE INITIALLY DEFERRED" : " DEFERRABLE";
        }
      }
      out.push_back(Transaction(
          t, absl::StrCat("attach the copy of unique constraint ", ix.constraint),
          {absl::StrCat("ALTER TABLE ", t.Qualified(), " ADD CONSTRAINT ", Q(copy),
                        " UNIQUE USING INDEX ", Q(copy), deferrable)},
          "SHARE UPDATE EXCLUSIVE", ConstraintExists(t, copy)));
    }
  }
  for (const catalog::Constraint& c : t.constraints) {
    if (!CopiedConstraint(c, col->attnum)) continue;
    const std::string copy = CopyName(ctx, c.name);
    std::string def = StripNotValid(c.type == 'f' ? RewriteForeignKey(c.def, from, to)
                                                  : RewriteColumn(c.def, from, to));
    out.push_back(Transaction(t, absl::StrCat("add the copy of constraint ", c.name, " NOT VALID"),
                              {absl::StrCat("ALTER TABLE ", t.Qualified(), " ADD CONSTRAINT ",
                                            Q(copy), " ", def, " NOT VALID")},
                              c.type == 'f' ? "SHARE ROW EXCLUSIVE" : "ACCESS EXCLUSIVE",
                              ConstraintExists(t, copy)));
    if (c.validated) {
      Action v = Transaction(t, absl::StrCat("validate the copy of constraint ", c.name),
                             {absl::StrCat("ALTER TABLE ", t.Qualified(), " VALIDATE CONSTRAINT ",
                                           Q(copy))},
                             "SHARE UPDATE EXCLUSIVE", ConstraintValidatedOrGone(t, copy));
      v.long_running = true;
      v.scans_table = true;
      out.push_back(std::move(v));
    }
  }
  return out;
}

std::vector<std::string> RenameCopiesSql(const catalog::Table& t, const Context& ctx,
                                         const std::string& from) {
  const catalog::Column* col = t.FindColumn(from);
  std::vector<std::string> out;
  if (col == nullptr) return out;
  for (const catalog::Index& ix : t.indexes) {
    if (!CopiedIndex(ix, col->attnum)) continue;
    if (ix.constraint_type == 'u') {
      out.push_back(absl::StrCat("ALTER TABLE ", t.Qualified(), " RENAME CONSTRAINT ",
                                 Q(CopyName(ctx, ix.name)), " TO ", Q(ix.constraint)));
    } else {
      out.push_back(absl::StrCat("ALTER INDEX ", pg::QuoteQualified(t.schema, CopyName(ctx, ix.name)),
                                 " RENAME TO ", Q(ix.name)));
    }
  }
  for (const catalog::Constraint& c : t.constraints) {
    if (!CopiedConstraint(c, col->attnum)) continue;
    out.push_back(absl::StrCat("ALTER TABLE ", t.Qualified(), " RENAME CONSTRAINT ",
                               Q(CopyName(ctx, c.name)), " TO ", Q(c.name)));
  }
  return out;
}

absl::Status CheckReplaceable(pg::Connection& conn, const catalog::Table& t, const Context& ctx,
                              const catalog::Column& col, absl::string_view what) {
  auto refuse = [&](absl::string_view why, absl::string_view todo) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": column \"", col.name, "\" of ",
                                                   t.Qualified(), " ", why, "; ", todo));
  };
  for (const std::string& k : t.primary_key) {
    if (k == col.name) {
      return refuse("is part of the primary key",
                    "pgshift does not replace primary-key columns (the key is what the backfill "
                    "and the application rely on)");
    }
  }
  if (col.identity != '\0') {
    return refuse("is an identity column",
                  "identity columns are refused rather than half-copied; drop the identity first or "
                  "keep the column");
  }
  if (col.generated != '\0') {
    return refuse("is a generated column", "change its generation expression instead");
  }
  for (const catalog::Constraint& c : t.constraints) {
    if (c.Uses(col.attnum) && c.type == 'x') {
      return refuse(absl::StrCat("is used by exclusion constraint ", c.name),
                    "exclusion constraints cannot be rebuilt without a long lock; drop it first");
    }
  }
  ASSIGN_OR_RETURN(std::vector<std::string> deps,
                   catalog::ForeignDependents(conn, t, col.attnum, "zz_pgshift_"));
  if (!deps.empty()) {
    return refuse(absl::StrCat("is used by ", absl::StrJoin(deps, ", ")),
                  "pgshift cannot recreate those objects on the new column without breaking "
                  "them; drop or change them first (and recreate them after contract)");
  }
  return absl::OkStatus();
}

BackfillSpec MakeBackfill(const catalog::Table& t, std::string set_clause, std::string needs_work) {
  BackfillSpec b;
  b.table = t.Qualified();
  b.key = t.primary_key;
  for (const auto& k : b.key) {
    const catalog::Column* c = t.FindColumn(k);
    b.key_types.push_back(c ? c->type : "text");
  }
  b.set_clause = std::move(set_clause);
  b.needs_work = std::move(needs_work);
  return b;
}

Action BackfillAction(const catalog::Table& t, std::string description, BackfillSpec spec) {
  Action a;
  a.kind = Action::Kind::kBackfill;
  a.description = std::move(description);
  a.table = t.Qualified();
  a.lock = "ROW EXCLUSIVE";
  a.scans_table = true;
  a.long_running = true;
  a.backfill = std::move(spec);
  return a;
}

absl::Status RefuseConstrainedDomain(pg::Connection& conn, const std::string& type,
                                     absl::string_view what) {
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn.Exec("WITH RECURSIVE d(oid) AS (SELECT $1::regtype::oid UNION ALL "
                "SELECT t.typbasetype FROM pg_type t JOIN d ON t.oid = d.oid WHERE t.typtype = 'd') "
                "SELECT EXISTS (SELECT 1 FROM pg_type t JOIN d ON t.oid = d.oid "
                "WHERE t.typtype = 'd' AND (t.typnotnull OR EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.contypid = t.oid)))",
                {type}));
  if (r.GetBool(0, 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": type ", type,
        " is a domain with constraints; PostgreSQL rewrites the whole table under an ACCESS "
        "EXCLUSIVE lock to add a column of such a type. Use its base type plus a CHECK constraint"));
  }
  return absl::OkStatus();
}

Action Assert(const catalog::Table& t, std::string description, std::string where,
              std::string failure) {
  Action a;
  a.kind = Action::Kind::kAssert;
  a.description = std::move(description);
  a.table = t.Qualified();
  a.lock = "ACCESS SHARE";
  a.scans_table = true;
  std::vector<std::string> key;
  for (const auto& k : t.primary_key) key.push_back(Q(k));
  std::string key_text = key.empty() ? "ctid::text"
                                     : absl::StrCat("(", absl::StrJoin(key, ", "), ")::text");
  if (key.size() == 1) key_text = absl::StrCat(key[0], "::text");
  a.assert_spec.count_sql = absl::StrCat("SELECT count(*) FROM ", t.Qualified(), " WHERE ", where);
  a.assert_spec.sample_sql = absl::StrCat("SELECT ", key_text, " FROM ", t.Qualified(), " WHERE ",
                                          where, " LIMIT 5");
  a.assert_spec.failure = std::move(failure);
  return a;
}

}  // namespace pgshift::ops
