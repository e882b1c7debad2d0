#include "lib/pg/quote.h"
#include "lib/util/json.h"

#include "gtest/gtest.h"

namespace pgshift::pg {
namespace {

TEST(QuoteIdent, WrapsInDoubleQuotes) { EXPECT_EQ(QuoteIdent("users"), "\"users\""); }

TEST(QuoteIdent, DoublesEmbeddedQuotes) { EXPECT_EQ(QuoteIdent(R"(a"b)"), R"("a""b")"); }

TEST(QuoteIdent, KeepsCaseSpacesSemicolonsAndUnicode) {
  EXPECT_EQ(QuoteIdent("Mixed Case; DROP"), "\"Mixed Case; DROP\"");
  EXPECT_EQ(QuoteIdent("prénom"), "\"prénom\"");
}

TEST(QuoteQualified, QuotesBothParts) {
  EXPECT_EQ(QuoteQualified("My Schema", "t\"x"), "\"My Schema\".\"t\"\"x\"");
}

TEST(QuoteLiteral, DoublesSingleQuotes) { EXPECT_EQ(QuoteLiteral("it's"), "'it''s'"); }

TEST(QuoteLiteral, UsesEscapeStringForBackslashes) {
  EXPECT_EQ(QuoteLiteral(R"(a\b)"), R"(E'a\\b')");
}

TEST(CheckIdentifier, RefusesEmpty) {
  EXPECT_EQ(CheckIdentifier("", "table").code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckIdentifier, RefusesNamesPostgresWouldTruncate) {
  absl::Status s = CheckIdentifier(std::string(64, 'x'), "column");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("63"), absl::string_view::npos);
  EXPECT_TRUE(CheckIdentifier(std::string(63, 'x'), "column").ok());
}

TEST(CheckIdentifier, RefusesInvalidUtf8) {
  EXPECT_EQ(CheckIdentifier("\xff\xfe", "column").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckIdentifier("名前", "column").ok());
}

}  // namespace
}  // namespace pgshift::pg

// JSON output is UTF-8 whatever bytes a file name or a file held: each byte
// outside a well-formed sequence becomes U+FFFD, well-formed ones stay.
TEST(JsonQuote, ReplacesBytesThatAreNotUtf8) {
  using ::pgshift::util::JsonQuote;
  EXPECT_EQ(JsonQuote("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x98"), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x98\"");
  EXPECT_EQ(JsonQuote("/tmp/bad\xfe.json"), "\"/tmp/bad\\ufffd.json\"");
  EXPECT_EQ(JsonQuote("m\xff\""), "\"m\\ufffd\\\"\"");
  EXPECT_EQ(JsonQuote("\xc0\xaf"), "\"\\ufffd\\ufffd\"");            // overlong "/"
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // a surrogate
  EXPECT_EQ(JsonQuote("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");  // past U+10FFFF
  EXPECT_EQ(JsonQuote("cut \xe2\x82"), "\"cut \\ufffd\\ufffd\"");
  EXPECT_EQ(JsonQuote("tab\there\x01"), "\"tab\\there\\u0001\"");
}
