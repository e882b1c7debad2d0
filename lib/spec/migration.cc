#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"
#include "pgshift/migration.h"

namespace pgshift {

namespace {

absl::Status Bad(absl::string_view origin, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", what));
}

absl::Status NeedIdent(absl::string_view origin, absl::string_view where, absl::string_view field,
                       const std::string& value) {
  if (value.empty()) {
    return Bad(origin, absl::StrCat(where, ": \"", field, "\" is missing; it names a column or table"));
  }
  return util::Annotate(pg::CheckIdentifier(value, absl::StrCat("\"", field, "\"")),
                        absl::StrCat(origin, ": ", where));
}

absl::Status NeedText(absl::string_view origin, absl::string_view where, absl::string_view field,
                      const std::string& value, absl::string_view what) {
  if (absl::StripAsciiWhitespace(value).empty()) {
    return Bad(origin, absl::StrCat(where, ": \"", field, "\" is missing; give ", what));
  }
  if (value.find('\0') != std::string::npos) {
    return Bad(origin, absl::StrCat(where, ": \"", field, "\" contains a NUL byte"));
  }
  return absl::OkStatus();
}

// Checks one operation's fields; appends the (table, column) pairs it changes.
absl::Status CheckOperation(absl::string_view origin, int index, const v1::Operation& op,
                            std::vector<std::pair<std::string, std::string>>* touched) {
  std::string where = absl::StrCat("operations[", index, "]");
  switch (op.kind_case()) {
    case v1::Operation::kRenameColumn: {
      const auto& o = op.rename_column();
      where += ".rename_column";
      RETURN_IF_ERROR(NeedIdent(origin, where, "table", o.table()));
      RETURN_IF_ERROR(NeedIdent(origin, where, "from", o.from()));
      RETURN_IF_ERROR(NeedIdent(origin, where, "to", o.to()));
      if (o.from() == o.to()) {
        return Bad(origin, absl::StrCat(where, ": \"from\" and \"to\" are both \"", o.from(),
                                        "\"; nothing to rename"));
      }
      touched->emplace_back(o.table(), o.from());
      touched->emplace_back(o.table(), o.to());
      return absl::OkStatus();
    }
    case v1::Operation::kSetNotNull: {
      const auto& o = op.set_not_null();
      where += ".set_not_null";
      RETURN_IF_ERROR(NeedIdent(origin, where, "table", o.table()));
      RETURN_IF_ERROR(NeedIdent(origin, where, "column", o.column()));
      RETURN_IF_ERROR(NeedText(origin, where, "fill", o.fill(),
                               "an SQL expression that replaces NULLs, e.g. \"''\" or \"0\""));
      touched->emplace_back(o.table(), o.column());
      return absl::OkStatus();
    }
    case v1::Operation::kAddColumn: {
      const auto& o = op.add_column();
      where += ".add_column";
      RETURN_IF_ERROR(NeedIdent(origin, where, "table", o.table()));
      RETURN_IF_ERROR(NeedIdent(origin, where, "column", o.column()));
      RETURN_IF_ERROR(NeedText(origin, where, "type", o.type(), "the column's type, e.g. \"text\""));
      if (o.not_null() && !o.has_default_() && o.up().empty()) {
        return Bad(origin, absl::StrCat(where, ": a NOT NULL column needs \"default\" or \"up\" to "
                                               "fill existing rows and rows written by old app versions"));
      }
      touched->emplace_back(o.table(), o.column());
      return absl::OkStatus();
    }
    case v1::Operation::kDropColumn: {
      const auto& o = op.drop_column();
      where += ".drop_column";
      RETURN_IF_ERROR(NeedIdent(origin, where, "table", o.table()));
      RETURN_IF_ERROR(NeedIdent(origin, where, "column", o.column()));
      touched->emplace_back(o.table(), o.column());
      return absl::OkStatus();
    }
    case v1::Operation::kChangeType: {
      const auto& o = op.change_type();
      where += ".change_type";
      RETURN_IF_ERROR(NeedIdent(origin, where, "table", o.table()));
      RETURN_IF_ERROR(NeedIdent(origin, where, "column", o.column()));
      RETURN_IF_ERROR(NeedIdent(origin, where, "new_column", o.new_column()));
      RETURN_IF_ERROR(NeedText(origin, where, "type", o.type(), "the new type, e.g. \"bigint\""));
      RETURN_IF_ERROR(NeedText(origin, where, "up", o.up(),
                               "an SQL expression computing the new column from the row"));
      RETURN_IF_ERROR(NeedText(origin, where, "down", o.down(),
                               "an SQL expression computing the old column from the row"));
      if (o.column() == o.new_column()) {
        return Bad(origin, absl::StrCat(where, ": \"new_column\" must differ from \"column\""));
      }
      touched->emplace_back(o.table(), o.column());
      touched->emplace_back(o.table(), o.new_column());
      return absl::OkStatus();
    }
    case v1::Operation::KIND_NOT_SET:
      break;
  }
  return Bad(origin, absl::StrCat(where, " names no operation; use one of rename_column, "
                                         "set_not_null, add_column, drop_column, change_type"));
}

// Protobuf's JSON errors read "INVALID_ARGUMENT:...Cannot find field."; say it
// in the user's words.
std::string ExplainJsonError(absl::string_view message) {
  std::string msg(message);
  if (absl::StartsWith(msg, "INVALID_ARGUMENT:")) msg = msg.substr(17);
  if (absl::StrContains(msg, "Cannot find field")) {
    return absl::StrCat("unknown field (", msg,
                        "); field names are snake_case as in proto/pgshift/v1/migration.proto: "
                        "name, schema, operations, and per operation table, from, to, column, "
                        "fill, type, default, not_null, up, down, new_column");
  }
  return absl::StrCat("malformed JSON: ", msg);
}

}  // namespace

absl::StatusOr<v1::Migration> ParseMigrationJson(absl::string_view json, absl::string_view origin) {
  v1::Migration m;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(std::string(json), &m, options);
  if (!st.ok()) return Bad(origin, ExplainJsonError(st.ToString()));
  if (m.name().empty()) {
    return Bad(origin, "\"name\" is missing; every migration needs a unique name, e.g. "
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
  std::vector<std::pair<std::string, std::string>> touched;
  for (int i = 0; i < m.operations_size(); ++i) {
    RETURN_IF_ERROR(CheckOperation(origin, i, m.operations(i), &touched));
  }
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& tc : touched) {
    if (!seen.insert(tc).second) {
      return Bad(origin, absl::StrCat("column \"", tc.second, "\" of table \"", tc.first,
                                      "\" is changed by more than one operation; put each "
                                      "change of a column in its own migration"));
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
  return ParseMigrationJson(buf.str(), path);
}

std::string CanonicalJson(const v1::Migration& migration) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(migration, &out, options);
  return out;
}

absl::string_view OperationKind(const v1::Operation& op) {
  switch (op.kind_case()) {
    case v1::Operation::kRenameColumn: return "rename_column";
    case v1::Operation::kSetNotNull: return "set_not_null";
    case v1::Operation::kAddColumn: return "add_column";
    case v1::Operation::kDropColumn: return "drop_column";
    case v1::Operation::kChangeType: return "change_type";
    case v1::Operation::KIND_NOT_SET: break;
  }
  return "none";
}

}  // namespace pgshift
