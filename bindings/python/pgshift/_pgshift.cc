// pgshift._pgshift: the compiled half of the Python binding. A thin layer over
// the C++ API (include/pgshift/): statuses and plans come back as dicts,
// phases as their names, errors as pgshift.Error subclasses (raised through
// pgshift.errors._raise_for). The Pythonic API lives in pgshift/__init__.py.
//
// The GIL is released around every database call and re-acquired inside the
// progress callback. A driver is guarded by a mutex, so sharing one between
// Python threads serializes its calls instead of corrupting its connection.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pgshift/pgshift.h"

namespace py = pybind11;

namespace {

// A non-OK status on its way to Python; translated into the pgshift.Error
// subclass for its code by the translator registered in the module init.
struct StatusError {
  absl::Status status;
};

[[noreturn]] void Throw(const absl::Status& s) { throw StatusError{s}; }

void Check(const absl::Status& s) {
  if (!s.ok()) Throw(s);
}

template <typename T>
T Value(absl::StatusOr<T> r) {
  if (!r.ok()) Throw(r.status());
  return std::move(*r);
}

pgshift::Phase PhaseArg(const std::string& name) { return Value(pgshift::ParsePhase(name)); }

std::string PhaseStr(pgshift::Phase p) { return std::string(pgshift::PhaseName(p)); }

absl::Duration Seconds(double s) {
  if (!(s >= 0)) Throw(absl::InvalidArgumentError("durations must be non-negative seconds"));
  return absl::Seconds(s);
}

py::object OptionalStr(const std::string& s) {
  if (s.empty()) return py::none();
  return py::str(s);
}

py::dict StatusDict(const pgshift::MigrationStatus& m) {
  py::list backfill;
  for (const auto& b : m.backfill) {
    py::dict d;
    d["operation"] = b.operation;
    d["rows_done"] = b.rows_done;
    d["rows_estimate"] = b.rows_estimate;
    d["done"] = b.done;
    backfill.append(d);
  }
  py::dict d;
  d["name"] = m.name;
  d["phase"] = PhaseStr(m.phase);
  d["checksum"] = m.checksum;
  d["created_at"] = m.created_at;
  d["updated_at"] = m.updated_at;
  d["last_error"] = OptionalStr(m.last_error);
  d["running_step"] = OptionalStr(m.running_step);
  d["backfill"] = backfill;
  return d;
}

py::list StepsList(const std::vector<pgshift::PlannedStep>& steps) {
  py::list out;
  for (const auto& s : steps) {
    py::list stmts;
    for (const auto& st : s.statements) {
      py::dict d;
      d["sql"] = st.sql;
      d["lock"] = st.lock;
      d["transactional"] = st.transactional;
      d["scans_table"] = st.scans_table;
      d["rewrites_table"] = st.rewrites_table;
      d["batched"] = st.batched;
      d["note"] = st.note;
      stmts.append(d);
    }
    py::dict d;
    d["to"] = PhaseStr(s.to);
    d["operation"] = s.operation;
    d["rows_estimate"] = s.rows_estimate;
    d["hazards"] = s.hazards;
    d["statements"] = stmts;
    out.append(d);
  }
  return out;
}

py::dict PlanDict(const pgshift::Plan& plan) {
  py::dict d;
  d["migration"] = plan.migration;
  d["server_version"] = plan.server_version;
  d["steps"] = StepsList(plan.steps);
  d["rollback"] = StepsList(plan.rollback);
  return d;
}

// The Python side of the progress callback. Shared (by shared_ptr, so that
// copying the Options never touches Python reference counts without the
// GIL) between the driver's Options and the wrapper.
struct ProgressSink {
  py::object callback;          // called with a dict; None for no reports
  py::object error;             // first exception the callback raised
  ~ProgressSink() {
    py::gil_scoped_acquire gil;
    callback = py::object();
    error = py::object();
  }

