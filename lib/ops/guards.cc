#include "lib/ops/guards.h"

#include "absl/strings/str_cat.h"

namespace pgshift::ops {

namespace {

std::string Quoted(const std::string& name) { return absl::StrCat("\"", name, "\""); }

}  // namespace

Guard ColumnExists(const catalog::Table& t, const std::string& column) {
  return Guard::Of({absl::StrCat("column ", Quoted(column), " exists in ", t.Qualified()),
                    "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass "
                    "AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
                    {t.Qualified(), column},
                    absl::StrCat("column ", Quoted(column), " is gone from ", t.Qualified())});
}

Guard ColumnMissing(const catalog::Table& t, const std::string& column) {
  return Guard::Not(ColumnExists(t, column));
}

Guard ColumnNotNull(const catalog::Table& t, const std::string& column) {
  return Guard::Of({absl::StrCat("column ", Quoted(column), " is NOT NULL"),
                    "SELECT coalesce((SELECT attnotnull FROM pg_attribute WHERE attrelid = "
                    "$1::regclass AND attname = $2 AND NOT attisdropped), false)",
                    {t.Qualified(), column},
                    absl::StrCat("column ", Quoted(column), " is nullable or gone")});
}

Guard ColumnNotOurs(const catalog::Table& t, const std::string& column, const Names& names) {
  return Guard::Of({absl::StrCat("column ", Quoted(column), " is missing or not pgshift's"),
                    "SELECT coalesce((SELECT col_description(attrelid, attnum) IS DISTINCT FROM $3 "
                    "FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT "
                    "attisdropped), true)",
                    {t.Qualified(), column, names.owner_comment()}});
}

Guard ConstraintExists(const catalog::Table& t, const std::string& name) {
  return Guard::Of({absl::StrCat("constraint ", Quoted(name), " exists"),
                    "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND "
                    "conname = $2)",
                    {t.Qualified(), name}, absl::StrCat("constraint ", Quoted(name), " is gone")});
}

Guard ConstraintValidatedOrGone(const catalog::Table& t, const std::string& name) {
  return Guard::Of({absl::StrCat("constraint ", Quoted(name), " is validated or gone"),
                    "SELECT coalesce((SELECT convalidated FROM pg_constraint WHERE conrelid = "
                    "$1::regclass AND conname = $2), true)",
                    {t.Qualified(), name}});
}

Guard TriggerExists(const catalog::Table& t, const std::string& name) {
  return Guard::Of({absl::StrCat("trigger ", Quoted(name), " exists"),
                    "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND "
                    "tgname = $2)",
                    {t.Qualified(), name}, absl::StrCat("trigger ", Quoted(name), " is gone")});
}

Guard FunctionExists(const catalog::Table& t, const std::string& name) {
  return Guard::Of({absl::StrCat("function ", Quoted(name), " exists"),
                    "SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = "
                    "p.pronamespace WHERE n.nspname = $1 AND p.proname = $2)",
                    {t.schema, name}, absl::StrCat("function ", Quoted(name), " is gone")});
}

namespace {

Guard RelationOfKind(const std::string& schema, const std::string& name, const char* kind,
                     const char* what) {
  const std::string quoted = absl::StrCat(Quoted(schema), ".", Quoted(name));
  return Guard::Of({absl::StrCat(what, " ", quoted, " exists"),
                    "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
                    "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = $3)",
                    {schema, name, kind}, absl::StrCat(what, " ", quoted, " is gone")});
}

}  // namespace

Guard TableExists(const std::string& schema, const std::string& name) {
  return RelationOfKind(schema, name, "r", "table");
}

Guard ViewExists(const std::string& schema, const std::string& name) {
  return RelationOfKind(schema, name, "v", "view");
}

Guard TriggersInstalled(const catalog::Table& t, const Names& names) {
  return Guard::All({TriggerExists(t, names.insert_trigger()), TriggerExists(t, names.update_trigger())});
}

Guard TriggersGone(const catalog::Table& t, const Names& names) {
  return Guard::All({Guard::Not(TriggerExists(t, names.insert_trigger())),
                     Guard::Not(TriggerExists(t, names.update_trigger())),
                     Guard::Not(FunctionExists(t, names.trigger_function()))});
}

Guard ConstraintOurs(const catalog::Table& t, const std::string& name, const Names& names) {
  return Guard::Of({absl::StrCat("constraint \"", name, "\" exists and is pgshift's"),
                    "SELECT coalesce((SELECT obj_description(oid, 'pg_constraint') = $3 FROM pg_constraint "
                    "WHERE conrelid = $1::regclass AND conname = $2), false)",
                    {t.Qualified(), name, names.owner_comment()},
                    absl::StrCat("constraint \"", name, "\" is gone or not pgshift's")});
}

}  // namespace pgshift::ops
