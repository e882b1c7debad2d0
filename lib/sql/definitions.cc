// Index and constraint definitions moved from one column to another: the
// server's own definition (pg_get_indexdef / pg_get_constraintdef) is parsed,
// its column references renamed in the tree, and the tree deparsed.
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/sql/sql.h"
#include "lib/sql/tree.h"
#include "lib/util/status_macros.h"

namespace pgshift::sql {

namespace {

using google::protobuf::Message;

void RenameInString(pg_query::Node* n, absl::string_view from, absl::string_view to) {
  if (n->has_string() && n->string().sval() == from) n->mutable_string()->set_sval(std::string(to));
}

// Renames column `from` to `to` in every column reference and index element
// below `root`.
void RenameColumnRefs(Message* root, absl::string_view from, absl::string_view to) {
  Walk(root, [&](Message* m) {
    const std::string& type = m->GetDescriptor()->name();
    if (type == "ColumnRef") {
      auto* ref = static_cast<pg_query::ColumnRef*>(m);
      if (ref->fields_size() == 1) RenameInString(ref->mutable_fields(0), from, to);
      return false;
    }
    if (type == "IndexElem") {
      auto* elem = static_cast<pg_query::IndexElem*>(m);
      if (elem->name() == from) elem->set_name(std::string(to));
    }
    return true;
  });
}

}  // namespace

absl::StatusOr<std::string> CopyIndexDefinition(absl::string_view indexdef, absl::string_view name,
                                                absl::string_view from, absl::string_view to) {
  ASSIGN_OR_RETURN(pg_query::ParseResult tree, Parse(indexdef));
  if (tree.stmts_size() != 1 || !tree.stmts(0).stmt().has_index_stmt()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the index definition \"", indexdef, "\""));
  }
  pg_query::IndexStmt* index = tree.mutable_stmts(0)->mutable_stmt()->mutable_index_stmt();
  index->set_idxname(std::string(name));
  index->set_concurrent(true);
  index->set_if_not_exists(false);
  for (pg_query::Node& n : *index->mutable_index_params()) RenameColumnRefs(&n, from, to);
  for (pg_query::Node& n : *index->mutable_index_including_params()) RenameColumnRefs(&n, from, to);
  if (index->has_where_clause()) RenameColumnRefs(index->mutable_where_clause(), from, to);
  return Deparse(tree);
}

absl::StatusOr<std::string> CopyConstraintDefinition(const QualifiedName& table,
                                                     absl::string_view constraintdef,
                                                     absl::string_view name,
                                                     absl::string_view from, absl::string_view to,
                                                     const QualifiedName& referenced) {
  // The definition alone does not parse; as the body of an ADD CONSTRAINT it
  // does. Table and constraint names are set in the tree afterwards.
  ASSIGN_OR_RETURN(pg_query::ParseResult tree,
                   ParseWithPrefix("ALTER TABLE t ADD CONSTRAINT c ", constraintdef));
  auto unreadable = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the constraint definition \"", constraintdef, "\""));
  };
  if (tree.stmts_size() != 1 || !tree.stmts(0).stmt().has_alter_table_stmt()) return unreadable();
  pg_query::AlterTableStmt* alter = tree.mutable_stmts(0)->mutable_stmt()->mutable_alter_table_stmt();
  if (alter->cmds_size() != 1 || !alter->cmds(0).has_alter_table_cmd() ||
      alter->cmds(0).alter_table_cmd().subtype() != pg_query::AT_AddConstraint ||
      !alter->cmds(0).alter_table_cmd().def().has_constraint()) {
    return unreadable();
  }
  alter->mutable_relation()->set_schemaname(table.schema);
  alter->mutable_relation()->set_relname(table.name);
  pg_query::Constraint* c =
      alter->mutable_cmds(0)->mutable_alter_table_cmd()->mutable_def()->mutable_constraint();
  c->set_conname(std::string(name));
  c->set_skip_validation(true);  // NOT VALID
  c->set_initially_valid(false);
  switch (c->contype()) {
    case pg_query::CONSTR_CHECK:
      RenameColumnRefs(c->mutable_raw_expr(), from, to);
      break;
    case pg_query::CONSTR_FOREIGN:
      // Only this table's columns: the referenced ones belong to the other table.
      for (pg_query::Node& n : *c->mutable_fk_attrs()) RenameInString(&n, from, to);
      for (pg_query::Node& n : *c->mutable_fk_del_set_cols()) RenameInString(&n, from, to);
      if (!referenced.name.empty()) {
        c->mutable_pktable()->set_schemaname(referenced.schema);
        c->mutable_pktable()->set_relname(referenced.name);
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "only CHECK and FOREIGN KEY constraints are copied this way, not \"", constraintdef, "\""));
  }
  return Deparse(tree);
}

}  // namespace pgshift::sql
