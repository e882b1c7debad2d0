#include "lib/ops/names.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pgshift::ops {

namespace {

uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

Names::Names(const std::string& migration, int index)
    : migration_(migration),
      prefix_(absl::StrFormat("pgshift_%010x_%d", Fnv1a(migration) & 0xffffffffffULL, index)) {}

std::string Names::insert_trigger() const { return absl::StrCat("zz_", prefix_, "_ins"); }
std::string Names::update_trigger() const { return absl::StrCat("zz_", prefix_, "_upd"); }
std::string Names::trigger_function() const { return absl::StrCat(prefix_, "_sync"); }
std::string Names::helper(absl::string_view suffix) const { return absl::StrCat(prefix_, "_", suffix); }
std::string Names::not_null_check() const { return absl::StrCat(prefix_, "_nn"); }

std::string Names::copy_of(absl::string_view original) const {
  return absl::StrFormat("%s_c%08x", prefix_, Fnv1a(original) & 0xffffffffULL);
}

std::string Names::owner_comment() const {
  return absl::StrCat("pgshift: created by migration ", migration_, " (", prefix_, ")");
}

}  // namespace pgshift::ops
