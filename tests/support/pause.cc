#include "tests/support/pause.h"

#include "absl/strings/str_cat.h"
#include "tests/support/test_db.h"

namespace pgshift::testing {

std::string PauseTriggerSql(int64_t key) {
  return absl::StrCat(R"(
    CREATE FUNCTION test_pause() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE lbl text;
    BEGIN
      IF NEW.phase IS DISTINCT FROM OLD.phase THEN
        lbl := 'phase:' || NEW.phase;
      ELSIF NEW.running_step IS NOT NULL AND NEW.running_step IS DISTINCT FROM OLD.running_step THEN
        lbl := 'running:' || NEW.running_step;
      END IF;
      IF lbl IS NOT NULL AND EXISTS (SELECT 1 FROM public.test_pause_at p WHERE p.label = lbl) THEN
        PERFORM pg_advisory_xact_lock()", key, R"();
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER test_pause BEFORE UPDATE ON pgshift.migrations FOR EACH ROW EXECUTE FUNCTION test_pause();)");
}

bool WaitUntilLeaseReleased(const std::string& dsn) {
  // The driver lease is an advisory lock with class key 1885827944, held by
  // the lease connection's transaction (lib/engine/lease.h).
  return WaitUntil([&] {
    return QueryValue(dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                           "classid = 1885827944::oid AND database = (SELECT oid FROM pg_database "
                           "WHERE datname = current_database())") == "0";
  });
}

}  // namespace pgshift::testing
