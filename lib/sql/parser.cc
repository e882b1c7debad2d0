// libpg_query calls: parse, deparse, split, and syntax errors with their
// position. The only file that includes pg_query.h.
#include <pg_query.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/sql/sql.h"
#include "lib/sql/tree.h"
#include "lib/util/status_macros.h"

namespace pgshift::sql {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// libpg_query reads NUL-terminated text: a NUL inside would silently cut it.
absl::Status RefuseNul(absl::string_view sql) {
  if (sql.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("the SQL text contains a NUL byte");
  }
  return absl::OkStatus();
}

// InvalidArgument for libpg_query's error `message` at `cursorpos` (1-based,
// in characters of `sql`; 0 when unknown): "... (line L, column C)".
absl::Status SyntaxError(absl::string_view sql, const char* message, int cursorpos) {
  std::string where;
  if (cursorpos > 0) {
    int line = 1, column = 1, chars = 1;
    for (size_t i = 0; i < sql.size() && chars < cursorpos; ++i) {
      const unsigned char c = static_cast<unsigned char>(sql[i]);
      if ((c & 0xC0) == 0x80) continue;  // a UTF-8 continuation byte: same character
      ++chars;
      if (c == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    where = absl::StrCat(" (line ", line, ", column ", column, ")");
  }
  return absl::InvalidArgumentError(absl::StrCat(message, where));
}

// Characters (not bytes) of UTF-8 `s`.
int Chars(absl::string_view s) {
  int n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

int LineOf(absl::string_view text, size_t offset) {
  int line = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) line += text[i] == '\n';
  return line;
}

}  // namespace

absl::StatusOr<pg_query::ParseResult> ParseWithPrefix(absl::string_view prefix,
                                                      absl::string_view text) {
  RETURN_IF_ERROR(RefuseNul(prefix));
  RETURN_IF_ERROR(RefuseNul(text));
  const std::string sql = absl::StrCat(prefix, text);
  PgQueryProtobufParseResult r = pg_query_parse_protobuf(sql.c_str());
  absl::StatusOr<pg_query::ParseResult> out;
  if (r.error != nullptr) {
    // The position counts characters of prefix + text; report it in text.
    int pos = r.error->cursorpos;
    if (pos > 0) pos = std::max(1, pos - Chars(prefix));
    out = SyntaxError(text, r.error->message, pos);
  } else {
    pg_query::ParseResult tree;
    if (tree.ParseFromArray(r.parse_tree.data, static_cast<int>(r.parse_tree.len))) {
      out = std::move(tree);
    } else {
      out = absl::InternalError("libpg_query returned a parse tree that does not decode");
    }
  }
  pg_query_free_protobuf_parse_result(r);
  return out;
}

absl::StatusOr<pg_query::ParseResult> Parse(absl::string_view sql) { return ParseWithPrefix("", sql); }

absl::StatusOr<std::string> Deparse(const pg_query::ParseResult& tree) {
  std::string bytes;
  if (!tree.SerializeToString(&bytes)) return absl::InternalError("cannot serialize a parse tree");
  PgQueryProtobuf pb;
  pb.len = bytes.size();
  pb.data = bytes.data();
  PgQueryDeparseResult r = pg_query_deparse_protobuf(pb);
  absl::StatusOr<std::string> out;
  if (r.error != nullptr) {
    out = absl::InternalError(absl::StrCat("cannot deparse a parse tree: ", r.error->message));
  } else {
    out = std::string(r.query);
  }
  pg_query_free_deparse_result(r);
  return out;
}

pg_query::ParseResult OneStatement(pg_query::Node stmt) {
  pg_query::ParseResult tree;
  tree.set_version(PG_VERSION_NUM);
  *tree.add_stmts()->mutable_stmt() = std::move(stmt);
  return tree;
}

absl::StatusOr<std::string> DeparseExpression(const pg_query::Node& expr) {
  // A SELECT of the expression alone; the deparser writes it "SELECT <expr>".
  ASSIGN_OR_RETURN(pg_query::ParseResult tree, Parse("SELECT NULL"));
  pg_query::SelectStmt* select = tree.mutable_stmts(0)->mutable_stmt()->mutable_select_stmt();
  *select->mutable_target_list(0)->mutable_res_target()->mutable_val() = expr;
  ASSIGN_OR_RETURN(std::string text, Deparse(tree));
  constexpr absl::string_view kPrefix = "SELECT ";
  if (!absl::StartsWith(text, kPrefix)) {
    return absl::InternalError(absl::StrCat("unexpected deparser output: ", text));
  }
  return text.substr(kPrefix.size());
}

void Walk(Message* root, const std::function<bool(Message*)>& visit) {
  if (!visit(root)) return;
  const Reflection* r = root->GetReflection();
  const google::protobuf::Descriptor* d = root->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int j = 0; j < r->FieldSize(*root, f); ++j) Walk(r->MutableRepeatedMessage(root, f, j), visit);
    } else if (r->HasField(*root, f)) {
      Walk(r->MutableMessage(root, f), visit);
    }
  }
}

void Walk(const Message& root, const std::function<bool(const Message&)>& visit) {
  if (!visit(root)) return;
  const Reflection* r = root.GetReflection();
  const google::protobuf::Descriptor* d = root.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int j = 0; j < r->FieldSize(root, f); ++j) Walk(r->GetRepeatedMessage(root, f, j), visit);
    } else if (r->HasField(root, f)) {
      Walk(r->GetMessage(root, f), visit);
    }
  }
}

absl::Status CheckSyntax(absl::string_view sql) { return Parse(sql).status(); }

