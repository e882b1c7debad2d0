// The operation registry (lib/ops/registry.h) and what every operation
// shares: one row per kind of the proto's oneof, object names, touches. No
// database.
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "lib/ops/names.h"
#include "lib/ops/registry.h"
#include "pgshift/v1/migration.pb.h"
#include "tests/support/spec_builder.h"

namespace pgshift::ops {
namespace {

using google::protobuf::FieldDescriptor;

TEST(Registry, HasOneRowPerOperationOfTheProtoNamedLikeItsField) {
  const google::protobuf::OneofDescriptor* kind = v1::Operation::descriptor()->FindOneofByName("kind");
  ASSERT_NE(kind, nullptr);
  ASSERT_EQ(Registry().size(), static_cast<size_t>(kind->field_count()));
  std::set<int> seen;
  for (const OperationType* t : Registry()) {
    const FieldDescriptor* f = v1::Operation::descriptor()->FindFieldByNumber(static_cast<int>(t->kind));
    ASSERT_NE(f, nullptr) << t->name;
    EXPECT_EQ(f->name(), t->name);
    EXPECT_TRUE(seen.insert(f->number()).second) << t->name << " has two rows";
    EXPECT_EQ(FindOperationType(t->kind), t);
    EXPECT_NE(t->validate, nullptr);
    EXPECT_NE(t->touches, nullptr);
    EXPECT_NE(t->make, nullptr);
  }
  EXPECT_EQ(FindOperationType(v1::Operation::KIND_NOT_SET), nullptr);
}

// Every string field of `m` and of the messages it holds (create_table's
// columns) declares its kind; returns how many it saw.
int ExpectKinds(const google::protobuf::Descriptor* m, const std::string& path) {
  int seen = 0;
  for (int i = 0; i < m->field_count(); ++i) {
    const FieldDescriptor* f = m->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      seen += ExpectKinds(f->message_type(), path + "." + f->name());
      continue;
    }
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) continue;
    EXPECT_NE(f->options().GetExtension(v1::kind), v1::FIELD_KIND_UNSPECIFIED) << path << "." << f->name();
    ++seen;
  }
  return seen;
}

TEST(Registry, EveryStringFieldOfEveryOperationSaysWhatItHolds) {
  // A field without (kind) would escape the checks at load time, nested
  // fields included.
  for (const OperationType* t : Registry()) {
    ExpectKinds(v1::Operation::descriptor()->FindFieldByName(t->name)->message_type(), t->name);
  }
  EXPECT_EQ(ExpectKinds(v1::CreateTable::descriptor(), "create_table"), 5) << "table, primary_key, "
                                                                            "columns[].name/type/default";
}

TEST(Names, AreStableShortAndPerOperation) {
  Names a("0042_rename", 0);
  EXPECT_EQ(a.prefix(), Names("0042_rename", 0).prefix());
  EXPECT_NE(a.prefix(), Names("0042_rename", 1).prefix());
  EXPECT_NE(a.prefix(), Names("0043_rename", 0).prefix());
  for (const std::string& n : {a.insert_trigger(), a.update_trigger(), a.trigger_function(),
                               a.helper("notnull_dropped"), a.not_null_check(), a.copy_of("an_index")}) {
    EXPECT_LE(n.size(), 63u) << n;
    EXPECT_NE(n.find(a.prefix()), std::string::npos) << n;
  }
  EXPECT_EQ(a.insert_trigger().rfind(std::string(Names::kTriggerPrefix), 0), 0u);
  EXPECT_NE(a.copy_of("x"), a.copy_of("y"));
}

TEST(Touch, TableTouchesConflictWithEveryTouchOfTheTable) {
  Touch column{"public", "users", "name"}, other{"public", "users", "email"},
      table{"public", "users", ""}, elsewhere{"public", "orders", "name"};
  EXPECT_TRUE(column.Conflicts(column));
  EXPECT_FALSE(column.Conflicts(other));
  EXPECT_TRUE(table.Conflicts(column));
  EXPECT_TRUE(other.Conflicts(table));
  EXPECT_FALSE(column.Conflicts(elsewhere));
  EXPECT_FALSE(table.Conflicts(Touch{"app", "users", ""}));
}

TEST(TouchesOf, NamesTheColumnsAnOperationChanges) {
  const v1::Migration m =
      ::pgshift::testing::Spec("x").Schema("app").RenameColumn("t", "a", "b").Migration();
  std::vector<Touch> t = TouchesOf(m.operations(0), m.schema());
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].schema, "app");
  EXPECT_EQ(t[0].column, "a");
  EXPECT_EQ(t[1].column, "b");
}

}  // namespace
}  // namespace pgshift::ops
