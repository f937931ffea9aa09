#!/bin/sh
# cronium runner: the contract is docs/runner-protocol.md (protocol v2).
#
# POSIX sh only (dash, busybox ash, bash-as-sh); no bashisms.  Every job runs
# through this file, so the hot path keeps forks to a minimum: paths come from
# parameter expansion, host facts are cached in a file read with the `read`
# builtin, marker files are created with redirections, small sections are read
# by builtins, and whatever does not need the payload is started while the
# standby waits, parked on a fifo: the supervisor, the script's own process
# (setsid and a second sh), the ticker, the two tails, the control reader,
# the claim's mv (a subshell that execs mv once it has the runId) and the
# mode check (a subshell that execs find once the payload is here).
# After the payload: the exec of find and, beside it, the claim's mv, one
# head per section not sent as text, the exec of the interpreter, the
# ticker's sleep (one a second) and its rm per heartbeat seen, the grep of
# kill_marked (none when nothing but the ticker's sleep was made since the
# go line), the cgroup's mkdir and rmdir (where there is one), the collect
# answer of a kept run with out/ files, and the rm of `ack`.  A `become` run
# adds the sudo check, the sudo that runs the script, `feed` and the become
# side's bootstrap (see become).

# Processes of one run (v2: the script outlives the channel that started it):
#   follower   the exec channel's process (verb run or attach): streams the
#              spools to the channel, reads the control stream, prints the
#              trailer.  It may go away at any time; the script carries on.
#   reaper     detached from the channel; started in standby, the parent of
#              the supervisor: once the supervisor is gone (and reaped) it
#              wakes the tails (.wake), so they see the end at once.
#   supervisor a child of the reaper, started in standby and parked on the
#              .go fifo until the payload is in place; lets the script's
#              process (its child, parked on .run since the standby) start
#              and waits for it, then writes .status and exits.
#   ticker     child of the supervisor (parked on .tick in standby):
#              deadline and lease, once a second;
#              after .status it stays behind as the linger that removes a run
#              dir nobody comes back for.
#   inner      become only: the script's runner as the target user (a child
#              of sudo, which replaced the script's process); kills the
#              script's tree as that user when sudo passes it our TERM.
#
# All runner variables are prefixed cr_ so an exported variable of the login
# environment with a common name (dir, pid, ...) can't be modified under the
# script's feet: assigning to an inherited exported variable keeps it exported.

cr_version=2.1.4 # keep equal to ./VERSION
umask 077        # run dirs 0700, section and spool files 0600
set -f           # header lines are split unquoted; never glob them

cr_dir=    # the run dir
cr_mine=   # set while the run dir is ours to remove (created, nothing started)
cr_pid=    # the script's pid == its process group id (setsid)
cr_step=   # sleep granularity used while waiting for a group to die
cr_follow= # set while following: a signal then only stops the follower
cr_sb=     # the standby dir, until the payload's runId claims it
cr_done=   # set while fd 6 is `run`'s .done fifo (GNU tail)
cr_t1=     # the follower's tails and control reader
cr_t2=
cr_cpid=
cr_mv=     # the claim's mv, parked in standby
cr_ck=     # the mode check's find, parked in standby
cr_cg=     # the run's own cgroup (make_cgroup), where it has one
cr_cgb=    # where it may go (cgroup_base)
cr_tk=     # the supervisor's ticker
cr_f0=     # the sweep's bounds (candidates): forks and the last pid in standby,
cr_p0=
cr_pgo=    # and the last pid right before the go line
cr_envpath= # set when the job's env section may set PATH

say() { printf 'CRONIUM2 %s\n' "$*"; }

# Setup failure: leave nothing behind, tell the service on stdout, exit 70.
# The standby's tails are stopped; its parked supervisor sees EOF on .go when
# we exit and leaves without starting anything.
die() {
	unsetup
	say "error $*"
	exit 70
}

unsetup() {
	for cr_p in $cr_t1 $cr_t2 $cr_cpid $cr_mv $cr_ck; do kill -KILL "$cr_p" 2>/dev/null; done
	[ -z "$cr_mine" ] || rm -rf -- "$cr_dir" "$cr_dir.sock"
	[ -z "$cr_sb" ] || rm -rf -- "$cr_sb"
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
# stdin /dev/null: a follower's sleep must not hold the channel's stdin.
nap() {
	if [ -z "$cr_step" ]; then
		if sleep 0.1 </dev/null 2>/dev/null; then
			cr_t=$((cr_t + 1))
			return 0
		fi
		cr_step=1
	fi
	sleep 1 </dev/null
	cr_t=$((cr_t + 10))
}

# alive <pid | -pgid>: is anything there that has not exited yet?  kill -0
# also succeeds for zombies, and orphans are zombies until init reaps them,
# which some container inits do only every second or so.  Zombies hold no
# files and can't be killed anyway, so on Linux the group's members are looked
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
# period for it to disappear, then KILL it (and give the kernel a moment to
# take the killed ones down).  Right after the fork the child may not have
# called setsid yet (no such group): with fallback=1 it is then signalled by
# pid, and its group once it has one: until it has reset the supervisor's
# ignored TERM, that first TERM is lost.  The fallback is only used while the
# child cannot have been reaped, so the pid can't belong to someone else.
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
		if [ "$cr_g" = "$1" ] && kill -TERM "-$1" 2>/dev/null; then cr_g=-$1; fi
		if [ "$cr_t" -ge $((cr_grace * 10)) ]; then
			kill -KILL "$cr_g" 2>/dev/null
			cr_t=0
			while [ "$cr_t" -lt 10 ] && alive "$cr_g"; do nap; done
			return 0
		fi
		nap
	done
}

