#include "lib/sql/lint.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "lib/sql/sql.h"
#include "lib/sql/tree.h"
#include "lib/util/json.h"
#include "lib/util/status_macros.h"

namespace pgshift::sql {

namespace {

constexpr char kAccessExclusive[] = "ACCESS EXCLUSIVE";
constexpr char kShareRowExclusive[] = "SHARE ROW EXCLUSIVE";
constexpr char kShare[] = "SHARE";
constexpr char kShareUpdateExclusive[] = "SHARE UPDATE EXCLUSIVE";

int LockRank(absl::string_view lock) {
  static constexpr absl::string_view kOrder[] = {
      "none", "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", kShareUpdateExclusive, kShare,
      kShareRowExclusive, "EXCLUSIVE", kAccessExclusive};
  for (size_t i = 0; i < std::size(kOrder); ++i) {
    if (kOrder[i] == lock) return static_cast<int>(i);
  }
  return 0;
}

int VerdictRank(absl::string_view v) {
  if (v == "refuse") return 3;
  if (v == "convert") return 2;
  if (v == "control") return 1;
  return 0;  // safe
}

std::string Quote(absl::string_view id) {
  return absl::StrCat("\"", absl::StrReplaceAll(id, {{"\"", "\"\""}}), "\"");
}

std::string StringOf(const pg_query::Node& n) { return n.has_string() ? n.string().sval() : ""; }

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<pg_query::Node>& list) {
  std::vector<std::string> out;
  for (const auto& n : list) out.push_back(StringOf(n));
  return out;
}

// The deparser's text of a type name: "numeric(12, 2)".
std::string TypeText(const pg_query::TypeName& type) {
  pg_query::Node cast;
  cast.mutable_type_cast()->mutable_arg()->mutable_a_const()->set_isnull(true);
  *cast.mutable_type_cast()->mutable_type_name() = type;
  absl::StatusOr<std::string> text = DeparseExpression(cast);
  if (!text.ok()) return "?";
  constexpr absl::string_view kNull = "NULL::";
  return absl::StartsWith(*text, kNull) ? text->substr(kNull.size()) : *text;
}

std::string TypeBaseName(const pg_query::TypeName& type) {
  return type.names_size() == 0 ? "" : absl::AsciiStrToLower(StringOf(type.names(type.names_size() - 1)));
}

std::string ExprText(const pg_query::Node& n) {
  absl::StatusOr<std::string> text = DeparseExpression(n);
  return text.ok() ? *text : "?";
}

// The functions `n` calls, by name as written ("nextval",
// "pg_catalog.random"). SQL value functions (CURRENT_TIMESTAMP, ...) are
// stable, never volatile, and not listed.
std::vector<std::string> FunctionsCalled(const pg_query::Node& n) {
  std::vector<std::string> out;
  Walk(n, [&out](const google::protobuf::Message& m) {
    if (m.GetDescriptor() == pg_query::FuncCall::descriptor()) {
      const auto& call = static_cast<const pg_query::FuncCall&>(m);
      out.push_back(absl::StrJoin(Strings(call.funcname()), "."));
    }
    return true;
  });
  return out;
}

int IntOf(const pg_query::Node& n) {
  return n.has_a_const() && n.a_const().has_ival() ? n.a_const().ival().ival() : -1;
}

// The type modifier PostgreSQL stores for `type` (atttypmod): -1 without
// modifiers, LintCatalog::kUnknownTypmod for modifiers it does not compute.
int Typmod(const pg_query::TypeName& type) {
  if (type.typmods_size() == 0) return -1;
  const std::string base = TypeBaseName(type);
  constexpr int kHeader = 4;  // VARHDRSZ
  if (base == "varchar" || base == "bpchar" || base == "char" || base == "character varying" ||
      base == "character") {
    int n = IntOf(type.typmods(0));
    return n < 0 ? LintCatalog::kUnknownTypmod : n + kHeader;
  }
  if (base == "numeric" || base == "decimal") {
    int p = IntOf(type.typmods(0)), s = type.typmods_size() > 1 ? IntOf(type.typmods(1)) : 0;
    return p < 0 || s < 0 ? LintCatalog::kUnknownTypmod : ((p << 16) | s) + kHeader;
  }
  return LintCatalog::kUnknownTypmod;
}

// The columns `n` refers to, each once, in order.
std::vector<std::string> ColumnsOf(const pg_query::Node& n) {
  std::vector<std::string> out;
  Walk(n, [&out](const google::protobuf::Message& m) {
    if (m.GetDescriptor() == pg_query::ColumnRef::descriptor()) {
      const auto& ref = static_cast<const pg_query::ColumnRef&>(m);
      if (ref.fields_size() > 0 && ref.fields(ref.fields_size() - 1).has_string()) {
        const std::string c = ref.fields(ref.fields_size() - 1).string().sval();
        if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
      }
    }
    return true;
  });
  return out;
}

// The name PostgreSQL gives an unnamed object: "<table>_<addition>_<label>",
// cut to 63 bytes (before a clash adds a number, which only the server
// knows).
std::string ServerName(absl::string_view table, absl::string_view addition, absl::string_view label) {
  return absl::StrCat(table, addition.empty() ? "" : "_", addition, "_", label).substr(0, 63);
}

// A CHECK's server name: with the column when it reads exactly one.
std::string CheckName(absl::string_view table, const pg_query::Node& expr) {
  std::vector<std::string> columns = ColumnsOf(expr);
  return ServerName(table, columns.size() == 1 ? columns[0] : "", "check");
}

struct Table {
  std::string schema, name;
  std::string Quoted() const { return absl::StrCat(Quote(schema), ".", Quote(name)); }
};

// A fresh statement's JSON of one operation: {"kind": {fields}}.
std::string Op(absl::string_view kind, const util::JsonObject& fields) {
  return util::JsonObject().Raw(kind, fields.Build()).Build();
}

std::string Array(const std::vector<std::string>& items) { return util::JsonStringArray(items); }

class Linter {
 public:
  Linter(std::string schema, bool other_runner, LintCatalog& catalog)
      : schema_(std::move(schema)), other_runner_(other_runner), catalog_(catalog) {}

