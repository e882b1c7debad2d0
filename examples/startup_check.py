#!/usr/bin/env python3
"""Application startup check in Python: refuse to start when the schema is
not ready for this version of the application.

    startup_check.py --dsn DSN --migration NAME --needs PHASE

A new application version that reads `full_name` needs migration
0042_rename_users_name at least at `switched`; it calls
pgshift.require_phase() once at startup (one round trip) and exits before
serving anything when the migration has not got there.

Exit codes (the same in startup_check.cc and startup_check.c):
  0  schema ready, the application starts
  3  schema not ready for this version (phase too low, or not registered)
  1  the check itself failed (server unreachable, ...)
  2  bad usage
"""

import argparse
import os
import sys

import pgshift


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default=os.environ.get("PGSHIFT_DSN"),
                    help="libpq connection string (default $PGSHIFT_DSN, then PG* env)")
    ap.add_argument("--migration", required=True, help="migration this version depends on")
    ap.add_argument("--needs", required=True, help="phase this version needs, e.g. switched")
    args = ap.parse_args()

    try:
        pgshift.require_phase(args.dsn, args.migration, at_least=args.needs)
    except (pgshift.FailedPreconditionError, pgshift.NotFoundError) as e:
        print(f"refusing to start: the schema is not ready for this version: {e}",
              file=sys.stderr)
        return 3
    except pgshift.InvalidArgumentError as e:
        print(f"startup_check: {e}", file=sys.stderr)
        return 2
    except pgshift.Error as e:
        print(f"refusing to start: cannot check the schema ({e.code.name}): {e}",
              file=sys.stderr)
        return 1

    print(f"schema ready: {args.migration} has reached {args.needs}; starting")
    # ... the application would start serving here ...
    return 0


if __name__ == "__main__":
    sys.exit(main())
