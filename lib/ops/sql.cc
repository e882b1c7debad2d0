// sql {up, down?, unsafe?} (docs/operations/sql.md): hand-written
// statements, and the statements of a plain SQL migration file that pgshift
// runs as written (lib/spec/sql_migration.cc). At column_added each statement
// of `up` runs in its own short transaction under lock_timeout, with
// retries; one that PostgreSQL refuses to run in a transaction block (VACUUM,
// CREATE INDEX CONCURRENTLY) runs outside one, bounded from the client like
// pgshift's own index builds. Each is recorded as done in the control schema
// (ops::StatementMark) in the transaction that runs it, so that a re-run
// after a kill runs none twice. Transaction control and session settings are
// not run: pgshift runs each statement its own way.
//
// Every statement of `up` is linted (lib/sql/lint.h): one pgshift would
// convert or refuse is refused at register unless `unsafe` is true — the
// catalog-dependent rules (is the default volatile, does the type change
// rewrite) with the live catalog. Before the statements run, register and
// plan rehearse them in a transaction they roll back (Rehearse), so that a
// statement that would fail is found before anything of the migration ran,
// and operations after this one are inspected against what it makes.
//
// Rollback runs `down` the same way, statement by statement (skipped when
// nothing of `up` ran). `down` is parsed, not linted: undoing often drops
// what `up` added. Without a `down`, the driver refuses to roll back a
// migration whose `up` ran (Driver::Rollback).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/catalog/lint_catalog.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/sql/lint.h"
#include "lib/sql/sql.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

using sql::LintedStatement;

bool Unsafe(const LintedStatement& st) { return st.verdict == "convert" || st.verdict == "refuse"; }

// "line 2 (ALTER TABLE ADD COLUMN: ALTER TABLE users ADD COLUMN ...)", for
// messages: the statement's own words, so that it is found in a file whose
// statements were regrouped into several sql operations.
std::string Where(const LintedStatement& st) {
  std::string text = st.sql.substr(0, st.sql.find('\n'));
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  else if (text.size() < st.sql.size()) text += " ...";
  return absl::StrCat("line ", st.line, " (", st.statement, ": ", text, ")");
}

// OK when pgshift may run every statement of `up` as written (judged with
// the live catalog: without one the linter assumes the worst).
absl::Status CheckUp(const std::vector<LintedStatement>& up, const std::string& where, bool unsafe) {
  if (unsafe) return absl::OkStatus();
  for (const LintedStatement& st : up) {
    if (!Unsafe(st)) continue;
    const std::string instead =
        !st.operation_json.empty()
            ? absl::StrCat("Write the operation ", st.operation_json, " instead (", st.instead, ")")
            : st.instead;
    return absl::InvalidArgumentError(absl::StrCat(
        where, ".up: the statement at ", Where(st), " is unsafe as written: ",
        sql::WhyUnsafe(st), ". ", instead, "; or, to run it as written anyway, set \"unsafe\": true"));
  }
  return absl::OkStatus();
}

std::string Locks(const LintedStatement& st) {
  std::vector<std::string> out;
  for (const auto& l : st.locks) out.push_back(absl::StrCat(pg::QuoteQualified(l.schema, l.table), " ", l.mode));
  return absl::StrJoin(out, ", ");
}

// The actions running statements `list` ("up"/"down") of the operation.
std::vector<Action> StatementActions(const std::vector<LintedStatement>& statements, const std::string& list,
                                     const Context& ctx, bool unsafe) {
  std::vector<Action> out;
  int number = 0, total = 0;
  for (const LintedStatement& st : statements) total += st.verdict != "control";
  for (size_t i = 0; i < statements.size(); ++i) {
    const LintedStatement& st = statements[i];
    if (st.verdict == "control") continue;
    ++number;
    Action a;
    a.kind = st.outside_transaction ? Action::Kind::kConcurrently : Action::Kind::kTransaction;
    a.description = absl::StrCat("run statement ", number, " of ", total, " of ", list, " (line ", st.line,
                                 ", ", st.statement, st.outside_transaction ? ", outside a transaction" : "",
                                 ") as written");
    for (const auto& l : st.locks) {
      a.locks.push_back(TableLock{pg::QuoteQualified(l.schema, l.table),
                                  pg::ParseLockMode(l.mode).value_or(pg::LockMode::kAccessExclusive)});
    }
    std::stable_sort(a.locks.begin(), a.locks.end(),
                     [](const TableLock& x, const TableLock& y) { return x.mode > y.mode; });
    // Unqualified names are in the migration's schema.
    if (ctx.schema != "public" && !st.outside_transaction) {
      a.statements.push_back(absl::StrCat("SELECT set_config('search_path', ",
                                          pg::QuoteLiteral(absl::StrCat(pg::QuoteIdent(ctx.schema), ", public")),
                                          ", true)"));
    }
    a.statements.push_back(st.sql);
    a.mark.list = list;
    a.mark.number = number;
    if (list == "down") a.mark.after = "up";
    if (list == "up") {
      a.scans_table = st.scans_table;
      a.rewrites_table = st.rewrites_table;
      if (unsafe && Unsafe(st)) {
        a.hazards.push_back(absl::StrCat("run as written although it is unsafe (\"unsafe\": true): ", sql::WhyUnsafe(st)));
      }
    }
    if (st.outside_transaction) {
      a.hazards.push_back(
          "it runs outside a transaction and is recorded as done after it ends: a kill in between runs "
          "it again");
    }
    out.push_back(std::move(a));
  }
  return out;
}

