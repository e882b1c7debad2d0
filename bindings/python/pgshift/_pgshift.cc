// pgshift._pgshift: the compiled half of the Python binding. A thin layer over
// the C++ API (include/pgshift/): statuses, plans, directory and migrate
// reports, progress, preflight and migrate events come back as the JSON text of pgshift::ToJson (json.h, the one
// renderer the CLI and the C API use too), phases as their names, options go
// in through the library's option list (SetOption), and errors become
// pgshift.Error subclasses (through pgshift.errors._error_for). The Pythonic
// API, which builds its objects from that JSON, lives in pgshift/__init__.py.
//
// The GIL is released around every database call and re-acquired inside the
// callbacks. A driver is guarded by a mutex, so sharing one between Python
// threads serializes its calls instead of corrupting its connection.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cmath>
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

// A Status as a StatusOr, for Call().
absl::StatusOr<bool> Done(const absl::Status& s) {
  if (!s.ok()) return s;
  return true;
}

// The JSON of a result (json.h), or its error.
template <typename T>
absl::StatusOr<std::string> Json(const absl::StatusOr<T>& r) {
  if (!r.ok()) return r.status();
  return pgshift::ToJson(*r);
}

pgshift::Phase PhaseArg(const std::string& name) { return Value(pgshift::ParsePhase(name)); }

std::string PhaseStr(pgshift::Phase p) { return std::string(pgshift::PhaseName(p)); }

pgshift::Shape ShapeArg(const std::string& name) {
  if (name == pgshift::ShapeName(pgshift::Shape::kOld)) return pgshift::Shape::kOld;
  if (name == pgshift::ShapeName(pgshift::Shape::kNew)) return pgshift::Shape::kNew;
  Throw(absl::InvalidArgumentError("unknown shape \"" + name + "\"; shapes are: old, new"));
}

pgshift::InstanceOptions InstanceArgs(const std::optional<std::string>& instance_id,
                                      const std::string& description, double ttl_seconds,
                                      const std::string& control_schema) {
  if (!std::isfinite(ttl_seconds)) {
    Throw(absl::InvalidArgumentError("ttl must be a finite number of seconds"));
  }
  pgshift::InstanceOptions o;
  if (instance_id) o.instance_id = *instance_id;
  o.description = description;
  o.ttl = absl::Seconds(ttl_seconds);
  o.control_schema = control_schema;
  return o;
}

// The Python side of the progress, preflight and migrate-event callbacks.
// Shared (by shared_ptr, so that copying the Options never touches Python
// reference counts without the GIL) between the driver's Options and the
// wrapper.
struct CallbackSink {
  py::object progress;   // called with the progress JSON; None for no reports
  py::object preflight;  // called with the preflight JSON; None for no reports
  py::object migrate;    // called with the migrate event JSON; None for no events
  py::object error;      // first exception a callback raised
  py::object interrupt;  // the KeyboardInterrupt (or other signal handler's exception) that stopped a call
  ~CallbackSink() {
    py::gil_scoped_acquire gil;
    progress = py::object();
    preflight = py::object();
    migrate = py::object();
    error = py::object();
    interrupt = py::object();
  }

  // Options::interrupted: runs Python's signal handlers (on the main thread
  // only; elsewhere this is a no-op) and keeps the exception one raised,
  // SIGINT's KeyboardInterrupt, to raise once the call has stopped.
  bool Interrupted() {
    py::gil_scoped_acquire gil;
    if (interrupt) return true;
    if (PyErr_CheckSignals() == 0) return false;
    PyObject *type = nullptr, *value = nullptr, *trace = nullptr;
    PyErr_Fetch(&type, &value, &trace);
    PyErr_NormalizeException(&type, &value, &trace);
    if (value != nullptr && trace != nullptr) PyException_SetTraceback(value, trace);
    interrupt = py::reinterpret_steal<py::object>(value);
    Py_XDECREF(type);
    Py_XDECREF(trace);
    return true;
  }

  // Calls progress (which = &CallbackSink::progress), preflight or migrate
  // with `json`.
  void Report(py::object CallbackSink::*which, const std::string& json) {
    py::gil_scoped_acquire gil;
    py::object& callback = this->*which;
    if (!callback || callback.is_none() || error || interrupt) return;
    try {
      callback(json);
    } catch (py::error_already_set& e) {
      // Ctrl-C while the callback ran: the call stops (Interrupted).
      if (e.matches(PyExc_KeyboardInterrupt)) {
        if (!interrupt) interrupt = e.value();
        return;
      }
      // Exceptions cannot cross the C++ driver; keep the first one and raise
      // it once the call returns. The step itself goes on.
      error = e.value();
    }
  }
};

