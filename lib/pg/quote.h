// The one place where SQL text is built from names: identifiers are always
// double-quoted with embedded quotes doubled. Values never go through here;
// they travel as $n parameters (see connection.h).
#ifndef PGSHIFT_LIB_PG_QUOTE_H_
#define PGSHIFT_LIB_PG_QUOTE_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace pgshift::pg {

// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer names
// are silently truncated by the server, so pgshift refuses them instead.
inline constexpr size_t kMaxIdentifierBytes = 63;

// "name" with every `"` doubled: QuoteIdent(R"(a"b)") == R"("a""b")".
std::string QuoteIdent(absl::string_view name);

// "schema"."name".
std::string QuoteQualified(absl::string_view schema, absl::string_view name);

// A string literal for the rare DDL that cannot take parameters (COMMENT ON,
// copied from the catalog): 'it''s', or E'..' when a backslash is present.
std::string QuoteLiteral(absl::string_view value);

// OK when `name` can be used as an identifier: non-empty, no NUL byte, at
// most kMaxIdentifierBytes bytes, valid UTF-8. `what` names it in the error.
absl::Status CheckIdentifier(absl::string_view name, absl::string_view what);

}  // namespace pgshift::pg

#endif  // PGSHIFT_LIB_PG_QUOTE_H_
