// Fault injection for the kill-at-every-boundary tests: a driver paused at a
// phase or running-step write (so the test can kill it exactly there), and
// waiting until a killed driver's lease is gone.
//
// Example:
//   pgshift::testing::Query(dsn, "CREATE TABLE test_pause_at (label text PRIMARY KEY)");
//   pgshift::testing::Query(dsn, pgshift::testing::PauseTriggerSql(424242));
//   // Hold advisory lock 424242 in a session, INSERT 'phase:validated' into
//   // test_pause_at, start the driver: it waits inside that phase write.
//   ASSERT_TRUE(pgshift::testing::WaitUntilLeaseReleased(dsn));
#ifndef PGSHIFT_TESTS_SUPPORT_PAUSE_H_
#define PGSHIFT_TESTS_SUPPORT_PAUSE_H_

#include <cstdint>
#include <string>

namespace pgshift::testing {

// SQL creating function test_pause() and its BEFORE UPDATE trigger on
// pgshift.migrations: a write that changes the phase to P (label "phase:P")
// or running_step to S ("running:S") waits on advisory lock `key` when its
// label is in public.test_pause_at (which the test creates).
std::string PauseTriggerSql(int64_t key);

// Waits (WaitUntil's default deadline) until no session holds a pgshift
// driver lease in the database of `dsn`; false when one still does.
bool WaitUntilLeaseReleased(const std::string& dsn);

}  // namespace pgshift::testing

#endif  // PGSHIFT_TESTS_SUPPORT_PAUSE_H_
