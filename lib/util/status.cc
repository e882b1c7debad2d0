#include "lib/util/status.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace pgshift::util {

namespace {
// The payload URL of the SQLSTATE (documented in include/pgshift/errors.h).
constexpr absl::string_view kSqlStateUrl = "pgshift/sqlstate";

absl::Status CopyPayloads(const absl::Status& from, absl::Status to) {
  from.ForEachPayload([&to](absl::string_view url, const absl::Cord& payload) {
    to.SetPayload(url, payload);
  });
  return to;
}
}  // namespace

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return CopyPayloads(status, absl::Status(status.code(), absl::StrCat(context, ": ", status.message())));
}

namespace {
constexpr absl::string_view kStoppedAtUrl = "pgshift/migrate-stopped-at";
constexpr absl::string_view kStopKindUrl = "pgshift/migrate-stop-kind";
}  // namespace

absl::Status WithMigrateStop(absl::Status status, absl::string_view migration, absl::string_view kind) {
  if (status.ok()) return status;
  status.SetPayload(kStoppedAtUrl, absl::Cord(migration));
  status.SetPayload(kStopKindUrl, absl::Cord(kind));
  return status;
}

std::string MigrateStoppedAtOf(const absl::Status& status) {
  auto payload = status.GetPayload(kStoppedAtUrl);
  return payload ? std::string(*payload) : std::string();
}

std::string MigrateStopKindOf(const absl::Status& status) {
  auto payload = status.GetPayload(kStopKindUrl);
  return payload ? std::string(*payload) : std::string();
}

absl::Status WithSqlState(absl::Status status, absl::string_view sqlstate) {
  if (!status.ok() && !sqlstate.empty()) status.SetPayload(kSqlStateUrl, absl::Cord(sqlstate));
  return status;
}

std::string SqlStateOf(const absl::Status& status) {
  auto payload = status.GetPayload(kSqlStateUrl);
  return payload ? std::string(*payload) : std::string();
}

absl::Status WithCode(const absl::Status& status, absl::StatusCode code) {
  if (status.ok()) return status;
  return CopyPayloads(status, absl::Status(code, status.message()));
}

}  // namespace pgshift::util
