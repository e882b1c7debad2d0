// create_index {table, name, columns[], unique?, method?, where?, include[]?}
// (docs/operations/create_index.md): nothing changes before validated. At
// validated the index is built with CREATE [UNIQUE] INDEX CONCURRENTLY under
// pgshift's own name (BuildName), so that an INVALID leftover of an
// interrupted or failed build is recognised, dropped concurrently and built
// again; then, in one short transaction, it is renamed to `name` and given
// pgshift's owner comment, which tells rollback (DROP INDEX CONCURRENTLY)
// that it is ours. A unique build first checks that no two rows share a key.
#include "absl/strings/str_cat.h"
#include "lib/ops/guards.h"
#include "lib/ops/index_build.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

class CreateIndexSteps : public Steps {
 public:
  CreateIndexSteps(const v1::CreateIndex& spec, const Context& ctx, catalog::Table table, IndexDefinition def)
      : spec_(spec), ctx_(ctx), table_(std::move(table)), def_(std::move(def)) {}

  int64_t RowEstimate() const override { return table_.row_estimate; }

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    const Guard ours = IndexOurs(table_.schema, spec_.name(), ctx_.names);
    if (to == Phase::kContracted) {
      // The index is the user's from now on: rollback is over.
      Action a;
      a.kind = Action::Kind::kTransaction;
      a.description = absl::StrCat("remove pgshift's comment from index ", spec_.name());
      a.locks = {{pg::QuoteQualified(table_.schema, spec_.name()), pg::LockMode::kShareUpdateExclusive}};
      a.statements = {absl::StrCat("COMMENT ON INDEX ", pg::QuoteQualified(table_.schema, spec_.name()),
                                   " IS NULL")};
      a.done_if = Guard::Not(ours);
      return std::vector<Action>{std::move(a)};
    }
    if (to != Phase::kValidated) return std::vector<Action>{};
    const std::string tmp = BuildName(ctx_.names);
    const std::string what = absl::StrCat("index ", pg::QuoteIdent(spec_.name()));
    std::vector<Action> out;
    if (def_.unique) out.push_back(DuplicatesAssert(table_, def_, what, ours));
    Action build = BuildIndex(
        table_, absl::StrCat("build ", what, " concurrently, as ", tmp, " until it is valid"),
        CreateIndexSql(def_, table_.Qualified(), tmp, /*concurrently=*/true), tmp);
    build.done_if = ours;
    out.push_back(std::move(build));
    // ALTER INDEX ... RENAME and COMMENT ON INDEX lock only the index.
    Action name;
    name.kind = Action::Kind::kTransaction;
    name.description = absl::StrCat("give the built index its name ", spec_.name(),
                                    " and pgshift's comment (which rollback reads)");
    name.locks = {{pg::QuoteQualified(table_.schema, spec_.name()), pg::LockMode::kShareUpdateExclusive}};
    name.statements = {
        absl::StrCat("ALTER INDEX ", pg::QuoteQualified(table_.schema, tmp), " RENAME TO ",
                     pg::QuoteIdent(spec_.name())),
        absl::StrCat("COMMENT ON INDEX ", pg::QuoteQualified(table_.schema, spec_.name()), " IS ",
                     pg::QuoteLiteral(ctx_.names.owner_comment()))};
    name.done_if = ours;
    out.push_back(std::move(name));
    return out;
  }

 private:
  v1::CreateIndex spec_;
  Context ctx_;
  catalog::Table table_;
  IndexDefinition def_;
};

class CreateIndex : public Operation {
 public:
  CreateIndex(v1::CreateIndex spec, Context ctx) : Operation(std::move(ctx)), spec_(std::move(spec)) {}

