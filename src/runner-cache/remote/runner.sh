#!/bin/sh
# cronium runner: the contract is docs/runner-protocol.md (protocol v1).
#
# POSIX sh only (dash, busybox ash, bash-as-sh); no bashisms.  Every job runs
# through this file, so the hot path keeps forks to a minimum: paths come from
# parameter expansion, host facts are cached in a file read with the `read`
# builtin, and only mkdir, one head per section, the script, the watcher and
# the final rm are forked.
#
# All runner variables are prefixed cr_ so an exported variable of the login
# environment with a common name (dir, pid, ...) can't be modified under the
# script's feet: assigning to an inherited exported variable keeps it exported.

cr_version=1.0.0 # keep equal to ./VERSION
umask 077        # run dirs 0700, section files 0600
set -f           # header lines are split unquoted; never glob them

cr_dir=  # the run dir, once we created it (error paths remove it)
cr_keep= # set when a `keep` section was received
cr_pid=  # the script's pid == its process group id (setsid)
cr_wpid= # the control-stream watcher
cr_step= # sleep granularity used while waiting for a group to die

say() { printf 'CRONIUM1 %s\n' "$*"; }

# Setup failure: leave nothing behind, tell the service on stdout, exit 70.
die() {
	[ -z "$cr_dir" ] || rm -rf -- "$cr_dir"
	say "error $*"
	exit 70
}

