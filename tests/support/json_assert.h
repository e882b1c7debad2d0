// The CLI's --json output checked in a GoogleTest assertion (header-only, as
// the support library does not link GoogleTest).
//
// Example:
//   google::protobuf::Struct obj;
//   ASSERT_TRUE(pgshift::testing::OneJsonObject(r.out, &obj));
#ifndef PGSHIFT_TESTS_SUPPORT_JSON_ASSERT_H_
#define PGSHIFT_TESTS_SUPPORT_JSON_ASSERT_H_

#include <stdexcept>
#include <string>

#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace pgshift::testing {

// Success when `text` is exactly one JSON object on one line (surrounding
// whitespace allowed), parsed into `out`; a failure quoting `text` otherwise.
inline ::testing::AssertionResult OneJsonObject(const std::string& text, google::protobuf::Struct* out) {
  try {
    *out = ParseJsonObject(text);
    return ::testing::AssertionSuccess();
  } catch (const std::runtime_error& e) {
    return ::testing::AssertionFailure() << e.what();
  }
}

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_JSON_ASSERT_H_
