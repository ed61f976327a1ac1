# shellcheck shell=bash
# bench/lib.sh: what every bench/*/run shares, sourced after setting
# bench_name: failing loudly with one line, the header and footer that say
# what was measured (commit, date, machine, load, exact command), a per-run id
# for everything a run creates, waits with a deadline, and free ports in the
# benchmarks' own range.
#
# A benchmark must never print a table from a run that went wrong: any error,
# missing tool or target, wrong answer or expired wait ends the run with a
# non-zero exit and one line "bench/<name>: FAILED: <what>" on stderr.

: "${bench_name:?set bench_name before sourcing bench/lib.sh}"
bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_id="$(date -u +%H%M%S)-$$"

# bench_log: a log worth showing on failure (the daemon's), when the run has
# one; bench_daemon: the pid of a process every wait also checks is alive.
bench_log=""
bench_daemon=""

bench_fail() {
  if [ -n "$bench_log" ] && [ -s "$bench_log" ]; then
    echo "--- last lines of $bench_log:" >&2
    tail -20 "$bench_log" >&2
  fi
  echo "bench/$bench_name: FAILED: $*" >&2
  exit 1
}

# A command that fails outside a checked place is an error too: name it. In a
# subshell, only pass the status on; the outer shell names its own command.
bench_on_err() {
  local rc=$? line=$1 cmd=$2
  [ "$BASHPID" = "$$" ] || exit "$rc"
  bench_fail "line $line: '$cmd' exited with status $rc"
}
set -E
trap 'bench_on_err "$LINENO" "$BASH_COMMAND"' ERR

# The commit measured: the worktree's HEAD, "-dirty" when tracked files differ.
bench_commit() {
  local c
  c=$(git -C "$bench_root" rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
  git -C "$bench_root" diff --quiet HEAD -- 2>/dev/null || c="$c-dirty"
  echo "$c"
}

# bench_start "$@" -- KNOB...: records the exact command (the knobs set in
# the environment, then the script and its arguments), the commit, date and
# load before the run, and prints them.
bench_start() {
  local args=() v env=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  for v in "$@"; do [ -z "${!v+x}" ] || env+=("$v=${!v}"); done
  bench_cmd="${env[*]:+${env[*]} }bench/$bench_name/$(basename "$0")${args[*]:+ ${args[*]}}"
  bench_commit_id=$(bench_commit)
  bench_date=$(date -u '+%Y-%m-%d %H:%M UTC')
  bench_load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "bench/$bench_name: commit $bench_commit_id, $bench_date, $(nproc) CPUs, load $bench_load_before" >&2
  echo "bench/$bench_name: command: $bench_cmd" >&2
}

# The lines that go with every result table: what was measured, where, when.
bench_footer() {
  echo "commit:  $bench_commit_id (run $bench_id)"
  echo "date:    $bench_date (start) .. $(date -u '+%H:%M UTC') (end)"
  echo "machine: $(nproc) CPUs, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "load:    $bench_load_before (before) -> $(cut -d' ' -f1-3 /proc/loadavg) (after)"
  echo "command: $bench_cmd"
}

# bench_wait SECONDS WHAT COMMAND...: polls COMMAND every $bench_poll seconds
# (50 ms unless a caller sets it, e.g. as a local); fails naming WHAT when it
# has not succeeded in time or when $bench_daemon has exited.
bench_wait() {
  local limit=$1 what=$2 end
  shift 2
  end=$((SECONDS + limit))
  until "$@"; do
    if [ -n "$bench_daemon" ] && ! kill -0 "$bench_daemon" 2>/dev/null; then
      bench_fail "the daemon exited while waiting for $what"
    fi
    [ "$SECONDS" -lt "$end" ] || bench_fail "no $what within ${limit}s"
    sleep "${bench_poll:-0.05}"
  done
}

# bench_port START: the first port from START on that nothing listens on.
bench_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# bench_need TOOL...: fails unless every tool is on PATH (sbin included).
bench_need() {
  local t
  PATH="$PATH:/usr/sbin:/sbin"
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || bench_fail "$t not found"; done
}

# bench_wrk_check FILE TARGET: fails unless wrk's output in FILE shows
# requests and no socket error, timeout or non-2xx/3xx answer from TARGET.
bench_wrk_check() {
  local f=$1 bad
  grep -q 'requests in' "$f" || bench_fail "wrk against $2 did not run: $(head -c 300 "$f" | tr '\n' ' ')"
  bad=$(grep -E 'Socket errors:|Non-2xx or 3xx responses:' "$f" | tr -s ' \n' ' ' || true)
  [ -z "$bad" ] || bench_fail "wrk against $2 saw errors:$bad"
}
