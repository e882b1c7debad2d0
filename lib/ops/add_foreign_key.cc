// add_foreign_key {table, name, columns[], references_table,
// references_columns[], on_delete?, on_update?}
// (docs/operations/add_foreign_key.md): nothing changes before validate.
// Validate first looks for orphans (rows whose key matches no referenced
// row; the step fails naming sample keys while there are any), then adds
// FOREIGN KEY ... NOT VALID in a short transaction (SHARE ROW EXCLUSIVE on
// both tables, no scan: from then on every write is checked) and validates
// it under SHARE UPDATE EXCLUSIVE on the table and ROW SHARE on the
// referenced table, which let writes go on. Switch has nothing to do;
// contract removes pgshift's mark from the constraint. Rollback drops it.
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/ops/guards.h"
#include "lib/ops/named_constraint.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

// The SQL spelling of an ON DELETE / ON UPDATE action; "" for the default.
const char* ActionSql(v1::ForeignKeyAction a) {
  switch (a) {
    case v1::NO_ACTION: return "NO ACTION";
    case v1::RESTRICT: return "RESTRICT";
    case v1::CASCADE: return "CASCADE";
    case v1::SET_NULL: return "SET NULL";
    case v1::SET_DEFAULT: return "SET DEFAULT";
    default: return "";
  }
}

std::string QuotedList(const google::protobuf::RepeatedPtrField<std::string>& names) {
  std::vector<std::string> q;
  for (const std::string& n : names) q.push_back(pg::QuoteIdent(n));
  return absl::StrJoin(q, ", ");
}

// ALTER TABLE t ADD CONSTRAINT name FOREIGN KEY (...) REFERENCES ref (...)
// [ON DELETE ...] [ON UPDATE ...], without NOT VALID; `t` and `ref` quoted.
std::string AddSql(const v1::AddForeignKey& spec, const std::string& t, const std::string& ref) {
  std::string sql = absl::StrCat("ALTER TABLE ", t, " ADD CONSTRAINT ", pg::QuoteIdent(spec.name()),
                                 " FOREIGN KEY (", QuotedList(spec.columns()), ") REFERENCES ", ref, " (",
                                 QuotedList(spec.references_columns()), ")");
  if (*ActionSql(spec.on_delete()) != '\0') absl::StrAppend(&sql, " ON DELETE ", ActionSql(spec.on_delete()));
  if (*ActionSql(spec.on_update()) != '\0') absl::StrAppend(&sql, " ON UPDATE ", ActionSql(spec.on_update()));
  return sql;
}

class AddForeignKeySteps : public Steps {
 public:
  AddForeignKeySteps(const v1::AddForeignKey& spec, const Context& ctx, catalog::Table table,
                     catalog::Table ref)
      : spec_(spec), ctx_(ctx), table_(std::move(table)), ref_(std::move(ref)) {}

  int64_t RowEstimate() const override { return table_.row_estimate; }

