// Application instances declaring the shape they need (check.h): rows of
// <control schema>.instances with an expiry computed by the server.
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/engine/control.h"
#include "lib/pg/connection.h"
#include "lib/pg/quote.h"
#include "lib/util/status_macros.h"
#include "pgshift/check.h"

namespace pgshift {

namespace {

std::string DefaultInstanceId() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] ? host : "localhost", ":", getpid());
}

// A missing instances table means the control schema is missing or older
// than this library.
absl::Status Explain(const absl::Status& s, engine::Control& control, absl::string_view control_schema) {
  if (absl::IsNotFound(s)) {
    absl::StatusOr<bool> exists = control.Exists();
    if (exists.ok() && !*exists) return control.RequireInitialized();  // not set up at all
    return absl::FailedPreconditionError(absl::StrCat(
        "control schema \"", control_schema,
        "\" has no instances table (not set up, or set up by an older pgshift); run `pgshift init`: ",
        s.message()));
  }
  return s;
}

}  // namespace

absl::string_view ShapeName(Shape shape) { return shape == Shape::kOld ? "old" : "new"; }

absl::Status DeclareInstance(const std::string& dsn, absl::string_view migration, Shape shape,
                             const InstanceOptions& options) {
  RETURN_IF_ERROR(pg::CheckIdentifier(options.control_schema, "control schema"));
  if (migration.empty()) return absl::InvalidArgumentError("DeclareInstance: empty migration name");
  if (options.ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("DeclareInstance: ttl must be positive");
  }
  const std::string id = options.instance_id.empty() ? DefaultInstanceId() : options.instance_id;
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn,
                   pg::Connection::Open(dsn, "pgshift instance"));
  engine::Control control(*conn, options.control_schema);
  return Explain(control.DeclareInstance(std::string(migration), id, ShapeName(shape),
                                         options.description, options.ttl),
                 control, options.control_schema);
}

absl::Status WithdrawInstance(const std::string& dsn, absl::string_view migration,
                              absl::string_view instance_id, absl::string_view control_schema) {
  RETURN_IF_ERROR(pg::CheckIdentifier(control_schema, "control schema"));
  ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn,
                   pg::Connection::Open(dsn, "pgshift instance"));
  engine::Control control(*conn, std::string(control_schema));
  return Explain(control.WithdrawInstance(std::string(migration), std::string(instance_id)), control,
                 control_schema);
}

InstanceRegistration::InstanceRegistration(std::string dsn, std::string migration, Shape shape,
                                           InstanceOptions options)
    : dsn_(std::move(dsn)), migration_(std::move(migration)), shape_(shape),
      options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<InstanceRegistration>> InstanceRegistration::Start(
    const std::string& dsn, absl::string_view migration, Shape shape, InstanceOptions options) {
  if (options.instance_id.empty()) options.instance_id = DefaultInstanceId();
  RETURN_IF_ERROR(DeclareInstance(dsn, migration, shape, options));
  std::unique_ptr<InstanceRegistration> reg(
      new InstanceRegistration(dsn, std::string(migration), shape, std::move(options)));
  reg->thread_ = std::thread([r = reg.get()] { r->Loop(); });
  return reg;
}

InstanceRegistration::~InstanceRegistration() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  (void)WithdrawInstance(dsn_, migration_, options_.instance_id, options_.control_schema);
}

void InstanceRegistration::Loop() {
  const auto period = absl::ToChronoMilliseconds(options_.ttl / 3);
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
    lock.unlock();
    absl::Status s = DeclareInstance(dsn_, migration_, shape_, options_);
    lock.lock();
    last_refresh_ = s;
  }
}

absl::Status InstanceRegistration::last_refresh() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_refresh_;
}

}  // namespace pgshift