absl::Status CheckReadQuery(absl::string_view sql) {
  ASSIGN_OR_RETURN(pg_query::ParseResult tree, Parse(sql));
  if (tree.stmts_size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected one SELECT statement, got ", tree.stmts_size(), " statements"));
  }
  if (!tree.stmts(0).stmt().has_select_stmt()) {
    return absl::InvalidArgumentError("expected a SELECT statement, got another kind of statement");
  }
  std::string refused;
  Walk(tree, [&](const google::protobuf::Message& m) {
    const std::string& type = m.GetDescriptor()->name();
    if (type == "IntoClause") refused = "SELECT ... INTO creates a table";
    if (type == "LockingClause") refused = "FOR UPDATE/SHARE locks rows";
    if (type == "InsertStmt" || type == "UpdateStmt" || type == "DeleteStmt" || type == "MergeStmt") {
      refused = "a data-modifying WITH writes";
    }
    return refused.empty();
  });
  if (!refused.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("expected a query that only reads: ", refused));
  }
  return absl::OkStatus();
}

namespace {

// Where the first token of `body` that is not a comment starts and where
// the last one ends, read by the parser's own scanner; npos when there is
// none (only comments).
std::pair<size_t, size_t> TokenSpan(absl::string_view body) {
  const std::string text(body);
  PgQueryScanResult r = pg_query_scan(text.c_str());
  size_t start = std::string::npos, end = std::string::npos;
  pg_query::ScanResult scan;
  if (r.error == nullptr && scan.ParseFromArray(r.pbuf.data, static_cast<int>(r.pbuf.len))) {
    for (const pg_query::ScanToken& t : scan.tokens()) {
      if (t.token() == pg_query::SQL_COMMENT || t.token() == pg_query::C_COMMENT) continue;
      if (start == std::string::npos) start = static_cast<size_t>(t.start());
      end = static_cast<size_t>(t.end());
    }
  } else {
    // the split parsed it: keep it whole rather than lose it
    start = 0;
    end = text.size();
  }
  pg_query_free_scan_result(r);
  return {start, end};
}

}  // namespace

absl::StatusOr<std::vector<LineComment>> LineComments(absl::string_view script) {
  RETURN_IF_ERROR(RefuseNul(script));
  const std::string text(script);
  PgQueryScanResult r = pg_query_scan(text.c_str());
  absl::StatusOr<std::vector<LineComment>> out = std::vector<LineComment>();
  pg_query::ScanResult scan;
  if (r.error != nullptr) {
    out = SyntaxError(script, r.error->message, r.error->cursorpos);
  } else if (!scan.ParseFromArray(r.pbuf.data, static_cast<int>(r.pbuf.len))) {
    out = absl::InternalError("the scanner's output does not parse");
  } else {
    for (const pg_query::ScanToken& t : scan.tokens()) {
      if (t.token() != pg_query::SQL_COMMENT) continue;
      const size_t start = static_cast<size_t>(t.start());
      // Alone on its line: only blanks before it.
      const size_t nl = start == 0 ? std::string::npos : text.rfind('\n', start - 1);
      const size_t line_start = nl == std::string::npos ? 0 : nl + 1;
      if (!absl::StripAsciiWhitespace(absl::string_view(text).substr(line_start, start - line_start)).empty()) {
        continue;
      }
      LineComment c;
      c.offset = start;
      c.text = std::string(absl::StripAsciiWhitespace(
          absl::string_view(text).substr(start, static_cast<size_t>(t.end()) - start)));
      c.line = LineOf(text, start);
      out->push_back(std::move(c));
    }
  }
  pg_query_free_scan_result(r);
  return out;
}

absl::StatusOr<std::optional<size_t>> FindLineComment(absl::string_view script, absl::string_view comment) {
  ASSIGN_OR_RETURN(std::vector<LineComment> all, LineComments(script));
  for (const LineComment& c : all) {
    if (c.text == comment) return std::optional<size_t>(c.offset);
  }
  return std::optional<size_t>();
}

absl::StatusOr<std::vector<Statement>> Split(absl::string_view script) {
  RETURN_IF_ERROR(RefuseNul(script));
  const std::string text(script);
  PgQuerySplitResult r = pg_query_split_with_parser(text.c_str());
  absl::StatusOr<std::vector<Statement>> out;
  if (r.error != nullptr) {
    out = SyntaxError(script, r.error->message, r.error->cursorpos);
  } else {
    std::vector<Statement> stmts;
    for (int i = 0; i < r.n_stmts; ++i) {
      const size_t start = static_cast<size_t>(r.stmts[i]->stmt_location);
      // A length of 0 means "to the end of the input".
      const size_t len = r.stmts[i]->stmt_len > 0 ? static_cast<size_t>(r.stmts[i]->stmt_len)
                                                  : text.size() - start;
      absl::string_view raw = absl::string_view(text).substr(start, len);
      absl::string_view body = absl::StripAsciiWhitespace(raw);
      // Comments before a statement are not part of it: its text and line
      // start at its first token.
      // Nor are comments after its last token (one that ends the text
      // would swallow a ';' put after it).
      const auto [first, last] = TokenSpan(body);
      if (first == std::string::npos) continue;
      body = body.substr(first, last - first);
      if (body.empty()) continue;
      Statement s;
      s.text = std::string(body);
      s.offset = static_cast<int>(start + (body.data() - raw.data()));
      s.line = LineOf(text, static_cast<size_t>(s.offset));
      stmts.push_back(std::move(s));
    }
    out = std::move(stmts);
  }
  pg_query_free_split_result(r);
  return out;
}

}  // namespace pgshift::sql