  void Report(const pgshift::Progress& p) {
    py::gil_scoped_acquire gil;
    if (!callback || callback.is_none() || error) return;
    py::dict d;
    d["migration"] = p.migration;
    d["operation"] = p.operation;
    d["step"] = p.step;
    d["rows_done"] = p.rows_done;
    d["rows_estimate"] = p.rows_estimate;
    d["rows_per_second"] = p.rows_per_second;
    d["eta_seconds"] = p.eta_seconds;
    d["finished"] = p.finished;
    try {
      callback(d);
    } catch (py::error_already_set& e) {
      // Exceptions cannot cross the C++ driver; keep the first one and raise
      // it once the call returns. The step itself goes on.
      error = e.value();
    }
  }
};

class PyDriver {
 public:
  PyDriver(const std::string& dsn, pgshift::Options options)
      : sink_(std::make_shared<ProgressSink>()) {
    std::shared_ptr<ProgressSink> sink = sink_;
    options.on_progress = [sink](const pgshift::Progress& p) { sink->Report(p); };
    absl::StatusOr<std::unique_ptr<pgshift::Driver>> d;
    {
      py::gil_scoped_release release;
      d = pgshift::Driver::Connect(dsn, std::move(options));
    }
    driver_ = Value(std::move(d));
  }

  ~PyDriver() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    driver_.reset();
  }

  void Close() {
    absl::Status s;
    {
      py::gil_scoped_release release;
      if (owner_.load() == std::this_thread::get_id()) {
        s = absl::FailedPreconditionError("a pgshift.Driver cannot be closed from its own progress callback");
      } else {
        std::lock_guard<std::mutex> lock(mu_);
        driver_.reset();
      }
    }
    Check(s);
  }

  bool closed() {
    py::gil_scoped_release release;
    if (owner_.load() == std::this_thread::get_id()) return false;  // inside a call
    std::lock_guard<std::mutex> lock(mu_);
    return driver_ == nullptr;
  }

  int server_version() {
    return Call([](pgshift::Driver& d) -> absl::StatusOr<int> { return d.server_version(); });
  }

  void Init() {
    Call([](pgshift::Driver& d) -> absl::StatusOr<bool> {
      absl::Status s = d.Init();
      if (!s.ok()) return s;
      return true;
    });
  }

  py::dict Plan(const pgshift::v1::Migration& m) {
    return PlanDict(Call([&m](pgshift::Driver& d) { return d.PlanMigration(m); }));
  }

  py::dict Register(const pgshift::v1::Migration& m) {
    return StatusDict(Call([&m](pgshift::Driver& d) { return d.Register(m); }));
  }

  py::dict Advance(const std::string& name, std::optional<std::string> to, py::object progress) {
    std::optional<pgshift::Phase> target;
    if (to) target = PhaseArg(*to);
    return StatusDict(
        CallWithProgress(progress, [&](pgshift::Driver& d) { return d.Advance(name, target); }));
  }

  py::dict Rollback(const std::string& name, py::object progress) {
    return StatusDict(CallWithProgress(progress, [&](pgshift::Driver& d) { return d.Rollback(name); }));
  }

  py::dict Status(const std::string& name) {
    return StatusDict(Call([&](pgshift::Driver& d) { return d.Status(name); }));
  }

  py::list List() {
    std::vector<pgshift::MigrationStatus> all = Call([](pgshift::Driver& d) { return d.List(); });
    py::list out;
    for (const auto& m : all) out.append(StatusDict(m));
    return out;
  }

  std::string CurrentPhase(const std::string& name) {
    return PhaseStr(Call([&](pgshift::Driver& d) { return d.CurrentPhase(name); }));
  }

  void RequirePhase(const std::string& name, const std::string& at_least) {
    pgshift::Phase p = PhaseArg(at_least);
    Call([&](pgshift::Driver& d) -> absl::StatusOr<bool> {
      absl::Status s = d.RequirePhase(name, p);
      if (!s.ok()) return s;
      return true;
    });
  }

