// Self-check of tests/support/spec_builder.h: a built spec is the one the
// same JSON written by hand would give, field for field. No database.
#include "tests/support/spec_builder.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "pgshift/migration.h"

namespace {

using ::pgshift::testing::Spec;

// What pgshift stores for `json`: its canonical form once loaded.
std::string Loaded(const std::string& json) {
  auto m = pgshift::ParseMigrationJson(json);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? pgshift::CanonicalJson(*m) : "";
}

TEST(SpecBuilder, EveryOperationEqualsTheSameSpecWrittenByHand) {
  const Spec built = Spec("0042_all")
                         .Schema("app")
                         .RenameColumn("users", "name", "full_name")
                         .SetNotNull("users", "email", "nick || '@unknown'")
                         .AddColumn("orders", "total", "bigint")
                         .Up("qty * 10")
                         .Default("0")
                         .NotNull()
                         .DropColumn("accounts", "legacy")
                         .Down("'x'")
                         .ChangeType("prices", "price", "price_int", "integer", "round(price)::int",
                                     "price_int::numeric")
                         .CreateIndex("people", "people_lower_email_idx", {"lower(email)", "id"})
                         .Unique()
                         .Method("btree")
                         .Where("id > 0")
                         .Include({"nick"})
                         .DropIndex("people_nick_idx")
                         .AddUnique("people", "people_email_key", {"email"});
  const std::string by_hand = R"j({"name": "0042_all", "schema": "app", "operations": [
      {"rename_column": {"table": "users", "from": "name", "to": "full_name"}},
      {"set_not_null": {"table": "users", "column": "email", "fill": "nick || '@unknown'"}},
      {"add_column": {"table": "orders", "column": "total", "type": "bigint", "default": "0",
                      "not_null": true, "up": "qty * 10"}},
      {"drop_column": {"table": "accounts", "column": "legacy", "down": "'x'"}},
      {"change_type": {"table": "prices", "column": "price", "new_column": "price_int",
                       "type": "integer", "up": "round(price)::int", "down": "price_int::numeric"}},
      {"create_index": {"table": "people", "name": "people_lower_email_idx", "columns": ["lower(email)", "id"],
                        "unique": true, "method": "btree", "where": "id > 0", "include": ["nick"]}},
      {"drop_index": {"name": "people_nick_idx"}},
      {"add_unique": {"table": "people", "name": "people_email_key", "columns": ["email"]}}]})j";
  EXPECT_EQ(Loaded(built.Json()), Loaded(by_hand));
  EXPECT_EQ(pgshift::CanonicalJson(built.Migration()), Loaded(by_hand));
}

TEST(SpecBuilder, OptionalFieldsAreLeftOutUnlessGiven) {
  const std::string by_hand = R"({"name": "a", "operations": [
      {"add_column": {"table": "t", "column": "c", "type": "text"}},
      {"drop_column": {"table": "t", "column": "d"}}]})";
  EXPECT_EQ(Loaded(Spec("a").AddColumn("t", "c", "text").DropColumn("t", "d").Json()),
            Loaded(by_hand));
  const pgshift::v1::Migration m = Spec("a").AddColumn("t", "c", "text").Migration();
  EXPECT_FALSE(m.operations(0).add_column().has_default_());
  EXPECT_FALSE(m.operations(0).add_column().not_null());
  // Default("") is given (an empty expression), not left out.
  EXPECT_TRUE(Spec("a")
                  .AddColumn("t", "c", "text")
                  .Default("")
                  .proto()
                  .operations(0)
                  .add_column()
                  .has_default_());
}

TEST(SpecBuilder, SchemaIsPublicWhenNotGivenAsForAFile) {
  const Spec spec = Spec("r").RenameColumn("t", "a", "b");
  EXPECT_EQ(spec.Json().find("\"schema\""), std::string::npos) << spec.Json();
  EXPECT_EQ(spec.Migration().schema(), "public");
}

TEST(SpecBuilder, StringsArriveExactlyAsGiven) {
  const std::string name = "0014 \"odd\"; name ☃\\";
  const std::string table = "t\"a'b;le ✓";
  const std::string from = "na\"me; DELETE FROM \"t\"", to = "nöm \"neu\"; --";
  const pgshift::v1::Migration m =
      Spec(name).Schema("sch\"ema; DROP TABLE x; --").RenameColumn(table, from, to).Migration();
  EXPECT_EQ(m.name(), name);
  EXPECT_EQ(m.schema(), "sch\"ema; DROP TABLE x; --");
  EXPECT_EQ(m.operations(0).rename_column().table(), table);
  EXPECT_EQ(m.operations(0).rename_column().from(), from);
  EXPECT_EQ(m.operations(0).rename_column().to(), to);
}

TEST(SpecBuilder, AnOptionalFieldTheLastOperationLacksIsAMistake) {
  EXPECT_THROW(Spec("x").Default("0"), std::logic_error);
  EXPECT_THROW(Spec("x").RenameColumn("t", "a", "b").Up("a"), std::logic_error);
  EXPECT_THROW(Spec("x").AddColumn("t", "c", "int").Down("c"), std::logic_error);
  EXPECT_THROW(Spec("x").DropColumn("t", "c").NotNull(), std::logic_error);
  // change_type takes both as arguments; Up/Down replace them.
  const pgshift::v1::Migration m = Spec("x")
                                       .ChangeType("t", "c", "c2", "bigint", "c", "c2")
                                       .Up("c::bigint")
                                       .Down("c2::int")
                                       .Migration();
  EXPECT_EQ(m.operations(0).change_type().up(), "c::bigint");
  EXPECT_EQ(m.operations(0).change_type().down(), "c2::int");
}

TEST(SpecBuilder, MigrationThrowsWhatTheLoaderSays) {
  try {
    Spec("x").RenameColumn("t", "a", "a").Migration();
    ADD_FAILURE() << "a rename to the same name loaded";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("test spec"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Spec().RenameColumn("t", "a", "b").Migration(), std::invalid_argument);  // no name
  EXPECT_EQ(Spec().RenameColumn("t", "a", "b").Name("later").Migration().name(), "later");
}

}  // namespace