class SqlSteps : public Steps {
 public:
  SqlSteps(std::vector<LintedStatement> up, Context ctx, bool unsafe)
      : up_(std::move(up)), ctx_(std::move(ctx)), unsafe_(unsafe) {}

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    if (to != Phase::kColumnAdded) return std::vector<Action>{};
    return StatementActions(up_, "up", ctx_, unsafe_);
  }

 private:
  std::vector<LintedStatement> up_;
  Context ctx_;
  bool unsafe_;
};

class Sql : public Operation {
 public:
  Sql(v1::Sql spec, Context ctx) : Operation(std::move(ctx)), spec_(std::move(spec)) {}

  std::string Describe() const override {
    absl::StatusOr<std::vector<sql::Statement>> st = sql::Split(spec_.up());
    return absl::StrCat("sql: ", st.ok() ? st->size() : 0, " statement(s) as written");
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    // Only the step from registered runs statements (and whether one scans
    // or rewrites depends on the catalog): the later ones need no question.
    catalog::ServerLintCatalog server(conn);
    sql::NoCatalog none;
    sql::LintCatalog& catalog =
        phase == Phase::kRegistered ? static_cast<sql::LintCatalog&>(server) : static_cast<sql::LintCatalog&>(none);
    ASSIGN_OR_RETURN(std::vector<LintedStatement> up, Lint(spec_.up(), catalog));
    if (phase == Phase::kRegistered) {
      const std::string where = absl::StrCat("operations[", ctx_.index, "].sql");
      RETURN_IF_ERROR(CheckUp(up, where, spec_.unsafe()));
      for (const LintedStatement& st : up) {
        if (!st.outside_transaction || ctx_.schema == "public") continue;
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".up: the statement at line ", st.line, " (", st.statement, ") runs outside a transaction, "
            "where pgshift cannot make the migration's schema \"", ctx_.schema, "\" the one unqualified names "
            "mean; put it in a migration of schema \"public\" with its names qualified"));
      }
    }
    return std::unique_ptr<Steps>(new SqlSteps(std::move(up), ctx_, spec_.unsafe()));
  }

  bool rehearses() const override { return true; }

  absl::Status Rehearse(pg::Connection& conn, absl::Time deadline) const override {
    sql::NoCatalog none;
    ASSIGN_OR_RETURN(std::vector<LintedStatement> up, Lint(spec_.up(), none));
    auto bound = [&]() { return Bound(conn, deadline); };
    std::string search_path;
    if (ctx_.schema != "public") {
      ASSIGN_OR_RETURN(pg::Result was, conn.Exec("SELECT current_setting('search_path')"));
      search_path = was.Get(0, 0);
      RETURN_IF_ERROR(conn.Run("SELECT set_config('search_path', $1, true)",
                               {absl::StrCat(pg::QuoteIdent(ctx_.schema), ", public")}));
    }
    for (const LintedStatement& st : up) {
      // What cannot run in a transaction block is not tried.
      if (st.verdict == "control" || st.outside_transaction) continue;
      // Data statements are only parsed and analysed: running them would
      // hold their row locks (and cost their time) for nothing.
      const bool data = st.statement == "UPDATE" || st.statement == "DELETE" || st.statement == "INSERT" ||
                        st.statement == "SELECT";
      RETURN_IF_ERROR(bound());
      RETURN_IF_ERROR(conn.Run("SAVEPOINT pgshift_try"));
      absl::Status ran = data ? conn.Check(st.sql) : conn.Run(st.sql);
      const std::string sqlstate = util::SqlStateOf(ran);
      // A value ALTER TYPE ... ADD VALUE added cannot be used in the
      // transaction that added it, as it can once each statement runs in its
      // own: such a statement is not tried.
      if (ran.ok() || sqlstate == "55P04") {
        RETURN_IF_ERROR(conn.Run(ran.ok() ? "RELEASE SAVEPOINT pgshift_try" : "ROLLBACK TO SAVEPOINT pgshift_try"));
        continue;
      }
      if (sqlstate == "55P03") {
        return util::WithSqlState(
            absl::DeadlineExceededError(absl::StrCat(
                "operations[", ctx_.index, "].sql: trying the statement at line ", st.line,
                " (in a transaction rolled back at once) could not take its locks (", Locks(st),
                ") within lock_timeout: ", ran.message(), ". Nothing was changed; run the command again")),
            sqlstate);
      }
      if (sqlstate == "57014") {
        return util::WithSqlState(
            absl::DeadlineExceededError(absl::StrCat(
                "operations[", ctx_.index, "].sql: trying the statement at line ", st.line,
                " (in a transaction rolled back at once) ran past the trial's time (one lock_timeout from the "
                "first statement tried, as the trial holds their locks until it ends): ", ran.message(),
                ". Nothing was changed. A statement that long does not belong in a sql operation; raise "
                "--lock-timeout only if it must")),
            sqlstate);
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "operations[", ctx_.index, "].sql: the statement at ", Where(st), " fails: ", ran.message(),
          " (found by trying the statements, after those of the operations before it, in a "
          "transaction that was rolled back; nothing was changed)"));
    }
    if (ctx_.schema != "public") {
      RETURN_IF_ERROR(conn.Run("SELECT set_config('search_path', $1, true)", {search_path}));
    }
    return absl::OkStatus();
  }

  absl::Status RehearseRollback(pg::Connection& conn, absl::Time deadline) const override {
    sql::NoCatalog none;
    ASSIGN_OR_RETURN(std::vector<LintedStatement> down, Lint(spec_.down(), none));
    // (Inside the caller's savepoint: the search_path set here goes with it.)
    if (ctx_.schema != "public") {
      RETURN_IF_ERROR(conn.Run("SELECT set_config('search_path', $1, true)",
                               {absl::StrCat(pg::QuoteIdent(ctx_.schema), ", public")}));
    }
    for (const LintedStatement& st : down) {
      if (st.verdict == "control" || st.outside_transaction) continue;
      RETURN_IF_ERROR(Bound(conn, deadline));
      absl::Status ran = conn.Run(st.sql);
      if (ran.ok()) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "operations[", ctx_.index, "].sql: the down statement at ", Where(st),
          " fails when tried after up: ", ran.message(),
          " (found in a transaction that was rolled back; nothing was changed). A rollback would stop "
          "there: fix the down"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection&) const override {
    // down's actions need its locks and texts, which no catalog changes.
    sql::NoCatalog none;
    ASSIGN_OR_RETURN(std::vector<LintedStatement> down, Lint(spec_.down(), none));
    return StatementActions(down, "down", ctx_, spec_.unsafe());
  }

 private:
  // Gives the next statement of a rehearsal what is left of the budget, as
  // lock_timeout and statement_timeout: the locks they take are held until
  // the rollback.
  absl::Status Bound(pg::Connection& conn, absl::Time deadline) const {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "operations[", ctx_.index, "].sql: trying the statements (in a transaction rolled back at once) "
          "took longer than lock_timeout while holding their locks. Nothing was changed; run the command "
          "again, or raise --lock-timeout"));
    }
    // statement_timeout a little later, so that a lock not granted in time
    // fails as a lock timeout (tried again), not as a slow statement.
    return conn.Run("SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
                    {absl::StrCat(left, "ms"), absl::StrCat(left + 250, "ms")});
  }

  absl::StatusOr<std::vector<LintedStatement>> Lint(const std::string& script, sql::LintCatalog& catalog) const {
    return sql::Lint(script, ctx_.schema, /*other_runner=*/false, catalog, ctx_.tables_created_before);
  }

  v1::Sql spec_;
};