# running <pid>: a process that has not exited (a zombie has, see alive).
running() {
	{ read -r cr_l <"/proc/$1/stat"; } 2>/dev/null || return 1
	set -- ${cr_l##*) }
	[ "$1" != Z ]
}

# kill_marked: what left the script's process group and session (setsid,
# double forks, daemons) still carries CRONIUM_RUN_ID=<runId> in its
# environment.  One grep over /proc (only our own processes' environ is
# readable; -z -x: the whole NUL-terminated entry, so run-1 is not run-11;
# only the processes made since the go line where that is sure: candidates)
# finds it; it gets TERM, and KILL if still there after the grace.  A process
# caught in the middle of an exec shows an empty environment, so after a
# sweep that found something, sweep again (a few times at most).
# A process that clears its own environment escapes this: the run's cgroup,
# where it has one, does not (kill_cgroup; runner-protocol.md).
kill_marked() {
	cr_sw=0
	while [ "$cr_sw" -lt 5 ] && sweep_marked; do cr_sw=$((cr_sw + 1)); done
	kill_cgroup
}

# cgroup_base: cr_cgb, the cgroup v2 we are in, where we may make one of the
# run's own (root, or a delegated subtree we own); empty otherwise.  Builtin
# reads of /proc/self/cgroup and /proc/self/mountinfo, in standby (park).
cgroup_base() {
	cr_cgb=
	[ -r /proc/self/cgroup ] && [ -r /proc/self/mountinfo ] || return 0
	cr_cgp=
	while IFS= read -r cr_l; do
		case $cr_l in 0::/*) cr_cgp=${cr_l#0::} ;; esac
	done </proc/self/cgroup
	[ -n "$cr_cgp" ] || return 0
	cr_mnt=
	while read -r cr_a cr_b cr_c cr_r cr_m cr_l; do
		case " $cr_l " in
		*" - cgroup2 "*) [ "$cr_r" != / ] || { cr_mnt=$cr_m; break; } ;;
		esac
	done </proc/self/mountinfo
	[ -n "$cr_mnt" ] || return 0
	cr_p=${cr_mnt%/}${cr_cgp%/}
	[ -w "$cr_p" ] && [ -w "$cr_p/cgroup.procs" ] || return 0
	cr_cgb=$cr_p
}

# make_cgroup: cr_cg, the run's own cgroup v2 next to ours (one mkdir in
# cr_cgb, at the go line); empty where there is none.  The script moves
# itself in before it execs (writing 0 to cgroup.procs), so everything it
# starts is in it, whatever it does to its group, session or environment,
# unless it may write to another cgroup's cgroup.procs.
make_cgroup() {
	cr_cg=
	[ -n "$cr_cgb" ] || return 0
	mkdir -- "$cr_cgb/cronium-${cr_dir##*/}" 2>/dev/null || return 0
	cr_cg=$cr_cgb/cronium-${cr_dir##*/}
}

# kill_cgroup: KILL whatever is still in the run's cgroup (cgroup.kill, or
# each of its cgroup.procs on kernels before 5.14), then remove it once it is
# empty (cgroup.events says so; a builtin read).
kill_cgroup() {
	[ -n "$cr_cg" ] && [ -d "$cr_cg" ] || return 0
	cr_t=0
	while :; do
		cr_pop=
		while read -r cr_a cr_b; do
			[ "$cr_a" != populated ] || cr_pop=$cr_b
		done <"$cr_cg/cgroup.events" 2>/dev/null
		[ "$cr_pop" = 1 ] || break
		[ "$cr_t" -lt 20 ] || return 0 # still going after 2 s: a later call removes it
		if [ "$cr_t" = 0 ]; then
			if [ -e "$cr_cg/cgroup.kill" ]; then
				{ printf '1\n' >"$cr_cg/cgroup.kill"; } 2>/dev/null
			else
				while read -r cr_p; do
					! valid_num "$cr_p" || kill -KILL "$cr_p" 2>/dev/null
				done <"$cr_cg/cgroup.procs" 2>/dev/null
			fi
		fi
		nap
	done
	rmdir -- "$cr_cg" 2>/dev/null
}

# last_pid: cr_lp, the last pid handed out in our pid namespace (the last
# field of /proc/loadavg; ns_last_pid can't be read byte by byte).
last_pid() {
	cr_lp=
	{ read -r cr_a cr_a cr_a cr_a cr_lp </proc/loadavg; } 2>/dev/null
	valid_num "$cr_lp"
}

# bounds: cr_fk, the kernel's count of forks since boot (the processes line
# of /proc/stat: every task made, in every pid namespace), and cr_lp, the
# last pid, read right after /proc/stat was made (at its first read).
bounds() {
	cr_fk=
	{
		IFS= read -r cr_a && last_pid &&
			while read -r cr_a cr_b; do
				[ "$cr_a" != processes ] || {
					cr_fk=$cr_b
					break
				}
			done
	} </proc/stat 2>/dev/null
	valid_num "$cr_fk" && valid_num "$cr_lp"
}

# above <pid>: cr_gl, glob patterns of the /proc entries of the pids above
# <pid>, digit by digit (24811: 2481[2-9], 248[2-9]?, 24[9]??, 2[5-9]???,
# then [1-9]????? and longer), so the shell never loops over the others.
above() {
	cr_x=$1 cr_any=
	while [ -n "$cr_x" ]; do
		cr_any="$cr_any[0123456789]"
		cr_x=${cr_x#?}
	done
	cr_gl="/proc/[123456789]$cr_any*" cr_x=$1 cr_pre=
	while [ -n "$cr_x" ]; do
		cr_d=${cr_x%"${cr_x#?}"}
		cr_x=${cr_x#?}
		cr_any=${cr_any#"[0123456789]"}
		case $cr_d in
		0) cr_set=123456789 ;;
		1) cr_set=23456789 ;;
		2) cr_set=3456789 ;;
		3) cr_set=456789 ;;
		4) cr_set=56789 ;;
		5) cr_set=6789 ;;
		6) cr_set=789 ;;
		7) cr_set=89 ;;
		8) cr_set=9 ;;
		*) cr_set= ;;
		esac
		[ -z "$cr_set" ] || cr_gl="$cr_gl /proc/$cr_pre[$cr_set]$cr_any"
		cr_pre=$cr_pre$cr_d
	done
}

# candidates (supervisor): cr_cands, the environ files the sweep reads.  Every
# process of the run was made after the go line, so, while pids have not
# wrapped round, it has a pid above cr_pgo (last_pid right before the go
# line): the others, the standbys of other channels included, are not read.
# No wrap since the standby (cr_f0 and cr_p0, read in park): no more forks
# were counted since then than pids were handed out, give or take 256 (the
# forks of others while the two files are read).  A lap needs about pid_max
# forks (32768 at the least), and each counted fork takes one pid, so only
# a host near pid exhaustion, or forks failing after their pid was taken (a
# cgroup's pids.max), could fake it (docs/runner-protocol.md).  False when
# that can't be told (no bounds, wrapped, or forks in other pid namespaces,
# which are counted too): then every environ is read.  The ticker's own
# sweep (forked before the bounds) and the become side's always read all.
# Of ours, the ticker's sleep is made after the go line; it is not read (its
# parent is the ticker, which carries no mark), so a job that starts no
# process costs no grep at all.
candidates() {
	[ -n "$cr_pgo" ] && [ -n "$cr_p0" ] || return 1
	bounds && [ "$cr_lp" -ge "$cr_pgo" ] &&
		[ $((cr_fk - cr_f0)) -le $((cr_lp - cr_p0 + 256)) ] || return 1
	cr_cands=
	above "$cr_pgo"
	set +f
	for cr_e in $cr_gl; do
		[ -r "$cr_e/environ" ] || continue # no match: the pattern itself
		if { read -r cr_l <"$cr_e/stat"; } 2>/dev/null; then
			set -- ${cr_l##*) }
			[ "${2-}" != "$cr_tk" ] || continue
		fi
		cr_cands="$cr_cands $cr_e/environ"
	done
	set -f
}

# sweep_marked: one pass of kill_marked; false when it found nobody.
sweep_marked() {
	[ -r /proc/self/environ ] || return 1
	if candidates; then
		[ -n "$cr_cands" ] || return 1 # nothing made since the go line: no grep
	else
		cr_cands='/proc/[0123456789]*/environ'
	fi
	set +f
	cr_ms=$(grep -l -s -z -x -F "CRONIUM_RUN_ID=${cr_dir##*/}" $cr_cands 2>/dev/null)
	set -f
	cr_ps=
	for cr_f in $cr_ms; do
		cr_p=${cr_f#/proc/}
		cr_p=${cr_p%/environ}
		! valid_num "$cr_p" || cr_ps="$cr_ps $cr_p"
	done
	[ -n "$cr_ps" ] || return 1
	kill -TERM $cr_ps 2>/dev/null
	cr_t=0
	while :; do
		cr_left=
		for cr_p in $cr_ps; do ! running "$cr_p" || cr_left="$cr_left $cr_p"; done
		[ -n "$cr_left" ] || return 0
		if [ "$cr_t" -ge $((cr_grace * 10)) ]; then
			kill -KILL $cr_left 2>/dev/null
			return 0
		fi
		nap
	done
}

# ask <reason>: a kill was asked for (cancel, timeout, lease).  .control is
# created with noclobber (O_EXCL), so the first asker's reason is the one
# that sticks and only that asker kills; the others leave it be.
ask() {
	set -C
	{ printf '%s\n' "$1" >"$cr_dir/.control"; } 2>/dev/null
	cr_won=$?
	set +C
	[ "$cr_won" = 0 ]
}

# The runner itself got a signal (sshd hung up, admin kill).  While setting up:
# clean up and report 128+n like sh would.  While following: stop following;
# the script is the supervisor's business, not ours.
on_signal() {
	trap '' HUP INT TERM
	if [ -n "$cr_follow" ]; then
		for cr_p in $cr_t1 $cr_t2 $cr_cpid; do kill -KILL "$cr_p" 2>/dev/null; done
	else
		unsetup
	fi
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
*) case ${1-} in inner | launch) ;; *) die "runner is not under <base>/runners/" ;; esac ;;
esac
cr_runs=$cr_base/runs