  absl::StatusOr<std::vector<Action>> To(Phase to) const override {
    const std::string& name = spec_.name();
    const bool self = ref_.Qualified() == table_.Qualified();
    switch (to) {
      case Phase::kValidated: {
        std::vector<Action> out;
        // Orphans: every key column set (MATCH SIMPLE: a NULL in any of them
        // is not checked) and no referenced row with that key.
        std::vector<std::string> set, match;
        for (int i = 0; i < spec_.columns_size(); ++i) {
          const std::string outer = absl::StrCat(table_.Qualified(), ".", pg::QuoteIdent(spec_.columns(i)));
          set.push_back(absl::StrCat(outer, " IS NOT NULL"));
          match.push_back(absl::StrCat("pgshift_ref.", pg::QuoteIdent(spec_.references_columns(i)), " = ", outer));
        }
        const std::string cols = absl::StrCat("(", absl::StrJoin(spec_.columns(), ", "), ")");
        const std::string refcols = absl::StrCat("(", absl::StrJoin(spec_.references_columns(), ", "), ")");
        Action orphans = Assert(
            table_, absl::StrCat("check that every ", cols, " has its row in ", ref_.Qualified(), " ", refcols),
            absl::StrCat(absl::StrJoin(set, " AND "), " AND NOT EXISTS (SELECT 1 FROM ONLY ", ref_.Qualified(),
                         " AS pgshift_ref WHERE ", absl::StrJoin(match, " AND "), ")"),
            absl::StrCat("rows of ", table_.Qualified(), " whose ", cols, " matches no row of ", ref_.Qualified(),
                         " ", refcols, " (orphans) stop foreign key \"", name,
                         "\"; delete them, set their key to NULL, or add the rows they reference, then "
                         "advance again"),
            Guard::All({ConstraintExists(table_, name), ConstraintValidatedOrGone(table_, name)}));
        if (!self) orphans.locks.push_back({ref_.Qualified(), pg::LockMode::kAccessShare});
        out.push_back(std::move(orphans));
        // ADD FOREIGN KEY locks both tables in SHARE ROW EXCLUSIVE (its
        // triggers go on both); NOT VALID: no scan.
        Action add = Transaction(
            table_, absl::StrCat("add FOREIGN KEY constraint ", name, " NOT VALID (checks new writes, no scan)"),
            {absl::StrCat(AddSql(spec_, table_.Qualified(), ref_.Qualified()), " NOT VALID"),
             MarkConstraintSql(table_, name, ctx_)},
            pg::LockMode::kShareRowExclusive, ConstraintExists(table_, name));
        if (!self) add.locks.push_back({ref_.Qualified(), pg::LockMode::kShareRowExclusive});
        out.push_back(std::move(add));
        Action validate = ValidateConstraint(table_, name, absl::StrCat("validate FOREIGN KEY constraint ", name));
        // Validating reads the referenced table under ROW SHARE.
        if (!self) validate.locks.push_back({ref_.Qualified(), pg::LockMode::kRowShare});
        out.push_back(std::move(validate));
        return out;
      }
      case Phase::kContracted:
        return std::vector<Action>{UnmarkConstraint(table_, name, ctx_)};
      default:
        return std::vector<Action>{};
    }
  }

 private:
  v1::AddForeignKey spec_;
  Context ctx_;
  catalog::Table table_, ref_;
};

class AddForeignKey : public Operation {
 public:
  AddForeignKey(v1::AddForeignKey spec, Context ctx) : Operation(std::move(ctx)), spec_(std::move(spec)) {}

  std::string Describe() const override {
    return absl::StrCat("add_foreign_key ", pg::QuoteIdent(spec_.name()), " on ",
                        pg::QuoteQualified(ctx_.schema, spec_.table()), " (", QuotedList(spec_.columns()),
                        ") -> ", pg::QuoteQualified(ctx_.schema, spec_.references_table()), " (",
                        QuotedList(spec_.references_columns()), ")");
  }