  std::string Describe() const override {
    return absl::StrCat("create_index ", pg::QuoteIdent(spec_.name()), " on ",
                        pg::QuoteQualified(ctx_.schema, spec_.table()));
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    IndexDefinition def;
    def.unique = spec_.unique();
    def.method = spec_.method();
    for (int i = 0; i < spec_.columns_size(); ++i) {
      ASSIGN_OR_RETURN(std::string e, IndexElement(table, spec_.columns(i),
                                                   absl::StrCat("create_index.columns[", i, "]")));
      def.elements.push_back(std::move(e));
    }
    for (int i = 0; i < spec_.include_size(); ++i) {
      if (table.FindColumn(spec_.include(i)) == nullptr) {
        return absl::NotFoundError(absl::StrCat("create_index.include[", i, "]: column \"", spec_.include(i),
                                                "\" does not exist in ", table.Qualified()));
      }
      def.include.push_back(pg::QuoteIdent(spec_.include(i)));
    }
    if (!spec_.where().empty()) {
      ASSIGN_OR_RETURN(sql::Expression where, sql::Expression::Parse(spec_.where(), "create_index.where"));
      if (phase == Phase::kRegistered) {
        // As text first: every type casts to it, so that what is wrong
        // other than the type (an aggregate, a whole-row reference) is said.
        RETURN_IF_ERROR(catalog::CheckExpression(conn, table, where, "text", "create_index: where"));
        // CheckExpression allows an explicit cast; a predicate must be boolean itself.
        absl::Status typed = conn.Run(absl::StrCat("SELECT FROM ONLY ", table.Qualified(), " WHERE (",
                                                   where.sql(), ") AND false"));
        if (!typed.ok()) {
          return absl::InvalidArgumentError(absl::StrCat("create_index: where \"", spec_.where(),
                                                         "\" is not a boolean condition over ",
                                                         table.Qualified(), ": ", typed.message()));
        }
      }
      def.where = where.sql();
    }
    if (phase == Phase::kRegistered) {
      ASSIGN_OR_RETURN(bool ours, IsOurIndex(conn, ctx_.schema, spec_.name(), ctx_.names));
      ASSIGN_OR_RETURN(std::string existing, DescribeRelation(conn, ctx_.schema, spec_.name()));
      if (!ours && !existing.empty()) {
        return absl::AlreadyExistsError(absl::StrCat(
            "create_index.name: ", existing, " already exists in schema ", pg::QuoteIdent(ctx_.schema),
            ", and an index needs a name no other relation of the schema has; choose another name"));
      }
      if (!spec_.method().empty()) {
        ASSIGN_OR_RETURN(pg::Result am,
                         conn.Exec("SELECT EXISTS (SELECT 1 FROM pg_am WHERE amname = $1 AND amtype = 'i'), "
                                   "(SELECT string_agg(amname, ', ' ORDER BY amname) FROM pg_am WHERE amtype = 'i')",
                                   {spec_.method()}));
        if (!am.GetBool(0, 0)) {
          return absl::InvalidArgumentError(absl::StrCat("create_index.method: index access method \"",
                                                         spec_.method(), "\" does not exist; use one of ",
                                                         am.Get(0, 1)));
        }
      }
      catalog::TableNeeds needs;  // a unique build first counts duplicate keys
      needs.reads_rows = def.unique;
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, "create_index", needs));
      RETURN_IF_ERROR(DryRunIndex(conn, table, def, "create_index"));
    }
    return std::unique_ptr<Steps>(new CreateIndexSteps(spec_, ctx_, std::move(table), std::move(def)));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection& conn) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    const std::string tmp = BuildName(ctx_.names);
    return std::vector<Action>{
        DropIndexConcurrently(table, absl::StrCat("drop index ", spec_.name(), " (pgshift's) concurrently"),
                              spec_.name(), Guard::Not(IndexOurs(table.schema, spec_.name(), ctx_.names))),
        DropIndexConcurrently(table,
                              absl::StrCat("drop ", tmp, ", the index being built, concurrently (an "
                                           "interrupted or failed build leaves it INVALID)"),
                              tmp, RelationMissing(table.schema, tmp))};
  }

 private:
  v1::CreateIndex spec_;
};

absl::Status Validate(const v1::Operation& op, const std::string& where) {
  const v1::CreateIndex& o = op.create_index();
  if (o.name().rfind("pgshift_", 0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".name: \"", o.name(),
                                                   "\" starts with \"pgshift_\", which pgshift keeps for "
                                                   "the objects it names itself; choose another name"));
  }
  return absl::OkStatus();
}

std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  const v1::CreateIndex& o = op.create_index();
  std::vector<Touch> out;
  for (const std::string& c : o.columns()) {
    // A column name as written, and the columns it reads as an expression.
    out.push_back(Touch{schema, o.table(), c, /*read=*/true});
    for (Touch& t : ReadsOf(schema, o.table(), c, {c})) out.push_back(t);
  }
  for (const std::string& c : o.include()) out.push_back(Touch{schema, o.table(), c, /*read=*/true});
  for (Touch& t : ReadsOf(schema, o.table(), o.where(), {})) out.push_back(t);
  return out;
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  return std::unique_ptr<Operation>(new CreateIndex(op.create_index(), std::move(ctx)));
}

}  // namespace

extern const OperationType kCreateIndexType = {v1::Operation::kCreateIndex, "create_index", &Validate,
                                               &Touches, &Make,
    /*contract_only_unmarks=*/true};

}  // namespace pgshift::ops
