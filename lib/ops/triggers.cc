#include "lib/ops/triggers.h"

#include <functional>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/ops/guards.h"
#include "lib/pg/quote.h"

namespace pgshift::ops {

namespace {

std::string Q(const std::string& s) { return pg::QuoteIdent(s); }

// Declarations `"name" type [COLLATE c] := <source(column)>;` of every
// column of `t` that `expr` reads, so that `expr` reads in PL/pgSQL exactly
// as it does in SQL over the row. Columns named "new"/"old" go last: once
// declared they hide the NEW/OLD records.
std::vector<std::string> RowDeclarations(
    const catalog::Table& t, const sql::Expression& expr,
    const std::function<std::string(const catalog::Column&)>& source) {
  std::vector<std::string> decls, late;
  for (const catalog::Column& c : t.columns) {
    if (!expr.References(c.name)) continue;
    std::string d = absl::StrCat(Q(c.name), " ", c.type,
                                 c.collation.empty() ? "" : absl::StrCat(" COLLATE ", c.collation),
                                 " := ", source(c), ";");
    std::string lower = absl::AsciiStrToLower(c.name);
    (lower == "new" || lower == "old" ? late : decls).push_back(std::move(d));
  }
  for (auto& d : late) decls.push_back(std::move(d));
  return decls;
}

// PL/pgSQL setting `target` (a variable of type `type`) to `expr`, reading
// the row's columns from NEW.
std::string EvalInto(const catalog::Table& t, const sql::Expression& expr,
                     const catalog::TypeInfo& type, const std::string& target) {
  std::vector<std::string> decls =
      RowDeclarations(t, expr, [](const catalog::Column& c) { return absl::StrCat("NEW.", Q(c.name)); });
  const std::string assign = absl::StrCat(target, " := ", CastTo(expr, type), ";");
  if (decls.empty()) return assign;
  return absl::StrCat("DECLARE ", absl::StrJoin(decls, " "), " BEGIN ", assign, " END;");
}

// A dollar-quote tag that does not occur in `body`.
std::string DollarTag(const std::string& body) {
  std::string tag = "$pgshift$";
  for (int i = 0; absl::StrContains(body, tag); ++i) tag = absl::StrCat("$pgshift", i, "$");
  return tag;
}

std::string TriggerFunction(const catalog::Table& t, const Context& ctx) {
  return pg::QuoteQualified(t.schema, ctx.names.trigger_function());
}

std::string TriggerFunctionSql(const catalog::Table& t, const Context& ctx, const std::string& body) {
  const std::string tag = DollarTag(body);
  return absl::StrCat("CREATE OR REPLACE FUNCTION ", TriggerFunction(t, ctx),
                      "() RETURNS trigger LANGUAGE plpgsql AS ", tag, "\n", body, "\n", tag);
}

// The trigger function (no table lock), then both triggers in one short
// transaction (SHARE ROW EXCLUSIVE), skipped when they already exist.
std::vector<Action> TriggerActions(const catalog::Table& t, const Context& ctx,
                                   const std::string& function_sql, const std::string& ins_when,
                                   const std::string& upd_when, const std::string& kind) {
  Action fn = CatalogOnly(absl::StrCat("create the ", kind, " function"), {function_sql});
  Action trg = Transaction(
      t, absl::StrCat("install the ", kind, " triggers"),
      {absl::StrCat("CREATE TRIGGER ", Q(ctx.names.insert_trigger()), " BEFORE INSERT ON ",
                    t.Qualified(), " FOR EACH ROW", ins_when, " EXECUTE FUNCTION ",
                    TriggerFunction(t, ctx), "()"),
       absl::StrCat("CREATE TRIGGER ", Q(ctx.names.update_trigger()), " BEFORE UPDATE ON ",
                    t.Qualified(), " FOR EACH ROW", upd_when, " EXECUTE FUNCTION ",
                    TriggerFunction(t, ctx), "()")},
      pg::LockMode::kShareRowExclusive, TriggersInstalled(t, ctx.names));
  return {fn, trg};
}

std::string SyncFunctionSql(const catalog::Table& t, const Context& ctx, const SyncSpec& s,
                            bool new_wins) {
  const std::string o = Q(s.old_col), n = Q(s.new_col);
  const std::string set_new =
      s.up ? absl::StrCat(EvalInto(t, *s.up, s.new_type, "pgshift$up"), " NEW.", n, " := pgshift$up;")
           : absl::StrCat("NEW.", n, " := NEW.", o, ";");
  const std::string set_old =
      s.down ? absl::StrCat(EvalInto(t, *s.down, s.old_type, "pgshift$down"), " NEW.", o,
                            " := pgshift$down;")
             : absl::StrCat("NEW.", o, " := NEW.", n, ";");
  std::string declare;
  if (s.up) absl::StrAppend(&declare, "pgshift$up ", s.new_type.spelled, "; ");
  if (s.down) absl::StrAppend(&declare, "pgshift$down ", s.old_type.spelled, "; ");
  const bool old_exact = s.old_type.exact_equality, new_exact = s.new_type.exact_equality;
  const std::string old_changed = Differ(absl::StrCat("NEW.", o), absl::StrCat("OLD.", o), old_exact);
  const std::string old_kept = Same(absl::StrCat("NEW.", o), absl::StrCat("OLD.", o), old_exact);
  const std::string new_changed = Differ(absl::StrCat("NEW.", n), absl::StrCat("OLD.", n), new_exact);
  const std::string new_kept = Same(absl::StrCat("NEW.", n), absl::StrCat("OLD.", n), new_exact);
  // INSERT: an old app version leaves the new column NULL (it has no default
  // before contract), a new app version sets it. UPDATE: the column the app
  // changed wins; when both changed, the authoritative one wins.
  const std::string update_branch =
      new_wins ? absl::StrCat("  ELSIF ", old_changed, " AND ", new_kept, " THEN\n    ", set_new,
                              "\n  ELSE\n    ", set_old, "\n")
               : absl::StrCat("  ELSIF ", new_changed, " AND ", old_kept, " THEN\n    ", set_old,
                              "\n  ELSE\n    ", set_new, "\n");
  const std::string body = absl::StrCat(
      "-- pgshift sync for ", ctx.migration, " (", new_wins ? "new" : "old", " column wins)\n",
      declare.empty() ? "" : absl::StrCat("DECLARE ", declare, "\n"), "BEGIN\n",
      "  IF TG_OP = 'INSERT' THEN\n", "    IF NEW.", n, " IS NULL THEN ", set_new, " ELSE ", set_old,
      " END IF;\n", update_branch, "  END IF;\n  RETURN NEW;\nEND");
  return TriggerFunctionSql(t, ctx, body);
}

}  // namespace

std::string CastTo(const sql::Expression& expr, const catalog::TypeInfo& type) {
  return absl::StrCat("(", expr.sql(), ")::", type.raw);
}

std::string Differ(const std::string& a, const std::string& b, bool exact) {
  if (exact) return absl::StrCat(a, " IS DISTINCT FROM ", b);
  return absl::StrCat("(", a, ")::text COLLATE \"C\" IS DISTINCT FROM (", b, ")::text COLLATE \"C\"");
}

std::string Same(const std::string& a, const std::string& b, bool exact) {
  if (exact) return absl::StrCat(a, " IS NOT DISTINCT FROM ", b);
  return absl::StrCat("(", a, ")::text COLLATE \"C\" IS NOT DISTINCT FROM (", b, ")::text COLLATE \"C\"");
}

std::string HelperFunction(const catalog::Table& t, const Context& ctx, absl::string_view suffix) {
  return pg::QuoteQualified(t.schema, ctx.names.helper(suffix));
}

std::vector<Action> InstallSyncTrigger(const catalog::Table& t, const Context& ctx,
                                       const SyncSpec& s) {
  const std::string o = Q(s.old_col), n = Q(s.new_col);
  std::string ins_when, upd_when;
  if (!s.up && !s.down) {
    // Same type both ways: nothing to do for rows whose columns agree, which
    // includes every row the backfill writes. UPDATE only: a WHEN clause is
    // compiled for every statement that fires the trigger (about 2 us for
    // this one, more than calling the function), which the backfill's
    // thousand-row statements amortize but single-row INSERTs do not, and
    // the backfill never inserts; the function handles equal columns itself.
    upd_when = absl::StrCat(" WHEN (",
                            Differ(absl::StrCat("NEW.", o), absl::StrCat("NEW.", n),
                                   s.old_type.exact_equality && s.new_type.exact_equality),
                            ")");
  } else {
    // Also every update of a row whose new column is still NULL (a row the
    // backfill has not reached): the update may move the row (new ctid, or
    // a new key) behind the backfill's walk, so it must be synced here.
    // The backfill's own writes skip the trigger (it computes `up` itself).
    upd_when = absl::StrCat(
        " WHEN ((",
        Differ(absl::StrCat("NEW.", o), absl::StrCat("OLD.", o), s.old_type.exact_equality), " OR ",
        Differ(absl::StrCat("NEW.", n), absl::StrCat("OLD.", n), s.new_type.exact_equality),
        " OR NEW.", n, " IS NULL",
        ") AND current_setting('pgshift.backfill', true) IS DISTINCT FROM ",
        pg::QuoteLiteral(ctx.names.prefix()), ")");
  }
  return TriggerActions(t, ctx, SyncFunctionSql(t, ctx, s, /*new_wins=*/false), ins_when, upd_when,
                        "sync");
}

Action SwitchSyncTrigger(const catalog::Table& t, const Context& ctx, const SyncSpec& s) {
  return CatalogOnly("make the new column win conflicting writes",
                     {SyncFunctionSql(t, ctx, s, /*new_wins=*/true)});
}

std::vector<Action> InstallFillTrigger(const catalog::Table& t, const Context& ctx,
                                       const std::string& column, const catalog::TypeInfo& type,
                                       const sql::Expression& expr) {
  const std::string c = Q(column);
  const std::string body =
      absl::StrCat("-- pgshift fill for ", ctx.migration, "\nDECLARE pgshift$fill ", type.spelled,
                   ";\nBEGIN\n  ", EvalInto(t, expr, type, "pgshift$fill"), "\n  NEW.", c,
                   " := pgshift$fill;\n  RETURN NEW;\nEND");
  const std::string when = absl::StrCat(" WHEN (NEW.", c, " IS NULL)");
  return TriggerActions(t, ctx, TriggerFunctionSql(t, ctx, body), when, when, "fill");
}

std::vector<std::string> DropTriggerSql(const catalog::Table& t, const Context& ctx) {
  return {absl::StrCat("DROP TRIGGER IF EXISTS ", Q(ctx.names.insert_trigger()), " ON ", t.Qualified()),
          absl::StrCat("DROP TRIGGER IF EXISTS ", Q(ctx.names.update_trigger()), " ON ", t.Qualified()),
          absl::StrCat("DROP FUNCTION IF EXISTS ", TriggerFunction(t, ctx), "()")};
}

RowFunction LenientRowFunction(const catalog::Table& t, const Context& ctx, absl::string_view suffix,
                               const sql::Expression& expr, const catalog::TypeInfo& type) {
  std::vector<std::string> arg_types, call_args;
  std::map<std::string, int> position;
  for (const catalog::Column& c : t.columns) {
    if (!expr.References(c.name)) continue;
    arg_types.push_back(c.type);
    call_args.push_back(Q(c.name));
    position[c.name] = static_cast<int>(arg_types.size());
  }
  std::vector<std::string> decls = RowDeclarations(
      t, expr, [&position](const catalog::Column& c) { return absl::StrCat("$", position[c.name]); });
  // The value goes through a variable of the column's type: the assignment
  // applies its modifier and raises (value too long) rather than truncate.
  decls.insert(decls.begin(), absl::StrCat("pgshift$v ", type.spelled, ";"));
  const std::string body = absl::StrCat(
      "-- pgshift helper of ", ctx.names.prefix(),
      ": NULL where the expression raises or its value does not fit (validate reports those rows)\n",
      "DECLARE ", absl::StrJoin(decls, " "), "\n", "BEGIN\n  pgshift$v := ", CastTo(expr, type),
      ";\n  RETURN pgshift$v;\nEXCEPTION WHEN others THEN\n  RETURN NULL;\nEND");
  const std::string tag = DollarTag(body);
  const std::string name = HelperFunction(t, ctx, suffix);
  RowFunction f;
  f.create_sql = absl::StrCat("CREATE OR REPLACE FUNCTION ", name, "(", absl::StrJoin(arg_types, ", "),
                              ") RETURNS ", type.raw, " LANGUAGE plpgsql VOLATILE AS ", tag, "\n", body,
                              "\n", tag);
  f.call = absl::StrCat(name, "(", absl::StrJoin(call_args, ", "), ")");
  f.drop_sql = absl::StrCat("DROP FUNCTION IF EXISTS ", name);
  return f;
}

}  // namespace pgshift::ops
