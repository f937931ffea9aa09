# cronium runtime helpers for bash: what BASH_ENV loads (docs/runtime-helpers.md).
#
# Every non-interactive bash sources BASH_ENV: the job's script and any bash it
# starts, helpers used or not.  So this is a stub: it only defines the public
# helpers, and the first call of one sources the full helpers (cronium.sh,
# next to this file) into the caller's shell, which replaces every stub, then
# calls the real one with the same arguments.  Like cronium.sh: no output, no
# variables, no option changes, nothing forked when sourced.

# Only bash reads BASH_ENV, never in posix mode (dotted names would not parse).
if [ -z "${BASH_VERSION-}" ] || shopt -qo posix; then return 0; fi

# _cronium_lazy: sources cronium.sh, once per shell.  A stub's first line keeps
# the caller's `set -x` out of it, as the real helpers do (bash >= 4.4); `||
# return` passes the helper's status on without tripping set -e or an ERR
# trap in here.
_cronium_lazy() {
	[ -z "${_cronium_full-}" ] || return 0
	. "${BASH_SOURCE[0]%/*}/cronium.sh" || return 1
	_cronium_full=1
}

cronium.input() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	_cronium_lazy && cronium.input "$@" || return
}
cronium.output() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	_cronium_lazy && cronium.output "$@" || return
}
cronium.getVariable() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	_cronium_lazy && cronium.getVariable "$@" || return
}
cronium.setVariable() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	_cronium_lazy && cronium.setVariable "$@" || return
}
cronium.event() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	_cronium_lazy && cronium.event "$@" || return
}
cronium.setCondition() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	_cronium_lazy && cronium.setCondition "$@" || return
}
cronium.toolAction() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	_cronium_lazy && cronium.toolAction "$@" || return
}
