#include "lib/spec/sql_migration.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "lib/sql/sql.h"
#include "lib/util/status.h"
#include "lib/util/status_macros.h"
#include "pgshift/migration.h"

namespace pgshift {

namespace {

// The operations of `json`: one {"kind": {...}} or an array of them.
absl::StatusOr<std::vector<v1::Operation>> Operations(const std::string& json) {
  const std::string trimmed(absl::StripAsciiWhitespace(json));
  const std::string wrapped =
      absl::StrCat("{\"operations\": ", trimmed[0] == '[' ? trimmed : absl::StrCat("[", trimmed, "]"), "}");
  v1::Migration m;
  auto s = google::protobuf::util::JsonStringToMessage(wrapped, &m);
  if (!s.ok()) {
    return absl::InternalError(absl::StrCat("the linter's operation ", json, " does not parse: ", s.ToString()));
  }
  return std::vector<v1::Operation>(m.operations().begin(), m.operations().end());
}

// The schemas other than `schema` of the tables `st` locks.
std::vector<std::string> OtherSchemas(const sql::LintedStatement& st, const std::string& schema) {
  std::vector<std::string> out;
  for (const auto& l : st.locks) {
    if (l.schema != schema && std::find(out.begin(), out.end(), l.schema) == out.end()) out.push_back(l.schema);
  }
  return out;
}

struct Sections {
  absl::string_view up;
  std::optional<std::string> down;  // after the marker line, when there is one
};

absl::StatusOr<Sections> SplitSections(absl::string_view text, absl::string_view origin) {
  absl::StatusOr<std::vector<sql::LineComment>> comments = sql::LineComments(text);
  if (!comments.ok()) return util::Annotate(comments.status(), origin);
  std::optional<size_t> marker;
  for (const sql::LineComment& c : *comments) {
    if (c.text == kSqlDownMarker) {
      if (marker) {
        return absl::InvalidArgumentError(absl::StrCat(origin, ": line ", c.line, ": a second `", kSqlDownMarker,
                                                       "` line; a file has one down section"));
      }
      marker = c.offset;
      continue;
    }
    // A near miss would put the down statements among those to run.
    std::string squeezed;
    for (char ch : c.text) {
      if (!absl::ascii_isspace(static_cast<unsigned char>(ch))) squeezed.push_back(absl::ascii_tolower(ch));
    }
    if (absl::StartsWith(squeezed, "--pgshift:")) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": line ", c.line, ": \"", c.text, "\" is not a pgshift marker; the one marker is a line "
          "holding exactly `", kSqlDownMarker, "` (the statements after it undo the file)"));
    }
  }
  Sections out;
  out.up = marker ? text.substr(0, *marker) : text;
  if (marker) {
    const size_t eol = text.find('\n', *marker);
    out.down = eol == absl::string_view::npos ? "" : std::string(text.substr(eol + 1));
  }
  return out;
}

}  // namespace

absl::StatusOr<v1::Migration> RecordedSqlMigration(absl::string_view text, absl::string_view origin,
                                                   const std::string& name) {
  ASSIGN_OR_RETURN(Sections sections, SplitSections(text, origin));
  v1::Migration m;
  m.set_name(name);
  m.set_schema("public");
  v1::Sql* op = m.add_operations()->mutable_sql();
  op->set_up(std::string(sections.up));
  if (sections.down) op->set_down(*sections.down);
  op->set_unsafe(true);
  RETURN_IF_ERROR(util::Annotate(sql::Split(sections.up).status(), origin));
  return m;
}