class PyDriver {
 public:
  PyDriver(const std::string& dsn, pgshift::Options options, py::object progress,
           py::object preflight, py::object migrate)
      : sink_(std::make_shared<CallbackSink>()) {
    sink_->progress = std::move(progress);
    sink_->preflight = std::move(preflight);
    sink_->migrate = std::move(migrate);
    std::shared_ptr<CallbackSink> sink = sink_;
    options.on_progress = [sink](const pgshift::Progress& p) {
      sink->Report(&CallbackSink::progress, pgshift::ToJson(p));
    };
    options.on_preflight = [sink](const pgshift::PreflightReport& r) {
      sink->Report(&CallbackSink::preflight, pgshift::ToJson(r));
    };
    options.on_migrate = [sink](const pgshift::MigrateEvent& e) {
      sink->Report(&CallbackSink::migrate, pgshift::ToJson(e));
    };
    options.interrupted = [sink] { return sink->Interrupted(); };
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
        s = absl::FailedPreconditionError("a pgshift.Driver cannot be closed from its own callback");
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
    Call([](pgshift::Driver& d) { return Done(d.Init()); });
  }

  std::string Plan(const pgshift::v1::Migration& m) {
    return Call([&m](pgshift::Driver& d) { return Json(d.PlanMigration(m)); });
  }

  std::string Register(const pgshift::v1::Migration& m) {
    return Call([&m](pgshift::Driver& d) { return Json(d.Register(m)); });
  }

  std::string Advance(const std::string& name, std::optional<std::string> to, py::object progress) {
    std::optional<pgshift::Phase> target;
    if (to) target = PhaseArg(*to);
    return CallWithProgress(progress,
                            [&](pgshift::Driver& d) { return Json(d.Advance(name, target)); });
  }

  std::string Rollback(const std::string& name, py::object progress) {
    return CallWithProgress(progress, [&](pgshift::Driver& d) { return Json(d.Rollback(name)); });
  }

  void Pause(const std::string& name) {
    Call([&](pgshift::Driver& d) { return Done(d.Pause(name)); });
  }

  void Resume(const std::string& name) {
    Call([&](pgshift::Driver& d) { return Done(d.Resume(name)); });
  }

  std::string Migrate(const std::string& dir, std::optional<std::string> to, bool contract,
                      bool allow_out_of_order, bool wait, py::object progress,
                      py::object on_event) {
    pgshift::MigrateOptions options;
    if (to) options.to = PhaseArg(*to);
    options.contract = contract;
    options.allow_out_of_order = allow_out_of_order;
    options.wait = wait;
    return CallWithProgress(
        progress, [&](pgshift::Driver& d) { return Json(d.Migrate(dir, options)); }, on_event);
  }

  std::string LintJson(const std::string& sql, const std::string& origin, bool other_runner) {
    pgshift::LintOptions options;
    options.other_runner = other_runner;
    return Call([&](pgshift::Driver& d) { return Json(d.Lint(sql, origin, options)); });
  }

  pgshift::v1::Migration ConvertSql(const std::string& sql, const std::string& origin, const std::string& name) {
    return Call([&](pgshift::Driver& d) { return d.ConvertSql(sql, origin, name); });
  }

  std::string DirectoryStatus(const std::string& dir) {
    return Call([&](pgshift::Driver& d) { return Json(d.DirectoryStatus(dir)); });
  }

  std::string Baseline(const std::string& dir, const std::string& through, py::object on_event) {
    return CallWithProgress(
        py::none(), [&](pgshift::Driver& d) { return Json(d.Baseline(dir, through)); }, on_event);
  }

  std::string Status(const std::string& name) {
    return Call([&](pgshift::Driver& d) { return Json(d.Status(name)); });
  }

  std::string List() {
    return Call([](pgshift::Driver& d) { return Json(d.List()); });
  }

  std::string CurrentPhase(const std::string& name) {
    return PhaseStr(Call([&](pgshift::Driver& d) { return d.CurrentPhase(name); }));
  }

  void RequirePhase(const std::string& name, const std::string& at_least) {
    pgshift::Phase p = PhaseArg(at_least);
    Call([&](pgshift::Driver& d) { return Done(d.RequirePhase(name, p)); });
  }

