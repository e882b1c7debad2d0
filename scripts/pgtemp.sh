#!/usr/bin/env bash
# pgtemp.sh - throwaway PostgreSQL clusters for tests and demos.
#
# CLI:
#   scripts/pgtemp.sh start DIR   create + start a cluster in DIR (must be absent
#                                 or empty); prints its DSN on stdout (and
#                                 nothing else) and writes it to DIR/dsn
#   scripts/pgtemp.sh stop DIR    stop it (immediate shutdown) and remove DIR
#
# Library (source this file; it does not change shell options):
#   pgtemp_start DIR    same as the CLI command (DSN on stdout)
#   pgtemp_stop DIR     same as the CLI command
#   pgtemp_bindir       print the directory holding initdb/pg_ctl
#
# Layout of DIR:  .pgtemp (marker)  data/ (PGDATA)  sock/ (unix socket)
#                 log (initdb + server log)  dsn  port
#
# The server listens only on 127.0.0.1 on the first free port from 55432
# upward (PGTEMP_BASE_PORT overrides the start).  The superuser is `postgres`,
# authentication is `trust`.  When run as root, initdb/pg_ctl/postgres run as
# the `postgres` OS user and DIR is chowned to it.
#
# Environment:
#   PGTEMP_BINDIR     directory with initdb/pg_ctl (default: PATH, else the
#                     highest /usr/lib/postgresql/*/bin)
#   PGTEMP_BASE_PORT  first port to try (default 55432)
#   PGTEMP_WATCH_PID  if set at start, a detached watchdog stops the cluster
#                     and removes DIR once that process has exited (safety
#                     net against leaked clusters when the owner is killed)

_pgtemp_err() { echo "pgtemp: $*" >&2; }

# Prints the directory containing initdb and pg_ctl.
pgtemp_bindir() {
  if [[ -n "${PGTEMP_BINDIR:-}" ]]; then
    if [[ -x "$PGTEMP_BINDIR/initdb" && -x "$PGTEMP_BINDIR/pg_ctl" ]]; then
      printf '%s\n' "$PGTEMP_BINDIR"
      return 0
    fi
    _pgtemp_err "PGTEMP_BINDIR=$PGTEMP_BINDIR has no initdb/pg_ctl"
    return 1
  fi
  local initdb pg_ctl
  initdb="$(command -v initdb 2>/dev/null || true)"
  pg_ctl="$(command -v pg_ctl 2>/dev/null || true)"
  if [[ -n "$initdb" && -n "$pg_ctl" ]]; then
    # Resolve symlinks (e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin)
    # so that initdb, pg_ctl and postgres all come from the same installation.
    local real
    real="$(readlink -f "$initdb" 2>/dev/null || printf '%s' "$initdb")"
    if [[ -x "$(dirname "$real")/pg_ctl" ]]; then
      dirname "$real"
    else
      dirname "$initdb"
    fi
    return 0
  fi
  local dir best=""
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      best="$dir"
    fi
  done
  if [[ -z "$best" ]]; then
    _pgtemp_err "cannot find initdb/pg_ctl (install postgresql, e.g. scripts/deps.sh)"
    return 1
  fi
  printf '%s\n' "$best"
}

