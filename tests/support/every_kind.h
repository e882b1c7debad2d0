// Fixtures shared by the tests that try every operation kind or every field
// (injection, refusals) and by the fault tests that must interrupt pgshift's
// own long statements.
//
// Example:
//   pgshift::testing::Query(dsn, pgshift::testing::kEveryKindTable);
//   for (const auto& [kind, op] : pgshift::testing::BaseOperations()) {
//     std::string json = absl::StrCat(R"({"name": "x", "operations": [)", op, "]}");
//   }
#ifndef PGSHIFT_TESTS_SUPPORT_EVERY_KIND_H_
#define PGSHIFT_TESTS_SUPPORT_EVERY_KIND_H_

#include <map>
#include <string>

namespace pgshift::testing {

// users(id int PRIMARY KEY, name text, email text, id2 int) with 20 rows
// and index users_email_idx (which drop_index drops), the table every
// operation of BaseOperations() applies to.
extern const char kEveryKindTable[];

// A valid operation of each kind, by its JSON name: the JSON of one element
// of "operations" on kEveryKindTable. A new operation kind needs one here;
// the injection and refusal tests fail until it has one, so that its fields
// are tried too.
const std::map<std::string, std::string>& BaseOperations();

// SQL creating slow_lower(text) and slow_check(text): immutable in what they
// return, and 2 ms a row slower only inside pgshift's own CREATE INDEX
// CONCURRENTLY and VALIDATE CONSTRAINT, so that a test can interrupt those
// mid-way while the application's statements run at full speed.
extern const char kSlowFunctionsSql[];

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_EVERY_KIND_H_
