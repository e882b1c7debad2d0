#include "cli/progress.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pgshift/json.h"

namespace pgshift::cli {

namespace {

std::string Eta(double seconds) {
  if (seconds < 0) return "--";
  int s = static_cast<int>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

// Whether the terminal's cursor sits at the end of an unfinished bar.
std::atomic<bool> bar_open{false};

}  // namespace

void EndProgressLine() {
  if (bar_open.exchange(false)) {
    std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }
}

ProgressCallback MakeProgressReporter(bool json) {
  if (json) {
    return [](const Progress& p) { std::fprintf(stderr, "%s\n", ToJson(p).c_str()); };
  }
  if (!isatty(STDERR_FILENO)) return nullptr;
  return [](const Progress& p) {
    const int width = 30;
    double frac = p.rows_estimate > 0 ? static_cast<double>(p.rows_done) / p.rows_estimate : 0;
    if (p.finished) frac = 1;
    if (frac > 1) frac = 1;
    int filled = static_cast<int>(frac * width);
    std::string bar(filled, '#');
    bar.append(width - filled, '.');
    std::string state;
    if (p.waiting == "latency") {
      // Working, but resting between batches: say how much and why.
      state = absl::StrFormat("ETA %s, held back: pace %.0f%% (probe %.2f ms working vs %.2f ms at rest)",
                              Eta(p.eta_seconds), p.pace * 100, p.probe_working_ms, p.probe_resting_ms);
    } else if (p.waiting.empty()) {
      state = absl::StrFormat("ETA %s", Eta(p.eta_seconds));
      if (p.pace < 1) state += absl::StrFormat(", pace %.0f%%", p.pace * 100);
    } else {
      state = absl::StrFormat("waiting: %s", p.waiting);
    }
    // \033[K clears what a longer previous line left behind. "~": the
    // total is an estimate.
    std::fprintf(stderr, "\r  backfill op %d [%s] %3.0f%% %lld/%s%lld rows  %.0f rows/s  %s\033[K",
                 p.operation, bar.c_str(), frac * 100, static_cast<long long>(p.rows_done),
                 p.rows_estimated ? "~" : "", static_cast<long long>(p.rows_estimate),
                 p.rows_per_second, state.c_str());
    if (p.finished) std::fprintf(stderr, "\n");
    bar_open = !p.finished;
    std::fflush(stderr);
  };
}

PreflightCallback MakePreflightReporter(bool json) {
  if (json) {
    return [](const PreflightReport& r) { std::fprintf(stderr, "%s\n", ToJson(r).c_str()); };
  }
  return [](const PreflightReport& r) {
    std::string line;
    if (r.outcome == "cleared") {
      line = absl::StrCat("pgshift: preflight before ", r.step, " on ", r.table,
                          ": the long transactions are gone; going on");
    } else {
      line = absl::StrCat("pgshift: preflight before ", r.step, " on ", r.table, ": ",
                          r.sessions.size(), " session(s) with long transactions on the table (",
                          r.outcome, "): ", DescribeSessions(r.sessions));
    }
    EndProgressLine();
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  };
}

MigrateCallback MakeMigrateReporter(bool json) {
  if (json) return [](const MigrateEvent& e) { std::fprintf(stderr, "%s\n", ToJson(e).c_str()); };
  return [](const MigrateEvent& e) {
    // A file with nothing to do is not news: only --json reports it. But a
    // rolled-back file that baseline leaves pending is.
    if (e.action == "skip" && e.phase != PhaseName(Phase::kRolledBack)) return;
    std::string what;
    if (e.action == "skip") what = "left as it is";
    else if (e.action == "register") what = "registered";
    else if (e.action == "advance") what = absl::StrCat("advancing to ", e.phase);
    else if (e.action == "reached") what = absl::StrCat("reached ", e.phase);
    else if (e.action == "contract") what = "contracting";
    else if (e.action == "baseline") what = "recorded as applied (baselined), not run";
    else if (e.action == "stop") what = "stopped";
    else what = e.action;  // waiting, locked: the message says it all
    std::string line = absl::StrCat("pgshift: ", e.migration.empty() ? "" : absl::StrCat(e.migration, ": "), what);
    // A stop's message is the error (or reason) printed after the events.
    if (!e.message.empty() && e.action != "stop") {
      absl::StrAppend(&line, " (", e.message, ")");
    }
    EndProgressLine();
    std::fprintf(stderr, "%s\n", line.c_str());
  };
}

}  // namespace pgshift::cli