  void CreatedBefore(const std::string& schema, const std::string& table) {
    created_.insert(Table{schema, table}.Quoted());
  }

  absl::StatusOr<LintedStatement> One(const Statement& st) {
    out_ = LintedStatement();
    out_.sql = st.text;
    out_.line = st.line;
    ASSIGN_OR_RETURN(pg_query::ParseResult tree, Parse(st.text));
    if (tree.stmts_size() != 1) return absl::InternalError("a split statement parsed as several");
    const pg_query::Node& n = tree.stmts(0).stmt();
    ops_.clear();
    Judge(n);
    if (ops_.size() == 1) out_.operation_json = ops_[0];
    if (ops_.size() > 1) out_.operation_json = absl::StrCat("[", absl::StrJoin(ops_, ","), "]");
    if (out_.verdict.empty()) out_.verdict = "safe";
    if (out_.verdict != "control" && !new_only_ && LockRank(out_.lock) >= LockRank(kShare) &&
        !lock_timeout_set_) {
      Find("require-lock-timeout", other_runner_ ? "warning" : "note",
           absl::StrCat("takes ", out_.lock, " with no lock_timeout set before it in the file: run by "
                        "another tool, it would queue behind any long query and block every query "
                        "behind it. pgshift sets lock_timeout on every statement and retries"));
    }
    return out_;
  }

 private:
  Table NameOf(const pg_query::RangeVar& r) const {
    return Table{r.schemaname().empty() ? schema_ : r.schemaname(), r.relname()};
  }

  // Whether `t` is a table created earlier in this script, or one the
  // catalog says does not exist (nobody uses it yet).
  bool IsNew(const Table& t) {
    if (created_.count(t.Quoted())) return true;
    if (renamed_.count(t.Quoted())) return false;  // an existing table under the name the script gave it
    std::optional<bool> exists = catalog_.TableExists(t.schema, t.name);
    if (exists.has_value() && !*exists) {
      Find("table-not-found", "warning",
           absl::StrCat("table ", t.Quoted(), " does not exist in the database and the script does "
                        "not create it before: the statement would fail"));
      return true;
    }
    return false;
  }

  void Find(absl::string_view rule, absl::string_view level, std::string message) {
    for (const auto& f : out_.findings) {
      if (f.rule == rule) return;
    }
    out_.findings.push_back(LintFinding{std::string(rule), std::string(level), std::move(message)});
  }

  void Verdict(absl::string_view v) {
    if (VerdictRank(v) > VerdictRank(out_.verdict)) out_.verdict = std::string(v);
  }

  void Lock(const Table& t, absl::string_view lock) {
    if (LockRank(lock) > LockRank(out_.lock)) out_.lock = std::string(lock);
    if (std::find(out_.tables.begin(), out_.tables.end(), t.Quoted()) == out_.tables.end()) {
      out_.tables.push_back(t.Quoted());
    }
    for (auto& l : out_.locks) {
      if (l.schema == t.schema && l.table == t.name) {
        if (LockRank(lock) > LockRank(l.mode)) l.mode = std::string(lock);
        return;
      }
    }
    out_.locks.push_back(LintedStatement::TableLock{t.schema, t.name, std::string(lock)});
  }

  // It changes `column` of `t` (a whole table it creates: "").
  void Changes(const Table& t, const std::string& column) {
    out_.changes.push_back(LintedStatement::Change{t.schema, t.name, column});
  }

  void Instead(const std::string& what) {
    out_.instead = out_.instead.empty() ? what : absl::StrCat(out_.instead, "; ", what);
  }

  // `t`: the table the operation works on; an operation runs in its
  // migration's schema, so one of another schema says so.
  void Convert(absl::string_view rule, std::string why, std::string op, const std::string& runs,
               const Table& t) {
    Verdict("convert");
    Find(rule, "error", std::move(why));
    ops_.push_back(std::move(op));
    if (out_.operation_schema.empty() || t.schema != schema_) out_.operation_schema = t.schema;
    Instead(t.schema == schema_ ? runs
                                : absl::StrCat(runs, " (in a migration whose \"schema\" is \"", t.schema, "\")"));
  }

  void Refuse(absl::string_view rule, std::string why, const std::string& instead, std::string op = "") {
    Verdict("refuse");
    Find(rule, "error", std::move(why));
    if (!op.empty()) ops_.push_back(std::move(op));
    Instead(instead);
  }

  void IntNote(const pg_query::TypeName& type, absl::string_view column) {
    static const std::set<std::string> kSmall = {"int4", "int2", "int", "integer", "smallint",
                                                 "serial", "serial4", "smallserial", "serial2"};
    if (kSmall.count(TypeBaseName(type))) {
      Find("prefer-bigint-over-int", "note",
           absl::StrCat("column ", Quote(column), " is ", TypeText(type),
                        ": an id or counter that outgrows 2^31 needs a rewriting type change later; "
                        "bigint costs 4 bytes more"));
    }
  }

  // Statements PostgreSQL refuses to run inside a transaction block.
  static bool OutsideTransaction(const pg_query::Node& n) {
    switch (n.node_case()) {
      case pg_query::Node::kIndexStmt: return n.index_stmt().concurrent();
      case pg_query::Node::kDropStmt: return n.drop_stmt().concurrent();
      case pg_query::Node::kVacuumStmt: return n.vacuum_stmt().is_vacuumcmd();
      case pg_query::Node::kReindexStmt:
        for (const auto& p : n.reindex_stmt().params()) {
          if (p.has_def_elem() && absl::AsciiStrToLower(p.def_elem().defname()) == "concurrently") return true;
        }
        return n.reindex_stmt().kind() == pg_query::REINDEX_OBJECT_SYSTEM ||
               n.reindex_stmt().kind() == pg_query::REINDEX_OBJECT_DATABASE;
      case pg_query::Node::kCreatedbStmt:
      case pg_query::Node::kDropdbStmt:
      case pg_query::Node::kAlterSystemStmt:
      case pg_query::Node::kCreateTableSpaceStmt:
      case pg_query::Node::kDropTableSpaceStmt: return true;
      default: return false;
    }
  }

