#include "lib/engine/directory.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/spec/sql_migration.h"
#include "pgshift/migration.h"

namespace pgshift::engine {

namespace fs = std::filesystem;

namespace {

constexpr absl::string_view kExtensions[] = {".json", ".sql"};

// The extension of a migration file name, or "" when it is not one.
absl::string_view MigrationExtension(absl::string_view file) {
  if (file.empty() || file[0] == '.') return "";
  for (absl::string_view ext : kExtensions) {
    if (file.size() > ext.size() && absl::EndsWith(file, ext)) return ext;
  }
  return "";
}

absl::StatusOr<v1::Migration> LoadFile(const std::string& file, absl::string_view ext, const std::string& name,
                                       const std::string& bytes, sql::LintCatalog* catalog) {
  if (ext == ".sql") {
    sql::NoCatalog none;
    return ConvertSqlMigration(bytes, file, name, catalog != nullptr ? *catalog : none);
  }
  return ParseMigrationJson(bytes, file, name);
}

// The bytes of the migration file at `path`, or InvalidArgument naming it
// and saying why they cannot be read (a broken symbolic link, not a regular
// file, no permission, ...). Never opens what is not a regular file (a FIFO
// would block).
absl::StatusOr<std::string> ReadMigrationFile(const fs::path& path) {
  const std::string file = path.filename().string();
  auto unreadable = [&file](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": cannot read the file: ", why));
  };
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) {
    if (fs::is_symlink(fs::symlink_status(path, ec))) {
      const fs::path target = fs::read_symlink(path, ec);
      return unreadable(absl::StrCat("broken symbolic link (to \"", target.string(),
                                     "\", which does not exist); restore what it points to, or "
                                     "remove the link"));
    }
    return unreadable(ec ? ec.message() : "it is gone");
  }
  if (!fs::is_regular_file(st)) {
    return unreadable("not a regular file (a migration file holds JSON text); remove or rename it");
  }
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (in == nullptr) return unreadable(std::strerror(errno));
  std::string bytes;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) bytes.append(buf, n);
  const bool failed = std::ferror(in) != 0;
  const int err = errno;
  std::fclose(in);
  if (failed) return unreadable(std::strerror(err));
  return bytes;
}

std::string Short(const std::string& checksum) { return checksum.substr(0, 12); }

}  // namespace

std::string FileChecksum(absl::string_view bytes) {
  std::string normalized;
  normalized.reserve(bytes.size());
  if (absl::StartsWith(bytes, "\xEF\xBB\xBF")) bytes.remove_prefix(3);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n') continue;
    normalized.push_back(bytes[i]);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(normalized.data(), normalized.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}

absl::StatusOr<DirectoryScan> ScanDirectory(const std::string& dir, sql::LintCatalog* catalog) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec || !fs::exists(st)) {
    return absl::NotFoundError(absl::StrCat("migration directory \"", dir, "\" does not exist"));
  }
  if (!fs::is_directory(st)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", dir, "\" is not a directory; give the directory holding the migration files"));
  }
  DirectoryScan scan;
  scan.directory = dir;
  fs::directory_iterator it(dir, ec), end;
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read migration directory \"", dir, "\": ", ec.message()));
  }
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const std::string file = it->path().filename().string();
    const absl::string_view ext = MigrationExtension(file);
    std::error_code type_ec;
    // A directory (or a link to one) is never a migration, whatever its
    // name; anything else with a migration file's name is one, and when it
    // cannot be read that is its problem, not a reason to pass over it.
    if (ext.empty() || fs::is_directory(it->path(), type_ec)) {
      scan.ignored.push_back(file);
      continue;
    }
    MigrationFile f;
    f.file = file;
    f.name = file.substr(0, file.size() - ext.size());
    absl::StatusOr<std::string> bytes = ReadMigrationFile(it->path());
    if (bytes.ok()) {
      f.checksum = FileChecksum(*bytes);
      f.sql = ext == ".sql";
      if (f.sql) f.text = *bytes;
      f.spec = LoadFile(file, ext, f.name, *bytes, catalog);
    } else {
      f.readable = false;
      f.spec = bytes.status();
    }
    scan.files.push_back(std::move(f));
  }
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read migration directory \"", dir, "\": ", ec.message()));
  }
  std::sort(scan.files.begin(), scan.files.end(),
            [](const MigrationFile& a, const MigrationFile& b) { return a.file < b.file; });
  std::sort(scan.ignored.begin(), scan.ignored.end());
  return scan;
}