 private:
  // Runs `fn` on the driver under mu_ (called without the GIL). A call from
  // the driver's own progress callback would deadlock: it is refused.
  template <typename Fn>
  auto Locked(Fn& fn) -> decltype(fn(std::declval<pgshift::Driver&>())) {
    if (owner_.load() == std::this_thread::get_id()) {
      return absl::FailedPreconditionError(
          "a pgshift.Driver cannot be used from its own progress callback; use another Driver");
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (driver_ == nullptr) {
      return absl::FailedPreconditionError("this pgshift.Driver is closed; create a new one");
    }
    owner_.store(std::this_thread::get_id());
    auto r = fn(*driver_);
    owner_.store(std::thread::id());
    return r;
  }

  // Runs `fn` on the driver without the GIL, one call at a time.
  template <typename Fn>
  auto Call(Fn fn) -> typename decltype(fn(std::declval<pgshift::Driver&>()))::value_type {
    decltype(fn(std::declval<pgshift::Driver&>())) r = absl::UnknownError("not run");
    {
      py::gil_scoped_release release;
      r = Locked(fn);
    }
    return Value(std::move(r));
  }

  // As Call, reporting progress to `progress` (None: the driver's default)
  // and re-raising what the callback raised once the call is over.
  template <typename Fn>
  auto CallWithProgress(py::object progress, Fn fn)
      -> typename decltype(fn(std::declval<pgshift::Driver&>()))::value_type {
    // The per-call callback is installed and removed while mu_ is held, so
    // a concurrent call on this driver (waiting for mu_) never sees it.
    py::object saved, error;
    auto with_callback = [&](pgshift::Driver& d) {
      {
        py::gil_scoped_acquire gil;
        saved = sink_->callback;
        if (!progress.is_none()) sink_->callback = progress;
        sink_->error = py::object();
      }
      auto result = fn(d);
      {
        py::gil_scoped_acquire gil;
        sink_->callback = saved;
        error = sink_->error;
        sink_->error = py::object();
      }
      return result;
    };
    decltype(fn(std::declval<pgshift::Driver&>())) r = absl::UnknownError("not run");
    {
      py::gil_scoped_release release;
      r = Locked(with_callback);
    }
    if (error) {
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
      throw py::error_already_set();
    }
    return Value(std::move(r));
  }

 public:
  void SetDefaultProgress(py::object cb) { sink_->callback = std::move(cb); }

 private:
  std::mutex mu_;
  std::atomic<std::thread::id> owner_{};
  std::unique_ptr<pgshift::Driver> driver_;
  std::shared_ptr<ProgressSink> sink_;
};

pgshift::Options MakeOptions(const py::dict& kw) {
  pgshift::Options o;
  for (auto item : kw) {
    std::string key = py::cast<std::string>(item.first);
    py::handle v = item.second;
    if (key == "control_schema") {
      o.control_schema = py::cast<std::string>(v);
    } else if (key == "driver_name") {
      o.driver_name = py::cast<std::string>(v);
    } else if (key == "lock_timeout") {
      o.lock_timeout = Seconds(py::cast<double>(v));
    } else if (key == "statement_timeout") {
      o.statement_timeout = Seconds(py::cast<double>(v));
    } else if (key == "long_statement_timeout") {
      o.long_statement_timeout = Seconds(py::cast<double>(v));
    } else if (key == "retry_initial_backoff") {
      o.retry_initial_backoff = Seconds(py::cast<double>(v));
    } else if (key == "retry_max_backoff") {
      o.retry_max_backoff = Seconds(py::cast<double>(v));
    } else if (key == "retry_deadline") {
      o.retry_deadline = Seconds(py::cast<double>(v));
    } else if (key == "backfill_target_batch_time") {
      o.backfill_target_batch_time = Seconds(py::cast<double>(v));
    } else if (key == "backfill_batch_delay") {
      o.backfill_batch_delay = Seconds(py::cast<double>(v));
    } else if (key == "max_replication_lag") {
      o.max_replication_lag = Seconds(py::cast<double>(v));
    } else if (key == "backfill_batch_rows") {
      o.backfill_batch_rows = py::cast<int64_t>(v);
    } else if (key == "backfill_min_batch_rows") {
      o.backfill_min_batch_rows = py::cast<int64_t>(v);
    } else if (key == "backfill_max_batch_rows") {
      o.backfill_max_batch_rows = py::cast<int64_t>(v);
    } else if (key == "backfill_max_batches") {
      o.backfill_max_batches = py::cast<int64_t>(v);
    } else {
      throw py::type_error("unknown pgshift option \"" + key + "\"");
    }
  }
  return o;
}

pgshift::v1::Migration ParseSpec(const std::string& json, const std::string& origin) {
  return Value(pgshift::ParseMigrationJson(json, origin));
}

pgshift::v1::Migration LoadSpec(const std::string& path) {
  absl::StatusOr<pgshift::v1::Migration> m;
  {
    py::gil_scoped_release release;
    m = pgshift::LoadMigrationFile(path);
  }
  return Value(std::move(m));
}

}  // namespace