  void Judge(const pg_query::Node& n) {
    new_only_ = false;
    out_.outside_transaction = OutsideTransaction(n);
    switch (n.node_case()) {
      case pg_query::Node::kTransactionStmt: return Transaction(n.transaction_stmt());
      case pg_query::Node::kVariableSetStmt: return Setting(n.variable_set_stmt());
      case pg_query::Node::kCreateStmt: return CreateTable(n.create_stmt());
      case pg_query::Node::kIndexStmt: return CreateIndex(n.index_stmt());
      case pg_query::Node::kCreateTableAsStmt: {
        const pg_query::CreateTableAsStmt& c = n.create_table_as_stmt();
        out_.statement = "CREATE TABLE AS";
        if (c.objtype() == pg_query::OBJECT_TABLE && c.into().has_rel()) {
          Created(NameOf(c.into().rel()), c.if_not_exists());
          Changes(NameOf(c.into().rel()), "");
        }
        return;
      }
      case pg_query::Node::kDropStmt: return Drop(n.drop_stmt());
      case pg_query::Node::kRenameStmt: return Rename(n.rename_stmt());
      case pg_query::Node::kAlterTableStmt: return AlterTable(n.alter_table_stmt());
      case pg_query::Node::kVacuumStmt: return Vacuum(n.vacuum_stmt());
      case pg_query::Node::kClusterStmt: {
        out_.statement = "CLUSTER";
        if (n.cluster_stmt().has_relation()) Lock(NameOf(n.cluster_stmt().relation()), kAccessExclusive);
        out_.rewrites_table = true;
        return Refuse("ban-cluster",
                      "CLUSTER rewrites the table under ACCESS EXCLUSIVE: every query on it waits "
                      "for the whole rewrite",
                      "leave it out of migrations; pg_repack reorders a table online");
      }
      case pg_query::Node::kLockStmt: {
        out_.statement = "LOCK TABLE";
        for (const auto& r : n.lock_stmt().relations()) {
          if (r.has_range_var()) Lock(NameOf(r.range_var()), kAccessExclusive);
        }
        return Refuse("ban-lock-table",
                      "an explicit LOCK holds the lock until the transaction ends, while pgshift runs "
                      "each statement in its own short transaction",
                      "remove it: pgshift takes the locks each statement needs, with lock_timeout and "
                      "retries");
      }
      case pg_query::Node::kTruncateStmt: {
        out_.statement = "TRUNCATE";
        for (const auto& r : n.truncate_stmt().relations()) {
          if (r.has_range_var()) Lock(NameOf(r.range_var()), kAccessExclusive);
        }
        return;
      }
      case pg_query::Node::kReindexStmt: {
        const pg_query::ReindexStmt& r = n.reindex_stmt();
        bool concurrently = false;
        for (const auto& p : r.params()) {
          if (p.has_def_elem() && absl::AsciiStrToLower(p.def_elem().defname()) == "concurrently") {
            concurrently = true;
          }
        }
        out_.statement = concurrently ? "REINDEX CONCURRENTLY" : "REINDEX";
        if (r.has_relation()) Lock(NameOf(r.relation()), concurrently ? kShareUpdateExclusive : kShare);
        if (!concurrently) {
          out_.scans_table = true;
          Refuse("require-concurrent-reindex",
                 "REINDEX blocks writes to the table (and reads that would use the index) for the "
                 "whole rebuild",
                 "write it as REINDEX ... CONCURRENTLY (safe as written)");
        }
        return;
      }
      case pg_query::Node::kRefreshMatViewStmt: {
        const pg_query::RefreshMatViewStmt& r = n.refresh_mat_view_stmt();
        out_.statement = r.concurrent() ? "REFRESH MATERIALIZED VIEW CONCURRENTLY" : "REFRESH MATERIALIZED VIEW";
        Lock(NameOf(r.relation()), r.concurrent() ? "EXCLUSIVE" : kAccessExclusive);
        if (!r.concurrent()) {
          Refuse("require-concurrent-refresh",
                 "REFRESH MATERIALIZED VIEW holds ACCESS EXCLUSIVE on the view for the whole refresh: "
                 "every read of it waits",
                 "write it as REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)");
        }
        return;
      }
      case pg_query::Node::kUpdateStmt:
      case pg_query::Node::kDeleteStmt: return Dml(n);
      case pg_query::Node::kCommentStmt:
        out_.statement = "COMMENT";
        return;
      case pg_query::Node::kGrantStmt:
      case pg_query::Node::kGrantRoleStmt:
        out_.statement = "GRANT/REVOKE";
        return;
      case pg_query::Node::kCreateFunctionStmt:
        out_.statement = "CREATE FUNCTION";
        return;
      case pg_query::Node::kCreateTrigStmt:
        out_.statement = "CREATE TRIGGER";
        if (n.create_trig_stmt().has_relation()) Lock(NameOf(n.create_trig_stmt().relation()), kShareRowExclusive);
        return;
      case pg_query::Node::kViewStmt:
        out_.statement = "CREATE VIEW";
        return;
      case pg_query::Node::kInsertStmt:
        out_.statement = "INSERT";
        return;
      case pg_query::Node::kSelectStmt:
        out_.statement = "SELECT";
        return;
      case pg_query::Node::kCreateSeqStmt:
      case pg_query::Node::kAlterSeqStmt:
      case pg_query::Node::kCreateSchemaStmt:
      case pg_query::Node::kCreateExtensionStmt:
      case pg_query::Node::kCreateEnumStmt:
      case pg_query::Node::kAlterEnumStmt:
      case pg_query::Node::kCompositeTypeStmt:
      case pg_query::Node::kCreateDomainStmt:
        out_.statement = "CREATE/ALTER (catalog only)";
        return;
      default:
        out_.statement = "other";
        Find("unknown-statement", "note",
             "pgshift does not analyse this kind of statement; it runs as written, in its own "
             "transaction with lock_timeout");
        return;
    }
  }

  void Transaction(const pg_query::TransactionStmt& t) {
    out_.statement = "transaction control";
    out_.verdict = "control";
    switch (t.kind()) {
      case pg_query::TRANS_STMT_BEGIN:
      case pg_query::TRANS_STMT_START: in_transaction_ = true; break;
      case pg_query::TRANS_STMT_COMMIT:
      case pg_query::TRANS_STMT_ROLLBACK: in_transaction_ = false; break;
      default: break;
    }
    Find("transaction-control", "note",
         "pgshift does not run it: every statement runs in its own short transaction (CREATE INDEX "
         "CONCURRENTLY outside any), so that no lock is held longer than one statement");
  }