# Runs a command as the cluster owner: `postgres` when we are root, else us.
# Runs from DIR (first argument) so the server never sees an unreadable cwd.
_pgtemp_as_owner() {
  local dir="$1"
  shift
  if [[ "$(id -u)" -eq 0 ]]; then
    (cd "$dir" && runuser -u postgres -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

# Closes every file descriptor above 2 of the current (sub)shell, so that a
# long-lived server/watchdog started from it does not keep the caller's pipes
# or lock files open.  Only call it in a subshell that then execs.
_pgtemp_close_fds() {
  local fd n
  for fd in /proc/"$BASHPID"/fd/*; do
    n="${fd##*/}"
    [[ "$n" =~ ^[0-9]+$ ]] || continue
    ((n > 2)) || continue
    eval "exec $n>&-" 2>/dev/null || true
  done
}

# True when nothing listens on TCP port $1 (any address).
_pgtemp_port_free() {
  local port="$1"
  if command -v ss >/dev/null 2>&1; then
    local out
    out="$(ss -Htln "( sport = :$port )" 2>/dev/null)" || return 1
    [[ -z "$out" ]] || return 1
  fi
  # Belt and braces (and the only check when ss is missing).
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    return 1
  fi
  return 0
}

# Prints the absolute form of $1 (which need not exist).
_pgtemp_abspath() {
  local p="$1"
  [[ "$p" == /* ]] || p="$PWD/$p"
  # Strip trailing slashes (but keep "/").
  while [[ "$p" == */ && "$p" != "/" ]]; do p="${p%/}"; done
  printf '%s\n' "$p"
}

pgtemp_start() {
  if [[ $# -ne 1 || -z "$1" ]]; then
    _pgtemp_err "usage: pgtemp_start DIR"
    return 2
  fi
  local dir
  dir="$(_pgtemp_abspath "$1")"
  if [[ -e "$dir" && ! -d "$dir" ]]; then
    _pgtemp_err "$dir exists and is not a directory"
    return 1
  fi
  if [[ -d "$dir" && -n "$(ls -A "$dir" 2>/dev/null)" ]]; then
    _pgtemp_err "$dir is not empty"
    return 1
  fi
  mkdir -p "$dir" || return 1
  : >"$dir/.pgtemp" || return 1

  local bindir
  bindir="$(pgtemp_bindir)" || return 1

  local sockdir="$dir/sock"
  # Unix socket paths are limited to ~107 bytes; fall back to a short dir.
  if ((${#sockdir} + 20 > 100)); then
    sockdir="$(mktemp -d /tmp/pgtemp-sock.XXXXXX)" || return 1
    printf '%s\n' "$sockdir" >"$dir/.sockdir"
  fi
  mkdir -p "$dir/data" "$sockdir" || return 1
  : >"$dir/log" || return 1
  chmod 700 "$dir/data" || return 1

  if [[ "$(id -u)" -eq 0 ]]; then
    if ! id -u postgres >/dev/null 2>&1; then
      _pgtemp_err "running as root but there is no 'postgres' user (install postgresql)"
      return 1
    fi
    chown -R postgres: "$dir" "$sockdir" || return 1
    if ! runuser -u postgres -- test -w "$dir/data"; then
      _pgtemp_err "user postgres cannot access $dir (a parent directory is not searchable); use a directory under /tmp"
      return 1
    fi
  fi

  local locale="C"
  if locale -a 2>/dev/null | grep -ix 'c\.utf-\?8' >/dev/null; then
    locale="C.UTF-8"
  fi

  if ! _pgtemp_as_owner "$dir" "$bindir/initdb" -D "$dir/data" -U postgres \
      --auth=trust -E UTF8 --locale="$locale" --no-sync \
      >>"$dir/log" 2>&1; then
    _pgtemp_err "initdb failed; tail of $dir/log:"
    tail -n 30 "$dir/log" >&2
    return 1
  fi

  cat >>"$dir/data/postgresql.conf" <<EOF

# ---- pgtemp settings (throwaway test cluster) ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sockdir'
fsync = off
full_page_writes = off
synchronous_commit = off
max_connections = 200
shared_buffers = 256MB
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF

  # Serialize port selection + start among concurrent pgtemp users of this
  # account; additionally retry with the next port if binding still fails.
  local lockfile="${TMPDIR:-/tmp}/pgtemp-ports.$(id -u).lock"
  local lockfd
  if ! exec {lockfd}>>"$lockfile" 2>/dev/null; then
    exec {lockfd}>/dev/null
  elif command -v flock >/dev/null 2>&1; then
    flock -w 120 "$lockfd" || true
  fi

  local port="${PGTEMP_BASE_PORT:-55432}" last=$((${PGTEMP_BASE_PORT:-55432} + 1000))
  local started=0
  while ((port < last)); do
    if ! _pgtemp_port_free "$port"; then
      port=$((port + 1))
      continue
    fi
    local logsize
    logsize="$(wc -c <"$dir/log")"
    # The postmaster must not inherit the lock fd (or any other fd > 2).
    if (_pgtemp_close_fds; _pgtemp_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" \
        -l "$dir/log" -o "-p $port" -w -t 120 start) >>"$dir/log" 2>&1; then
      started=1
      break
    fi
    # Port taken in the meantime?  Try the next one; otherwise give up.
    if tail -c +"$((logsize + 1))" "$dir/log" | grep -iE 'could not bind|address already in use|could not create any TCP/IP sockets' >/dev/null; then
      _pgtemp_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop \
        >>"$dir/log" 2>&1 {lockfd}>&- || true
      port=$((port + 1))
      continue
    fi
    break
  done
  exec {lockfd}>&-
  if ((started == 0)); then
    _pgtemp_err "could not start the server; tail of $dir/log:"
    tail -n 30 "$dir/log" >&2
    return 1
  fi

  local dsn="host=127.0.0.1 port=$port user=postgres dbname=postgres"
  printf '%s\n' "$port" >"$dir/port"
  printf '%s\n' "$dsn" >"$dir/dsn"

  # Wait until it accepts TCP connections (pg_ctl -w checked the pid file).
  local isready="$bindir/pg_isready"
  [[ -x "$isready" ]] || isready="$(command -v pg_isready 2>/dev/null || true)"
  if [[ -n "$isready" ]]; then
    local i
    for ((i = 0; i < 100; i++)); do
      "$isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres && break
      sleep 0.1
    done
  fi

  if [[ -n "${PGTEMP_WATCH_PID:-}" ]]; then
    local self
    self="$(readlink -f "${BASH_SOURCE[0]}")"
    # Detached watchdog: stops the cluster once the owner process is gone.
    (_pgtemp_close_fds; exec setsid bash -c '
      while kill -0 "$1" 2>/dev/null && [[ -d "$2" ]]; do sleep 1; done
      [[ -d "$2" ]] && exec bash "$3" stop "$2"
    ' pgtemp-watchdog "$PGTEMP_WATCH_PID" "$dir" "$self" \
      </dev/null >/dev/null 2>&1) &
    disown 2>/dev/null || true
  fi

  printf '%s\n' "$dsn"
}

pgtemp_stop() {
  if [[ $# -ne 1 || -z "$1" ]]; then
    _pgtemp_err "usage: pgtemp_stop DIR"
    return 2
  fi
  local dir
  dir="$(_pgtemp_abspath "$1")"
  if [[ ! -e "$dir" ]]; then
    return 0  # already gone
  fi
  if [[ ! -e "$dir/.pgtemp" ]]; then
    _pgtemp_err "$dir was not created by pgtemp.sh; refusing to remove it"
    return 1
  fi
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    local bindir
    if bindir="$(pgtemp_bindir)"; then
      _pgtemp_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" -m immediate \
        -w -t 60 stop >>"$dir/log" 2>&1 || true
    fi
    # Last resort: kill the postmaster directly if it is still alive.
    if [[ -f "$dir/data/postmaster.pid" ]]; then
      local pid
      pid="$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
      if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill -QUIT "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
          kill -0 "$pid" 2>/dev/null || break
          sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
  fi
  if [[ -f "$dir/.sockdir" ]]; then
    local sockdir
    sockdir="$(cat "$dir/.sockdir")"
    [[ "$sockdir" == /tmp/pgtemp-sock.* ]] && rm -rf -- "$sockdir"
  fi
  rm -rf -- "$dir"
}

_pgtemp_main() {
  set -euo pipefail
  local cmd="${1:-}"
  case "$cmd" in
    start)
      [[ $# -eq 2 ]] || { _pgtemp_err "usage: $0 start DIR"; return 2; }
      pgtemp_start "$2"
      ;;
    stop)
      [[ $# -eq 2 ]] || { _pgtemp_err "usage: $0 stop DIR"; return 2; }
      pgtemp_stop "$2"
      ;;
    *)
      _pgtemp_err "usage: $0 start DIR | stop DIR"
      return 2
      ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  _pgtemp_main "$@"
fi