  absl::StatusOr<std::unique_ptr<Steps>> Inspect(pg::Connection& conn, Phase phase) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    absl::StatusOr<catalog::Table> ref = catalog::LoadTable(conn, ctx_.schema, spec_.references_table());
    if (!ref.ok()) return util::Annotate(ref.status(), "add_foreign_key: references_table");
    RETURN_IF_ERROR(CheckConstraintName(conn, table, spec_.name(), ctx_, phase, "add_foreign_key"));
    if (phase == Phase::kRegistered) {
      RETURN_IF_ERROR(CheckColumns(table, spec_.columns(), "columns"));
      RETURN_IF_ERROR(CheckColumns(*ref, spec_.references_columns(), "references_columns"));
      RETURN_IF_ERROR(CheckReferencedKey(conn, *ref));
      RETURN_IF_ERROR(CheckReferencesPrivilege(conn, *ref));
      RETURN_IF_ERROR(CheckWithTheServer(conn, table, *ref));
      catalog::TableNeeds needs;  // the orphan check reads rows
      needs.reads_rows = true;
      RETURN_IF_ERROR(catalog::CheckTableForMigration(conn, table, "add_foreign_key", needs));
    }
    return std::unique_ptr<Steps>(new AddForeignKeySteps(spec_, ctx_, std::move(table), *std::move(ref)));
  }

  absl::StatusOr<std::vector<Action>> Rollback(pg::Connection& conn) const override {
    ASSIGN_OR_RETURN(catalog::Table table, catalog::LoadTable(conn, ctx_.schema, spec_.table()));
    Action drop = DropOurConstraint(table, spec_.name(), ctx_,
                                    absl::StrCat("drop FOREIGN KEY constraint ", spec_.name(), " (pgshift's)"));
    // DROP CONSTRAINT of a foreign key locks the referenced table too (it
    // drops the key's triggers there): ACCESS EXCLUSIVE on PostgreSQL 15.
    const std::string ref = pg::QuoteQualified(ctx_.schema, spec_.references_table());
    if (ref != table.Qualified()) drop.locks.push_back({ref, pg::LockMode::kAccessExclusive});
    return std::vector<Action>{std::move(drop)};
  }

 private:
  // NotFound naming `field` when a column is not one of `t`'s.
  absl::Status CheckColumns(const catalog::Table& t, const google::protobuf::RepeatedPtrField<std::string>& cols,
                            const char* field) const {
    for (const std::string& c : cols) {
      if (t.FindColumn(c) != nullptr) continue;
      return absl::NotFoundError(absl::StrCat("add_foreign_key: ", field, ": column \"", c,
                                              "\" does not exist in ", t.Qualified()));
    }
    return absl::OkStatus();
  }

  // A foreign key needs a primary key or a unique index on exactly the
  // referenced columns (any order): valid, not partial, no expressions, not
  // deferrable.
  absl::Status CheckReferencedKey(pg::Connection& conn, const catalog::Table& ref) const {
    std::vector<std::string> attnums;
    for (const std::string& c : spec_.references_columns()) {
      attnums.push_back(std::to_string(ref.FindColumn(c)->attnum));
    }
    ASSIGN_OR_RETURN(
        pg::Result r,
        conn.Exec("SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::regclass AND i.indisunique "
                  "AND i.indisvalid AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL "
                  "AND i.indnkeyatts = cardinality($2::int2[]) "
                  "AND (i.indkey::int2[])[0:i.indnkeyatts - 1] @> $2::int2[])",
                  {ref.Qualified(), absl::StrCat("{", absl::StrJoin(attnums, ","), "}")}));
    if (r.GetBool(0, 0)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "add_foreign_key: references_columns: no primary key or unique index of ", ref.Qualified(),
        " covers exactly (", QuotedList(spec_.references_columns()),
        ") (valid, not partial, without expressions, not deferrable); a foreign key needs one to find "
        "the referenced row. Create it first (a unique index built CONCURRENTLY), or reference the "
        "columns of an existing one"));
  }

  absl::Status CheckReferencesPrivilege(pg::Connection& conn, const catalog::Table& ref) const {
    ASSIGN_OR_RETURN(pg::Result r, conn.Exec("SELECT has_table_privilege($1::regclass, 'REFERENCES'), "
                                             "current_user",
                                             {ref.Qualified()}));
    if (r.GetBool(0, 0)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "add_foreign_key: references_table: role ", pg::QuoteIdent(r.Get(0, 1)),
        " lacks the REFERENCES privilege on ", ref.Qualified(), ", which adding the foreign key needs. GRANT "
        "REFERENCES ON ", ref.Qualified(), " TO ", pg::QuoteIdent(r.Get(0, 1))));
  }

  // The server decides whether the key columns' types can be compared with
  // the referenced key's equality (its unique index's operator class, or an
  // implicit cast), and whether the actions fit (e.g. a generated column):
  // the same foreign key is added between two empty temporary copies of
  // the tables (their columns, collations, generated expressions and
  // indexes), in a transaction that is rolled back.
  absl::Status CheckWithTheServer(pg::Connection& conn, const catalog::Table& table,
                                  const catalog::Table& ref) const {
    ASSIGN_OR_RETURN(pg::Result who, conn.Exec("SELECT current_user, current_database()"));
    absl::Status s = conn.RolledBack([&]() -> absl::Status {
      absl::Status created = conn.Run(absl::StrCat(
          "CREATE TEMP TABLE pgshift_probe_ref (LIKE ", ref.Qualified(), " INCLUDING INDEXES) ON COMMIT DROP"));
      if (created.ok()) {
        created = conn.Run(absl::StrCat("CREATE TEMP TABLE pgshift_probe_fk (LIKE ", table.Qualified(),
                                        " INCLUDING GENERATED) ON COMMIT DROP"));
      }
      if (!created.ok()) {
        if (util::SqlStateOf(created) != "42501") return created;
        return absl::InvalidArgumentError(absl::StrCat(
            "add_foreign_key: checking that the key columns' types match needs the TEMP privilege on database ",
            pg::QuoteIdent(who.Get(0, 1)), ", which role ", pg::QuoteIdent(who.Get(0, 0)),
            " lacks (pgshift adds the key between empty temporary copies of the tables, in a transaction "
            "it rolls back). GRANT TEMPORARY ON DATABASE ", pg::QuoteIdent(who.Get(0, 1)), " TO ",
            pg::QuoteIdent(who.Get(0, 0)), "; see docs/privileges.md"));
      }
      absl::Status added = conn.Run(AddSql(spec_, "pg_temp.pgshift_probe_fk", "pg_temp.pgshift_probe_ref"));
      if (!added.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "add_foreign_key: ", table.Qualified(), " (", QuotedList(spec_.columns()), ") cannot reference ",
            ref.Qualified(), " (", QuotedList(spec_.references_columns()), "): ", added.message()));
      }
      return absl::OkStatus();
    });
    return s;
  }

  v1::AddForeignKey spec_;
};