absl::StatusOr<v1::Migration> ConvertSqlMigration(absl::string_view text, absl::string_view origin,
                                                  const std::string& name, sql::LintCatalog& catalog) {
  const std::string schema = "public";
  ASSIGN_OR_RETURN(Sections sections, SplitSections(text, origin));
  const std::optional<std::string>& marker = sections.down;
  const std::string down_text = sections.down.value_or("");
  absl::StatusOr<std::vector<sql::LintedStatement>> linted = sql::Lint(sections.up, schema, false, catalog);
  if (!linted.ok()) return util::Annotate(linted.status(), origin);

  v1::Migration m;
  m.set_name(name);
  m.set_schema(schema);
  std::vector<std::string> refused;
  v1::Sql* current = nullptr;  // the sql operation consecutive statements join
  // Tables of the statements converted so far: their operations run at later
  // phases than a sql operation after them, so a statement run as written
  // after them on the same table would run before them.
  std::vector<std::string> converted_tables;
  for (const sql::LintedStatement& st : *linted) {
    if (st.verdict == "control") continue;
    const std::string where = absl::StrCat("line ", st.line, " (", st.statement, ")");
    if (st.verdict == "refuse") {
      refused.push_back(absl::StrCat(where, ": ", sql::WhyUnsafe(st), "; instead, ", st.instead,
                                     st.operation_json.empty() ? "" : absl::StrCat(": ", st.operation_json)));
      continue;
    }
    const std::string& as_operation = st.verdict == "convert" ? st.operation_json : st.run_as_json;
    if (as_operation.empty()) {
      std::string after;
      for (const auto& l : st.locks) {
        const std::string t = absl::StrCat(l.schema, ".", l.table);
        if (std::find(converted_tables.begin(), converted_tables.end(), t) != converted_tables.end()) after = t;
      }
      if (!after.empty()) {
        refused.push_back(absl::StrCat(
            where, ": pgshift runs it as written when the migration starts (column_added), before the "
            "operation a statement above it on ", after, " becomes (which runs at a later phase): the "
            "file's order would not hold; put it in a file of its own after this one"));
        continue;
      }
      if (current == nullptr) current = m.add_operations()->mutable_sql();
      absl::StrAppend(current->mutable_up(), current->up().empty() ? "" : ";\n", st.sql);
      continue;
    }
    std::vector<std::string> others = OtherSchemas(st, schema);
    if (!st.operation_schema.empty() && st.operation_schema != schema &&
        std::find(others.begin(), others.end(), st.operation_schema) == others.end()) {
      others.insert(others.begin(), st.operation_schema);
    }
    if (!others.empty()) {
      refused.push_back(absl::StrCat(
          where, ": pgshift runs it as ", as_operation, ", on a table of schema \"",
          absl::StrJoin(others, "\", \""), "\", while a .sql file is a migration of schema \"", schema,
          "\": write that operation in a JSON migration whose \"schema\" is \"", others[0], "\""));
      continue;
    }
    for (const auto& l : st.locks) converted_tables.push_back(absl::StrCat(l.schema, ".", l.table));
    ASSIGN_OR_RETURN(std::vector<v1::Operation> ops, Operations(as_operation));
    for (v1::Operation& op : ops) *m.add_operations() = std::move(op);
    current = nullptr;
  }
  if (!refused.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": pgshift will not run ", refused.size() == 1 ? "this statement" : "these statements",
        " (nothing of the file was run): ", absl::StrJoin(refused, "; "),
        ". See docs/sql.md; `pgshift lint` shows every statement of the file"));
  }
  if (m.operations_size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": no statement to run (transaction control and SET lines are not run); a migration "
        "file needs at least one statement"));
  }
  if (marker) {
    absl::StatusOr<std::vector<sql::Statement>> down = sql::Split(down_text);
    if (!down.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ": in the section after `", kSqlDownMarker,
                                                     "`: ", down.status().message()));
    }
    int first = -1;
    for (int i = 0; i < m.operations_size(); ++i) {
      if (!m.operations(i).has_sql()) continue;
      if (first < 0) {
        first = i;
        // Empty but given: nothing to undo (rollback goes on).
        m.mutable_operations(i)->mutable_sql()->set_down(
            down->empty() ? absl::StrCat("-- ", kSqlDownMarker.substr(3), " of ", origin, ": no statement")
                          : down_text);
      } else {
        m.mutable_operations(i)->mutable_sql()->set_down(
            absl::StrCat("-- undone by the down of operations[", first, "] (the file's `", kSqlDownMarker, "` section)"));
      }
    }
    if (first < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": every statement runs as a pgshift operation, which rolls back by itself: the `",
          kSqlDownMarker, "` section would never run; remove it"));
    }
  }
  // The rules every migration obeys (each operation's fields, one change
  // of a column per migration, ...).
  return ParseMigrationJson(CanonicalJson(m), origin, name);
}

}  // namespace pgshift
