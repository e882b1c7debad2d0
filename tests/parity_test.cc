// One source of truth for options (docs/architecture.md, "Options and surfaces"): every entry of
// pgshift::OptionList() is accepted and rejected alike by every surface —
// the CLI's flags, the C API's pgshift_options_set and pgshift_driver_connect,
// and Python's pgshift.Options / pgshift.Driver keyword arguments — with the
// very message pgshift::SetOption or pgshift::SanitizeOptions gives in C++.
//
// The test values come from each option's kind, never from a list of names:
// an option added to OptionList is tested on every surface at once, and a
// new kind without test values fails here (EveryOptionHasTestValues). The
// library itself is the oracle: for each value, SetOption, GetOption and
// SanitizeOptions say what every surface must answer.
//
// Per value and surface:
//   CLI     `pgshift --json --dsn <unreachable> --FLAG=VALUE advance m`: a
//           bad value exits 2 with the library's message before connecting;
//           a good one gets as far as connecting (exit 1, UNAVAILABLE). The
//           CLI cannot print its options, so there is no read-back here.
//   C       pgshift_options_set: the code and message of SetOption; a good
//           value reads back (pgshift_options_get) as GetOption does;
//           pgshift_driver_connect then answers as SanitizeOptions does
//           (INVALID_ARGUMENT and its message), else UNAVAILABLE.
//   Python  (a /usr/bin/python3 child with the build's package) the text
//           form (Options.set_text / get_text, then Driver(options=...)) and
//           the keyword form (Driver(**{name: value}) with the value as
//           Python writes it: seconds, int, bool, str): the same classes and
//           messages, TypeError for a value of the wrong Python type.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "pgshift/c.h"
#include "pgshift/options.h"
#include "tests/support/cli.h"

namespace {

namespace pt = ::pgshift::testing;
using google::protobuf::Struct;
using google::protobuf::Value;

// Nothing listens on port 1: connecting fails at once, after the options
// were checked.
constexpr char kUnreachable[] = "host=127.0.0.1 port=1 connect_timeout=5";

// One value of one option, and what the library says about it.
struct Case {
  const pgshift::OptionInfo* option;
  std::string text;          // the text form every surface is given
  absl::Status set;          // SetOption
  std::string readback;      // GetOption after a successful SetOption
  absl::Status sanitize;     // SanitizeOptions after a successful SetOption
  // The value as a Python caller writes it (JSON), and whether that is of
  // the wrong Python type for the option (then Python raises TypeError).
  std::string keyword_json;
  bool keyword_type_error = false;