# uname forks and its answer never changes for a deployed runner: cache it
# beside the runner, together with whether tail has --pid (GNU; busybox has
# not), which the follower needs on every job.  Written to a temp name then
# renamed so concurrent first runs never read a partial file.  A read-only
# runner dir just means no cache.
host_info() {
	if [ -r "$cr_rd/host-info" ]; then
		read -r cr_os cr_arch cr_tail <"$cr_rd/host-info"
		[ -z "$cr_tail" ] || return 0
	fi
	cr_hi=$(uname -sm 2>/dev/null)
	set -- $cr_hi
	cr_os=${1:-unknown}
	cr_arch=${2:-unknown}
	if tail --pid=$$ -s 0.01 -c 0 /dev/null </dev/null >/dev/null 2>&1; then
		cr_tail=pid
	else
		cr_tail=poll
	fi
	{
		printf '%s %s %s\n' "$cr_os" "$cr_arch" "$cr_tail" >"$cr_rd/host-info.$$" &&
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

# ---------------------------------------------------------------- supervisor

# Runs in a subshell with stdin/stdout/stderr on /dev/null and HUP ignored, so
# neither the channel closing nor the connection dropping touches it.  TERM is
# ignored too: the supervisor and the ticker are still in the follower's
# process group, and a signal to that whole group (a pty hangup, `timeout`,
# a ^C) is meant for the channel, not for the run.  Stopping a run is
# `cancel`; kill -9 of the supervisor makes the ticker kill the tree.
# (INT and QUIT are ignored anyway: background job of a non-interactive sh.)
supervise() {
	make_cgroup
	# Every process of the run comes after this (candidates).
	! last_pid || cr_pgo=$cr_lp
	# .pid first, then the go line: a cancel that comes meanwhile kills the
	# parked script's group, and the script never starts.
	printf '%s\n' "$cr_pid" >"$cr_dir/.pid"
	printf '%s %s %s\n' "${cr_dir##*/}" "$cr_type" "$cr_cg" >&5
	printf '%s %s %s %s\n' "${cr_dir##*/}" "$cr_grace" "$cr_timeout" "$cr_lease" >&4
	exec 4>&- 5>&-
	# A cancel that came before .pid existed found nothing to kill: its
	# follower wrote .control first and read .pid second, we do the reverse,
	# so one of us sees the other.
	[ ! -e "$cr_dir/.control" ] || kill_tree "$cr_pid" 1
	wait "$cr_pid"
	cr_rc=$?
	# Why it ended is decided now: a kill asked for after the leader's own
	# exit does not change that.
	cr_why=exit
	if { read -r cr_w <"$cr_dir/.control"; } 2>/dev/null; then
		case $cr_w in cancel | timeout | lease) cr_why=$cr_w ;; esac
	elif [ -e "$cr_dir/.become" ]; then
		cr_why=become # sudo refused: the script never started
	fi
	# Background children of the script (sleep 300 &) still in its group: they
	# would outlive the job and keep writing to the spools.  Group only: the
	# leader is reaped, its pid may be reused.  Then whatever left the group.
	kill_tree "$cr_pid" 0
	kill_marked
	# One write (no mv: no fork on the way to the trailer).  A reader that
	# comes in between the open and the write sees an empty .status: result()
	# then fails, and attach follows instead (the end is our exit).  Our exit
	# right after, once the reaper has reaped us, is what ends a follower's
	# `tail --pid`.
	# A full disk (the script filled it) creates .status but cannot fill it:
	# give back the pages of the files the run no longer needs (the script and
	# its env, whose secrets are better gone anyway) and write it again.
	# Then the ticker is told (lingered): a run shorter than its first tick
	# is acked, and its dir gone, before the ticker has seen the .status,
	# and a dir gone from under a running script means a sweep of every
	# environ on the host.
	{ printf '%s %s\n' "$cr_rc" "$cr_why" >"$cr_dir/.status"; } 2>/dev/null && lingered && return 0
	true >"$cr_dir/script" >"$cr_dir/env"
	printf '%s %s\n' "$cr_rc" "$cr_why" >"$cr_dir/.status" && lingered
}

# lingered: the ticker (USR1, trapped in park) knows the run has its .status.
lingered() { kill -USR1 "$cr_tk" 2>/dev/null || true; }

# The supervisor, parked (standby): a child of the reaper with stdin on the
# run's .go fifo, it waits for the go line `<runId> <scriptType> <grace>
# <timeout> <lease>` (validated by the follower) once the payload is in place.
# EOF instead (the follower failed or went away before a payload): nothing to
# do.  The run dir is then the claimed one (`mv` of the standby dir).
park() {
	trap '' HUP TERM
	# The script's process, prepared now: its own session and process group
	# (setsid: dash can't do job control without a tty), stdout and stderr
	# appended to the spools, HUP and TERM back at their defaults, parked on
	# the .run fifo (our fd 5 is its only writer) until we hand it its run dir
	# (prestart).  setsid is not a group leader here (async list, no job
	# control), so it doesn't fork: the pid stays $! and becomes the pgid.
	# It runs runner.sh again (verb `script`), so that the exec of the
	# interpreter is all that is left to do once the payload is there.
	exec 5<>.run
	(
		trap - HUP TERM # ignored for the supervisor only, not for the script
		if [ -n "$cr_setsid" ]; then exec "$cr_setsid" sh "$cr_rd/runner.sh" script; fi
		exec sh "$cr_rd/runner.sh" script
	) <.run >>.stdout 2>>.stderr 3>&- 5>&- &
	cr_pid=$!
	# The ticker, prepared too: it waits on .tick (our fd 4) for its run.
	# USR1 (supervise, once .status is written) makes it the linger at once.
	# Ignored from the fork until its trap is set, so that an early one
	# never kills it; not for the supervisor, which never gets one.
	exec 4<>.tick
	trap '' USR1
	(
		cr_ling=
		trap 'cr_ling=1 cr_idle=0' USR1
		IFS= read -r cr_l <&4 || exit 0
		exec 4<&-
		set -- $cr_l
		[ $# -eq 4 ] || exit 0
		cr_dir=$cr_runs/$1 cr_grace=$2 cr_timeout=$3 cr_lease=$4
		ticker
	) 4<.tick </dev/null 5>&- &
	cr_tk=$!
	trap - USR1
	# Before the go line: the sweep's no-wrap bounds (candidates), and
	# where the run's cgroup may go.
	! bounds || cr_f0=$cr_fk cr_p0=$cr_lp
	cgroup_base
	IFS= read -r cr_line || exit 0
	exec </dev/null
	set -- $cr_line
	[ $# -eq 5 ] || exit 0
	cr_dir=$cr_runs/$1 cr_type=$2 cr_grace=$3 cr_timeout=$4 cr_lease=$5
	supervise
}

# prestart (verb `script`): the script's process, started in standby by
# park, reads `<runId> <scriptType> [<cgroup>]` on stdin (the .run fifo;
# EOF: the run never came) and becomes the script: into the run's cgroup,
# the process limit, cd, then (launch) the env section, the runtime
# variables, exec; or, with a `become` section, sudo (become) as another
# user, whose own runner (inner) launches it.
# Everything it needs is in positional parameters, because the sourced env
# file may set any variable; runtime variables are set after sourcing so the
# helpers are always reachable.
prestart() {
	trap - HUP TERM
	IFS= read -r cr_line || exit 0
	exec </dev/null
	set -- $cr_line
	valid_id "${1-}" || exit 70
	set -- "$cr_runs/$1" "$cr_rd" "${2-}" "${cr_line#* * }"
	[ "$4" != "$cr_line" ] || set -- "$1" "$2" "$3" ""
	# Into the run's cgroup first: everything the script starts is then in it.
	[ -z "$4" ] || { printf '0\n' >"$4/cgroup.procs"; } 2>/dev/null
	# executor.maxProcesses: a fork bomb of a plain user stops there (the
	# runner's own processes keep theirs, so the kill still works).
	if [ -f "$1/nproc" ] && read -r cr_np <"$1/nproc" && valid_num "$cr_np"; then
		# RLIMIT_NPROC: -u in bash and ash, -p in dash
		ulimit -u "$cr_np" 2>/dev/null || ulimit -p "$cr_np" 2>/dev/null
	fi
	cd "$1" || exit
	[ ! -f "$1/become" ] || become "$1" "$3"
	launch "$1" "$2/helpers" "$3"
}

# launch <dir> <helpers dir> <scriptType>: the env section, the runtime
# variables, the exec of the interpreter (cwd: <dir>).
launch() {
	unset CRONIUM_WORK_DIR
	if [ -f "$1/env" ]; then . "$1/env"; fi
	[ -n "${CRONIUM_WORK_DIR+x}" ] || CRONIUM_WORK_DIR=$1
	export CRONIUM_WORK_DIR
	# The mark every process of the run inherits (kill_marked).
	export "CRONIUM_RUN_ID=${1##*/}"
	case $3 in
	bash)
		# quoted whole: checkbashisms flags a bare BASH_ENV= assignment;
		# bash-env.sh is a stub that loads the helpers on first use
		export "BASH_ENV=$2/bash-env.sh"
		exec bash "$1/script"
		;;
	python)
		# helpers/sitecustomize.py is imported at startup from here and puts
		# `cronium` into builtins (it chains to any sitecustomize it shadows).
		export PYTHONPATH="$2${PYTHONPATH:+:$PYTHONPATH}"
		exec python3 "$1/script"
		;;
	node)
		# -r preloads the helpers (sets globalThis.cronium); NODE_PATH keeps
		# require('cronium') resolving to the same module instance.
		export NODE_PATH="$2${NODE_PATH:+:$NODE_PATH}"
		exec node -r "$2/cronium.js" "$1/script"
		;;
	esac
	exit 70
}

