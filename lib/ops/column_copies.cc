#include "lib/ops/column_copies.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/ops/guards.h"
#include "lib/pg/quote.h"
#include "lib/sql/sql.h"
#include "lib/util/status_macros.h"

namespace pgshift::ops {

namespace {

// What moves with a column to its replacement: valid indexes other than the
// primary key (an INVALID index enforces nothing; copying it would invent a
// constraint), CHECKs and foreign keys (unique constraints travel with their
// index), never pgshift's own.
bool CopiedIndex(const catalog::Index& ix, int attnum) {
  return ix.Uses(attnum) && !ix.primary && ix.valid && !absl::StartsWith(ix.name, "pgshift_");
}

bool CopiedConstraint(const catalog::Constraint& c, int attnum) {
  return c.Uses(attnum) && (c.type == 'c' || c.type == 'f') && !absl::StartsWith(c.name, "pgshift_");
}

const catalog::Constraint* FindConstraint(const catalog::Table& t, const std::string& name) {
  for (const catalog::Constraint& c : t.constraints) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::vector<Action>> CopyColumnObjects(const catalog::Table& t, const Context& ctx,
                                                      const std::string& from, const std::string& to) {
  const catalog::Column* col = t.FindColumn(from);
  if (col == nullptr) return absl::NotFoundError(absl::StrCat("column \"", from, "\" is gone"));
  std::vector<Action> out;
  for (const catalog::Index& ix : t.indexes) {
    if (!CopiedIndex(ix, col->attnum)) continue;
    const std::string copy = ctx.names.copy_of(ix.name);
    ASSIGN_OR_RETURN(std::string create, sql::CopyIndexDefinition(ix.def, copy, from, to));
    out.push_back(BuildIndex(t, absl::StrCat("build the copy of index ", ix.name, " on ", to),
                             std::move(create), copy));
    if (ix.constraint_type == 'u') {
      // ADD CONSTRAINT ... USING INDEX keeps the index's name.
      const catalog::Constraint* c = FindConstraint(t, ix.constraint);
      std::string deferrable;
      if (c != nullptr && c->deferrable) {
        deferrable = c->deferred ? " DEFERRABLE INITIALLY DEFERRED" : " DEFERRABLE";
      }
      // ADD CONSTRAINT ... USING INDEX takes ACCESS EXCLUSIVE (catalog only:
      // the index is built already), so it runs after the preflight.
      out.push_back(Transaction(
          t, absl::StrCat("attach the copy of unique constraint ", ix.constraint),
          {absl::StrCat("ALTER TABLE ", t.Qualified(), " ADD CONSTRAINT ", pg::QuoteIdent(copy),
                        " UNIQUE USING INDEX ", pg::QuoteIdent(copy), deferrable)},
          pg::LockMode::kAccessExclusive, ConstraintExists(t, copy)));
    }
  }
  for (const catalog::Constraint& c : t.constraints) {
    if (!CopiedConstraint(c, col->attnum)) continue;
    const std::string copy = ctx.names.copy_of(c.name);
    ASSIGN_OR_RETURN(std::string add,
                     sql::CopyConstraintDefinition({t.schema, t.name}, c.def, copy, from, to,
                                                   {c.referenced_schema, c.referenced_name}));
    // A foreign key locks both tables (SHARE ROW EXCLUSIVE); a CHECK needs
    // ACCESS EXCLUSIVE on its table.
    Action a = Transaction(t, absl::StrCat("add the copy of constraint ", c.name, " NOT VALID"),
                           {std::move(add)},
                           c.type == 'f' ? pg::LockMode::kShareRowExclusive
                                         : pg::LockMode::kAccessExclusive,
                           ConstraintExists(t, copy));
    if (c.type == 'f' && c.referenced_table != t.Qualified()) {
      a.locks.push_back({c.referenced_table, pg::LockMode::kShareRowExclusive});
    }
    out.push_back(std::move(a));
    if (c.validated) {
      Action v = LongTransaction(
          t, absl::StrCat("validate the copy of constraint ", c.name),
          {absl::StrCat("ALTER TABLE ", t.Qualified(), " VALIDATE CONSTRAINT ", pg::QuoteIdent(copy))},
          pg::LockMode::kShareUpdateExclusive, ConstraintValidatedOrGone(t, copy));
      if (c.type == 'f' && c.referenced_table != t.Qualified()) {
        // Validating a foreign key reads the referenced table too.
        v.locks.push_back({c.referenced_table, pg::LockMode::kRowShare});
      }
      out.push_back(std::move(v));
    }
  }
  return out;
}

std::vector<std::string> ReplicaIdentitySql(const catalog::Table& t, const Context& ctx,
                                            const std::string& from) {
  const catalog::Column* col = t.FindColumn(from);
  std::vector<std::string> out;
  if (col == nullptr) return out;
  for (const catalog::Index& ix : t.indexes) {
    if (!CopiedIndex(ix, col->attnum) || !ix.replica_identity) continue;
    out.push_back(absl::StrCat("ALTER TABLE ", t.Qualified(), " REPLICA IDENTITY USING INDEX ",
                               pg::QuoteIdent(ctx.names.copy_of(ix.name))));
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
    const std::string copy = ctx.names.copy_of(ix.name);
    if (ix.constraint_type == 'u') {
      out.push_back(absl::StrCat("ALTER TABLE ", t.Qualified(), " RENAME CONSTRAINT ",
                                 pg::QuoteIdent(copy), " TO ", pg::QuoteIdent(ix.constraint)));
    } else {
      out.push_back(absl::StrCat("ALTER INDEX ", pg::QuoteQualified(t.schema, copy), " RENAME TO ",
                                 pg::QuoteIdent(ix.name)));
    }
  }
  for (const catalog::Constraint& c : t.constraints) {
    if (!CopiedConstraint(c, col->attnum)) continue;
    out.push_back(absl::StrCat("ALTER TABLE ", t.Qualified(), " RENAME CONSTRAINT ",
                               pg::QuoteIdent(ctx.names.copy_of(c.name)), " TO ", pg::QuoteIdent(c.name)));
  }
  return out;
}

}  // namespace pgshift::ops
