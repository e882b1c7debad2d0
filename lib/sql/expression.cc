// User expressions and type names, read with the parser: exactly one value
// expression (or one type name) and nothing else.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "lib/sql/sql.h"
#include "lib/sql/tree.h"
#include "lib/util/status_macros.h"

namespace pgshift::sql {

namespace {

using google::protobuf::Message;

constexpr absl::string_view kSelect = "SELECT ";

std::string Quoted(absl::string_view text) {
  // The field's text as the user wrote it, in messages (shortened when long).
  std::string t(text.substr(0, 200));
  if (text.size() > 200) t += "...";
  return absl::StrCat("\"", t, "\"");
}

absl::Status Bad(absl::string_view field, absl::string_view text, absl::string_view what,
                 absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " ", Quoted(text), " is not ", what, ": ", why));
}

// True when `select` is a plain "SELECT <targets>": no FROM, WHERE, GROUP
// BY, set operation, ORDER BY, LIMIT, INTO, locking, WITH, VALUES, DISTINCT.
// Compared with the parse of "SELECT NULL", targets aside.
absl::StatusOr<bool> IsBareSelect(const pg_query::SelectStmt& select) {
  ASSIGN_OR_RETURN(pg_query::ParseResult bare, Parse("SELECT NULL"));
  pg_query::SelectStmt want = bare.stmts(0).stmt().select_stmt();
  want.clear_target_list();
  pg_query::SelectStmt got = select;
  got.clear_target_list();
  return google::protobuf::util::MessageDifferencer::Equals(want, got);
}

// The one target of `SELECT <target>` parsed from prefix + text, or an
// error saying why `text` is not one `what`.
absl::StatusOr<pg_query::Node> OneTarget(absl::string_view prefix, absl::string_view text,
                                         absl::string_view field, absl::string_view what) {
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is empty; give ", what));
  }
  absl::StatusOr<pg_query::ParseResult> tree = ParseWithPrefix(prefix, text);
  if (!tree.ok()) return Bad(field, text, what, tree.status().message());
  if (tree->stmts_size() != 1) {
    return Bad(field, text, what,
               absl::StrCat("it reads as ", tree->stmts_size(), " statements"));
  }
  const pg_query::Node& stmt = tree->stmts(0).stmt();
  if (!stmt.has_select_stmt()) return Bad(field, text, what, "it reads as a statement");
  const pg_query::SelectStmt& select = stmt.select_stmt();
  ASSIGN_OR_RETURN(bool bare, IsBareSelect(select));
  if (!bare) {
    return Bad(field, text, what,
               "it continues past the expression (FROM, WHERE, ORDER BY, UNION, ... are not "
               "allowed)");
  }
  if (select.target_list_size() != 1) {
    return Bad(field, text, what, "it is a list of several expressions");
  }
  const pg_query::ResTarget& target = select.target_list(0).res_target();
  if (!target.name().empty() || target.indirection_size() > 0) {
    return Bad(field, text, what, "it names its value (AS ...)");
  }
  return target.val();
}

}  // namespace

absl::StatusOr<Expression> Expression::Parse(absl::string_view text, absl::string_view field) {
  constexpr absl::string_view kWhat = "one SQL expression";
  ASSIGN_OR_RETURN(pg_query::Node val, OneTarget(kSelect, text, field, kWhat));
  Expression e;
  std::string problem;
  Walk(val, [&](const Message& m) {
    if (!problem.empty()) return false;
    const std::string& type = m.GetDescriptor()->name();
    if (type == "SubLink") {
      problem = "it contains a sub-SELECT; pgshift evaluates it for one row at a time, from that "
                "row's columns only";
    } else if (type == "ParamRef") {
      problem = "it contains a parameter reference ($n)";
    } else if (type == "ColumnRef") {
      const auto& ref = static_cast<const pg_query::ColumnRef&>(m);
      if (ref.fields_size() != 1 || !ref.fields(0).has_string()) {
        problem = ref.fields(ref.fields_size() - 1).has_a_star()
                      ? "it contains *; name the columns"
                      : "it qualifies a column with a table name; write the column name alone "
                        "(it is evaluated over one row of the table)";
        return false;
      }
      const std::string& name = ref.fields(0).string().sval();
      if (std::find(e.columns_.begin(), e.columns_.end(), name) == e.columns_.end()) {
        e.columns_.push_back(name);
      }
    }
    return true;
  });
  if (!problem.empty()) return Bad(field, text, kWhat, problem);
  ASSIGN_OR_RETURN(e.sql_, DeparseExpression(val));
  return e;
}

bool Expression::References(absl::string_view column) const {
  return std::find(columns_.begin(), columns_.end(), column) != columns_.end();
}

absl::StatusOr<Expression> Expression::RenameColumn(absl::string_view from,
                                                    absl::string_view to) const {
  ASSIGN_OR_RETURN(pg_query::Node val, OneTarget(kSelect, sql_, "expression", "one SQL expression"));
  Walk(&val, [&](Message* m) {
    if (m->GetDescriptor()->name() != "ColumnRef") return true;
    auto* ref = static_cast<pg_query::ColumnRef*>(m);
    if (ref->fields_size() == 1 && ref->fields(0).has_string() &&
        ref->fields(0).string().sval() == from) {
      ref->mutable_fields(0)->mutable_string()->set_sval(std::string(to));
    }
    return false;
  });
  ASSIGN_OR_RETURN(std::string text, DeparseExpression(val));
  return Parse(text, "expression");
}

absl::StatusOr<TypeName> TypeName::Parse(absl::string_view text, absl::string_view field) {
  constexpr absl::string_view kWhat = "a type name";
  constexpr absl::string_view kCast = "NULL::";
  ASSIGN_OR_RETURN(pg_query::Node val, OneTarget(absl::StrCat(kSelect, kCast), text, field, kWhat));
  if (!val.has_type_cast() || !val.type_cast().arg().has_a_const() ||
      !val.type_cast().arg().a_const().isnull() || !val.type_cast().has_type_name()) {
    return Bad(field, text, kWhat, "it continues past the type name");
  }
  ASSIGN_OR_RETURN(std::string cast, DeparseExpression(val));
  if (!absl::StartsWith(cast, kCast)) {
    return absl::InternalError(absl::StrCat("unexpected deparser output: ", cast));
  }
  TypeName t;
  t.sql_ = cast.substr(kCast.size());
  return t;
}

}  // namespace pgshift::sql