# ---------------------------------------------------------------- become

# A POSIX user name as the service validates it: [a-z_][a-z0-9_-]{0,31}.
valid_user() {
	case $1 in
	[abcdefghijklmnopqrstuvwxyz_]*) ;;
	*) return 1 ;;
	esac
	case $1 in
	*[!abcdefghijklmnopqrstuvwxyz0123456789_-]*) return 1 ;;
	esac
	[ ${#1} -le 32 ]
}

# become <run dir> <scriptType> (the script's process, cwd the run dir): the
# `become` section is `<user>\n[<sudo password>\n]`, read by builtins and
# emptied at once (the password is then only in this shell's memory).  One
# `sudo -u <user> -- sh -c :` checks that sudo lets us (the password fed
# on stdin with -S, through a pipe from the printf builtin; -n without one):
# refused, its words go to the script's stderr, .become tells the
# supervisor (reason `become`), and nothing runs.  Then the real sudo
# replaces this process (its pid is the script's process group), with -k so
# that it asks for the password whenever its rule wants one, and reads, on
# stdin (the .bin fifo, fed by `feed`): the password line, then the runner,
# the env and the script as sections, which BECOME_SH, as <user>, writes to
# a private dir of its own (mktemp -d) before it runs `runner inner` there.
become() {
	unset cr_bu cr_bp # never exported, even if the login environment had them
	{
		IFS= read -r cr_bu
		IFS= read -r cr_bp
	} <"$1/become" 2>/dev/null
	true 2>/dev/null >"$1/become"
	cr_g=5
	{ read -r cr_g <"$1/.grace"; } 2>/dev/null
	valid_num "$cr_g" || cr_g=5
	if ! valid_user "$cr_bu"; then
		cr_m="bad user name"
	elif ! command -v sudo >/dev/null 2>&1; then
		cr_m="sudo is not installed"
	elif [ -n "$cr_bp" ]; then
		cr_m=$(printf '%s\n' "$cr_bp" | sudo -S -k -p '' -u "$cr_bu" -- sh -c : 2>&1 >/dev/null) &&
			cr_m= || cr_m=${cr_m:-refused}
	else
		cr_m=$(sudo -n -u "$cr_bu" -- sh -c : 2>&1 </dev/null >/dev/null) && cr_m= || cr_m=${cr_m:-refused}
	fi
	if [ -n "$cr_m" ] || ! mkfifo -- "$1/.bin" 2>/dev/null; then
		true 2>/dev/null >"$1/.become"
		printf 'cronium: become %s: sudo refused: %s\n' "$cr_bu" "${cr_m:-cannot write run files}" >&2
		exit 1
	fi
	(feed "$1" "$cr_bp") >"$1/.bin" 2>/dev/null &
	if [ -n "$cr_bp" ]; then
		cr_bp=
		set -- "$1" "$2" -S -k -p ''
	else
		set -- "$1" "$2" -n
	fi
	cr_d=$1 cr_t=$2
	shift 2
	exec sudo "$@" -H -u "$cr_bu" -- sh -c "$BECOME_SH" cronium-become "${cr_d##*/}" "$cr_t" "$cr_g" <"$cr_d/.bin"
}

# feed <run dir> <password>: what the become side reads on stdin (see become).
feed() {
	[ -z "$2" ] || printf '%s\n' "$2"
	printf 'CRONIUM2 become\n'
	for cr_f in runner:"$cr_rd/runner.sh" env:"$1/env" script:"$1/script"; do
		[ -f "${cr_f#*:}" ] || continue
		cr_s=$(wc -c <"${cr_f#*:}")
		printf '%s %s\n' "${cr_f%%:*}" "${cr_s##*[!0123456789]}"
		cat -- "${cr_f#*:}"
	done
	printf '. 0\n'
}

# The become side's bootstrap, `sh -c` as the target user (a fixed text: the
# only arguments are the runId, the script type and the grace): skips the
# password line if sudo did not read it (a NOPASSWD rule), writes the
# sections to a private dir, then the runner found there does the rest.
BECOME_SH='umask 077; set -f; h="CRONIUM2 become"; i=0
while IFS= read -r l && [ "$l" != "$h" ]; do i=$((i + 1)); [ "$i" -lt 2 ] || exit 125; done
[ "$l" = "$h" ] || exit 125
t=$(mktemp -d "${TMPDIR:-/tmp}/cronium-become.XXXXXX") || exit 125
c() { cd / && rm -rf -- "$t"; }
trap c EXIT
mkdir -- "$t/$1" && cd -- "$t/$1" || exit 125
while IFS=" " read -r n c && [ "$n" != . ]; do
	case $n in runner | env | script) head -c "$c" >"$n" || exit 125 ;; *) exit 125 ;; esac
done
trap - EXIT
exec sh ./runner inner "$1" "$2" "$3" </dev/null'

# inner <runId> <scriptType> <grace> (the become side, as the target user,
# cwd its private dir <tmp>/<runId>, a child of sudo): starts the script in
# its own session and process group (launch) and waits.  A TERM (sudo
# relays the one the runner sends to its process group: cancel, timeout,
# lease) kills the script's tree from here, as its own user: the group,
# TERM then KILL after the grace, then what carries the run's mark.  The
# runtime helpers are stubs that say they are not available (the run dir
# and the helper socket belong to the SSH user).
inner() {
	trap '' HUP
	valid_id "$1" && valid_num "$3" || exit 125
	case $2 in
	bash | python | node) ;;
	*) exit 125 ;;
	esac
	cr_dir=$PWD cr_grace=$3
	case ${cr_dir%/*} in */cronium-become.*) ;; *) exit 125 ;; esac
	# Stopped (or failed) before the script runs: nothing of ours stays in /tmp.
	trap 'cd / && rm -rf -- "${cr_dir%/*}"; exit 143' TERM
	if ! stubs "$cr_dir/.helpers"; then
		printf 'cronium: become: cannot write to %s\n' "${cr_dir%/*}" >&2
		cd / && rm -rf -- "${cr_dir%/*}"
		exit 125
	fi
	find_setsid
	(
		trap - HUP TERM
		if [ -n "$cr_setsid" ]; then exec "$cr_setsid" sh "$cr_dir/runner" launch "$cr_dir" "$2"; fi
		exec sh "$cr_dir/runner" launch "$cr_dir" "$2"
	) &
	cr_pid=$!
	trap 'trap "" TERM; kill_tree "$cr_pid" 1' TERM
	# sudo does not always pass the TERM on before the runner's KILL after the
	# grace takes it down: sudo gone (we are orphaned), the watcher TERMs us.
	cr_w=
	if [ -d "/proc/$PPID" ]; then
		cr_sudo=$PPID
		(
			while [ -d "/proc/$cr_sudo" ]; do sleep 1; done
			kill -TERM $$
		) </dev/null >/dev/null 2>&1 &
		cr_w=$!
	fi
	while :; do
		wait "$cr_pid"
		cr_rc=$?
		kill -0 "$cr_pid" 2>/dev/null || break
	done
	trap '' TERM
	[ -z "$cr_w" ] || kill -KILL "$cr_w" 2>/dev/null
	kill_tree "$cr_pid" 0
	kill_marked
	cd / && rm -rf -- "${cr_dir%/*}"
	exit "$cr_rc"
}