absl::Status Validate(const v1::Operation& op, const std::string& where) {
  const v1::Sql& o = op.sql();
  sql::NoCatalog none;
  ASSIGN_OR_RETURN(std::vector<LintedStatement> up, sql::Lint(o.up(), "public", false, none));
  if (std::none_of(up.begin(), up.end(), [](const LintedStatement& st) { return st.verdict != "control"; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ".up: no statement to run (transaction control and SET lines are not run); give at "
        "least one statement"));
  }
  // Whether each statement is safe is judged at register, with the live
  // catalog (a table an earlier file creates is new then, not before).
  return absl::OkStatus();
}

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  sql::NoCatalog none;
  absl::StatusOr<std::vector<LintedStatement>> up = sql::Lint(op.sql().up(), schema, false, none);
  std::vector<Touch> out;
  if (!up.ok()) return out;
  for (const LintedStatement& st : *up) {
    for (const auto& c : st.changes) out.push_back(Touch{c.schema, c.table, c.column});
    // A table it locks but changes nothing named of: read as a whole.
    for (const auto& l : st.locks) {
      const bool named = std::any_of(st.changes.begin(), st.changes.end(), [&l](const auto& c) {
        return c.schema == l.schema && c.table == l.table;
      });
      if (!named) out.push_back(Touch{l.schema, l.table, "", /*read=*/true});
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  return std::unique_ptr<Operation>(new Sql(op.sql(), std::move(ctx)));
}

}  // namespace

// Its contract does nothing: what it made is the user's from column_added.
extern const OperationType kSqlType = {v1::Operation::kSql, "sql", &Validate, &Touches, &Make,
                                       /*contract_only_unmarks=*/true};

}  // namespace pgshift::ops