 private:
  // Runs `fn` on the driver under mu_ (called without the GIL). A call from
  // the driver's own callback would deadlock: it is refused.
  template <typename Fn>
  auto Locked(Fn& fn) -> decltype(fn(std::declval<pgshift::Driver&>())) {
    if (owner_.load() == std::this_thread::get_id()) {
      return absl::FailedPreconditionError(
          "a pgshift.Driver cannot be used from its own progress, preflight or migrate-event "
          "callback; use another Driver");
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

  // As Call, reporting progress to `progress` and migrate events to
  // `on_event` (None: the driver's defaults) and re-raising what a callback
  // raised once the call is over.
  template <typename Fn>
  auto CallWithProgress(py::object progress, Fn fn, py::object on_event = py::none())
      -> typename decltype(fn(std::declval<pgshift::Driver&>()))::value_type {
    // The per-call callbacks are installed and removed while mu_ is held, so
    // a concurrent call on this driver (waiting for mu_) never sees them.
    py::object saved, saved_migrate, error;
    auto with_callback = [&](pgshift::Driver& d) {
      {
        py::gil_scoped_acquire gil;
        saved = sink_->progress;
        saved_migrate = sink_->migrate;
        if (!progress.is_none()) sink_->progress = progress;
        if (!on_event.is_none()) sink_->migrate = on_event;
        sink_->error = py::object();
        sink_->interrupt = py::object();
      }
      auto result = fn(d);
      {
        py::gil_scoped_acquire gil;
        sink_->progress = saved;
        sink_->migrate = saved_migrate;
        // Ctrl-C stopped the call: that is what the caller sees.
        error = sink_->interrupt ? sink_->interrupt : sink_->error;
        sink_->error = py::object();
        sink_->interrupt = py::object();
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

  std::mutex mu_;
  std::atomic<std::thread::id> owner_{};
  std::unique_ptr<pgshift::Driver> driver_;
  std::shared_ptr<CallbackSink> sink_;
};

// An InstanceRegistration whose destruction (a join and a round trip) runs
// without the GIL.
class PyRegistration {
 public:
  explicit PyRegistration(std::unique_ptr<pgshift::InstanceRegistration> r)
      : id_(r->instance_id()), reg_(std::move(r)) {}
  ~PyRegistration() { Close(); }

  void Close() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    reg_.reset();
  }

  bool closed() {
    std::lock_guard<std::mutex> lock(mu_);
    return reg_ == nullptr;
  }

  const std::string& instance_id() const { return id_; }

  void CheckLastRefresh() {
    absl::Status s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      s = reg_ ? reg_->last_refresh() : absl::OkStatus();
    }
    Check(s);
  }

 private:
  const std::string id_;
  std::mutex mu_;
  std::unique_ptr<pgshift::InstanceRegistration> reg_;
};

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
      // A message may quote a file or path that is not UTF-8: such bytes
      // become U+FFFD, as in the CLI's JSON, never a UnicodeDecodeError.
      const absl::string_view message = e.status.message();
      PyObject* text = PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace");
      if (text == nullptr) throw py::error_already_set();
      py::object exc = raise_for(static_cast<int>(e.status.code()), py::reinterpret_steal<py::str>(text),
                                 pgshift::SqlState(e.status));
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
  m.def(
      "lint_json",
      [](const std::string& sql, const std::string& origin, bool other_runner) {
        pgshift::LintOptions options;
        options.other_runner = other_runner;
        return Value(Json(pgshift::LintSql(sql, origin, options)));
      },
      py::arg("sql"), py::arg("origin"), py::arg("other_runner"));
  m.def(
      "convert_sql",
      [](const std::string& sql, const std::string& origin, const std::string& name) {
        return Value(pgshift::ConvertSql(sql, origin, name));
      },
      py::arg("sql"), py::arg("origin"), py::arg("name"));

  // pgshift::OptionList(): what every surface's options are built from.
  m.def("option_list", []() {
    py::list out;
    for (const pgshift::OptionInfo& o : pgshift::OptionList()) {
      py::dict d;
      d["name"] = o.name;
      d["flag"] = o.flag;
      d["kind"] = o.kind;
      d["help"] = o.help;
      py::list choices;
      for (const char* c : o.choices) choices.append(c);
      d["choices"] = choices;
      out.append(d);
    }
    return out;
  });

  // pgshift::Options, set and read in the text form (SetOption, GetOption).
  py::class_<pgshift::Options>(m, "Options")
      .def(py::init<>())
      .def(py::init<const pgshift::Options&>())
      .def(
          "set",
          [](pgshift::Options& o, const std::string& name, const std::string& value) {
            Check(pgshift::SetOption(o, name, value));
          },
          py::arg("name"), py::arg("value"))
      .def(
          "get",
          [](const pgshift::Options& o, const std::string& name) {
            return Value(pgshift::GetOption(o, name));
          },
          py::arg("name"));

  py::class_<PyDriver>(m, "Driver")
      .def(py::init([](const std::string& dsn, const pgshift::Options& options, py::object progress,
                       py::object preflight, py::object migrate) {
             return std::make_unique<PyDriver>(dsn, options, std::move(progress),
                                               std::move(preflight), std::move(migrate));
           }),
           py::arg("dsn"), py::arg("options"), py::arg("progress") = py::none(),
           py::arg("preflight") = py::none(), py::arg("migrate") = py::none())
      .def("close", &PyDriver::Close)
      .def_property_readonly("closed", &PyDriver::closed)
      .def_property_readonly("server_version", &PyDriver::server_version)
      .def("init", &PyDriver::Init)
      .def("plan", &PyDriver::Plan, py::arg("migration"))
      .def("register", &PyDriver::Register, py::arg("migration"))
      .def("advance", &PyDriver::Advance, py::arg("name"), py::arg("to") = py::none(),
           py::arg("progress") = py::none())
      .def("rollback", &PyDriver::Rollback, py::arg("name"), py::arg("progress") = py::none())
      .def("pause", &PyDriver::Pause, py::arg("name"))
      .def("resume", &PyDriver::Resume, py::arg("name"))
      .def("migrate", &PyDriver::Migrate, py::arg("directory"), py::arg("to") = py::none(),
           py::arg("contract") = false, py::arg("allow_out_of_order") = false,
           py::arg("wait") = true, py::arg("progress") = py::none(),
           py::arg("on_event") = py::none())
      .def("directory_status", &PyDriver::DirectoryStatus, py::arg("directory"))
      .def("lint_json", &PyDriver::LintJson, py::arg("sql"), py::arg("origin"), py::arg("other_runner"))
      .def("convert_sql", &PyDriver::ConvertSql, py::arg("sql"), py::arg("origin"), py::arg("name"))
      .def("baseline", &PyDriver::Baseline, py::arg("directory"), py::arg("through"),
           py::arg("on_event") = py::none())
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

  m.def(
      "declare_instance",
      [](const std::string& dsn, const std::string& migration, const std::string& shape,
         std::optional<std::string> instance_id, const std::string& description, double ttl,
         const std::string& control_schema) {
        pgshift::Shape sh = ShapeArg(shape);
        pgshift::InstanceOptions o = InstanceArgs(instance_id, description, ttl, control_schema);
        absl::Status s;
        {
          py::gil_scoped_release release;
          s = pgshift::DeclareInstance(dsn, migration, sh, o);
        }
        Check(s);
      },
      py::arg("dsn"), py::arg("migration"), py::arg("shape"), py::arg("instance_id"),
      py::arg("description"), py::arg("ttl"), py::arg("control_schema"));
  m.def(
      "withdraw_instance",
      [](const std::string& dsn, const std::string& migration, const std::string& instance_id,
         const std::string& control_schema) {
        absl::Status s;
        {
          py::gil_scoped_release release;
          s = pgshift::WithdrawInstance(dsn, migration, instance_id, control_schema);
        }
        Check(s);
      },
      py::arg("dsn"), py::arg("migration"), py::arg("instance_id"), py::arg("control_schema"));

  py::class_<PyRegistration>(m, "InstanceRegistration")
      .def(py::init([](const std::string& dsn, const std::string& migration,
                       const std::string& shape, std::optional<std::string> instance_id,
                       const std::string& description, double ttl,
                       const std::string& control_schema) {
             pgshift::Shape sh = ShapeArg(shape);
             pgshift::InstanceOptions o =
                 InstanceArgs(instance_id, description, ttl, control_schema);
             absl::StatusOr<std::unique_ptr<pgshift::InstanceRegistration>> r;
             {
               py::gil_scoped_release release;
               r = pgshift::InstanceRegistration::Start(dsn, migration, sh, std::move(o));
             }
             return std::make_unique<PyRegistration>(Value(std::move(r)));
           }),
           py::arg("dsn"), py::arg("migration"), py::arg("shape"), py::arg("instance_id"),
           py::arg("description"), py::arg("ttl"), py::arg("control_schema"))
      .def_property_readonly("instance_id", &PyRegistration::instance_id)
      .def_property_readonly("closed", &PyRegistration::closed)
      .def("check_last_refresh", &PyRegistration::CheckLastRefresh)
      .def("close", &PyRegistration::Close);

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