# stubs <dir>: the runtime helpers of a script run as another user: each call
# fails, saying why (docs/runtime-helpers.md).
stubs() {
	mkdir -- "$1" || return 1
	cr_m='runtime helpers are not available to a script run as another user (become)'
	printf '%s\n' 'command_not_found_handle() {' \
		"case \$1 in cronium.*) printf 'cronium: %s: $cr_m\\n' \"\$1\" >&2 ;;" \
		"*) printf 'bash: %s: command not found\\n' \"\$1\" >&2 ;; esac" \
		'return 127; }' >"$1/bash-env.sh" &&
		printf '%s\n' 'import builtins' 'class _Unavailable:' \
			'    def __getattr__(self, name):' \
			"        raise RuntimeError('cronium.' + name + ': $cr_m')" \
			'builtins.cronium = _Unavailable()' >"$1/sitecustomize.py" &&
		printf '%s\n' 'const c = new Proxy({}, { get(_, n) {' \
			"  if (typeof n !== 'string' || n === 'then') return undefined;" \
			"  return () => { throw new Error('cronium.' + n + ': $cr_m'); }; } });" \
			'globalThis.cronium = c; module.exports = c;' >"$1/cronium.js"
}

# The reaper: detached like the supervisor (stdio /dev/null, HUP and TERM
# ignored), started in standby through $(...) so that it is nobody's child
# (init reaps it) and it hands the supervisor's pid back on fd 3.  It waits
# for the supervisor: the moment it has reaped it, `kill -0` fails for the
# followers' `tail --pid`, and truncating .wake (an empty file every GNU tail
# follows as well) wakes them up to notice: the end is seen at once instead of
# at the next poll.  Its cwd is the standby dir, which the claim renames into
# the run dir: relative paths follow.
reap() {
	trap '' HUP TERM
	cd "$cr_sb" || exit
	(park) <.go 3>&- &
	printf '%s\n' "$!" >&3
	exec 3>&-
	wait "$!"
	true 2>/dev/null >.wake
}

# clock: cr_now in centiseconds of a monotonic clock: /proc/uptime, read by
# a builtin (no fork).  Without it (cr_up empty) every tick counts a second.
clock() {
	if [ -n "$cr_up" ] && { read -r cr_u cr_x </proc/uptime; } 2>/dev/null; then
		case $cr_u in
		*[!0123456789.]* | *.*.* | .*) ;;
		*.??)
			cr_x=${cr_u#*.}
			cr_now=$((${cr_u%.*} * 100 + ${cr_x#0}))
			return 0
			;;
		esac
	fi
	cr_up=
	cr_now=$((${cr_now:-0} + 100))
}

# The ticker: a subshell of the supervisor (stdio /dev/null, HUP ignored),
# awake once a second.  While the script runs it enforces the absolute
# deadline and the lease: a follower creates .hb on every `hb` word, the
# ticker removes it; a lease without one kills the tree.  Once .status
# exists it is the linger: it removes the run dir when nobody heartbeats it
# for a whole lease (nobody came to collect), and exits when the run dir is
# gone.
ticker() {
	cr_idle=0 cr_seen= cr_shot= cr_spid= cr_up=1 # cr_ling: set by park, or USR1
	clock
	cr_end=$((cr_now + cr_timeout * 100))
	while sleep 1; do
		clock
		if [ ! -d "$cr_dir" ]; then
			# Removed (ack, collect, or under our feet): nothing left to
			# report to; a script still running has lost its spools.
			[ -n "$cr_ling" ] || { kill_tree "$cr_pid" 0 && kill_marked; }
			exit 0
		fi
		if [ -z "$cr_ling" ]; then
			if [ -z "$cr_spid" ]; then
				{ read -r cr_spid <"$cr_dir/.super"; } 2>/dev/null
				valid_num "$cr_spid" || cr_spid=
			fi
			if [ -e "$cr_dir/.status" ]; then
				cr_ling=1 cr_idle=0
				continue # a whole lease from now
			elif [ -n "$cr_spid" ] && ! kill -0 "$cr_spid" 2>/dev/null; then
				# The supervisor died without a status (kill -9): nobody will
				# report this run; don't let the script outlive it.
				kill_tree "$cr_pid" 0
				kill_marked
				cr_ling=1 cr_idle=0
				continue
			fi
		fi
		if [ -e "$cr_dir/.hb" ]; then
			rm -f -- "$cr_dir/.hb"
			cr_idle=0
		else
			cr_idle=$((cr_idle + 1))
		fi
		if [ -n "$cr_ling" ]; then
			if [ "$cr_idle" -ge "$cr_lease" ]; then
				rm -rf -- "$cr_dir" "$cr_dir.sock"
				exit 0
			fi
		elif [ -z "$cr_seen" ]; then
			cr_seen=$cr_now
			if [ -e "$cr_dir/.control" ]; then
				: # asked by a follower, who is killing the tree
			elif [ "$cr_now" -ge "$cr_end" ]; then
				! ask timeout || kill_tree "$cr_pid" 0
			elif [ "$cr_idle" -ge "$cr_lease" ]; then
				! ask lease || kill_tree "$cr_pid" 0
			else
				cr_seen=
			fi
		elif [ -z "$cr_shot" ] && [ "$cr_now" -ge $((cr_seen + cr_grace * 100 + 200)) ]; then
			# Backstop: whoever asked should have killed the tree by now (a
			# follower may have died halfway).  KILL only: its TERM went out.
			kill -KILL "-$cr_pid" 2>/dev/null
			cr_shot=1
		fi
	done
}

# ---------------------------------------------------------------- follower

# control [stream]: the control stream, one word per line.  With `stream` it
# runs as a subshell of the follower while the spools are streamed: EOF then
# stops the tails (the follower sees them end and exits), and `ack` is
# ignored until the trailer has gone out (.sent): the service took script
# output for one.
control() {
	while IFS= read -r cr_w; do
		case $cr_w in
		hb) true 2>/dev/null >"$cr_dir/.hb" ;;
		cancel | timeout)
			# Too late once .status exists.  No .pid yet: the supervisor
			# sees .control when it writes .pid and kills the script itself.
			[ ! -e "$cr_dir/.status" ] && ask "$cr_w" || continue
			{ read -r cr_p <"$cr_dir/.pid"; } 2>/dev/null || continue
			! valid_num "$cr_p" || [ -e "$cr_dir/.status" ] || kill_tree "$cr_p" 1
			;;
		ack)
			# Only once our trailer is out (.sent): an ack for script output
			# that looked like one must not remove a live run.
			[ -e "$cr_dir/.sent" ] || continue
			# The service has everything.  Bundled mode (keep) whose
			# results were not in the trailer (no .collect) reads out/ with
			# `collect`, which removes the run dir then.
			[ -e "$cr_dir/keep" ] && [ ! -e "$cr_dir/.collect" ] ||
				rm -rf -- "$cr_dir" "$cr_dir.sock" </dev/null
			break
			;;
		esac
	done
	# Not a signal to the follower: bash runs a trap that lands just before
	# its `wait` only once the waited-for child has exited.  The tails are
	# our parent's children, so their pids stay reserved until it has reaped
	# them, and it kills us right after that: too short a time for a pid to
	# come round again.
	if [ -n "${1-}" ]; then
		for cr_p in $cr_t1 $cr_t2; do kill -KILL "$cr_p" 2>/dev/null; done
	fi
}