DirectoryReport Compare(const DirectoryScan& scan, const std::vector<StoredMigration>& stored,
                        bool judge_sql) {
  DirectoryReport report;
  report.directory = scan.directory;
  report.ignored = scan.ignored;
  std::map<std::string, const StoredMigration*> by_name;
  for (const auto& m : stored) by_name[m.status.name] = &m;
  std::map<std::string, int> stems;
  for (const auto& f : scan.files) ++stems[f.name];

  auto applied = [](const StoredMigration* m) {
    return m != nullptr && m->status.phase != Phase::kRolledBack;
  };
  for (const MigrationFile& f : scan.files) {
    DirectoryFile e;
    e.file = f.file;
    e.name = f.name;
    e.checksum = f.checksum;
    const StoredMigration* m = by_name.count(f.name) ? by_name.at(f.name) : nullptr;
    if (m != nullptr) {
      e.migration = m->status;
      e.recorded_checksum = m->status.file_checksum;
    }
    const bool judged = !f.sql || !f.readable || (judge_sql && !applied(m));
    if (!f.spec.ok() && judged) e.problem = std::string(f.spec.status().message());
    if (stems.at(f.name) > 1) {
      e.problem = absl::StrCat("more than one file is named \"", f.name,
                               "\" (without the extension); a migration's name must be unique: "
                               "rename or remove one of them");
    }
    if (!applied(m)) {
      e.state = "pending";
    } else if (!m->status.file_checksum.empty()) {
      e.state = m->status.baselined ? "baselined" : "applied";
      // An unreadable file has no checksum to compare: its problem is that
      // it cannot be read.
      if (f.readable && m->status.file_checksum != f.checksum) {
        e.state = "changed";
        e.problem = absl::StrCat(
            "changed since it was ", m->status.baselined ? "baselined" : "registered", " (checksum ",
            Short(m->status.file_checksum), "... then, ", Short(f.checksum),
            "... now); an applied migration cannot change: restore the file (e.g. git checkout) "
            "and put the change in a new file");
      }
    } else {
      // Registered by hand (`pgshift register FILE`) before it was run from
      // the directory: the same file when it holds the same spec.
      e.state = "applied";
      absl::StatusOr<v1::Migration> recorded = ParseMigrationJson(m->spec_json, f.name);
      if (f.spec.ok() && (!recorded.ok() || CanonicalJson(*recorded) != CanonicalJson(*f.spec))) {
        e.state = "changed";
        e.problem = absl::StrCat("migration \"", f.name,
                                 "\" is registered with another spec than this file holds; an "
                                 "applied migration cannot change: restore the file and put the "
                                 "change in a new file");
      }
    }
    report.files.push_back(std::move(e));
  }
  std::map<std::string, int> in_dir;
  for (const auto& f : scan.files) in_dir[f.name] = 1;
  for (const auto& m : stored) {
    if (m.status.file.empty() || !applied(&m) || in_dir.count(m.status.name)) continue;
    DirectoryFile e;
    e.file = m.status.file;
    e.name = m.status.name;
    e.state = "missing";
    e.recorded_checksum = m.status.file_checksum;
    e.migration = m.status;
    e.problem = absl::StrCat("was ", m.status.baselined ? "baselined" : "applied", " (phase ",
                             PhaseName(m.status.phase),
                             ") but its file is gone; restore it: applied migrations stay in the "
                             "directory");
    report.files.push_back(std::move(e));
  }
  std::sort(report.files.begin(), report.files.end(),
            [](const DirectoryFile& a, const DirectoryFile& b) { return a.file < b.file; });
  std::string last_applied;
  for (const auto& e : report.files) {
    if (e.state != "pending") last_applied = std::max(last_applied, e.file);
  }
  for (auto& e : report.files) {
    if (e.state == "pending") {
      ++report.pending;
      if (e.file < last_applied) {
        e.out_of_order = true;
        if (e.problem.empty()) {
          e.problem = absl::StrCat(
              "sorts before \"", last_applied, "\", which is applied already; ",
              e.migration ? "it was rolled back: remove the file, or run it again out of order with "
                            "--allow-out-of-order"
                          : "give it a name that sorts after it, or run it out of order with "
                            "--allow-out-of-order");
        }
      }
    }
    if (!e.problem.empty()) report.ok = false;
  }
  return report;
}

std::vector<std::string> Refusals(const DirectoryReport& report, bool allow_out_of_order,
                                  const std::string& through) {
  std::vector<std::string> out;
  for (const auto& e : report.files) {
    if (e.problem.empty()) continue;
    if (!through.empty() && e.state != "missing" && e.file > through) continue;
    const bool only_out_of_order =
        e.out_of_order && absl::StartsWith(e.problem, "sorts before");
    if (only_out_of_order && (allow_out_of_order || !through.empty())) continue;
    // A parser's message names the file already.
    out.push_back(absl::StartsWith(e.problem, absl::StrCat(e.file, ":"))
                      ? e.problem
                      : absl::StrCat(e.file, ": ", e.problem));
  }
  return out;
}

}  // namespace pgshift::engine
