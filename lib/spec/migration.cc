#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "lib/ops/registry.h"
#include "lib/pg/quote.h"
#include "lib/spec/sql_migration.h"
#include "lib/spec/strict_json.h"
#include "lib/sql/sql.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"
#include "pgshift/migration.h"

namespace pgshift {

namespace {

absl::Status Bad(absl::string_view origin, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", what));
}

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Checks one string value of an operation by the field's kind (the options
// in migration.proto).
absl::Status CheckValue(absl::string_view origin, const std::string& path, v1::FieldKind kind,
                        const std::string& value) {
  switch (kind) {
    case v1::FIELD_IDENTIFIER:
      return util::Annotate(pg::CheckIdentifier(value, absl::StrCat("\"", path, "\"")), origin);
    case v1::FIELD_EXPRESSION:
      return util::Annotate(sql::Expression::Parse(value, path).status(), origin);
    case v1::FIELD_TYPE:
      return util::Annotate(sql::TypeName::Parse(value, path).status(), origin);
    case v1::FIELD_INDEX_ELEMENT: {
      // A column name (any valid identifier, which the operation looks up as
      // written) or else exactly one expression.
      absl::Status as_name = pg::CheckIdentifier(value, absl::StrCat("\"", path, "\""));
      absl::Status as_expr = sql::Expression::Parse(value, path).status();
      if (as_expr.ok() || as_name.ok()) return absl::OkStatus();
      return util::Annotate(as_name.ok() ? as_expr : as_name, origin);
    }
    case v1::FIELD_SQL: {
      absl::Status parsed = sql::Split(value).status();
      if (parsed.ok()) return parsed;
      return Bad(origin, absl::StrCat(path, ": ", parsed.message()));
    }
    default:
      return absl::InternalError(absl::StrCat(path, " has no (kind) in migration.proto"));
  }
}

// Checks every string field of `m` (one operation's message) by its kind,
// and the fields of the messages it holds (create_table's columns) the same
// way, their paths "where.columns[0].type".
absl::Status CheckFields(absl::string_view origin, const std::string& where, const Message& m) {
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      const auto& o = f->options();
      const std::string path = absl::StrCat(where, ".", f->name());
      if (f->is_repeated()) {
        if (o.GetExtension(v1::required) && r->FieldSize(m, f) == 0) {
          return Bad(origin, absl::StrCat(where, ": \"", f->name(), "\" is missing; give ",
                                          o.GetExtension(v1::hint)));
        }
        for (int j = 0; j < r->FieldSize(m, f); ++j) {
          RETURN_IF_ERROR(CheckFields(origin, absl::StrCat(path, "[", j, "]"),
                                      r->GetRepeatedMessage(m, f, j)));
        }
      } else if (r->HasField(m, f)) {
        RETURN_IF_ERROR(CheckFields(origin, path, r->GetMessage(m, f)));
      } else if (o.GetExtension(v1::required)) {
        return Bad(origin, absl::StrCat(where, ": \"", f->name(), "\" is missing; give ",
                                        o.GetExtension(v1::hint)));
      }
      continue;
    }
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) continue;
    const auto& o = f->options();
    const v1::FieldKind kind = o.GetExtension(v1::kind);
    const std::string path = absl::StrCat(where, ".", f->name());
    if (f->is_repeated()) {
      if (o.GetExtension(v1::required) && r->FieldSize(m, f) == 0) {
        return Bad(origin, absl::StrCat(where, ": \"", f->name(), "\" is missing; give ",
                                        o.GetExtension(v1::hint)));
      }
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        RETURN_IF_ERROR(CheckValue(origin, absl::StrCat(path, "[", j, "]"), kind,
                                   r->GetRepeatedString(m, f, j)));
      }
      continue;
    }
    const std::string value = r->GetString(m, f);
    const bool given = f->has_presence() ? r->HasField(m, f) : !value.empty();
    if (!given || (o.GetExtension(v1::required) && absl::StripAsciiWhitespace(value).empty())) {
      if (!o.GetExtension(v1::required)) continue;
      const std::string hint = o.GetExtension(v1::hint);
      return Bad(origin, absl::StrCat(where, ": \"", f->name(), "\" is missing; ",
                                      hint.empty() ? "it names a column or table"
                                                   : absl::StrCat("give ", hint)));
    }
    RETURN_IF_ERROR(CheckValue(origin, path, kind, value));
  }
  return absl::OkStatus();
}

