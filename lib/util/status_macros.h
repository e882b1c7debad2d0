// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr.
// Debian's Abseil predates the official macros; these are the only copies.
// Annotate and the other status helpers are in lib/util/status.h.
#ifndef PGSHIFT_LIB_UTIL_STATUS_MACROS_H_
#define PGSHIFT_LIB_UTIL_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define PGSHIFT_CONCAT_INNER_(a, b) a##b
#define PGSHIFT_CONCAT_(a, b) PGSHIFT_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status pgshift_status_ = (expr);           \
    if (!pgshift_status_.ok()) return pgshift_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  PGSHIFT_ASSIGN_OR_RETURN_IMPL_(PGSHIFT_CONCAT_(pgshift_or_, __LINE__), lhs, expr)

#define PGSHIFT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).status();       \
  lhs = std::move(tmp).value()

#endif  // PGSHIFT_LIB_UTIL_STATUS_MACROS_H_
