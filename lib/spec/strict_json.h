// A strict reading of a migration file's JSON, before protobuf's own parser
// (which is lenient: it keeps the last of duplicate keys, and reads "yes"
// as a bool or an object as a list in some versions). Checks that the text
// is one JSON value, that no object repeats a key (however it is spelled:
// escapes, or a field's snake_case and camelCase names), and that every
// value has the JSON type its field declares in the message descriptor: a
// repeated field a list, a message an object, a bool true or false, a string
// a string, a number a number (or a string, as proto3 JSON allows); null
// nowhere. Keys the descriptor does not know are left to protobuf's parser,
// which refuses them by name. See docs/architecture.md, "From a file to
// committed steps".
#ifndef PGSHIFT_LIB_SPEC_STRICT_JSON_H_
#define PGSHIFT_LIB_SPEC_STRICT_JSON_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace pgshift::spec {

// OK, or InvalidArgument "PATH: what is wrong; what to do" (PATH like
// "operations[0].add_column.not_null", or "the file"), or "malformed JSON:
// ... (line L, column C)". Thread-safe.
absl::Status CheckJsonShape(absl::string_view json, const google::protobuf::Descriptor* root);

}  // namespace pgshift::spec

#endif  // PGSHIFT_LIB_SPEC_STRICT_JSON_H_