absl::Status Validate(const v1::Operation& op, const std::string& where) {
  const v1::AddForeignKey& o = op.add_foreign_key();
  if (o.columns_size() != o.references_columns_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": \"columns\" has ", o.columns_size(), " column(s) and \"references_columns\" ",
        o.references_columns_size(), "; a foreign key pairs them one to one"));
  }
  for (const char* field : {"columns", "references_columns"}) {
    const auto& cols = std::string(field) == "columns" ? o.columns() : o.references_columns();
    std::set<std::string> seen;
    for (const std::string& c : cols) {
      if (!seen.insert(c).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".", field, ": column \"", c, "\" appears twice"));
      }
    }
  }
  for (const auto& [field, value] : {std::pair<const char*, int>{"on_delete", o.on_delete()},
                                     std::pair<const char*, int>{"on_update", o.on_update()}}) {
    if (!v1::ForeignKeyAction_IsValid(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".", field, ": ", value, " is not an action; use one of NO_ACTION, RESTRICT, CASCADE, "
          "SET_NULL, SET_DEFAULT"));
    }
  }
  return absl::OkStatus();
}

// Reads, on both tables: the key constrains what may be written to its
// columns but changes none of them, so another migration may not change
// (rename, drop, retype) them while this one is active, and two readers
// never conflict.
std::vector<Touch> Touches(const v1::Operation& op, const std::string& schema) {
  const v1::AddForeignKey& o = op.add_foreign_key();
  std::vector<Touch> out;
  for (const std::string& c : o.columns()) out.push_back(Touch{schema, o.table(), c, /*read=*/true});
  for (const std::string& c : o.references_columns()) {
    out.push_back(Touch{schema, o.references_table(), c, /*read=*/true});
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Operation>> Make(const v1::Operation& op, Context ctx) {
  return std::unique_ptr<Operation>(new AddForeignKey(op.add_foreign_key(), std::move(ctx)));
}

}  // namespace

extern const OperationType kAddForeignKeyType = {v1::Operation::kAddForeignKey, "add_foreign_key", &Validate,
                                                 &Touches, &Make,
    /*contract_only_unmarks=*/true};

}  // namespace pgshift::ops