  void Setting(const pg_query::VariableSetStmt& s) {
    out_.statement = "SET";
    out_.verdict = "control";
    const std::string name = absl::AsciiStrToLower(s.name());
    // A setting the statements after it would depend on (search_path, role,
    // ...): pgshift runs each statement on its own and cannot keep it.
    static const std::set<std::string> kHarmless = {
        "lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout", "client_min_messages",
        "client_encoding", "application_name", "standard_conforming_strings", "check_function_bodies"};
    if (s.kind() != pg_query::VAR_RESET_ALL && !kHarmless.count(name) && !other_runner_) {
      out_.verdict.clear();
      return Refuse("session-setting-not-kept",
                    absl::StrCat("SET ", name.empty() ? "(this setting)" : name,
                                 " changes how the statements after it run, but pgshift runs every statement "
                                 "in its own transaction and does not carry it over"),
                    name == "search_path" ? "qualify the names with their schema instead"
                                          : "remove it, and write each statement so that it needs no setting");
    }
    if (name == "lock_timeout") {
      // 0 (or DEFAULT, RESET) turns it off.
      bool zero = s.kind() != pg_query::VAR_SET_VALUE || s.args_size() != 1 || !s.args(0).has_a_const();
      if (!zero) {
        const pg_query::A_Const& v = s.args(0).a_const();
        zero = (v.has_ival() && v.ival().ival() == 0) ||
               (v.has_sval() && (v.sval().sval() == "0" || v.sval().sval() == "0s" || v.sval().sval() == "0ms"));
      }
      lock_timeout_set_ = !zero;
    }
    Find("session-setting", "note",
         name == "lock_timeout" || name == "statement_timeout"
             ? absl::StrCat("pgshift does not run it: it sets ", name,
                            " on every statement itself (--lock-timeout, --statement-timeout)")
             : "pgshift does not run it: each statement runs on its own, with pgshift's settings");
  }

  // A table the script creates: nothing uses it yet. CREATE TABLE IF NOT
  // EXISTS of a table that may exist already creates nothing.
  void Created(const Table& t, bool if_not_exists) {
    if (if_not_exists) {
      std::optional<bool> exists = catalog_.TableExists(t.schema, t.name);
      if (!exists.has_value() || *exists) return;
    }
    created_.insert(t.Quoted());
  }

  void CreateTable(const pg_query::CreateStmt& c) {
    out_.statement = "CREATE TABLE";
    const Table t = NameOf(c.relation());
    Created(t, c.if_not_exists());
    Changes(t, "");
    // A foreign key to another table locks that table (SHARE ROW EXCLUSIVE).
    auto references = [this, &t](const pg_query::Constraint& k) {
      if (k.contype() != pg_query::CONSTR_FOREIGN || !k.has_pktable()) return;
      const Table ref = NameOf(k.pktable());
      if (ref.Quoted() != t.Quoted()) Lock(ref, kShareRowExclusive);
    };
    for (const auto& e : c.table_elts()) {
      if (e.has_column_def()) {
        IntNote(e.column_def().type_name(), e.column_def().colname());
        for (const auto& k : e.column_def().constraints()) {
          if (k.has_constraint()) references(k.constraint());
        }
      }
      if (e.has_constraint()) references(e.constraint());
    }
    new_only_ = !std::any_of(out_.locks.begin(), out_.locks.end(),
                             [this](const LintedStatement::TableLock& l) { return !IsNew(Table{l.schema, l.table}); });
  }

  // The create_index operation of `i` on `t`, or "" when it cannot say
  // what `i` says (operator classes, collations, orderings, storage options).
  static std::string IndexOperation(const pg_query::IndexStmt& i, const Table& t) {
    std::vector<std::string> columns;
    std::vector<std::string> words;
    for (const auto& p : i.index_params()) {
      const pg_query::IndexElem& e = p.index_elem();
      if (e.collation_size() || e.opclass_size() || e.ordering() > pg_query::SORTBY_DEFAULT ||
          e.nulls_ordering() > pg_query::SORTBY_NULLS_DEFAULT) {
        return "";
      }
      columns.push_back(e.name().empty() ? ExprText(e.expr()) : e.name());
      words.push_back(!e.name().empty() ? e.name()
                      : e.expr().has_func_call() && e.expr().func_call().funcname_size() > 0
                          ? StringOf(e.expr().func_call().funcname(e.expr().func_call().funcname_size() - 1))
                          : "expr");
    }
    if (i.nulls_not_distinct() || !i.options().empty() || !i.table_space().empty()) return "";
    std::string name = i.idxname();
    if (name.empty()) name = ServerName(t.name, absl::StrJoin(words, "_"), "idx");
    util::JsonObject o;
    o.Str("table", t.name).Str("name", name).Raw("columns", Array(columns));
    if (i.unique()) o.Bool("unique", true);
    if (!i.access_method().empty() && i.access_method() != "btree") o.Str("method", i.access_method());
    if (i.has_where_clause()) o.Str("where", ExprText(i.where_clause()));
    if (i.index_including_params_size()) {
      std::vector<std::string> include;
      for (const auto& p : i.index_including_params()) include.push_back(p.index_elem().name());
      o.Raw("include", Array(include));
    }
    return Op("create_index", o);
  }

