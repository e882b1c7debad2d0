// drop_table {table} (docs/operations/drop_table.md): nothing changes before
// contract, so old app versions keep using the table until they are gone.
// Validate refuses to pass while objects that a plain DROP TABLE cannot drop
// depend on the table (views, foreign keys of other tables, functions or
// columns of its row type, other tables' defaults on its sequences, ...):
// they are listed so that the user removes them first. Contract drops the
// table with its indexes, constraints, triggers and owned sequences: the one
// irreversible step. Rollback has nothing to undo.
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/ops/guards.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

class DropTableSteps : public Steps {
 public:
  DropTableSteps(const Context& ctx, std::optional<catalog::Table> table,
                 std::vector<std::string> blockers)
      : ctx_(ctx), table_(std::move(table)), blockers_(std::move(blockers)) {}

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    if (!table_ || to != Phase::kContracted) return std::vector<Action>{};
    const std::string t = table_->Qualified();
    Action a = Transaction(*table_,
                           absl::StrCat("drop table ", t,
                                        " with its indexes, constraints, triggers and owned sequences"),
                           {absl::StrCat("DROP TABLE ", t)}, pg::LockMode::kAccessExclusive,
                           Guard::Not(TableExists(table_->schema, table_->name)));
    a.irreversible = true;
    a.drops_data = {absl::StrCat("table ", t, " and every row in it (~", table_->row_estimate,
                                 " rows by the planner's estimate)")};
    for (const std::string& b : blockers_) {
      a.hazards.push_back(absl::StrCat("validate (and so contract) refuses while ", b, " depends on ", t,
                                       ": change or drop it first"));
    }
    return std::vector<Action>{std::move(a)};
  }

 private:
  Context ctx_;
  std::optional<catalog::Table> table_;  // none: already dropped (contract re-run)
  std::vector<std::string> blockers_;
};

// Objects that depend on `table` and that a plain DROP TABLE refuses to drop
// with it, described for the user: objects with a normal dependency on the
// table, its row type, its indexes, constraints or owned sequences, which do
// not themselves belong to the table (its own indexes, constraints, triggers,
// rules, policies and defaults depend on it automatically or internally).
absl::StatusOr<std::vector<std::string>> Dependents(pg::Connection& conn, const catalog::Table& table) {
  ASSIGN_OR_RETURN(
      pg::Result r,
      conn.Exec(
          "WITH t AS (SELECT $1::oid AS oid), "
          "dropped(classid, objid) AS ("
          "  SELECT 'pg_class'::regclass, t.oid FROM t "
          "  UNION ALL SELECT 'pg_type'::regclass, c.reltype FROM pg_class c, t WHERE c.oid = t.oid "
          "  UNION ALL SELECT 'pg_type'::regclass, ty.oid FROM pg_type ty, pg_class c, t "
          "    WHERE c.oid = t.oid AND ty.typelem = c.reltype AND ty.typcategory = 'A' "
          "  UNION ALL SELECT d.classid, d.objid FROM pg_depend d, t "
          "    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid AND d.deptype IN ('a', 'i')) "
          "SELECT DISTINCT CASE "
          "  WHEN d.classid = 'pg_rewrite'::regclass THEN "
          "    (SELECT 'view ' || rw.ev_class::regclass::text FROM pg_rewrite rw WHERE rw.oid = d.objid) "
          "  WHEN d.classid = 'pg_constraint'::regclass THEN "
          "    (SELECT CASE WHEN k.contype = 'f' THEN 'foreign key ' || quote_ident(k.conname) || ' of table ' "
          "       || k.conrelid::regclass::text ELSE pg_describe_object(d.classid, d.objid, 0) END "
          "     FROM pg_constraint k WHERE k.oid = d.objid) "
          "  ELSE pg_describe_object(d.classid, d.objid, d.objsubid) END "
          "FROM pg_depend d JOIN dropped x ON x.classid = d.refclassid AND x.objid = d.refobjid "
          "WHERE d.deptype = 'n' "
          "  AND NOT EXISTS (SELECT 1 FROM dropped y WHERE y.classid = d.classid AND y.objid = d.objid) "
          "ORDER BY 1",
          {std::to_string(table.oid)}));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Get(i, 0));
  return out;
}

class DropTable : public Operation {
 public:
  DropTable(v1::DropTable spec, Context ctx) : Operation(std::move(ctx)), spec_(std::move(spec)) {}

  std::string Describe() const override {
    return absl::StrCat("drop_table ", pg::QuoteQualified(ctx_.schema, spec_.table()));
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    absl::StatusOr<catalog::Table> table = catalog::LoadTable(conn, ctx_.schema, spec_.table());
    if (absl::IsNotFound(table.status())) {
      if (phase == Phase::kSwitched) {  // contract re-run after its commit
        return std::unique_ptr<Steps>(new DropTableSteps(ctx_, std::nullopt, {}));
      }
      if (phase != Phase::kRegistered) {
        return absl::FailedPreconditionError(absl::StrCat(
            "drop_table: table ", pg::QuoteQualified(ctx_.schema, spec_.table()),
            " was dropped outside pgshift before contract; roll the migration back"));
      }
      return util::Annotate(table.status(), "drop_table");
    }
    if (!table.ok()) return util::Annotate(table.status(), "drop_table");
    if (phase == Phase::kRegistered) {
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, *table, "drop_table", catalog::TableNeeds{}));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> blockers, Dependents(conn, *table));
    if (static_cast<int>(phase) >= static_cast<int>(Phase::kBackfilled) && !blockers.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "drop_table: ", absl::StrJoin(blockers, "; "), " — depend on ", table->Qualified(),
          ", so DROP TABLE at contract would fail. Drop them or make them stop using the table, then "
          "advance again"));
    }
    return std::unique_ptr<Steps>(new DropTableSteps(ctx_, *std::move(table), std::move(blockers)));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection&) const override {
    return std::vector<Action>{};  // nothing changes before contract
  }

 private:
  v1::DropTable spec_;
};

absl::Status Validate(const v1::Operation&, const std::string&) { return absl::OkStatus(); }

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  return {{schema, op.drop_table().table(), ""}};
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  return std::unique_ptr<Operation>(new DropTable(op.drop_table(), std::move(ctx)));
}

}  // namespace

extern const OperationType kDropTableType = {v1::Operation::kDropTable, "drop_table", &Validate,
                                             &Touches, &Make};

}  // namespace pgshift::ops
