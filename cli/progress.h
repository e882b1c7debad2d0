// The backfill progress display of the CLI: a bar on a terminal (stderr),
// or one JSON event per line on stderr with --json.
#ifndef PGSHIFT_CLI_PROGRESS_H_
#define PGSHIFT_CLI_PROGRESS_H_

#include "pgshift/options.h"

namespace pgshift::cli {

// Returns a callback for Options::on_progress, or an empty one when nothing
// should be shown (stderr is not a terminal and json is false).
ProgressCallback MakeProgressReporter(bool json);

// Returns a callback for Options::on_preflight: one line on stderr per
// report ("pgshift: preflight ..."), or one JSON event per line with --json.
PreflightCallback MakePreflightReporter(bool json);

// Returns a callback for Options::on_migrate: one line on stderr per event
// ("pgshift: 0001_x: reached switched"), or one JSON event per line with --json.
MigrateCallback MakeMigrateReporter(bool json);

// Ends the progress bar's line on the terminal if a bar was left unfinished
// (a step that failed mid-backfill), so that what is printed next starts a
// line of its own. Nothing otherwise.
void EndProgressLine();

}  // namespace pgshift::cli

#endif  // PGSHIFT_CLI_PROGRESS_H_