  void CreateIndex(const pg_query::IndexStmt& i) {
    out_.statement = i.concurrent() ? "CREATE INDEX CONCURRENTLY" : "CREATE INDEX";
    const Table t = NameOf(i.relation());
    if (IsNew(t)) {
      new_only_ = true;
      Lock(t, i.concurrent() ? kShareUpdateExclusive : kShare);
      if (!i.idxname().empty()) created_indexes_.insert(Table{t.schema, i.idxname()}.Quoted());
      return;
    }
    out_.scans_table = true;
    const std::string op = IndexOperation(i, t);
    if (i.concurrent()) {
      Lock(t, kShareUpdateExclusive);
      if (in_transaction_) {
        Find("concurrently-in-transaction", other_runner_ ? "warning" : "note",
             "CREATE INDEX CONCURRENTLY cannot run inside a transaction block; pgshift runs it "
             "outside any");
      }
      // An operation runs in its migration's schema.
      if (t.schema == schema_) out_.run_as_json = op;
      if (!out_.run_as_json.empty()) {
        Instead("pgshift runs it as create_index, which drops and builds again an INVALID index "
                "left by an interrupted build");
      }
      return;
    }
    Lock(t, kShare);
    const std::string why =
        "CREATE INDEX holds a SHARE lock for the whole build: every write to the table waits";
    if (op.empty()) {
      return Refuse("require-concurrent-index", why,
                    "write it as CREATE INDEX CONCURRENTLY (safe as written; an interrupted build "
                    "leaves an INVALID index to drop)");
    }
    Convert("require-concurrent-index", why, op,
            "create_index: CREATE INDEX CONCURRENTLY outside a transaction (writes go on); an "
            "INVALID leftover of an interrupted build is dropped and rebuilt", t);
  }

  void Drop(const pg_query::DropStmt& d) {
    if (d.remove_type() == pg_query::OBJECT_INDEX) {
      out_.statement = d.concurrent() ? "DROP INDEX CONCURRENTLY" : "DROP INDEX";
      if (d.concurrent()) {
        out_.lock = kShareUpdateExclusive;
        return;
      }
      out_.lock = kAccessExclusive;
      const std::string why =
          "DROP INDEX takes ACCESS EXCLUSIVE on the table, queued behind every running query";
      if (d.objects_size() != 1) {
        return Refuse("require-concurrent-index-drop", why,
                      "drop one index per statement, with DROP INDEX CONCURRENTLY");
      }
      std::vector<std::string> parts = Strings(d.objects(0).list().items());
      const Table index{parts.size() > 1 ? parts[parts.size() - 2] : schema_, parts.back()};
      if (created_indexes_.count(index.Quoted())) {  // on a table the script created
        new_only_ = true;
        return;
      }
      return Convert("require-concurrent-index-drop", why,
                     Op("drop_index", util::JsonObject().Str("name", parts.back())),
                     "drop_index: DROP INDEX CONCURRENTLY at contract, outside a transaction", index);
    }
    if (d.remove_type() == pg_query::OBJECT_TABLE) {
      out_.statement = "DROP TABLE";
      std::vector<Table> tables;
      for (const auto& o : d.objects()) {
        std::vector<std::string> parts = Strings(o.list().items());
        tables.push_back(Table{parts.size() > 1 ? parts[parts.size() - 2] : schema_, parts.back()});
      }
      bool all_new = true;
      for (const Table& t : tables) {
        Lock(t, kAccessExclusive);
        all_new = all_new && IsNew(t);
      }
      if (all_new) {
        new_only_ = true;
        return;
      }
      const std::string why =
          "DROP TABLE breaks every application instance still running the old version, at once";
      if (d.behavior() == pg_query::DROP_CASCADE) {
        return Refuse("ban-drop-table-without-contract",
                      absl::StrCat(why, "; with CASCADE it also drops whatever depends on the table"),
                      "drop what depends on the table in statements of their own, then the table "
                      "without CASCADE (drop_table refuses while anything depends on it)");
      }
      if (std::any_of(tables.begin(), tables.end(), [this](const Table& t) { return IsNew(t); })) {
        return Refuse("ban-drop-table-without-contract", why,
                      "drop the tables this script created and the ones in use in separate "
                      "DROP TABLE statements (the first run as written, the others at contract)");
      }
      for (const Table& t : tables) {
        if (IsNew(t)) continue;
        Convert("ban-drop-table-without-contract", why,
                Op("drop_table", util::JsonObject().Str("table", t.name)),
                "drop_table: nothing until contract, when the old application version is gone; "
                "refused while anything depends on the table", t);
      }
      return;
    }
    out_.statement = "DROP (not a table)";
  }

  void Rename(const pg_query::RenameStmt& r) {
    const bool column =
        r.rename_type() == pg_query::OBJECT_COLUMN && r.relation_type() == pg_query::OBJECT_TABLE;
    const bool table = r.rename_type() == pg_query::OBJECT_TABLE;
    if ((!column && !table) || !r.has_relation()) {
      out_.statement = "RENAME (not a table or column)";
      return;
    }
    out_.statement = column ? "ALTER TABLE RENAME COLUMN" : "ALTER TABLE RENAME TO";
    const Table t = NameOf(r.relation());
    Lock(t, kAccessExclusive);
    if (IsNew(t)) {
      new_only_ = true;
      if (table) created_.insert(Table{t.schema, r.newname()}.Quoted());
      return;
    }
    const std::string why = absl::StrCat(
        "renaming a ", column ? "column" : "table",
        " breaks every application instance still running the old version the moment it commits");
    if (column) {
      return Convert("rename-breaks-old-app", why,
                     Op("rename_column",
                        util::JsonObject().Str("table", t.name).Str("from", r.subname()).Str("to", r.newname())),
                     "rename_column: a new column kept in sync by a trigger until contract, so that "
                     "old and new application versions both work", t);
    }
    renamed_.insert(Table{t.schema, r.newname()}.Quoted());
    Convert("rename-breaks-old-app", why,
            Op("rename_table", util::JsonObject().Str("from", t.name).Str("to", r.newname())),
            "rename_table: renamed, with an updatable view under the old name until contract", t);
  }

  void Vacuum(const pg_query::VacuumStmt& v) {
    bool full = false;
    for (const auto& o : v.options()) {
      if (o.has_def_elem() && absl::AsciiStrToLower(o.def_elem().defname()) == "full") full = true;
    }
    out_.statement = v.is_vacuumcmd() ? (full ? "VACUUM FULL" : "VACUUM") : "ANALYZE";
    for (const auto& r : v.rels()) {
      if (r.has_vacuum_relation() && r.vacuum_relation().has_relation()) {
        Lock(NameOf(r.vacuum_relation().relation()), full ? kAccessExclusive : kShareUpdateExclusive);
      }
    }
    if (full) {
      out_.rewrites_table = true;
      Refuse("ban-vacuum-full",
             "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE: every query on it waits for the "
             "whole rewrite",
             "leave it out of migrations; plain VACUUM, or pg_repack, reclaim space online");
    }
  }

