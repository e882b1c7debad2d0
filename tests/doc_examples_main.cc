// Runs the C++ examples of docs/api/cpp.md (extracted by tests/doc_examples.py):
//   doc_examples_cpp deploy DSN FILE  -> Expand(DSN, FILE), its error on stderr
//   doc_examples_cpp startup DSN      -> StartupCheck(DSN)
// driven by tests/doc_examples_test.cc.
#include <cstdio>
#include <cstring>
#include <string>

#include "pgshift/pgshift.h"

absl::Status Expand(const std::string& dsn, const std::string& file);
int StartupCheck(const std::string& dsn);

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "deploy") == 0) {
    absl::Status s = Expand(argv[2], argv[3]);
    if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return pgshift::ExitCodeFor(s);
  }
  if (argc == 3 && std::strcmp(argv[1], "startup") == 0) return StartupCheck(argv[2]);
  std::fprintf(stderr, "usage: doc_examples_cpp deploy DSN FILE | startup DSN\n");
  return 2;
}