# Character classes are spelled out: [A-Z] ranges are locale dependent in
# some shells (bash-as-sh with an old bash), and these values end up in paths.
valid_id() {
	case $1 in
	'' | *[!ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-]*) return 1 ;;
	esac
	[ ${#1} -le 64 ]
}

# Digits only; no leading zero (sh arithmetic would read 08 as bad octal);
# bounded so $((...)) and test -le never overflow.
valid_num() {
	case $1 in
	'' | *[!0123456789]* | 0?*) return 1 ;;
	esac
	[ ${#1} -le 12 ]
}

# [a-z][a-z0-9_.-]*, no "..": the name becomes a path inside the run dir.
valid_name() {
	case $1 in
	[abcdefghijklmnopqrstuvwxyz]*) ;;
	*) return 1 ;;
	esac
	case $1 in
	*[!abcdefghijklmnopqrstuvwxyz0123456789_.-]* | *..*) return 1 ;;
	esac
	[ ${#1} -le 128 ]
}

# One polling step while waiting for a process group to die; cr_t counts
# tenths of a second.  Fractional sleep is not POSIX: fall back to 1s.
nap() {
	if [ -z "$cr_step" ]; then
		if sleep 0.1 2>/dev/null; then
			cr_t=$((cr_t + 1))
			return 0
		fi
		cr_step=1
	fi
	sleep 1
	cr_t=$((cr_t + 10))
}

# alive <pid | -pgid>: is anything there that has not exited yet?  kill -0
# also succeeds for zombies, and orphans are zombies until init reaps them,
# which some container inits do only every second or so.  Zombies hold no
# pipes and can't be killed anyway, so on Linux the group's members are looked
# up in /proc (builtins only, and only on the kill path) and zombies ignored.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	case $1 in -*) ;; *) return 0 ;; esac
	[ -r /proc/self/stat ] || return 0
	cr_pg=${1#-}
	set +f
	for cr_f in /proc/[0123456789]*/stat; do
		# comm, in parentheses, may contain anything: cut after the last ") "
		{ read -r cr_l <"$cr_f"; } 2>/dev/null || continue
		set -f
		set -- ${cr_l##*) }
		[ "$3" != "$cr_pg" ] || [ "$1" = Z ] || return 0
		set +f
	done
	set -f
	return 1
}

# kill_tree <pgid> <pid-fallback 0|1>: TERM the group, wait up to the grace
# period for it to disappear, then KILL it.  Right after the fork the child may
# not have called setsid yet (no such group): with fallback=1 it is then
# signalled by pid.  The fallback is only used while the child cannot have been
# reaped, so the pid can't belong to someone else.
kill_tree() {
	if kill -TERM "-$1" 2>/dev/null; then
		cr_g=-$1
	elif [ "$2" = 1 ] && kill -TERM "$1" 2>/dev/null; then
		cr_g=$1
	else
		return 0 # nothing left: the common case costs no fork
	fi
	cr_t=0
	while alive "$cr_g"; do
		if [ "$cr_t" -ge $((cr_grace * 10)) ]; then
			kill -KILL "$cr_g" 2>/dev/null
			return 0
		fi
		nap
	done
}

# The cancel marker rides along with the rm we need anyway (no extra fork).
finish() {
	[ -n "$cr_dir" ] || return 0
	if [ -n "$cr_keep" ]; then
		[ ! -e "$cr_dir.cancel" ] || rm -f -- "$cr_dir.cancel"
	elif [ "${1-}" = background ]; then
		# Detached from the channel's pipes, so the exit status goes out now
		# and the removal finishes on its own.
		rm -rf -- "$cr_dir" "$cr_dir.cancel" </dev/null >/dev/null 2>&1 &
	else
		rm -rf -- "$cr_dir" "$cr_dir.cancel"
	fi
}

# The runner itself got a signal (sshd hung up, admin kill): don't orphan the
# script, clean up, and report 128+n like sh would.
on_signal() {
	trap '' HUP INT TERM
	[ -z "$cr_wpid" ] || kill "$cr_wpid" 2>/dev/null
	[ -z "$cr_pid" ] || kill_tree "$cr_pid" 1
	finish
	exit "$1"
}

# Where am I?  $0 is <base>/runners/<sha256>/runner.sh.  Made absolute because
# the script runs with the run dir as cwd and needs $cr_rd/helpers.
case $0 in
*/*) cr_rd=${0%/*} ;;
*) cr_rd=. ;;
esac
case $cr_rd in
/*) ;;
*) cr_rd=$PWD/$cr_rd ;;
esac
case $cr_rd in
*/runners/*) cr_base=${cr_rd%/runners/*} ;;
*) die "runner is not under <base>/runners/" ;;
esac
cr_runs=$cr_base/runs

# uname forks and its answer never changes for a deployed runner: cache it
# beside the runner.  Written to a temp name then renamed so concurrent first
# runs never read a partial file.  A read-only runner dir just means no cache.
host_info() {
	if [ -r "$cr_rd/host-info" ]; then
		read -r cr_os cr_arch <"$cr_rd/host-info"
		[ -z "$cr_arch" ] || return 0
	fi
	cr_hi=$(uname -sm 2>/dev/null)
	set -- $cr_hi
	cr_os=${1:-unknown}
	cr_arch=${2:-unknown}
	{
		printf '%s %s\n' "$cr_os" "$cr_arch" >"$cr_rd/host-info.$$" &&
			mv -f "$cr_rd/host-info.$$" "$cr_rd/host-info"
	} 2>/dev/null || rm -f "$cr_rd/host-info.$$" 2>/dev/null
	return 0
}

# setsid from PATH without `command -v` in $(...), which would fork.
find_setsid() {
	cr_setsid=
	IFS=:
	for cr_p in $PATH; do
		case $cr_p in /*) ;; *) continue ;; esac
		if [ -f "$cr_p/setsid" ] && [ -x "$cr_p/setsid" ]; then
			cr_setsid=$cr_p/setsid
			break
		fi
	done
	unset IFS
}

run() {
	# Everything that does not depend on the payload happens before reading it:
	# the service may open this channel ahead of time (a standby runner), so
	# this work is then off the job's critical path.
	host_info
	find_setsid
	[ -d "$cr_runs" ] || mkdir -p -- "$cr_runs" || die "cannot create runs directory"
	IFS= read -r cr_line || die "unexpected end of input"
	set -- $cr_line
	[ $# -eq 5 ] && [ "$1" = CRONIUM1 ] || die "bad header"
	valid_id "$2" || die "bad runId"
	case $3 in
	bash | python | node) ;;
	*) die "bad scriptType" ;;
	esac
	valid_num "$4" || die "bad graceSeconds"
	valid_num "$5" && [ "$5" -le 1000 ] || die "bad sectionCount"
	cr_id=$2 cr_type=$3 cr_grace=$4 cr_n=$5

	# mkdir (not -p) is the exclusive claim on the runId.
	mkdir -- "$cr_runs/$cr_id" 2>/dev/null || die "run directory already exists or cannot be created"
	cr_dir=$cr_runs/$cr_id
	# A marker left by an interrupted earlier attempt would make us wait for
	# a watcher that is not killing anything.
	[ ! -e "$cr_dir.cancel" ] || rm -f -- "$cr_dir.cancel"

	cr_i=0
	while [ "$cr_i" -lt "$cr_n" ]; do
		IFS= read -r cr_line || die "unexpected end of input"
		set -- $cr_line
		[ $# -eq 2 ] || die "bad section header"
		valid_name "$1" || die "bad section name"
		valid_num "$2" || die "bad section length"
		[ ! -e "$cr_dir/$1" ] || die "duplicate section"
		# GNU head -c never reads past N bytes of a pipe, so the next header
		# stays on stdin (read is not binary-safe).  NB busybox head reads
		# through stdio and swallows more: the next read then fails cleanly.
		# `true`, not `:`: a failed redirection on a special builtin would
		# exit the shell on the spot, skipping die's cleanup.
		if [ "$2" = 0 ]; then
			true 2>/dev/null >"$cr_dir/$1" || die "cannot write section"
		else
			head -c "$2" >"$cr_dir/$1" || die "cannot write section"
		fi
		[ "$1" != keep ] || cr_keep=1
		cr_i=$((cr_i + 1))
	done
	[ -f "$cr_dir/script" ] || die "missing script section"

	say "ready $cr_version $cr_os $cr_arch"

	# The script: own process group (setsid: dash can't do job control without
	# a tty), stdin /dev/null.  Everything it needs is passed as positional
	# parameters, because the sourced env file may set any variable; runtime
	# variables are set after sourcing so the helpers are always reachable.
	set -- "$cr_dir" "$cr_rd" "$cr_type" "$cr_setsid"
	(
		cd "$1" || exit
		unset CRONIUM_WORK_DIR
		if [ -f "$1/env" ]; then . "$1/env"; fi
		[ -n "${CRONIUM_WORK_DIR+x}" ] || CRONIUM_WORK_DIR=$1
		export CRONIUM_WORK_DIR
		case $3 in
		bash)
			# quoted whole: checkbashisms flags a bare BASH_ENV= assignment
			export "BASH_ENV=$2/helpers/cronium.sh"
			set -- "$4" bash "$1/script"
			;;
		python)
			# helpers/sitecustomize.py is imported at startup from here and puts
			# `cronium` into builtins (it chains to any sitecustomize it shadows).
			export PYTHONPATH="$2/helpers${PYTHONPATH:+:$PYTHONPATH}"
			set -- "$4" python3 "$1/script"
			;;
		node)
			# -r preloads the helpers (sets globalThis.cronium); NODE_PATH keeps
			# require('cronium') resolving to the same module instance.
			export NODE_PATH="$2/helpers${NODE_PATH:+:$NODE_PATH}"
			set -- "$4" node -r "$2/helpers/cronium.js" "$1/script"
			;;
		esac
		# Not a group leader (async list, no job control), so setsid doesn't
		# fork: the pid stays $! and becomes the pgid.
		if [ -n "$1" ]; then exec "$@"; fi
		shift
		exec "$@"
	) </dev/null &
	cr_pid=$!

	# Control stream.  A non-job-control shell points an async list's stdin at
	# /dev/null unless redirected, and `<&0` would dup that /dev/null: pass
	# our stdin as fd 9.  The watcher's stdout/stderr go to /dev/null so a
	# sleep it may leave behind never holds the channel's pipes open.
	exec 9<&0
	(
		while IFS= read -r cr_w; do
			case $cr_w in
			cancel | timeout) break ;;
			esac
		done
		# cancel, timeout or EOF (service gone): kill the tree.  The marker tells
		# the main shell to let this grace period finish instead of restarting
		# it.  It sits beside the run dir (runIds have no dot, so it can't
		# collide), not in it, where the script could create it by accident.
		true >"$cr_dir.cancel" # `true`: a failure must not stop the kill
		kill_tree "$cr_pid" 1
	) <&9 >/dev/null 2>&1 &
	cr_wpid=$!
	exec 9<&-

	# 2>/dev/null: dash and busybox report a job killed by a signal
	# ("Terminated") on the shell's stderr, which is the script's stderr.
	wait "$cr_pid" 2>/dev/null
	cr_rc=$?
	if [ -e "$cr_dir.cancel" ]; then
		wait "$cr_wpid" 2>/dev/null # its TERM..KILL sequence is under way
	else
		kill "$cr_wpid" 2>/dev/null # blocked in the read builtin: dies at once
	fi
	cr_wpid=
	# Background children of the script (sleep 300 &) still in its group: they
	# would outlive the job and hold stdout/stderr open, so the channel would
	# never close.  Group only: the leader is reaped, its pid may be reused.
	kill_tree "$cr_pid" 0
	cr_pid=
	finish background
	exit "$cr_rc"
}

# collect <runId>: out/ files as `<name> <len>\n<bytes>` sections, then rm.
# Names that can't be framed on one header line (blanks, newline) and
# non-regular files are skipped; hidden files are not matched by the glob.
framable() {
	[ -f "$1" ] && [ ! -h "$1" ] || return 1
	case ${1##*/} in
	*[' 	
']*) return 1 ;;
	esac
}

collect() {
	valid_id "$1" || die "bad runId"
	cr_d=$cr_runs/$1
	if [ ! -d "$cr_d" ]; then
		say "collect 0"
		exit 0
	fi
	set +f
	cr_n=0
	for cr_f in "$cr_d"/out/*; do
		if framable "$cr_f"; then cr_n=$((cr_n + 1)); fi
	done
	say "collect $cr_n"
	for cr_f in "$cr_d"/out/*; do
		framable "$cr_f" || continue
		cr_s=$(wc -c <"$cr_f")
		cr_s=${cr_s##*[!0123456789]} # some wc pad with blanks
		printf '%s %s\n' "${cr_f##*/}" "$cr_s"
		# exactly the announced length, even if the file changed meanwhile
		if [ "$cr_s" != 0 ]; then head -c "$cr_s" <"$cr_f"; fi
	done
	rm -rf -- "$cr_d" "$cr_d.cancel"
	exit 0
}

trap 'on_signal 129' HUP
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

case ${1-} in
run)
	[ $# -eq 1 ] || die usage
	run
	;;
collect)
	[ $# -eq 2 ] || die usage
	collect "$2"
	;;
*) die usage ;;
esac