  void Dml(const pg_query::Node& n) {
    const bool update = n.has_update_stmt();
    out_.statement = update ? "UPDATE" : "DELETE";
    const Table t = NameOf(update ? n.update_stmt().relation() : n.delete_stmt().relation());
    Lock(t, "ROW EXCLUSIVE");
    const bool where = update ? n.update_stmt().has_where_clause() : n.delete_stmt().has_where_clause();
    if (!where && !IsNew(t)) {
      Find("unbatched-update", "warning",
           absl::StrCat(update ? "an " : "a ", out_.statement,
                        " of every row runs in one transaction: it locks every row it changes until "
                        "it commits and bloats the table; change many rows in batches (a column's "
                        "values: add_column with up, change_type)"));
    }
  }

  void AlterTable(const pg_query::AlterTableStmt& a) {
    out_.statement = "ALTER TABLE";
    if (a.objtype() != pg_query::OBJECT_TABLE) {
      out_.statement = "ALTER (not a table)";
      return;
    }
    const Table t = NameOf(a.relation());
    const bool fresh = IsNew(t);
    new_only_ = fresh;
    std::vector<std::string> what, as_written;
    for (const auto& c : a.cmds()) {
      if (!c.has_alter_table_cmd()) continue;
      const size_t ops_before = ops_.size();
      const std::string verdict_before = out_.verdict;
      out_.verdict.clear();
      what.push_back(Subcommand(t, fresh, c.alter_table_cmd()));
      if (out_.verdict.empty() && ops_.size() == ops_before) as_written.push_back(what.back());
      const std::string mine = out_.verdict;
      out_.verdict = verdict_before;
      Verdict(mine);
    }
    if (!what.empty()) out_.statement = absl::StrCat("ALTER TABLE ", absl::StrJoin(what, ", "));
    // pgshift runs a converted statement as its operations: a subcommand
    // it would have run as written must not be lost with it.
    if (out_.verdict == "convert" && !as_written.empty()) {
      out_.verdict = "refuse";
      ops_.clear();
      Find("split-alter-table", "error",
           absl::StrCat("this ALTER TABLE mixes subcommands pgshift converts with ones it runs as "
                        "written (", absl::StrJoin(as_written, ", "), ")"));
      out_.instead = "put each subcommand pgshift converts in an ALTER TABLE statement of its own";
    }
  }

  // One subcommand of ALTER TABLE `t`; returns its name.
  std::string Subcommand(const Table& t, bool fresh, const pg_query::AlterTableCmd& c) {
    switch (c.subtype()) {
      case pg_query::AT_AddColumn:
        if (c.def().has_column_def()) Changes(t, c.def().column_def().colname());
        break;
      case pg_query::AT_DropColumn:
      case pg_query::AT_AlterColumnType:
      case pg_query::AT_SetNotNull:
      case pg_query::AT_DropNotNull:
      case pg_query::AT_ColumnDefault: Changes(t, c.name()); break;
      default: break;
    }
    switch (c.subtype()) {
      case pg_query::AT_AddColumn: {
        Lock(t, kAccessExclusive);
        AddColumn(t, fresh, c.def().column_def());
        return "ADD COLUMN";
      }
      case pg_query::AT_DropColumn: {
        Lock(t, kAccessExclusive);
        if (!fresh && c.behavior() == pg_query::DROP_CASCADE) {
          Refuse("ban-drop-column-without-contract",
                 "dropping a column breaks every application instance still running the old "
                 "version the moment it commits; with CASCADE it also drops whatever depends on it",
                 "drop what depends on the column (views, constraints, indexes) in statements of "
                 "their own, then the column without CASCADE (drop_column)");
          return "DROP COLUMN";
        }
        if (!fresh) {
          {
            Convert("ban-drop-column-without-contract",
                    "dropping a column breaks every application instance still running the old "
                    "version the moment it commits",
                    Op("drop_column", util::JsonObject().Str("table", t.name).Str("column", c.name())),
                    "drop_column: the column stays (nullable, filled by a default for new-version "
                    "inserts) until contract, when the old application version is gone", t);
          }
        }
        return "DROP COLUMN";
      }
      case pg_query::AT_AlterColumnType: {
        Lock(t, kAccessExclusive);
        AlterType(t, fresh, c.name(), c.def().column_def());
        return "ALTER COLUMN TYPE";
      }
      case pg_query::AT_SetNotNull: {
        Lock(t, kAccessExclusive);
        if (!fresh) {
          out_.scans_table = true;
          Convert("set-not-null-scans",
                  "SET NOT NULL reads every row under ACCESS EXCLUSIVE: every query on the table "
                  "waits for the scan",
                  Op("set_not_null", util::JsonObject().Str("table", t.name).Str("column", c.name())),
                  "set_not_null: a CHECK (column IS NOT NULL) added NOT VALID and validated without "
                  "blocking writes, then SET NOT NULL without a scan", t);
        }
        return "SET NOT NULL";
      }
      case pg_query::AT_DropNotNull:
        Lock(t, kAccessExclusive);
        return "DROP NOT NULL";
      case pg_query::AT_ColumnDefault:
        Lock(t, kAccessExclusive);
        return c.has_def() ? "SET DEFAULT" : "DROP DEFAULT";
      case pg_query::AT_AddConstraint: {
        AddConstraint(t, fresh, c.def().constraint());
        return "ADD CONSTRAINT";
      }
      case pg_query::AT_ValidateConstraint:
        Lock(t, kShareUpdateExclusive);
        out_.scans_table = !fresh;
        return "VALIDATE CONSTRAINT";
      case pg_query::AT_DropConstraint:
        Lock(t, kAccessExclusive);
        return "DROP CONSTRAINT";
      case pg_query::AT_SetLogged:
      case pg_query::AT_SetUnLogged:
        Lock(t, kAccessExclusive);
        if (!fresh) {
          out_.rewrites_table = true;
          Refuse("table-rewrite",
                 "SET LOGGED / UNLOGGED rewrites the whole table under ACCESS EXCLUSIVE",
                 "leave it out of migrations, or run it in a maintenance window");
        }
        return "SET LOGGED/UNLOGGED";
      case pg_query::AT_AddIndexConstraint:
        Lock(t, kAccessExclusive);
        return "ADD CONSTRAINT USING INDEX";
      default:
        Lock(t, kAccessExclusive);
        if (!fresh) {
          Find("unknown-statement", "warning",
               absl::StrCat("pgshift does not analyse ALTER TABLE subcommand ",
                            pg_query::AlterTableType_Name(c.subtype()),
                            "; it runs as written, under ACCESS EXCLUSIVE with lock_timeout: check "
                            "that it neither scans nor rewrites the table"));
        }
        return "other";
    }
  }

