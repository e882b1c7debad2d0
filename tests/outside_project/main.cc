// Uses the installed C++ API: parses a migration, checks phases, and (given a
// server) runs the startup check. Exit 0 when everything behaved as expected.
//   outside_cpp [DSN]
#include <iostream>

#include "pgshift/pgshift.h"

int main(int argc, char** argv) {
  int failures = 0;
  auto expect = [&failures](bool ok, const char* what) {
    if (!ok) {
      std::cerr << "outside_cpp: FAILED: " << what << "\n";
      ++failures;
    }
  };
  absl::StatusOr<pgshift::v1::Migration> m = pgshift::ParseMigrationJson(
      R"({"name": "0001_outside", "operations": [{"rename_column":
          {"table": "t", "from": "a", "to": "b"}}]})");
  expect(m.ok() && m->name() == "0001_outside", "parse a migration");
  expect(m.ok() && m->operations(0).rename_column().to() == "b", "generated proto header");
  expect(pgshift::PhaseAtLeast(pgshift::Phase::kContracted, pgshift::Phase::kSwitched),
         "phase ladder");
  expect(absl::IsInvalidArgument(pgshift::ParsePhase("nope").status()), "ParsePhase error");
  absl::Status down = pgshift::RequirePhase("host=127.0.0.1 port=1 connect_timeout=5",
                                            "0001_outside", pgshift::Phase::kSwitched);
  expect(absl::IsUnavailable(down), "unreachable server is Unavailable");
  expect(pgshift::ExitCodeFor(down) == 1, "ExitCodeFor");
  if (argc > 1) {
    absl::Status s = pgshift::RequirePhase(argv[1], "0001_outside", pgshift::Phase::kSwitched,
                                           "pgshift_outside_no_such_schema");
    expect(absl::IsNotFound(s), "startup check against the server: NotFound");
  }
  if (failures == 0) std::cout << "outside_cpp: ok\n";
  return failures == 0 ? 0 : 1;
}