  bool accepted() const { return set.ok() && sanitize.ok(); }
  // The library's message for a rejected value.
  std::string message() const {
    return std::string(!set.ok() ? set.message() : sanitize.message());
  }
};

std::string JsonString(const std::string& s) {
  Value v;
  v.set_string_value(s);
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(v, &out);
  return out;
}

// Values to try for an option of `kind`: ones that do not parse, ones at the
// edges of the range rules, and good non-default ones. Empty for a kind this
// test does not know (EveryOptionHasTestValues fails then).
std::vector<std::string> ValuesOfKind(const pgshift::OptionInfo& o) {
  const std::string kind = o.kind;
  // 1000h and inf are past PostgreSQL's int-milliseconds timeouts, 500us
  // would reach the server as 0 (no timeout) for the timeouts.
  if (kind == "duration") return {"soon", "-1s", "0", "1.5s", "250ms", "1000h", "inf", "500us"};
  if (kind == "integer") return {"ten", "1.5", "-1", "0", "7"};
  if (kind == "bool") return {"yes", "", "true", "false"};
  if (kind == "ratio") return {"fast", "0.5", "1", "1001", "off", "2.5"};
  // The throttle query must be one read-only SELECT.
  if (o.name == std::string("throttle_query")) {
    return {"parity_x", "DELETE FROM t", "SELECT 1 FOR UPDATE", "SELECT now() < now()"};
  }
  if (kind == "choice") {
    std::vector<std::string> out = {"sometimes"};
    for (const char* c : o.choices) out.push_back(c);
    return out;
  }
  // Text has no parse error; the range rules (identifiers) apply to some.
  if (kind == "text") return {std::string(64, 'a'), "parity_x"};
  return {};
}

// How a Python caller writes `text` for an option of `kind`.
void SetKeyword(Case& c) {
  const std::string kind = c.option->kind;
  absl::Duration d;
  int64_t n;
  double x;
  if (kind == "duration" && c.text == "inf") {
    c.keyword_json = "Infinity";  // float("inf"): Python's json reads Infinity
  } else if (kind == "duration" && absl::ParseDuration(c.text, &d) && c.text != "0") {
    c.keyword_json = absl::StrCat(absl::ToDoubleSeconds(d));  // seconds, e.g. 1.5
  } else if (kind == "duration" && c.text == "0") {
    c.keyword_json = "0";
  } else if (kind == "ratio" && c.text != "off" && absl::SimpleAtod(c.text, &x)) {
    c.keyword_json = c.text;  // a number, e.g. 2.5
  } else if (kind == "integer" && absl::SimpleAtoi(c.text, &n)) {
    c.keyword_json = c.text;
  } else if (kind == "bool" && (c.text == "true" || c.text == "false")) {
    c.keyword_json = c.text;
  } else {
    c.keyword_json = JsonString(c.text);
    // A str is the right type only for durations (a duration string), text
    // and choices.
    c.keyword_type_error = kind == "integer" || kind == "bool";
  }
}

const std::vector<Case>& Cases() {
  static const std::vector<Case>* cases = [] {
    auto* out = new std::vector<Case>;
    for (const pgshift::OptionInfo& o : pgshift::OptionList()) {
      for (const std::string& text : ValuesOfKind(o)) {
        Case c;
        c.option = &o;
        c.text = text;
        pgshift::Options options;
        c.set = pgshift::SetOption(options, o.name, text);
        if (c.set.ok()) {
          c.readback = pgshift::GetOption(options, o.name).value();
          c.sanitize = pgshift::SanitizeOptions(options).status();
        }
        SetKeyword(c);
        out->push_back(std::move(c));
      }
    }
    return out;
  }();
  return *cases;
}

std::string DefaultText(const pgshift::OptionInfo& o) {
  return pgshift::GetOption(pgshift::Options(), o.name).value();
}

std::string Describe(const Case& c) {
  return absl::StrCat(c.option->name, " = \"", c.text, "\" (", c.option->kind, "): library says ",
                      c.accepted() ? absl::StrCat("OK, reads back \"", c.readback, "\"")
                                   : c.message());
}

std::string Str(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? "<missing " + key + ">" : it->second.string_value();
}

// Every option has a typed C shorthand in pgshift/c.h, and docs/api/c.md
// lists it: pgshift_options_set_NAME, with _ms for a duration
// (preflight: pgshift_options_set_preflight_mode, an enum).
TEST(OptionParity, EveryOptionHasATypedCSetterInTheHeaderAndTheDocs) {
  auto read = [](const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  const std::string header = read(PGSHIFT_SOURCE_DIR "/include/pgshift/c.h");
  const std::string docs = read(PGSHIFT_SOURCE_DIR "/docs/api/c.md");
  ASSERT_FALSE(header.empty());
  ASSERT_FALSE(docs.empty());
  for (const pgshift::OptionInfo& o : pgshift::OptionList()) {
    std::string setter = absl::StrCat("pgshift_options_set_", o.name);
    if (std::string(o.kind) == "duration") absl::StrAppend(&setter, "_ms");
    if (std::string(o.name) == "preflight") absl::StrAppend(&setter, "_mode");
    absl::StrAppend(&setter, "(");
    EXPECT_NE(header.find(setter), std::string::npos) << setter << " is missing from pgshift/c.h";
    EXPECT_NE(docs.find(setter), std::string::npos) << setter << " is missing from docs/api/c.md";
  }
}

// ---- the cases themselves ------------------------------------------------------

TEST(OptionParity, EveryOptionHasTestValues) {
  std::map<std::string, int> accepted_changes, rejected;
  for (const Case& c : Cases()) {
    if (c.accepted() && c.readback != DefaultText(*c.option)) accepted_changes[c.option->name]++;
    if (!c.accepted()) rejected[c.option->name]++;
  }
  for (const pgshift::OptionInfo& o : pgshift::OptionList()) {
    SCOPED_TRACE(o.name);
    EXPECT_FALSE(ValuesOfKind(o).empty())
        << "kind \"" << o.kind << "\" is new: give it test values (bad and good) in ValuesOfKind "
        << "and teach every surface (Python's _option_text) about it";
    // A good value that changes the option: each surface must really set it.
    EXPECT_GT(accepted_changes[o.name], 0);
    // Every kind but text has values that do not parse.
    if (std::string(o.kind) != "text") EXPECT_GT(rejected[o.name], 0);
  }
  // The range rules are reached too, not only the parse errors.
  const std::vector<std::pair<std::string, std::string>> ranges = {
      {"lock_timeout", "0"}, {"backfill_batch_rows", "0"}, {"retry_deadline", "-1s"},
      {"control_schema", std::string(64, 'a')}, {"lock_timeout", "1000h"},
      {"statement_timeout", "inf"}, {"retry_deadline", "inf"}, {"lock_timeout", "500us"},
      {"backfill_lock_timeout", "500us"}};
  for (const auto& [name, text] : ranges) {
    bool found = false;
    for (const Case& c : Cases()) {
      if (c.option->name == name && c.text == text) {
        found = true;
        EXPECT_TRUE(c.set.ok()) << Describe(c);
        EXPECT_EQ(c.sanitize.code(), absl::StatusCode::kInvalidArgument) << Describe(c);
        EXPECT_NE(c.sanitize.message().find(absl::StrCat(name, " (--")), absl::string_view::npos)
            << Describe(c);
      }
    }
    EXPECT_TRUE(found) << name << " = " << text;
  }
}

// ---- CLI --------------------------------------------------------------------

pt::CliResult Cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {PGSHIFT_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  return pt::ChildProcess(argv, {"PGSHIFT_DSN=", "PGPASSWORD="}).Wait();
}

TEST(OptionParity, CliAnswersLikeTheLibrary) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Describe(c));
    pt::CliResult r = Cli({"--json", "--dsn", kUnreachable,
                           absl::StrCat("--", c.option->flag, "=", c.text), "advance", "parity_m"});
    std::string out = r.out;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    Struct json;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out, &json).ok())
        << "exit " << r.exit_code << "\nstdout: " << r.out << "\nstderr: " << r.err;
    if (c.accepted()) {
      EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
      EXPECT_EQ(Str(json, "code"), "UNAVAILABLE") << r.out;
    } else {
      EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
      EXPECT_EQ(Str(json, "code"), "INVALID_ARGUMENT");
      EXPECT_EQ(Str(json, "error"), c.message());
    }
  }
}