  void AddColumn(const Table& t, bool fresh, const pg_query::ColumnDef& col) {
    IntNote(col.type_name(), col.colname());
    if (fresh) return;
    bool not_null = col.is_not_null(), primary = false, unique = false, checked = false;
    const pg_query::Node* def = col.has_raw_default() ? &col.raw_default() : nullptr;
    bool generated = !col.identity().empty() || !col.generated().empty();
    for (const auto& cn : col.constraints()) {
      const pg_query::Constraint& k = cn.constraint();
      switch (k.contype()) {
        case pg_query::CONSTR_NOTNULL: not_null = true; break;
        case pg_query::CONSTR_DEFAULT: def = &k.raw_expr(); break;
        case pg_query::CONSTR_IDENTITY:
        case pg_query::CONSTR_GENERATED: generated = true; break;
        case pg_query::CONSTR_PRIMARY: primary = true; break;
        case pg_query::CONSTR_UNIQUE: unique = true; break;
        case pg_query::CONSTR_CHECK:
        case pg_query::CONSTR_FOREIGN: checked = true; break;
        default: break;
      }
    }
    const std::string base = TypeBaseName(col.type_name());
    const bool serial = base == "serial" || base == "bigserial" || base == "smallserial" ||
                        base == "serial4" || base == "serial8" || base == "serial2";
    if (serial || generated || primary) {
      out_.rewrites_table = true;
      return Refuse("adding-serial-primary-key",
                    absl::StrCat("adding ", serial ? "a serial" : generated ? "an identity or generated" : "a primary-key",
                                 " column fills every row (or builds an index) under ACCESS "
                                 "EXCLUSIVE: every query on the table waits for the rewrite"),
                    "add a nullable bigint column with a DEFAULT from a sequence as an add_column "
                    "(batched backfill), then a unique index with create_index");
    }
    if (unique || checked) {
      out_.scans_table = true;
      return Refuse(unique ? "unique-constraint-builds-index" : "constraint-missing-not-valid",
                    "a constraint declared with the new column is built or checked under ACCESS "
                    "EXCLUSIVE",
                    "add the column alone, then the constraint in its own statement (add_unique, "
                    "add_check or add_foreign_key)");
    }
    std::optional<bool> volatile_default;
    if (def != nullptr) {
      const std::vector<std::string> functions = FunctionsCalled(*def);
      volatile_default = functions.empty() ? std::optional<bool>(false) : catalog_.IsVolatile(functions);
      if (!volatile_default) out_.assumed = true;
    }
    if (def == nullptr && not_null) {
      return Refuse("adding-not-null-column",
                    "ADD COLUMN ... NOT NULL without a DEFAULT fails on a table that has rows, and "
                    "old application versions cannot insert without the column",
                    "give it a DEFAULT (add_column with default and not_null)",
                    Op("add_column", util::JsonObject()
                                         .Str("table", t.name)
                                         .Str("column", col.colname())
                                         .Str("type", TypeText(col.type_name()))
                                         .Str("default", "...")
                                         .Bool("not_null", true)));
    }
    if (def != nullptr && volatile_default.value_or(true)) {
      out_.rewrites_table = true;
      util::JsonObject o;
      o.Str("table", t.name).Str("column", col.colname()).Str("type", TypeText(col.type_name()));
      o.Str("default", ExprText(*def));
      if (not_null) o.Bool("not_null", true);
      return Convert("volatile-default-rewrites",
                     absl::StrCat("ADD COLUMN with the volatile DEFAULT ", ExprText(*def),
                                  volatile_default ? "" : " (assumed volatile: no database to ask)",
                                  " rewrites the whole table under ACCESS EXCLUSIVE"),
                     Op("add_column", o),
                     "add_column: the column added without a default, filled in batches, the default "
                     "set for new rows", t);
    }
  }

  void AlterType(const Table& t, bool fresh, const std::string& column, const pg_query::ColumnDef& def) {
    if (fresh) return;
    const std::string type = TypeText(def.type_name());
    std::optional<bool> rewrites = def.has_raw_default() ? std::optional<bool>(true)
                                                          : catalog_.TypeChangeRewrites(t.schema, t.name, column, type,
                                                                                        Typmod(def.type_name()));
    if (rewrites.has_value() && !*rewrites) return;  // a catalog-only change
    if (!rewrites) out_.assumed = true;
    out_.rewrites_table = true;
    const std::string up = def.has_raw_default() ? ExprText(def.raw_default()) : Quote(column);
    Refuse("type-change-rewrites",
           absl::StrCat("changing the type of ", Quote(column), " to ", type,
                        rewrites ? "" : " (assumed: no database to ask whether it rewrites)",
                        " rewrites the table under ACCESS EXCLUSIVE, and breaks old application "
                        "versions that write the old type"),
           "write a change_type migration: a new column of the new type kept in sync both ways "
           "(needs a new_column name, an up and a down expression)",
           Op("change_type", util::JsonObject()
                                 .Str("table", t.name)
                                 .Str("column", column)
                                 .Str("new_column", column + "_new")
                                 .Str("type", type)
                                 .Str("up", absl::StrCat("(", up, ")::", type))
                                 .Str("down", "...")));
  }

