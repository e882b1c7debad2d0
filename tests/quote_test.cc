#include "lib/pg/quote.h"

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