TEST(OptionParity, CliHelpListsEveryOptionWithItsHelp) {
  pt::CliResult r = Cli({"--help"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const pgshift::OptionInfo& o : pgshift::OptionList()) {
    EXPECT_NE(r.out.find(absl::StrCat("--", o.flag, " ")), std::string::npos) << o.flag;
    EXPECT_NE(r.out.find(o.help), std::string::npos) << o.name;
  }
}

std::string ReadDoc(const std::string& path) {
  std::ifstream in(std::string(PGSHIFT_SOURCE_DIR) + "/" + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(OptionParity, DocsListEveryOption) {
  const std::string cli = ReadDoc("docs/cli.md");
  const std::string python = ReadDoc("docs/api/python.md");
  ASSERT_FALSE(cli.empty() || python.empty());
  for (const pgshift::OptionInfo& o : pgshift::OptionList()) {
    EXPECT_NE(cli.find(absl::StrCat("`--", o.flag)), std::string::npos)
        << "docs/cli.md does not document --" << o.flag;
    EXPECT_NE(python.find(absl::StrCat("`", o.name, "`")), std::string::npos)
        << "docs/api/python.md does not list " << o.name;
  }
}

// ---- C API ------------------------------------------------------------------

// Takes a malloc()ed C string.
std::string Take(char* s) {
  std::string out = s ? s : "<NULL>";
  pgshift_free(s);
  return out;
}

TEST(OptionParity, CApiAnswersLikeTheLibrary) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Describe(c));
    pgshift_options_t* o = pgshift_options_create();
    char* err = nullptr;
    const int code = pgshift_options_set(o, c.option->name, c.text.c_str(), &err);
    if (!c.set.ok()) {
      EXPECT_EQ(code, PGSHIFT_INVALID_ARGUMENT);
      EXPECT_EQ(Take(err), c.set.message());
      err = nullptr;
      // The option keeps its value.
      EXPECT_EQ(Take(pgshift_options_get(o, c.option->name, nullptr)), DefaultText(*c.option));
    } else {
      EXPECT_EQ(code, PGSHIFT_OK) << (err ? err : "");
      EXPECT_EQ(Take(pgshift_options_get(o, c.option->name, nullptr)), c.readback);
      pgshift_driver_t* d = pgshift_driver_connect(kUnreachable, o, &err);
      EXPECT_EQ(d, nullptr);
      pgshift_driver_destroy(d);
      if (c.sanitize.ok()) {
        EXPECT_EQ(pgshift_last_code(), PGSHIFT_UNAVAILABLE) << (err ? err : "");
      } else {
        EXPECT_EQ(pgshift_last_code(), PGSHIFT_INVALID_ARGUMENT);
        EXPECT_EQ(std::string(err ? err : ""), c.sanitize.message());
      }
    }
    pgshift_free(err);
    pgshift_options_destroy(o);
  }
}

