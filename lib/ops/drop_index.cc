// drop_index {name} (docs/operations/drop_index.md): index `name` of the
// migration's schema is dropped with DROP INDEX CONCURRENTLY at contracted,
// and nothing happens before: the only irreversible step, which plan says.
// An index that backs a constraint (primary key, unique, exclusion) cannot
// be dropped by DROP INDEX, and one that is the table's replica identity
// would leave a published table without one: both are refused at register.
#include "absl/strings/str_cat.h"
#include "lib/ops/index_build.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

Guard IndexMissing(const std::string& schema, const std::string& name) {
  return RelationMissing(schema, name);
}

class DropIndexSteps : public Steps {
 public:
  DropIndexSteps(const v1::DropIndex& spec, const Context& ctx, std::optional<catalog::Table> table,
                 std::string def)
      : spec_(spec), ctx_(ctx), table_(std::move(table)), def_(std::move(def)) {}

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    if (to != Phase::kContracted || !table_) return std::vector<Action>{};
    Action a = DropIndexConcurrently(*table_, absl::StrCat("drop index ", spec_.name(), " concurrently"),
                                     spec_.name(), IndexMissing(ctx_.schema, spec_.name()));
    a.irreversible = true;
    a.hazards.push_back(absl::StrCat(
        "once index ", pg::QuoteQualified(ctx_.schema, spec_.name()),
        " is dropped, rollback cannot bring it back; queries that used it scan instead. To build it "
        "again: ", def_));
    return std::vector<Action>{std::move(a)};
  }

 private:
  v1::DropIndex spec_;
  Context ctx_;
  std::optional<catalog::Table> table_;  // none: already dropped (contract re-run)
  std::string def_;
};

class DropIndex : public Operation {
 public:
  DropIndex(v1::DropIndex spec, Context ctx) : Operation(std::move(ctx)), spec_(std::move(spec)) {}

  std::string Describe() const override {
    return absl::StrCat("drop_index ", pg::QuoteQualified(ctx_.schema, spec_.name()));
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    ASSIGN_OR_RETURN(
        pg::Result r,
        conn.Exec("SELECT c.relkind IN ('i', 'I'), tn.nspname, t.relname, pg_get_indexdef(c.oid), "
                  "(SELECT string_agg(CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique "
                  "constraint' ELSE 'exclusion constraint' END || ' ' || quote_ident(con.conname), ', ') "
                  " FROM pg_constraint con WHERE con.conindid = c.oid AND con.contype IN ('p', 'u', 'x') "
                  " AND con.conrelid = i.indrelid), "
                  "coalesce(i.indisreplident, false) "
                  "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid "
                  "LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace "
                  "WHERE n.nspname = $1 AND c.relname = $2",
                  {ctx_.schema, spec_.name()}));
    const std::string qualified = pg::QuoteQualified(ctx_.schema, spec_.name());
    if (r.rows() == 0) {
      if (phase == Phase::kSwitched) {  // contract re-run after its commit
        return std::unique_ptr<Steps>(new DropIndexSteps(spec_, ctx_, std::nullopt, ""));
      }
      if (phase == Phase::kRegistered) {
        return absl::NotFoundError(absl::StrCat("drop_index.name: index \"", spec_.name(),
                                                "\" does not exist in schema \"", ctx_.schema, "\""));
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "drop_index: index ", qualified, " was dropped outside pgshift before contract; roll the "
          "migration back"));
    }
    auto refuse = [phase](std::string msg) {
      return phase == Phase::kRegistered ? absl::InvalidArgumentError(msg)
                                         : absl::FailedPreconditionError(msg);
    };
    if (!r.GetBool(0, 0)) {
      ASSIGN_OR_RETURN(std::string what, DescribeRelation(conn, ctx_.schema, spec_.name()));
      return refuse(absl::StrCat("drop_index.name: ", qualified, " is a ", what.substr(0, what.find(' ')),
                                 ", not an index"));
    }
    if (!r.IsNull(0, 4)) {
      return refuse(absl::StrCat("drop_index.name: index ", qualified, " backs the ", r.Get(0, 4),
                                 " of ", pg::QuoteQualified(r.Get(0, 1), r.Get(0, 2)),
                                 "; DROP INDEX cannot drop it and dropping the constraint is not "
                                 "drop_index's to do (ALTER TABLE ... DROP CONSTRAINT drops both)"));
    }
    if (r.GetBool(0, 5)) {
      return refuse(absl::StrCat("drop_index.name: index ", qualified, " is the replica identity of ",
                                 pg::QuoteQualified(r.Get(0, 1), r.Get(0, 2)),
                                 "; without it UPDATE and DELETE fail on a published table. Set another "
                                 "replica identity first (ALTER TABLE ... REPLICA IDENTITY ...)"));
    }
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, r.Get(0, 1), r.Get(0, 2)));
    if (phase == Phase::kRegistered) {
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, "drop_index", catalog::TableNeeds{}));
    }
    return std::unique_ptr<Steps>(new DropIndexSteps(spec_, ctx_, std::move(table), r.Get(0, 3)));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection&) const override {
    return std::vector<Action>{};  // nothing changed before contract
  }

 private:
  v1::DropIndex spec_;
};

absl::Status Validate(const v1::Operation&, const std::string&) { return absl::OkStatus(); }

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  // The table of the index is known only to the catalog: the driver resolves it.
  Touch t{schema, op.drop_index().name(), ""};
  t.index = true;
  return {t};
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  return std::unique_ptr<Operation>(new DropIndex(op.drop_index(), std::move(ctx)));
}

}  // namespace

extern const OperationType kDropIndexType = {v1::Operation::kDropIndex, "drop_index", &Validate, &Touches,
                                             &Make};

}  // namespace pgshift::ops
