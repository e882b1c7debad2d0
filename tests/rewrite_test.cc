// RewriteColumn: moving index/constraint definitions from one column to another.
#include "gtest/gtest.h"
#include "lib/ops/common.h"

namespace pgshift::ops {
namespace {

TEST(RewriteColumn, ReplacesBareColumn) {
  EXPECT_EQ(RewriteColumn("USING btree (name)", "name", "full_name"), "USING btree (\"full_name\")");
}

TEST(RewriteColumn, LeavesFunctionsTypesAndLiteralsAlone) {
  EXPECT_EQ(RewriteColumn("CHECK ((lower(name) <> 'name'::text))", "name", "n2"),
            "CHECK ((lower(\"n2\") <> 'name'::text))");
  EXPECT_EQ(RewriteColumn("(x::name)", "name", "n2"), "(x::name)");
  EXPECT_EQ(RewriteColumn("(name(x))", "name", "n2"), "(name(x))");
}

TEST(RewriteColumn, MatchesQuotedNamesExactly) {
  EXPECT_EQ(RewriteColumn("(\"Name\" > 0) AND (name > 1)", "Name", "b"), "(\"b\" > 0) AND (name > 1)");
  EXPECT_EQ(RewriteColumn("(\"a\"\"b\" IS NOT NULL)", "a\"b", "c"), "(\"c\" IS NOT NULL)");
}

TEST(RewriteColumn, DoesNotTouchLongerIdentifiers) {
  EXPECT_EQ(RewriteColumn("(name_old + name)", "name", "x"), "(name_old + \"x\")");
}

TEST(RewriteColumn, SkipsQualifiedNames) {
  EXPECT_EQ(RewriteColumn("(s.name)", "name", "x"), "(s.name)");
}

TEST(ObjectPrefix, IsStableShortAndPerOperation) {
  std::string a = ObjectPrefix("0042_rename", 0);
  EXPECT_EQ(a, ObjectPrefix("0042_rename", 0));
  EXPECT_NE(a, ObjectPrefix("0042_rename", 1));
  EXPECT_NE(a, ObjectPrefix("0043_rename", 0));
  EXPECT_LE(a.size() + 14, 63u);  // room for suffixes like _c0123abcd and zz_..._ins
}

}  // namespace
}  // namespace pgshift::ops