  void AddConstraint(const Table& t, bool fresh, const pg_query::Constraint& k) {
    switch (k.contype()) {
      case pg_query::CONSTR_FOREIGN: {
        const Table ref = NameOf(k.pktable());
        Lock(t, kShareRowExclusive);
        Lock(ref, kShareRowExclusive);
        if (fresh || k.skip_validation()) return;
        out_.scans_table = true;
        const std::string why =
            "ADD FOREIGN KEY checks every row while holding SHARE ROW EXCLUSIVE on both tables: "
            "writes to both wait for the scan";
        std::vector<std::string> cols = Strings(k.fk_attrs()), refs = Strings(k.pk_attrs());
        // add_foreign_key has no field for these: converting would lose them.
        const bool unconvertible = k.deferrable() || k.initdeferred() || k.fk_matchtype() == "f" ||
                                   k.fk_del_set_cols_size() > 0;
        if (refs.empty() || ref.schema != t.schema || unconvertible) {
          return Refuse("constraint-missing-not-valid", why,
                        "add it NOT VALID, then VALIDATE CONSTRAINT in its own statement (both safe "
                        "as written), or an add_foreign_key naming the referenced columns");
        }
        util::JsonObject o;
        o.Str("table", t.name)
            .Str("name", k.conname().empty() ? ServerName(t.name, absl::StrJoin(cols, "_"), "fkey") : k.conname())
            .Raw("columns", Array(cols))
            .Str("references_table", ref.name)
            .Raw("references_columns", Array(refs));
        auto action = [](const std::string& a) -> std::string {
          if (a == "r") return "RESTRICT";
          if (a == "c") return "CASCADE";
          if (a == "n") return "SET_NULL";
          if (a == "d") return "SET_DEFAULT";
          return "";
        };
        if (!action(k.fk_del_action()).empty()) o.Str("on_delete", action(k.fk_del_action()));
        if (!action(k.fk_upd_action()).empty()) o.Str("on_update", action(k.fk_upd_action()));
        return Convert("constraint-missing-not-valid", why, Op("add_foreign_key", o),
                       "add_foreign_key: added NOT VALID (a brief lock), then validated without "
                       "blocking writes", t);
      }
      case pg_query::CONSTR_CHECK: {
        Lock(t, kAccessExclusive);
        if (fresh || k.skip_validation()) return;
        out_.scans_table = true;
        const std::string why =
            "ADD CHECK reads every row under ACCESS EXCLUSIVE: every query on the table waits for "
            "the scan";
        return Convert("constraint-missing-not-valid", why,
                       Op("add_check", util::JsonObject()
                                           .Str("table", t.name)
                                           .Str("name", k.conname().empty() ? CheckName(t.name, k.raw_expr()) : k.conname())
                                           .Str("check", ExprText(k.raw_expr()))),
                       "add_check: added NOT VALID (a brief lock), then validated without blocking "
                       "writes", t);
      }
      case pg_query::CONSTR_UNIQUE: {
        Lock(t, kAccessExclusive);
        if (fresh || !k.indexname().empty()) return;
        out_.scans_table = true;
        std::vector<std::string> cols = Strings(k.keys());
        const std::string why =
            "ADD UNIQUE builds its index under ACCESS EXCLUSIVE: every query on the table waits "
            "for the build";
        if (k.including_size() || k.nulls_not_distinct() || k.deferrable() || k.initdeferred() ||
            !k.indexspace().empty()) {
          return Refuse("unique-constraint-builds-index", why,
                        "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING "
                        "INDEX (both safe as written)");
        }
        return Convert("unique-constraint-builds-index", why,
                       Op("add_unique", util::JsonObject()
                                            .Str("table", t.name)
                                            .Str("name", k.conname().empty() ? ServerName(t.name, absl::StrJoin(cols, "_"), "key") : k.conname())
                                            .Raw("columns", Array(cols))),
                       "add_unique: the unique index built CONCURRENTLY, then attached as the "
                       "constraint with a brief lock", t);
      }
      case pg_query::CONSTR_PRIMARY: {
        Lock(t, kAccessExclusive);
        if (fresh || !k.indexname().empty()) return;
        out_.scans_table = true;
        return Refuse("adding-primary-key-scans",
                      "ADD PRIMARY KEY builds its index (and checks NOT NULL) under ACCESS EXCLUSIVE",
                      "create_index (unique, concurrently) and set_not_null on its columns, then ALTER "
                      "TABLE ... ADD CONSTRAINT ... PRIMARY KEY USING INDEX (safe as written)");
      }
      case pg_query::CONSTR_EXCLUSION: {
        Lock(t, kAccessExclusive);
        if (fresh) return;
        out_.scans_table = true;
        return Refuse("exclusion-constraint-scans",
                      "ADD EXCLUDE builds its index under ACCESS EXCLUSIVE",
                      "pgshift has no online recipe for an exclusion constraint: add it in a "
                      "maintenance window");
      }
      default:
        Lock(t, kAccessExclusive);
        return;
    }
  }

  const std::string schema_;
  const bool other_runner_;
  LintCatalog& catalog_;
  std::set<std::string> created_;  // quoted names of tables the script created (or renamed a created one to)
  std::set<std::string> renamed_;  // new names the script gave existing tables
  std::set<std::string> created_indexes_;  // quoted names of indexes it built on tables it created
  bool in_transaction_ = false;
  bool lock_timeout_set_ = false;
  bool new_only_ = false;  // the statement touches only tables nobody uses yet
  LintedStatement out_;
  std::vector<std::string> ops_;
};

}  // namespace

std::string WhyUnsafe(const LintedStatement& st) {
  for (const auto& f : st.findings) {
    if (f.level == "error") return absl::StrCat(f.message, " [", f.rule, "]");
  }
  return "unsafe as written";
}

absl::StatusOr<std::vector<LintedStatement>> Lint(
    absl::string_view script, const std::string& schema, bool other_runner, LintCatalog& catalog,
    const std::vector<std::pair<std::string, std::string>>& created_before) {
  ASSIGN_OR_RETURN(std::vector<Statement> statements, Split(script));
  Linter linter(schema, other_runner, catalog);
  for (const auto& [s, t] : created_before) linter.CreatedBefore(s, t);
  std::vector<LintedStatement> out;
  for (const Statement& st : statements) {
    ASSIGN_OR_RETURN(LintedStatement l, linter.One(st));
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace pgshift::sql
