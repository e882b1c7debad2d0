// add_unique {table, name, columns[]} (docs/operations/add_unique.md):
// nothing changes before validated. At validated pgshift checks that no two
// rows share a key, builds the unique index concurrently under its own name
// (BuildName: an INVALID leftover of an interrupted or failed build is
// dropped and built again), then in one short transaction attaches it with
// ALTER TABLE ... ADD CONSTRAINT name UNIQUE USING INDEX (ACCESS EXCLUSIVE,
// catalog only: the server renames the index to `name`) and marks the
// constraint with pgshift's owner comment, which rollback reads.
#include <set>

#include "absl/strings/str_cat.h"
#include "lib/ops/guards.h"
#include "lib/ops/index_build.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

class AddUniqueSteps : public Steps {
 public:
  AddUniqueSteps(const v1::AddUnique& spec, const Context& ctx, catalog::Table table, IndexDefinition def)
      : spec_(spec), ctx_(ctx), table_(std::move(table)), def_(std::move(def)) {}

  int64_t RowEstimate() const override { return table_.row_estimate; }

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    const Guard ours = ConstraintOurs(table_, spec_.name(), ctx_.names);
    if (to == Phase::kContracted) {
      // The constraint is the user's from now on: rollback is over.
      return std::vector<Action>{Transaction(
          table_, absl::StrCat("remove pgshift's comment from constraint ", spec_.name()),
          {absl::StrCat("COMMENT ON CONSTRAINT ", pg::QuoteIdent(spec_.name()), " ON ", table_.Qualified(),
                        " IS NULL")},
          pg::LockMode::kAccessShare, Guard::Not(ours))};
    }
    if (to != Phase::kValidated) return std::vector<Action>{};
    const std::string tmp = BuildName(ctx_.names);
    const std::string what = absl::StrCat("the unique index of constraint ", pg::QuoteIdent(spec_.name()));
    std::vector<Action> out;
    out.push_back(DuplicatesAssert(table_, def_, what, ours));
    Action build = BuildIndex(table_, absl::StrCat("build ", what, " concurrently, as ", tmp),
                              CreateIndexSql(def_, table_.Qualified(), tmp, /*concurrently=*/true), tmp);
    build.done_if = ours;
    out.push_back(std::move(build));
    // Catalog only (the index is built and valid), but ACCESS EXCLUSIVE:
    // it runs after the preflight, under lock_timeout.
    out.push_back(Transaction(
        table_, absl::StrCat("attach the index as unique constraint ", spec_.name(), " (renamed to it)"),
        {absl::StrCat("ALTER TABLE ", table_.Qualified(), " ADD CONSTRAINT ", pg::QuoteIdent(spec_.name()),
                      " UNIQUE USING INDEX ", pg::QuoteIdent(tmp)),
         absl::StrCat("COMMENT ON CONSTRAINT ", pg::QuoteIdent(spec_.name()), " ON ", table_.Qualified(),
                      " IS ", pg::QuoteLiteral(ctx_.names.owner_comment()))},
        pg::LockMode::kAccessExclusive, ours));
    return out;
  }

 private:
  v1::AddUnique spec_;
  Context ctx_;
  catalog::Table table_;
  IndexDefinition def_;
};

class AddUnique : public Operation {
 public:
  AddUnique(v1::AddUnique spec, Context ctx) : Operation(std::move(ctx)), spec_(std::move(spec)) {}

  std::string Describe() const override {
    return absl::StrCat("add_unique ", pg::QuoteIdent(spec_.name()), " on ",
                        pg::QuoteQualified(ctx_.schema, spec_.table()));
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    IndexDefinition def;
    def.unique = true;
    for (int i = 0; i < spec_.columns_size(); ++i) {
      if (table.FindColumn(spec_.columns(i)) == nullptr) {
        return absl::NotFoundError(absl::StrCat("add_unique.columns[", i, "]: column \"", spec_.columns(i),
                                                "\" does not exist in ", table.Qualified()));
      }
      def.elements.push_back(pg::QuoteIdent(spec_.columns(i)));
    }
    if (phase == Phase::kRegistered) {
      const Guard ours = ConstraintOurs(table, spec_.name(), ctx_.names);
      ASSIGN_OR_RETURN(pg::Result r, conn.Exec(ours.probe().sql, ours.probe().params));
      if (!r.GetBool(0, 0)) {
        for (const catalog::Constraint& c : table.constraints) {
          if (c.name == spec_.name()) {
            return absl::AlreadyExistsError(absl::StrCat("add_unique.name: constraint \"", c.name,
                                                         "\" already exists on ", table.Qualified(),
                                                         "; choose another name"));
          }
        }
        ASSIGN_OR_RETURN(std::string existing, DescribeRelation(conn, ctx_.schema, spec_.name()));
        if (!existing.empty()) {
          return absl::AlreadyExistsError(absl::StrCat(
              "add_unique.name: ", existing, " already exists in schema ", pg::QuoteIdent(ctx_.schema),
              ", and the constraint's index takes its name; choose another name"));
        }
      }
      catalog::TableNeeds needs;  // the duplicates check reads the rows
      needs.reads_rows = true;
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, "add_unique", needs));
      RETURN_IF_ERROR(DryRunIndex(conn, table, def, "add_unique"));
    }
    return std::unique_ptr<Steps>(new AddUniqueSteps(spec_, ctx_, std::move(table), std::move(def)));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection& conn) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    const std::string tmp = BuildName(ctx_.names);
    return std::vector<Action>{
        Transaction(table, absl::StrCat("drop unique constraint ", spec_.name(), " (pgshift's) and its index"),
                    {absl::StrCat("ALTER TABLE ", table.Qualified(), " DROP CONSTRAINT IF EXISTS ",
                                  pg::QuoteIdent(spec_.name()))},
                    pg::LockMode::kAccessExclusive,
                    Guard::Not(ConstraintOurs(table, spec_.name(), ctx_.names))),
        DropIndexConcurrently(table,
                              absl::StrCat("drop ", tmp, ", the index being built, concurrently (an "
                                           "interrupted or failed build leaves it INVALID)"),
                              tmp, RelationMissing(table.schema, tmp))};
  }

 private:
  v1::AddUnique spec_;
};

absl::Status Validate(const v1::Operation& op, const std::string& where) {
  const v1::AddUnique& o = op.add_unique();
  std::set<std::string> seen;
  for (const std::string& c : o.columns()) {
    if (!seen.insert(c).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".columns: column \"", c, "\" is listed twice"));
    }
  }
  if (o.name().rfind("pgshift_", 0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".name: \"", o.name(),
                                                   "\" starts with \"pgshift_\", which pgshift keeps for "
                                                   "the objects it names itself; choose another name"));
  }
  return absl::OkStatus();
}

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  const v1::AddUnique& o = op.add_unique();
  std::vector<Touch> out;
  for (const std::string& c : o.columns()) out.push_back(Touch{schema, o.table(), c, /*read=*/true});
  return out;
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  return std::unique_ptr<Operation>(new AddUnique(op.add_unique(), std::move(ctx)));
}

}  // namespace

extern const OperationType kAddUniqueType = {v1::Operation::kAddUnique, "add_unique", &Validate, &Touches,
                                             &Make,
    /*contract_only_unmarks=*/true};

}  // namespace pgshift::ops