TEST(OptionParity, CApiListsEveryOption) {
  const auto& list = pgshift::OptionList();
  ASSERT_EQ(pgshift_option_count(), list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    EXPECT_STREQ(pgshift_option_name(i), list[i].name);
    EXPECT_STREQ(pgshift_option_flag(i), list[i].flag);
    EXPECT_STREQ(pgshift_option_kind(i), list[i].kind);
    EXPECT_STREQ(pgshift_option_help(i), list[i].help);
    for (size_t j = 0; j <= list[i].choices.size(); ++j) {
      EXPECT_STREQ(pgshift_option_choice(i, j), j < list[i].choices.size() ? list[i].choices[j] : nullptr);
    }
  }
  EXPECT_EQ(pgshift_option_name(list.size()), nullptr);
}

TEST(OptionParity, UnknownOptionNameGivesTheLibraryMessageInC) {
  pgshift::Options options;
  const absl::Status want = pgshift::SetOption(options, "lock_timout", "1s");
  ASSERT_EQ(want.code(), absl::StatusCode::kInvalidArgument);
  pgshift_options_t* o = pgshift_options_create();
  char* err = nullptr;
  EXPECT_EQ(pgshift_options_set(o, "lock_timout", "1s", &err), PGSHIFT_INVALID_ARGUMENT);
  EXPECT_EQ(Take(err), want.message());
  pgshift_options_destroy(o);
}

// ---- Python -----------------------------------------------------------------

#ifdef PGSHIFT_PYTHON
// Runs every case through the package, prints one JSON object:
//   {"options": [option_list() entries], "unknown": <outcome>,
//    "cases": [{"set", "get", "connect", "keyword", "keyword_get"}, ...]}
// where an outcome is {"class": "ok" | exception class name, "message"}.
constexpr char kPythonScript[] = R"PY(
import dataclasses, json, sys
import pgshift

cases = json.load(open(sys.argv[1]))
unreachable = sys.argv[2]

def outcome(fn):
    try:
        value = fn()
        return {"class": "ok", "message": "" if value is None else str(value)}
    except pgshift.Error as e:
        return {"class": type(e).__name__, "message": str(e)}
    except TypeError as e:
        return {"class": "TypeError", "message": str(e)}

def connect(**kw):
    pgshift.Driver(unreachable, **kw).close()

results = []
for c in cases:
    name, text, keyword = c["name"], c["text"], c["keyword"]
    o = pgshift.Options()
    r = {"set": outcome(lambda: o.set_text(name, text))}
    r["get"] = outcome(lambda: o.get_text(name))
    r["connect"] = outcome(lambda: connect(options=o))
    r["keyword"] = outcome(lambda: connect(**{name: keyword}))
    r["keyword_get"] = outcome(lambda: pgshift.Options(**{name: keyword}).get_text(name))
    results.append(r)

print(json.dumps({
    "options": [dataclasses.asdict(o) for o in pgshift.option_list()],
    "unknown": outcome(lambda: pgshift.Options(lock_timout=1)),
    "cases": results,
}))
)PY";

class PythonParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> items;
    for (const Case& c : Cases()) {
      items.push_back(absl::StrCat("{\"name\":", JsonString(c.option->name),
                                   ",\"text\":", JsonString(c.text), ",\"keyword\":", c.keyword_json,
                                   "}"));
    }
    const std::string cases = pt::WriteTempFile(absl::StrCat("[", absl::StrJoin(items, ","), "]"));
    const std::string script = pt::WriteTempFile(kPythonScript, ".py");
    run_ = new pt::CliResult(pt::ChildProcess({PGSHIFT_PYTHON, script, cases, kUnreachable},
                                              {absl::StrCat("PYTHONPATH=", PGSHIFT_PYTHON_PATH),
                                               "PGSHIFT_DSN=", "PGPASSWORD="})
                                 .Wait());
    result_ = new Struct;
    parsed_ = run_->exit_code == 0 &&
              google::protobuf::util::JsonStringToMessage(run_->out, result_).ok();
  }
  static void TearDownTestSuite() {
    delete run_;
    delete result_;
  }
  void SetUp() override {
    ASSERT_TRUE(parsed_) << "python exit " << run_->exit_code << "\nstdout: " << run_->out
                         << "\nstderr: " << run_->err;
  }
  static const Struct& Outcome(const Struct& r, const std::string& key) {
    return r.fields().at(key).struct_value();
  }

  static pt::CliResult* run_;
  static Struct* result_;
  static bool parsed_;
};
pt::CliResult* PythonParity::run_ = nullptr;
Struct* PythonParity::result_ = nullptr;
bool PythonParity::parsed_ = false;