PYBIND11_MODULE(_pgshift, m) {
  m.doc() = "Compiled core of the pgshift Python binding; use the pgshift package.";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      py::object raise_for = py::module_::import("pgshift.errors").attr("_error_for");
      py::object exc = raise_for(static_cast<int>(e.status.code()),
                                 std::string(e.status.message()), pgshift::SqlState(e.status));
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });

  // A parsed, validated migration spec (pgshift.v1.Migration).
  py::class_<pgshift::v1::Migration>(m, "Migration")
      .def_property_readonly("name", [](const pgshift::v1::Migration& s) { return s.name(); })
      .def_property_readonly("schema", [](const pgshift::v1::Migration& s) { return s.schema(); })
      .def_property_readonly("operation_count",
                             [](const pgshift::v1::Migration& s) { return s.operations_size(); })
      .def("canonical_json", [](const pgshift::v1::Migration& s) { return pgshift::CanonicalJson(s); });

  m.def("parse_migration", &ParseSpec, py::arg("json"), py::arg("origin") = "migration");
  m.def("load_migration", &LoadSpec, py::arg("path"));

  py::class_<PyDriver>(m, "Driver")
      .def(py::init([](const std::string& dsn, const py::dict& options, py::object progress) {
             auto d = std::make_unique<PyDriver>(dsn, MakeOptions(options));
             d->SetDefaultProgress(std::move(progress));
             return d;
           }),
           py::arg("dsn"), py::arg("options"), py::arg("progress") = py::none())
      .def("close", &PyDriver::Close)
      .def_property_readonly("closed", &PyDriver::closed)
      .def_property_readonly("server_version", &PyDriver::server_version)
      .def("init", &PyDriver::Init)
      .def("plan", &PyDriver::Plan, py::arg("migration"))
      .def("register", &PyDriver::Register, py::arg("migration"))
      .def("advance", &PyDriver::Advance, py::arg("name"), py::arg("to") = py::none(),
           py::arg("progress") = py::none())
      .def("rollback", &PyDriver::Rollback, py::arg("name"), py::arg("progress") = py::none())
      .def("status", &PyDriver::Status, py::arg("name"))
      .def("list", &PyDriver::List)
      .def("current_phase", &PyDriver::CurrentPhase, py::arg("name"))
      .def("require_phase", &PyDriver::RequirePhase, py::arg("name"), py::arg("at_least"));

  m.def(
      "current_phase",
      [](const std::string& dsn, const std::string& name, const std::string& control_schema) {
        absl::StatusOr<pgshift::Phase> p;
        {
          py::gil_scoped_release release;
          p = pgshift::CurrentPhase(dsn, name, control_schema);
        }
        return PhaseStr(Value(std::move(p)));
      },
      py::arg("dsn"), py::arg("name"), py::arg("control_schema") = "pgshift");
  m.def(
      "require_phase",
      [](const std::string& dsn, const std::string& name, const std::string& at_least,
         const std::string& control_schema) {
        pgshift::Phase p = PhaseArg(at_least);
        absl::Status s;
        {
          py::gil_scoped_release release;
          s = pgshift::RequirePhase(dsn, name, p, control_schema);
        }
        Check(s);
      },
      py::arg("dsn"), py::arg("name"), py::arg("at_least"), py::arg("control_schema") = "pgshift");
  m.def("phase_names", []() {
    std::vector<std::string> out;
    for (int i = 0; i <= static_cast<int>(pgshift::Phase::kRolledBack); ++i) {
      out.push_back(PhaseStr(static_cast<pgshift::Phase>(i)));
    }
    return out;
  });
  m.def(
      "exit_code_for",
      [](int code) {
        if (code < 0 || code > 16) code = 2;
        return pgshift::ExitCodeFor(
            absl::Status(static_cast<absl::StatusCode>(code), code == 0 ? "" : "error"));
      },
      py::arg("code"));
}