// Checks one operation: its fields by kind, then its registry row's own checks.
absl::Status CheckOperation(absl::string_view origin, int index, const v1::Operation& op) {
  const ops::OperationType* type = ops::FindOperationType(op.kind_case());
  const std::string where = absl::StrCat("operations[", index, "]");
  if (type == nullptr) {
    std::vector<std::string> names;
    for (const ops::OperationType* t : ops::Registry()) names.push_back(t->name);
    return Bad(origin, absl::StrCat(where, " names no operation; use one of ",
                                    absl::StrJoin(names, ", ")));
  }
  const Message& body = op.GetReflection()->GetMessage(
      op, op.GetDescriptor()->FindFieldByNumber(static_cast<int>(op.kind_case())));
  const std::string path = absl::StrCat(where, ".", type->name);
  RETURN_IF_ERROR(CheckFields(origin, path, body));
  return util::Annotate(type->validate(op, path), origin);
}

// The field names an operation may have, for the unknown-field message.
std::string OperationFieldNames() {
  std::set<std::string> names;
  for (const ops::OperationType* t : ops::Registry()) {
    const FieldDescriptor* f = v1::Operation::descriptor()->FindFieldByName(t->name);
    if (f == nullptr) continue;
    for (int i = 0; i < f->message_type()->field_count(); ++i) {
      names.insert(f->message_type()->field(i)->name());
    }
  }
  return absl::StrJoin(names, ", ");
}

// Protobuf's JSON errors read "INVALID_ARGUMENT:...Cannot find field."; say it
// in the user's words.
std::string ExplainJsonError(absl::string_view message) {
  std::string msg(message);
  if (absl::StartsWith(msg, "INVALID_ARGUMENT:")) msg = msg.substr(17);
  if (absl::StrContains(msg, "Cannot find field")) {
    return absl::StrCat("unknown field (", msg,
                        "); field names are snake_case as in proto/pgshift/v1/migration.proto: "
                        "name, schema, operations, and per operation ", OperationFieldNames());
  }
  return absl::StrCat("malformed JSON: ", msg);
}

}  // namespace

