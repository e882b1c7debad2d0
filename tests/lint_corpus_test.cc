// The lint corpus (tests/lint_corpus/, its README says the format): every
// case linted without a database (LintSql) and against a scratch database
// holding tests/lint_corpus/fixtures.sql (Driver::Lint), checking the verdict,
// the rule ids of level error and warning, the operation a convertible
// statement becomes, and where given the lock, the line and how the script
// splits into statements.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "pgshift/pgshift.h"
#include "tests/support/test_db.h"

namespace {

namespace pt = ::pgshift::testing;

const std::string kCorpusDir = std::string(PGSHIFT_SOURCE_DIR) + "/tests/lint_corpus";

// One case of the corpus: its header (key -> value) and its SQL.
struct Case {
  std::string name;
  std::string file;  // e.g. "indexes.sql:12", where its `-- case:` line is
  std::map<std::string, std::string> header;
  std::string sql;
};

// The keys a header may hold (README.md); a misspelt key is an error, not a
// silently unchecked expectation.
const std::set<std::string>& KnownKeys() {
  static const auto* keys = new std::set<std::string>{
      "case",  "verdict",   "verdict-nodb", "verdict-db", "rules",     "rules-nodb", "rules-db",
      "notes", "operation", "operation-nodb", "operation-db", "operation-kind", "lock", "statement",
      "statements", "verdicts", "line", "options", "assumed"};
  return *keys;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// "-- key: value" -> {key, value}; false for any other line.
bool HeaderLine(const std::string& line, std::string* key, std::string* value) {
  if (!absl::StartsWith(line, "-- ")) return false;
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return false;
  std::string k = line.substr(3, colon - 3);
  if (k.empty() || k.find(' ') != std::string::npos) return false;
  *key = k;
  *value = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  return true;
}

// Every case of every corpus file, in file and line order. Format problems
// are returned in `errors`.
std::vector<Case> LoadCorpus(std::vector<std::string>* errors) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(kCorpusDir)) {
    const std::string name = entry.path().filename().string();
    if (absl::EndsWith(name, ".sql") && name != "fixtures.sql") files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  std::vector<Case> cases;
  for (const std::string& file : files) {
    std::vector<std::string> lines = absl::StrSplit(ReadAll(kCorpusDir + "/" + file), '\n');
    Case* current = nullptr;
    bool in_header = false;
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string& line = lines[i];
      std::string key, value;
      if (absl::StartsWith(line, "-- case:")) {
        cases.emplace_back();
        current = &cases.back();
        current->file = file + ":" + std::to_string(i + 1);
        in_header = true;
      }
      if (in_header && HeaderLine(line, &key, &value)) {
        if (!KnownKeys().count(key)) errors->push_back(current->file + ": unknown key \"" + key + "\"");
        if (current->header.count(key)) errors->push_back(current->file + ": key \"" + key + "\" twice");
        current->header[key] = value;
        continue;
      }
      in_header = false;
      if (current == nullptr) {
        if (!absl::StripAsciiWhitespace(line).empty()) errors->push_back(file + ": text before the first case");
        continue;
      }
      current->sql += line + "\n";
    }
  }
  std::set<std::string> names;
  for (Case& c : cases) {
    c.name = c.header["case"];
    // The case's SQL without the blank lines that separate cases.
    while (absl::EndsWith(c.sql, "\n\n")) c.sql.pop_back();
    if (!names.insert(c.name).second) errors->push_back(c.file + ": case name \"" + c.name + "\" twice");
    if (absl::StripAsciiWhitespace(c.sql).empty()) errors->push_back(c.file + ": no SQL");
    const bool has_verdict = c.header.count("verdict") ||
                             (c.header.count("verdict-nodb") && c.header.count("verdict-db"));
    const bool has_rules =
        c.header.count("rules") || (c.header.count("rules-nodb") && c.header.count("rules-db"));
    if (!has_verdict) errors->push_back(c.file + ": no verdict (for both modes)");
    if (!has_rules) errors->push_back(c.file + ": no rules (for both modes; `none` for none)");
  }
  return cases;
}

// How GoogleTest prints a case (instead of its bytes).
void PrintTo(const Case& c, std::ostream* os) { *os << c.file << " \"" << c.name << "\""; }