# from <offset> <spool>: what to tail: cr_src from byte cr_from (tail's +N).
# An offset past the end of the spool delivers nothing: tail -f would take
# the spool for truncated and start over from byte 0, so /dev/null is
# followed instead (the tail still ends with the supervisor).
from() {
	cr_src=$2 cr_from=$(($1 + 1))
	[ "$1" != 0 ] || return 0
	cr_sz=$(wc -c 2>/dev/null <"$2")
	cr_sz=${cr_sz##*[!0123456789]} # some wc pad with blanks
	[ -n "$cr_sz" ] && [ "$1" -le "$cr_sz" ] || cr_src=/dev/null cr_from=1
}

# result: read .status into cr_code and cr_why, once: the run dir may be gone
# by the time the trailer goes out (another follower's ack, the linger).
result() {
	[ -z "$cr_code" ] || return 0
	{ read -r cr_code cr_why <"$cr_dir/.status"; } 2>/dev/null && [ -n "$cr_code" ] && return 0
	cr_code=
	return 1
}

# trailer: `\nCRONIUM2 exit <code> <reason>\n`, the run's result.  The
# leading newline separates it from output that did not end in one.  .sent
# first (from then on an `ack` counts), then the trailer, then stdout and
# stderr are closed: the channel's EOF tells the service that the trailer was
# the last word, so script output that merely looks like one never counts.
#
# Bundled mode (keep): the helpers' results travel in the trailer itself, as
# the base64 of the `collect` answer after the reason, when that answer fits
# in INLINE_MAX bytes: no second channel (nor login shell) for a `collect`.
# .collect, written here, tells the ack that the run dir may go.  Too big,
# a full disk or no base64: the plain trailer, and the service collects.
trailer() {
	result || return 1
	true 2>/dev/null >"$cr_dir/.sent"
	printf '\nCRONIUM2 exit %s %s' "$cr_code" "$cr_why"
	if [ -e "$cr_dir/keep" ] && inline; then
		if [ -n "$cr_b64" ]; then
			printf ' %s' "$cr_b64"
		else
			printf ' '
			base64 <"$cr_dir/.collect" | tr -d '\n'
		fi
	fi
	printf '\n'
	exec >/dev/null 2>&1 8>&-
}

INLINE_MAX=1048576
# inline: .collect written, and cr_b64 its base64 when that is known without
# a fork: no out/ file to frame (a job that called no helper), the answer
# is `CRONIUM2 collect 0`.
inline() {
	cr_b64=
	if ! framables "$cr_dir"; then
		{ say "collect 0" >"$cr_dir/.collect"; } 2>/dev/null || return 1
		cr_b64=Q1JPTklVTTIgY29sbGVjdCAwCg== # base64 of "CRONIUM2 collect 0\n"
		return 0
	fi
	command -v base64 >/dev/null 2>&1 &&
		{ (frame "$cr_dir") >"$cr_dir/.collect.$$" && mv -f -- "$cr_dir/.collect.$$" "$cr_dir/.collect"; } 2>/dev/null &&
		cr_s=$(wc -c <"$cr_dir/.collect") && cr_s=${cr_s##*[!0123456789]} &&
		[ -n "$cr_s" ] && [ "$cr_s" -le "$INLINE_MAX" ] && return 0
	rm -f -- "$cr_dir/.collect.$$" "$cr_dir/.collect"
	return 1
}

# copy <stdout offset> <stderr offset>: a finished run (result() read its
# .status): everything is in the spools already.
copy() {
	tail -c "+$(($1 + 1))" -- "$cr_dir/.stdout" 2>/dev/null
	tail -c "+$(($2 + 1))" -- "$cr_dir/.stderr" >&2 2>/dev/null
	trailer || exit 0
	control
	exit 0
}

# tails <supervisor pid> <stdout offset> <stderr offset> <poll seconds>: start
# streaming the spools from those offsets (cr_t1, cr_t2); never kills the
# script.  With fd 6 open on `run`'s .done fifo (cr_done), the tails get its
# write end as their stderr: see follow.
tails() {
	# The channel's stderr is the script's: only the stderr tail writes to it
	# (on fd 8).  Our own stderr goes to /dev/null, where the shell's reports
	# of killed jobs (bash: "Killed") and the tails' diagnostics belong.
	exec 8>&2 2>/dev/null
	# Async lists get stdin /dev/null: the tails never hold the channel's stdin.
	# They and the control reader are stopped with KILL, not TERM: a child
	# forked while we trap TERM still has our handler until it resets it, and
	# a TERM landing in that window (a loaded host, an immediate EOF) is
	# swallowed.  Neither has anything to clean up.  7>&-: only the follower
	# holds the .go fifo open for writing.
	# GNU: once the supervisor is gone, tail reads to EOF and exits; the
	# reaper's truncation of .wake (empty, so it prints nothing; -q: no
	# headers) wakes it at that moment, -s is only the fallback poll.
	from "$2" "$cr_dir/.stdout"
	if [ -n "$cr_done" ]; then
		tail -q --pid="$1" -s "$4" -c "+$cr_from" -f -- "$cr_src" "$cr_dir/.wake" 2>&6 6>&- 7>&- 8>&- &
	elif [ "$cr_tail" = pid ]; then
		tail -q --pid="$1" -s "$4" -c "+$cr_from" -f -- "$cr_src" "$cr_dir/.wake" 7>&- 8>&- &
	else
		tail -c "+$cr_from" -f -- "$cr_src" 7>&- 8>&- &
	fi
	cr_t1=$!
	from "$3" "$cr_dir/.stderr"
	if [ -n "$cr_done" ]; then
		tail -q --pid="$1" -s "$4" -c "+$cr_from" -f -- "$cr_src" "$cr_dir/.wake" >&8 2>&6 6>&- 7>&- 8>&- &
	elif [ "$cr_tail" = pid ]; then
		tail -q --pid="$1" -s "$4" -c "+$cr_from" -f -- "$cr_src" "$cr_dir/.wake" >&8 7>&- 8>&- &
	else
		tail -c "+$cr_from" -f -- "$cr_src" >&8 7>&- 8>&- &
	fi
	cr_t2=$!
}

# follow: with the tails running, read the control stream until the tails
# end, then the trailer.
follow() {
	cr_code=
	cr_follow=1
	# A non-job-control shell points an async list's stdin at /dev/null
	# unless redirected, and `<&0` would dup that /dev/null: pass our stdin
	# as fd 9.  Its stdout/stderr go to /dev/null so a sleep it may leave
	# behind never holds the channel's pipes open.
	if [ -n "$cr_cpid" ]; then
		# `run`: the control reader parked in standby starts reading now
		# (the payload is read); its fifo stays open until we exit.
		printf '%s\n' "$cr_dir" >&4
	else
		exec 9<&0
		(control stream) <&9 >/dev/null 6>&- 8>&- & # ( ): see reap in standby
		cr_cpid=$!
		exec 9<&-
	fi
	# Complete (trailer) only when the tails ended as they should: GNU tail
	# exits 0 after the supervisor; killed (137) means EOF stopped them.
	if [ -n "$cr_done" ]; then
		# `run`: the tails' stderr is the only write end of .done.  GNU tail
		# closes its stdout, then its stderr, itself on the way out, before
		# the kernel tears its inotify fd down (which can take ~20 ms): so
		# EOF here means both tails have written everything, without
		# waiting to reap them.  (Their diagnostics are read and dropped.)
		# Ended as they should: the supervisor wrote .status (kill -9 or a
		# removed run dir: none; EOF stopped them: nobody listens any more).
		exec 5<"$cr_dir/.done" 6>&-
		while IFS= read -r cr_l; do :; done <&5
		exec 5<&-
		cr_r=
		result || cr_r=1
	elif [ "$cr_tail" = pid ]; then
		wait "$cr_t1" 2>/dev/null
		cr_r=$?
		wait "$cr_t2" 2>/dev/null
		[ $? = 0 ] && [ "$cr_r" = 0 ] && cr_r=
	else
		# busybox tail has no --pid and polls its file once a second: once
		# .status is there (the spools are complete), give it one more poll,
		# then stop it.  Tails gone before that: EOF stopped them.
		# (Our `sleep` reaps them: kill -0 then fails.)
		cr_r=1
		while [ ! -e "$cr_dir/.status" ] && [ -d "$cr_dir" ] &&
			kill -0 "$cr_t1" 2>/dev/null && kill -0 "$cr_t2" 2>/dev/null; do
			sleep 1
		done
		if result && kill -0 "$cr_t1" 2>/dev/null && kill -0 "$cr_t2" 2>/dev/null; then
			sleep 1.5 2>/dev/null || sleep 2
			kill -0 "$cr_t1" 2>/dev/null && kill -0 "$cr_t2" 2>/dev/null && cr_r=
		fi
		kill -KILL "$cr_t1" "$cr_t2" 2>/dev/null
		wait "$cr_t1" 2>/dev/null
		wait "$cr_t2" 2>/dev/null
	fi
	cr_t1= cr_t2=
	if [ -z "$cr_r" ] && trailer; then
		wait "$cr_cpid" 2>/dev/null # it reads the ack (or EOF)
		cr_cpid=
	else
		# Stopped by EOF; or the tails ended with no status: the supervisor
		# is gone (killed) or the run dir was removed.  Nothing more to say.
		kill -KILL "$cr_cpid" 2>/dev/null
		wait "$cr_cpid" 2>/dev/null
	fi
	exit 0
}

# ---------------------------------------------------------------- verbs

# standby: everything of `run` that does not need the payload, done before
# reading it: the service opens the channel ahead of time (a standby runner),
# so this is off the job's critical path.  A run dir to be (cr_sb, renamed to
# runs/<runId> by the claim) with the spools and .wake; the .go fifo, held
# open read-write by us (never blocks, and the parked supervisor sees EOF
# when we are gone); the reaper and the parked supervisor; the tails,
# following the spools already.
standby() {
	cr_sb=$cr_runs/.standby-$$
	# A leftover of a killed runner whose pid came round again.
	[ ! -e "$cr_sb" ] || rm -rf -- "$cr_sb"
	mkdir -- "$cr_sb" 2>/dev/null || {
		cr_sb=
		die "cannot create runs directory"
	}
	{ true >"$cr_sb/.stdout" && true >"$cr_sb/.stderr" && true >"$cr_sb/.wake" &&
		mkfifo -- "$cr_sb/.go" "$cr_sb/.done" "$cr_sb/.ctl" "$cr_sb/.run" "$cr_sb/.claim" "$cr_sb/.tick" "$cr_sb/.chk"; } 2>/dev/null && exec 7<>"$cr_sb/.go" ||
		die "cannot write run files"
	# ( ) and not a bare `reap &`: dash runs a function's redirections by
	# saving the old fds (the channel's) on fds >= 10, and a backgrounded
	# function keeps those copies open for its whole life.
	cr_s=$( (reap) 3>&1 </dev/null >/dev/null 2>&1 7>&- &)
	valid_num "$cr_s" && printf '%s\n' "$cr_s" 2>/dev/null >"$cr_sb/.super" ||
		die "cannot start the supervisor"
	# GNU tail: the .done fifo (see follow), open read-write on fd 6.
	[ "$cr_tail" != pid ] || {
		exec 6<>"$cr_sb/.done"
		cr_done=1
	}
	# The tails follow the spools by descriptor (GNU tail -f, busybox tail
	# -f: inotify and reads on the open file), so they start now, on the
	# standby dir's files, and go on reading them once the claim has renamed
	# the dir.  They read the spools from byte 1.  By relative names from
	# our cwd, the standby dir: a child may open them after the claim (the
	# payload can be here before it runs), and the cwd follows the rename.
	cd "$cr_sb" || die "cannot write run files"
	cr_dir=.
	tails "$cr_s" 0 0 1
	cr_dir=
	# The control reader, parked until the payload is read: it waits for the
	# run dir's name on the .ctl fifo (our fd 4 is its only writer: our EOF
	# on a setup failure is its EOF), then reads the control stream (follow).
	exec 4<>.ctl 9<&0
	(
		IFS= read -r cr_dir <&4 || exit 0
		exec 4<&-
		control stream
	) <&9 4<.ctl >/dev/null 6>&- 7>&- 8>&- &
	cr_cpid=$!
	exec 9<&-
	# The mv of the claim (run), prepared: it waits on .claim for the runId
	# (our fd 3 is its only writer: our EOF is its EOF), then execs mv.
	exec 3<>.claim
	(
		IFS= read -r cr_l <&3 && valid_id "$cr_l" || exit 1
		exec mv -n -T -- "$cr_sb" "$cr_runs/$cr_l" 3<&-
	) 3<.claim </dev/null >/dev/null 2>&1 4>&- 6>&- 7>&- 8>&- &
	cr_mv=$!
	# The mode check of safe_paths, prepared: it waits on .chk for the payload
	# (our fd 5 is its only writer: our EOF is its EOF), then execs find, which
	# writes the paths writable by group or others to .chkout.  Started last,
	# so no other process of ours holds fd 5.
	exec 5<>.chk
	(
		IFS= read -r cr_l <&5 || exit 1
		exec 5<&-
		# the paths of safe_paths
		set -- "$cr_base" "$cr_base/runners" "$cr_rd" "$cr_rd/runner.sh" "$cr_rd/helpers" "$cr_runs"
		exec find -H "$@" -maxdepth 0 "(" -perm -020 -o -perm -002 ")" -print
	) 5<.chk </dev/null >.chkout 2>/dev/null 3>&- 4>&- 6>&- 7>&- 8>&- &
	cr_ck=$!
	say "standby $cr_version"
}

# section <name> <length> [text]: the next <length> bytes of stdin into the
# file.  A `text` section (small, no NUL byte: protocol.ts) is read line by
# line by builtins, which read a pipe byte by byte (LC_ALL=C: ${#} counts
# bytes; the follower's LC_ALL is nobody else's: everything else forked in
# standby); on the wire its last line always ends in a newline, one that is
# not part of the section when the length says so (the content did not end
# in one).  Any other section is read by GNU head -c, which never reads past
# N bytes of a pipe, so the next header stays on stdin.  NB busybox head
# reads through stdio and swallows more: the next read then fails cleanly.
# The env section (lines of `export N='v'`) is looked at for PATH when it is
# text; otherwise it may set PATH.  `true`, not `:`: a failed redirection on
# a special builtin would exit the shell on the spot, skipping die's cleanup.
section() {
	if [ "$2" = 0 ]; then
		true 2>/dev/null >"$cr_dir/$1"
	elif [ "$3" = text ]; then
		LC_ALL=C
		cr_left=$2
		while [ "$cr_left" -gt 0 ] && IFS= read -r cr_l; do
			cr_left=$((cr_left - ${#cr_l} - 1))
			case $1/$cr_l in env/"export PATH="*) cr_envpath=1 ;; esac
			if [ "$cr_left" = -1 ]; then
				printf '%s' "$cr_l"
			else
				printf '%s\n' "$cr_l"
			fi
		done 2>/dev/null >"$cr_dir/$1" || return 1
		# Short: stdin ended.  Further past the end: a line longer than said.
		[ "$cr_left" -le 0 ] || die "unexpected end of input"
		[ "$cr_left" -ge -1 ] || die "bad section length"
	else
		[ "$1" != env ] || cr_envpath=1 # not looked at: may set PATH
		head -c "$2" >"$cr_dir/$1"
	fi
}

# interpreter: the script's interpreter must be on PATH (the login PATH the
# script inherits), or the script never starts: `command -v` is a builtin.
# A job env that sets PATH (cr_envpath) is the script's business: not checked.
interpreter() {
	[ -z "$cr_envpath" ] || return 0
	case $cr_type in
	bash) cr_i=bash ;;
	python) cr_i=python3 ;;
	node) cr_i=node ;;
	esac
	command -v "$cr_i" >/dev/null 2>&1 || die "interpreter missing: $cr_i"
}

# safe_paths: the service's guard (commands.ts) checked owners and modes
# (one find) right before this runner started, ahead of time (standby); the
# payload may come much later (a standby may wait for hours).  Whoever else
# owns one of these (a swapped runner or helper: the new file is theirs) or
# may write there (rename our standby dir away, put theirs in its place) could
# read the job's env, so both are checked again before anything of the job
# lands: owners by the -O builtin, modes by one find.  That find is the one
# exec of the job's path spent on safety (forked in standby, it runs beside
# the claim's mv): a mode changed since the guard (by us or root, say a chmod
# 777 of runs/) must stop this job, not the one after every standby opened
# before it.  safe_paths checks the owners and lets the find go; safe_modes
# waits for its answer, before any section is read.
safe_paths() {
	set -- "$cr_base" "$cr_base/runners" "$cr_rd" "$cr_rd/runner.sh" "$cr_rd/helpers" "$cr_runs"
	for cr_p; do
		# Gone since the standby started (a tmp cleaner, a wiped base dir): the
		# service redeploys, as for a runner that is not there at all.
		[ -e "$cr_p" ] || die "runner missing: $cr_p"
		[ -O "$cr_p" ] || die "unsafe path (owned by another user): $cr_p"
	done
	# No `command -v find` here: the guard before this runner refused a login
	# without find (tool missing); a find gone since fails, and safe_modes dies.
	printf 'go\n' >&5 && exec 5>&- ||
		die "cannot check the modes of the run's paths (find failed)"
}

# safe_modes: the find's answer (its output in the run dir, one path a line).
safe_modes() {
	wait "$cr_ck" || die "cannot check the modes of the run's paths (find failed)"
	cr_ck= cr_p=
	while IFS= read -r cr_l; do cr_p=${cr_p:+$cr_p }$cr_l; done 2>/dev/null <"$cr_dir/.chkout"
	[ -z "$cr_p" ] || die "unsafe path (writable by group or others): $cr_p"
}

run() {
	host_info
	find_setsid
	[ -d "$cr_runs" ] || mkdir -p -- "$cr_runs" || die "cannot create runs directory"
	standby
	IFS= read -r cr_line || die "unexpected end of input"
	set -- $cr_line
	[ $# -eq 7 ] && [ "$1" = CRONIUM2 ] || die "bad header"
	valid_id "$2" || die "bad runId"
	case $3 in
	bash | python | node) ;;
	*) die "bad scriptType" ;;
	esac
	valid_num "$4" || die "bad graceSeconds"
	valid_num "$5" && [ "$5" -ge 1 ] || die "bad timeoutSeconds"
	valid_num "$6" && [ "$6" -ge 1 ] || die "bad leaseSeconds"
	valid_num "$7" && [ "$7" -le 1000 ] || die "bad sectionCount"
	cr_id=$2 cr_type=$3 cr_grace=$4 cr_timeout=$5 cr_lease=$6 cr_n=$7
	safe_paths

	# The claim on the runId: the standby dir becomes the run dir in one
	# rename that never replaces anything (GNU mv -n: renameat2 NOREPLACE;
	# busybox -T refuses an existing dir), so an existing run dir is left
	# untouched.  The tails and the reaper hold it by fd and cwd: they follow.
	cr_dir=$cr_runs/$cr_id
	[ ! -e "$cr_dir" ] && printf '%s\n' "$cr_id" >&3 && exec 3>&- && wait "$cr_mv" &&
		[ ! -e "$cr_sb" ] && [ -d "$cr_dir" ] ||
		die "run directory already exists or cannot be created"
	cr_mv=
	cr_sb= cr_mine=1
	safe_modes

	cr_i=0
	while [ "$cr_i" -lt "$cr_n" ]; do
		IFS= read -r cr_line || die "unexpected end of input"
		set -- $cr_line
		[ $# -eq 2 ] || { [ $# -eq 3 ] && [ "$3" = text ]; } || die "bad section header"
		valid_name "$1" || die "bad section name"
		valid_num "$2" || die "bad section length"
		[ ! -e "$cr_dir/$1" ] || die "duplicate section"
		section "$1" "$2" "${3-}" || die "cannot write section"
		cr_i=$((cr_i + 1))
	done
	[ -f "$cr_dir/script" ] || die "missing script section"
	interpreter
	# kill_marked finds the processes that left the script's group and session
	# with one grep over /proc: without grep they would outlive the run.
	command -v grep >/dev/null 2>&1 || die "tool missing: grep (ends the script's whole process tree)"
	# .grace is for attach.
	printf '%s\n' "$cr_grace" 2>/dev/null >"$cr_dir/.grace" || die "cannot write run files"

	# From here on the run dir belongs to the supervisor.  The lease starts
	# renewed (the ticker begins with a zero idle count): no .hb needed.
	# ready goes out before the go line: no script output can precede it.
	cr_mine=
	cr_follow=1
	say "ready $cr_version $cr_os $cr_arch"
	printf '%s %s %s %s %s\n' "$cr_id" "$cr_type" "$cr_grace" "$cr_timeout" "$cr_lease" >&7
	exec 7>&-
	follow
}

# attach <runId> <stdoutOffset> <stderrOffset>: follow a run again, from the
# byte counts the service already has.
attach() {
	valid_id "$1" || die "bad runId"
	valid_num "$2" && valid_num "$3" || die "bad offset"
	cr_dir=$cr_runs/$1
	cr_s=
	{ read -r cr_s <"$cr_dir/.super"; } 2>/dev/null
	valid_num "$cr_s" || cr_s=
	cr_code=
	if [ ! -d "$cr_dir" ] || { ! result && ! { [ -n "$cr_s" ] && kill -0 "$cr_s" 2>/dev/null; }; }; then
		say "error unknown run $1"
		exit 70
	fi
	{ read -r cr_grace <"$cr_dir/.grace"; } 2>/dev/null
	valid_num "$cr_grace" || cr_grace=5
	host_info
	true 2>/dev/null >"$cr_dir/.hb" # renews the lease
	say "attached $cr_version $cr_os $cr_arch"
	[ -z "$cr_code" ] || copy "$2" "$3"
	# A run dir of an older runner may have no .wake (tail would fail on it).
	true 2>/dev/null >>"$cr_dir/.wake"
	tails "$cr_s" "$2" "$3" 0.1
	follow
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

# framables <run dir>: is there a file in its out/ that frame would send?
framables() {
	set +f
	for cr_f in "$1"/out/*; do
		if framable "$cr_f"; then
			set -f
			return 0
		fi
	done
	set -f
	return 1
}

collect() {
	valid_id "$1" || die "bad runId"
	cr_d=$cr_runs/$1
	if [ ! -d "$cr_d" ]; then
		say "collect 0"
		exit 0
	fi
	frame "$cr_d"
	rm -rf -- "$cr_d" "$cr_d.sock"
	exit 0
}

# frame <run dir>: the `collect` answer for the files in its out/.
frame() {
	set +f
	cr_n=0
	for cr_f in "$1"/out/*; do
		if framable "$cr_f"; then cr_n=$((cr_n + 1)); fi
	done
	say "collect $cr_n"
	for cr_f in "$1"/out/*; do
		framable "$cr_f" || continue
		cr_s=$(wc -c <"$cr_f")
		cr_s=${cr_s##*[!0123456789]} # some wc pad with blanks
		printf '%s %s\n' "${cr_f##*/}" "$cr_s"
		# exactly the announced length, even if the file changed meanwhile
		if [ "$cr_s" != 0 ]; then head -c "$cr_s" <"$cr_f"; fi
	done
	set -f
}

# The script's own process (park): no traps of ours, it becomes the script.
if [ "${1-}" = script ] && [ $# -eq 1 ]; then prestart; fi
# The become side (a copy of this file in the target user's private dir).
if [ "${1-}" = inner ] && [ $# -eq 4 ]; then inner "$2" "$3" "$4"; fi
if [ "${1-}" = launch ] && [ $# -eq 3 ]; then launch "$2" "$2/.helpers" "$3"; fi

trap 'on_signal 129' HUP
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
# A closed channel (the service dropped a standby before its word, or the
# connection went): cleaned up like a signal, not a death that leaves the
# standby dir behind.  A handler, not an ignore: the script gets the default.
trap 'on_signal 141' PIPE

case ${1-} in
run)
	[ $# -eq 1 ] || die usage
	run
	;;
attach)
	[ $# -eq 4 ] || die usage
	attach "$2" "$3" "$4"
	;;
collect)
	[ $# -eq 2 ] || die usage
	collect "$2"
	;;
*) die usage ;;
esac