absl::StatusOr<v1::Migration> ParseMigrationJson(absl::string_view json, absl::string_view origin,
                                                 absl::string_view file_name) {
  // A UTF-8 byte order mark (which some Windows editors write) is not part
  // of the JSON text (RFC 8259 §8.1 lets a parser ignore it); the directory
  // checksum leaves it out too.
  if (absl::StartsWith(json, "\xEF\xBB\xBF")) json.remove_prefix(3);
  // Protobuf's parser keeps the last of duplicate keys and is lenient about
  // JSON types; read the text strictly first.
  RETURN_IF_ERROR(util::Annotate(spec::CheckJsonShape(json, v1::Migration::descriptor()), origin));
  v1::Migration m;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(std::string(json), &m, options);
  if (!st.ok()) return Bad(origin, ExplainJsonError(st.ToString()));
  if (!file_name.empty()) {
    if (m.name().empty()) m.set_name(std::string(file_name));
    if (m.name() != file_name) {
      return Bad(origin, absl::StrCat("\"name\" is \"", m.name(), "\" but the file is named \"",
                                      file_name, "\": in a migration directory the name is the "
                                      "file name without its extension; remove \"name\" or make it \"",
                                      file_name, "\""));
    }
  }
  if (m.name().empty()) {
    return Bad(origin, "\"name\" is missing; every migration needs a unique name, e.g. "
                       "\"0042_rename_users_name\"");
  }
  if (absl::StripAsciiWhitespace(m.name()).empty()) {
    return Bad(origin, "\"name\" is only whitespace; every migration needs a unique name, e.g. "
                       "\"0042_rename_users_name\"");
  }
  if (m.name().size() > 200 ||
      std::any_of(m.name().begin(), m.name().end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    return Bad(origin, "\"name\" must be at most 200 bytes without control characters");
  }
  if (m.schema().empty()) m.set_schema("public");
  RETURN_IF_ERROR(util::Annotate(pg::CheckIdentifier(m.schema(), "\"schema\""), origin));
  if (m.operations_size() == 0) {
    return Bad(origin, "\"operations\" is empty; give at least one operation");
  }
  std::set<std::pair<std::string, std::string>> seen;  // (table, column) changed
  std::vector<std::vector<ops::Touch>> touches;
  for (int i = 0; i < m.operations_size(); ++i) {
    RETURN_IF_ERROR(CheckOperation(origin, i, m.operations(i)));
    touches.push_back(ops::TouchesOf(m.operations(i), m.schema()));
    // A sql operation's changes are done at once (at column_added) and never
    // undone at contract: a later operation may change or read what it
    // added (ALTER TABLE ... ADD COLUMN, then CREATE INDEX on it).
    if (m.operations(i).has_sql()) continue;
    for (const ops::Touch& t : touches.back()) {
      if (t.column.empty() || t.read) continue;
      if (!seen.emplace(t.table, t.column).second) {
        return Bad(origin, absl::StrCat("column \"", t.column, "\" of table \"", t.table,
                                        "\" is changed by more than one operation; put each "
                                        "change of a column in its own migration"));
      }
    }
  }
  // A table one operation creates, renames or drops (a whole-table touch)
  // cannot be changed by another operation of the same migration: their
  // steps would run against a table that is not there yet, or no longer.
  for (size_t i = 0; i < touches.size(); ++i) {
    for (size_t j = 0; j < touches.size(); ++j) {
      if (i == j) continue;
      // A table a sql operation creates is there, for good, before any later
      // operation's first step (a sql operation runs at column_added, in order).
      if (m.operations(i).has_sql() && i < j) continue;
      for (const ops::Touch& whole : touches[i]) {
        if (!whole.column.empty() || whole.read) continue;
        for (const ops::Touch& other : touches[j]) {
          if (!whole.Conflicts(other)) continue;
          return Bad(origin, absl::StrCat(
              "operations[", i, "] (", OperationKind(m.operations(i)), ") and operations[", j, "] (",
              OperationKind(m.operations(j)), ") both change table \"", whole.table,
              "\"; a table created, renamed or dropped takes a migration of its own"));
        }
      }
    }
  }
  // An expression of one operation (run by its trigger until contract) must
  // not read a column another operation of the migration changes: between
  // their contract transactions that trigger would read a column that is
  // gone.
  for (size_t i = 0; i < touches.size(); ++i) {
    for (size_t j = 0; j < touches.size(); ++j) {
      // A sql operation has no trigger, and nothing of it goes at contract.
      if (i == j || m.operations(i).has_sql() || m.operations(j).has_sql()) continue;
      for (const ops::Touch& reads : touches[i]) {
        if (!reads.read) continue;
        for (const ops::Touch& changes : touches[j]) {
          if (changes.read || !reads.Conflicts(changes)) continue;
          return Bad(origin, absl::StrCat(
              "operations[", i, "] reads column \"", reads.column, "\" of table \"", reads.table,
              "\" in an expression, and operations[", j,
              "] changes it; put them in two migrations and contract the one that reads it "
              "before registering the one that changes it"));
        }
      }
    }
  }
  return m;
}

absl::StatusOr<v1::Migration> LoadMigrationFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read migration file \"", path, "\""));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  if (absl::EndsWith(path, ".sql")) {
    // A plain SQL file, judged without a database (Driver::ConvertSql asks
    // the catalog); its name is the file name without ".sql".
    sql::NoCatalog none;
    std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    name.resize(name.size() - 4);
    return ConvertSqlMigration(buf.str(), path, name, none);
  }
  return ParseMigrationJson(buf.str(), path);
}

std::string CanonicalJson(const v1::Migration& migration) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(migration, &out, options);
  return out;
}

std::string MigrationFileJson(const v1::Migration& migration) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(migration, &out, options);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

absl::string_view OperationKind(const v1::Operation& op) {
  const ops::OperationType* type = ops::FindOperationType(op.kind_case());
  return type == nullptr ? "none" : type->name;
}

}  // namespace pgshift
