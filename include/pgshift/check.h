// Startup checks for applications: is the schema ready for this version?
// Each call is one round trip on an open connection (plus the connection).
//
// Example (new app version, needs the new shape):
//   absl::Status ready = pgshift::RequirePhase(dsn, "0042_rename_users_name",
//                                              pgshift::Phase::kSwitched);
//   if (!ready.ok()) { std::cerr << ready << "\n"; std::exit(1); }
//
// Applications also declare which shape of a migration they need, so that
// contract waits until no instance needing the old shape is left
// (docs/runbook.md, "The contract guard: application instances"). Example (an old app
// version, which still reads users.name):
//   auto reg = pgshift::InstanceRegistration::Start(
//       dsn, "0042_rename_users_name", pgshift::Shape::kOld);
//   if (!reg.ok()) { std::cerr << reg.status() << "\n"; return 1; }
//   // keep *reg alive as long as the process runs
//
// An instance counts as live while its declaration has not expired: the
// registration refreshes it every ttl/3 from a background thread and
// withdraws it on destruction; an instance that dies stops counting once its
// ttl has passed, with no clean-up needed. Expiry is computed with the
// server's clock (now()), so application hosts' clocks do not matter, and
// nothing depends on a session staying open, so it works through PgBouncer.
//
// Thread-safe: each call uses its own connection; an InstanceRegistration may
// be used from any thread.
#ifndef PGSHIFT_CHECK_H_
#define PGSHIFT_CHECK_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pgshift/phase.h"

namespace pgshift {

// The phase of migration `name`; NotFound when it is not registered (or the
// control schema does not exist).
absl::StatusOr<Phase> CurrentPhase(const std::string& dsn, absl::string_view name,
                                   absl::string_view control_schema = "pgshift");

// OK when migration `name` has reached `at_least`; FailedPrecondition saying
// where it stands otherwise; NotFound when it is not registered.
absl::Status RequirePhase(const std::string& dsn, absl::string_view name, Phase at_least,
                          absl::string_view control_schema = "pgshift");

// The shape of the schema an application instance needs.
enum class Shape {
  kOld,  // written for the schema before the migration (e.g. reads the old column)
  kNew,  // written for the schema after it
};

// "old" / "new", as stored in pgshift.instances.
absl::string_view ShapeName(Shape shape);

struct InstanceOptions {
  // Identifies the instance; default "<hostname>:<pid>". Declaring again with
  // the same id replaces the earlier declaration.
  std::string instance_id;
  // Free text shown next to the instance in refusals and `status`
  // (e.g. "api v41 on pod api-7f9c"). Default empty.
  std::string description;
  // How long a declaration stays live without a refresh. Default 30 s.
  absl::Duration ttl = absl::Seconds(30);
  // Schema of pgshift's tables. Default "pgshift".
  std::string control_schema = "pgshift";
};

// Declares (or refreshes) that instance `options.instance_id` needs `shape`
// of migration `migration`, live for options.ttl from now (server clock).
// For Shape::kOld the migration need not be registered yet (the old app
// version may start before the pipeline registers it). Shape::kNew is
// refused with FailedPrecondition until the migration reached switched: new
// app versions may not run before (docs/operations/rename_column.md,
// hazards). FailedPrecondition also when the control schema is missing or
// too old (run `pgshift init`); PermissionDenied when the role lacks the
// grants of docs/privileges.md.
absl::Status DeclareInstance(const std::string& dsn, absl::string_view migration, Shape shape,
                             const InstanceOptions& options = {});

// Removes the declaration of `instance_id` (clean shutdown). OK when absent.
absl::Status WithdrawInstance(const std::string& dsn, absl::string_view migration,
                              absl::string_view instance_id,
                              absl::string_view control_schema = "pgshift");

// Declares an instance and keeps the declaration live while the object
// exists: a background thread refreshes it every ttl/3 on its own short
// connections (a failed refresh is retried at the next period); the
// destructor stops the thread and withdraws the declaration.
class InstanceRegistration {
 public:
  // Declares once before returning (so the caller knows it worked), then
  // starts refreshing.
  static absl::StatusOr<std::unique_ptr<InstanceRegistration>> Start(
      const std::string& dsn, absl::string_view migration, Shape shape,
      InstanceOptions options = {});
  ~InstanceRegistration();

  InstanceRegistration(const InstanceRegistration&) = delete;
  InstanceRegistration& operator=(const InstanceRegistration&) = delete;

  const std::string& instance_id() const { return options_.instance_id; }
  // Result of the latest refresh (OK after Start).
  absl::Status last_refresh() const;

 private:
  InstanceRegistration(std::string dsn, std::string migration, Shape shape,
                       InstanceOptions options);
  void Loop();

  const std::string dsn_;
  const std::string migration_;
  const Shape shape_;
  InstanceOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  absl::Status last_refresh_;
  std::thread thread_;
};

}  // namespace pgshift

#endif  // PGSHIFT_CHECK_H_