// `o` is the rejection `c` gets from the library: InvalidArgumentError, the
// same message.
void ExpectRejected(const Struct& o, const Case& c) {
  EXPECT_EQ(Str(o, "class"), "InvalidArgumentError") << Str(o, "message");
  EXPECT_EQ(Str(o, "message"), c.message());
}

TEST_F(PythonParity, TextFormAnswersLikeTheLibrary) {
  const auto& results = result_->fields().at("cases").list_value().values();
  ASSERT_EQ(static_cast<size_t>(results.size()), Cases().size());
  for (size_t i = 0; i < Cases().size(); ++i) {
    const Case& c = Cases()[i];
    SCOPED_TRACE(Describe(c));
    const Struct& r = results[i].struct_value();
    if (!c.set.ok()) {
      ExpectRejected(Outcome(r, "set"), c);
      EXPECT_EQ(Str(Outcome(r, "get"), "message"), DefaultText(*c.option));  // keeps its value
      continue;
    }
    EXPECT_EQ(Str(Outcome(r, "set"), "class"), "ok") << Str(Outcome(r, "set"), "message");
    EXPECT_EQ(Str(Outcome(r, "get"), "message"), c.readback);
    if (c.sanitize.ok()) {
      EXPECT_EQ(Str(Outcome(r, "connect"), "class"), "UnavailableError")
          << Str(Outcome(r, "connect"), "message");
    } else {
      ExpectRejected(Outcome(r, "connect"), c);
    }
  }
}

TEST_F(PythonParity, KeywordFormAnswersLikeTheLibrary) {
  const auto& results = result_->fields().at("cases").list_value().values();
  ASSERT_EQ(static_cast<size_t>(results.size()), Cases().size());
  for (size_t i = 0; i < Cases().size(); ++i) {
    const Case& c = Cases()[i];
    SCOPED_TRACE(absl::StrCat(Describe(c), "; Python value ", c.keyword_json));
    const Struct& r = results[i].struct_value();
    if (c.keyword_type_error) {
      EXPECT_EQ(Str(Outcome(r, "keyword"), "class"), "TypeError");
      EXPECT_NE(Str(Outcome(r, "keyword"), "message").find(c.option->name), std::string::npos);
    } else if (!c.accepted()) {
      ExpectRejected(Outcome(r, "keyword"), c);
    } else {
      EXPECT_EQ(Str(Outcome(r, "keyword"), "class"), "UnavailableError")
          << Str(Outcome(r, "keyword"), "message");
      EXPECT_EQ(Str(Outcome(r, "keyword_get"), "class"), "ok");
      EXPECT_EQ(Str(Outcome(r, "keyword_get"), "message"), c.readback);
    }
  }
}

TEST_F(PythonParity, OptionListIsTheLibrarys) {
  const auto& options = result_->fields().at("options").list_value().values();
  const auto& list = pgshift::OptionList();
  ASSERT_EQ(static_cast<size_t>(options.size()), list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const Struct& o = options[i].struct_value();
    EXPECT_EQ(Str(o, "name"), list[i].name);
    EXPECT_EQ(Str(o, "flag"), list[i].flag);
    EXPECT_EQ(Str(o, "kind"), list[i].kind);
    EXPECT_EQ(Str(o, "help"), list[i].help);
    std::vector<std::string> choices;
    for (const Value& v : o.fields().at("choices").list_value().values()) {
      choices.push_back(v.string_value());
    }
    EXPECT_EQ(choices, std::vector<std::string>(list[i].choices.begin(), list[i].choices.end()));
  }
}

TEST_F(PythonParity, UnknownOptionNameGivesTheLibraryMessage) {
  pgshift::Options options;
  const absl::Status want = pgshift::SetOption(options, "lock_timout", "1");
  const Struct& o = result_->fields().at("unknown").struct_value();
  EXPECT_EQ(Str(o, "class"), "InvalidArgumentError");
  EXPECT_EQ(Str(o, "message"), want.message());
}
#else
TEST(PythonParity, NeedsThePythonBinding) {
  GTEST_SKIP() << "built without the Python binding (-DPGSHIFT_BUILD_PYTHON=ON)";
}
#endif

}  // namespace