const std::vector<Case>& Corpus() {
  static const auto* corpus = [] {
    std::vector<std::string> errors;
    auto* c = new std::vector<Case>(LoadCorpus(&errors));
    return c;
  }();
  return *corpus;
}

enum class Mode { kNoDatabase, kDatabase };

// The value of `key` for `mode`: "key-nodb" / "key-db" when given, else "key".
const std::string* Expect(const Case& c, const std::string& key, Mode mode) {
  auto it = c.header.find(key + (mode == Mode::kDatabase ? "-db" : "-nodb"));
  if (it != c.header.end()) return &it->second;
  it = c.header.find(key);
  return it == c.header.end() ? nullptr : &it->second;
}

std::set<std::string> RuleSet(const std::string& text) {
  std::set<std::string> out;
  if (text == "none") return out;
  for (absl::string_view r : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    out.insert(std::string(absl::StripAsciiWhitespace(r)));
  }
  return out;
}

std::string Show(const std::set<std::string>& s) { return "{" + absl::StrJoin(s, ", ") + "}"; }

// The findings of `s` at `levels`.
std::set<std::string> Rules(const pgshift::LintedStatement& s, const std::set<std::string>& levels) {
  std::set<std::string> out;
  for (const auto& f : s.findings) {
    if (levels.count(f.level)) out.insert(f.rule);
  }
  return out;
}

std::string Describe(const pgshift::LintReport& r) {
  std::string out;
  for (const auto& s : r.statements) {
    out += "  line " + std::to_string(s.line) + " [" + s.verdict + ", " + s.lock + ", " + s.statement +
           (s.assumed ? ", assumed" : "") + "] " + s.sql + "\n";
    for (const auto& f : s.findings) out += "    " + f.rule + " (" + f.level + "): " + f.message + "\n";
    if (!s.operation_json.empty()) out += "    operation: " + s.operation_json + "\n";
    if (!s.instead.empty()) out += "    instead: " + s.instead + "\n";
  }
  return out;
}

// `json`, one operation ({"create_index": {...}}) or an array of them, as the
// operations of a migration (so that two spellings of the same operations
// compare equal).
bool ParseOperations(const std::string& json, pgshift::v1::Migration* out) {
  const std::string trimmed(absl::StripAsciiWhitespace(json));
  if (trimmed.empty()) return false;
  const std::string wrapped = "{\"operations\": " + (trimmed[0] == '[' ? trimmed : "[" + trimmed + "]") + "}";
  return google::protobuf::util::JsonStringToMessage(wrapped, out).ok();
}

// What every report must satisfy, whatever the case.
void CheckInvariants(const pgshift::LintReport& r) {
  bool unsafe = false;
  for (const auto& s : r.statements) {
    SCOPED_TRACE("line " + std::to_string(s.line) + ": " + s.sql);
    EXPECT_TRUE(s.verdict == "safe" || s.verdict == "convert" || s.verdict == "refuse" ||
                s.verdict == "control")
        << s.verdict;
    for (const auto& f : s.findings) {
      EXPECT_TRUE(f.level == "error" || f.level == "warning" || f.level == "note") << f.rule << " " << f.level;
      EXPECT_FALSE(f.rule.empty());
      EXPECT_FALSE(f.message.empty()) << f.rule;
    }
    const bool error = !Rules(s, {"error"}).empty();
    if (s.verdict == "convert" || s.verdict == "refuse") {
      unsafe = true;
      EXPECT_TRUE(error) << "an unsafe statement names the error rule that makes it unsafe";
      EXPECT_FALSE(s.instead.empty()) << "an unsafe statement says what to do instead";
    } else {
      EXPECT_FALSE(error) << "a " << s.verdict << " statement has no finding of level error";
    }
    if (s.verdict == "convert") {
      pgshift::v1::Migration ops;
      EXPECT_TRUE(ParseOperations(s.operation_json, &ops)) << "not an operation: " << s.operation_json;
    }
    if (s.verdict == "safe" || s.verdict == "control") EXPECT_EQ(s.operation_json, "");
    EXPECT_FALSE(s.lock.empty());
  }
  EXPECT_EQ(r.unsafe, unsafe);
}

