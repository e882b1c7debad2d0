// PL/pgSQL functions read with libpg_query's PL/pgSQL parser: which fields of
// the trigger records NEW and OLD a function names.
#include <pg_query.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "lib/sql/sql.h"

namespace pgshift::sql {

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

const Value* Field(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? nullptr : &it->second;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> TriggerRecordFields(absl::string_view function_definition) {
  if (function_definition.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("the function definition contains a NUL byte");
  }
  const std::string text(function_definition);
  PgQueryPlpgsqlParseResult r = pg_query_parse_plpgsql(text.c_str());
  if (r.error != nullptr) {
    absl::Status s = absl::InvalidArgumentError(
        absl::StrCat("cannot read the PL/pgSQL function: ", r.error->message));
    pg_query_free_plpgsql_parse_result(r);
    return s;
  }
  Value doc;
  const bool parsed = google::protobuf::util::JsonStringToMessage(r.plpgsql_funcs, &doc).ok();
  pg_query_free_plpgsql_parse_result(r);
  if (!parsed) return absl::InternalError("libpg_query returned PL/pgSQL it cannot read back");
  std::set<std::string> fields;
  for (const Value& function : doc.list_value().values()) {
    const Value* body = Field(function.struct_value(), "PLpgSQL_function");
    if (body == nullptr) continue;
    const Value* datums = Field(body->struct_value(), "datums");
    if (datums == nullptr) continue;
    // The records NEW and OLD (by their datum number), then the fields named on them.
    std::set<int> records;
    for (const Value& d : datums->list_value().values()) {
      const Value* rec = Field(d.struct_value(), "PLpgSQL_rec");
      if (rec == nullptr) continue;
      const Value* name = Field(rec->struct_value(), "refname");
      const Value* dno = Field(rec->struct_value(), "dno");
      if (name != nullptr && dno != nullptr &&
          (name->string_value() == "new" || name->string_value() == "old")) {
        records.insert(static_cast<int>(dno->number_value()));
      }
    }
    for (const Value& d : datums->list_value().values()) {
      const Value* field = Field(d.struct_value(), "PLpgSQL_recfield");
      if (field == nullptr) continue;
      const Value* parent = Field(field->struct_value(), "recparentno");
      const Value* name = Field(field->struct_value(), "fieldname");
      if (parent != nullptr && name != nullptr &&
          records.count(static_cast<int>(parent->number_value())) > 0) {
        fields.insert(name->string_value());
      }
    }
  }
  return std::vector<std::string>(fields.begin(), fields.end());
}

}  // namespace pgshift::sql