void CheckCase(const Case& c, Mode mode, const pgshift::LintReport& r) {
  SCOPED_TRACE(c.file + " \"" + c.name + "\" " + (mode == Mode::kDatabase ? "with" : "without") +
               " a database; the linter said:\n" + Describe(r));
  CheckInvariants(r);
  ASSERT_FALSE(r.statements.empty());
  if (auto it = c.header.find("statements"); it != c.header.end()) {
    EXPECT_EQ(std::to_string(r.statements.size()), it->second) << "statements";
  }
  if (auto it = c.header.find("verdicts"); it != c.header.end()) {
    std::vector<std::string> got;
    for (const auto& s : r.statements) got.push_back(s.verdict);
    EXPECT_EQ(absl::StrJoin(got, " "), it->second) << "verdicts";
  }
  int target = static_cast<int>(r.statements.size());
  if (auto it = c.header.find("statement"); it != c.header.end()) {
    ASSERT_TRUE(absl::SimpleAtoi(it->second, &target)) << it->second;
  }
  ASSERT_GE(target, 1);
  ASSERT_LE(target, static_cast<int>(r.statements.size())) << "no statement " << target;
  const pgshift::LintedStatement& s = r.statements[target - 1];

  const std::string* verdict = Expect(c, "verdict", mode);
  ASSERT_NE(verdict, nullptr);
  std::vector<std::string> verdicts = absl::StrSplit(*verdict, '|');
  EXPECT_TRUE(std::find(verdicts.begin(), verdicts.end(), s.verdict) != verdicts.end())
      << "verdict: expected " << *verdict << ", got " << s.verdict;

  const std::string* rules = Expect(c, "rules", mode);
  ASSERT_NE(rules, nullptr);
  const std::set<std::string> got = Rules(s, {"error", "warning"});
  bool matched = false;
  for (absl::string_view alternative : absl::StrSplit(*rules, '|')) {
    matched = matched || RuleSet(std::string(absl::StripAsciiWhitespace(alternative))) == got;
  }
  EXPECT_TRUE(matched) << "rules (error and warning): expected " << *rules << ", got " << Show(got);

  if (auto it = c.header.find("notes"); it != c.header.end()) {
    const std::set<std::string> notes = Rules(s, {"note"});
    for (const std::string& n : RuleSet(it->second)) {
      EXPECT_TRUE(notes.count(n)) << "note " << n << " missing; notes: " << Show(notes);
    }
  }
  if (auto it = c.header.find("lock"); it != c.header.end()) EXPECT_EQ(s.lock, it->second) << "lock";
  if (auto it = c.header.find("line"); it != c.header.end()) {
    EXPECT_EQ(std::to_string(s.line), it->second) << "line";
  }
  if (const std::string* op = Expect(c, "operation", mode); op != nullptr && s.verdict == "convert") {
    pgshift::v1::Migration want, have;
    ASSERT_TRUE(ParseOperations(*op, &want)) << "corpus: " << *op;
    ASSERT_TRUE(ParseOperations(s.operation_json, &have)) << s.operation_json;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(want, have))
        << "operation: expected " << *op << "\n got " << s.operation_json;
  }
  if (auto it = c.header.find("operation-kind"); it != c.header.end()) {
    google::protobuf::Struct have;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(s.operation_json, &have).ok())
        << "operation: " << s.operation_json;
    ASSERT_EQ(have.fields_size(), 1) << s.operation_json;
    EXPECT_EQ(have.fields().begin()->first, it->second) << s.operation_json;
  }
  // A case whose answer depends on the catalog: without it, the worst was assumed.
  if (auto it = c.header.find("assumed"); it != c.header.end() && mode == Mode::kNoDatabase) {
    EXPECT_EQ(s.assumed ? "true" : "false", it->second) << "assumed";
  }
  if (mode == Mode::kDatabase) EXPECT_FALSE(s.assumed) << "assumed with the live catalog";
}

pgshift::LintOptions OptionsOf(const Case& c) {
  pgshift::LintOptions o;
  auto it = c.header.find("options");
  o.other_runner = it != c.header.end() && it->second == "other-runner";
  return o;
}

TEST(LintCorpus, IsWellFormedAndBigEnough) {
  std::vector<std::string> errors;
  std::vector<Case> cases = LoadCorpus(&errors);
  EXPECT_TRUE(errors.empty()) << absl::StrJoin(errors, "\n");
  EXPECT_GE(cases.size(), 80u);
  for (const Case& c : cases) {
    if (auto it = c.header.find("options"); it != c.header.end()) {
      EXPECT_EQ(it->second, "other-runner") << c.file;
    }
    for (const char* key : {"operation", "operation-nodb", "operation-db"}) {
      if (auto it = c.header.find(key); it != c.header.end()) {
        pgshift::v1::Migration op;
        EXPECT_TRUE(ParseOperations(it->second, &op))
            << c.file << ": not a pgshift operation: " << it->second;
      }
    }
  }
}

class LintCorpusTest : public ::testing::TestWithParam<Case> {
 protected:
  // One scratch database with the fixtures for the whole binary, made when
  // a test first needs it (ctest runs each case in its own process: the
  // cases without a database never touch the server).
  static const std::string& Dsn() {
    if (db_ == nullptr) {
      db_ = new pt::ScratchDatabase("lint_corpus");
      pt::Query(db_->dsn(), ReadAll(kCorpusDir + "/fixtures.sql"));
    }
    return db_->dsn();
  }
  static void TearDownTestSuite() {
    delete db_;
    db_ = nullptr;
  }
  static pt::ScratchDatabase* db_;
};
pt::ScratchDatabase* LintCorpusTest::db_ = nullptr;

TEST_P(LintCorpusTest, WithoutDatabase) {
  const Case& c = GetParam();
  absl::StatusOr<pgshift::LintReport> r = pgshift::LintSql(c.sql, c.name, OptionsOf(c));
  ASSERT_TRUE(r.ok()) << c.file << ": " << r.status();
  CheckCase(c, Mode::kNoDatabase, *r);
}

TEST_P(LintCorpusTest, WithDatabase) {
  const Case& c = GetParam();
  absl::StatusOr<std::unique_ptr<pgshift::Driver>> d = pgshift::Driver::Connect(Dsn(), {});
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<pgshift::LintReport> r = (*d)->Lint(c.sql, c.name, OptionsOf(c));
  ASSERT_TRUE(r.ok()) << c.file << ": " << r.status();
  CheckCase(c, Mode::kDatabase, *r);
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string out;
  for (char ch : info.param.name) out += absl::ascii_isalnum(ch) ? ch : '_';
  return out.empty() ? "unnamed" : out;
}

INSTANTIATE_TEST_SUITE_P(Corpus, LintCorpusTest, ::testing::ValuesIn(Corpus()), CaseName);

// Driver::Lint reads only: linting every case changes nothing, and works
// before the control schema exists.
TEST(LintWithDatabase, ChangesNothing) {
  pt::ScratchDatabase db("lint_reads_only");
  pt::Query(db.dsn(), ReadAll(kCorpusDir + "/fixtures.sql"));
  const std::string before = pt::CatalogSnapshot(db.dsn(), "public") + pt::CatalogSnapshot(db.dsn(), "app");
  absl::StatusOr<std::unique_ptr<pgshift::Driver>> d = pgshift::Driver::Connect(db.dsn(), {});
  ASSERT_TRUE(d.ok()) << d.status();
  for (const Case& c : Corpus()) {
    absl::StatusOr<pgshift::LintReport> r = (*d)->Lint(c.sql, c.name, OptionsOf(c));
    EXPECT_TRUE(r.ok()) << c.name << ": " << r.status();
  }
  EXPECT_EQ(before, pt::CatalogSnapshot(db.dsn(), "public") + pt::CatalogSnapshot(db.dsn(), "app"));
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgshift'"), "0");
  EXPECT_EQ(pt::QueryValue(db.dsn(), "SELECT count(*) FROM users"), "100");
}

// A script that does not parse: InvalidArgument naming the origin, line and column.
TEST(LintSql, SyntaxErrorSaysWhere) {
  absl::StatusOr<pgshift::LintReport> r =
      pgshift::LintSql("ALTER TABLE users ADD COLUMN bio text;\nCREATE INDEXX foo ON users (bio);\n",
                       "0042_bio.sql");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "0042_bio.sql")) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "line 2")) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "column 8")) << r.status();
}

TEST(LintSql, EmptyScriptIsSafe) {
  absl::StatusOr<pgshift::LintReport> r = pgshift::LintSql("-- nothing here\n", "empty.sql");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->statements.empty());
  EXPECT_FALSE(r->unsafe);
  EXPECT_EQ(r->origin, "empty.sql");
}

}  // namespace
