# cronium runtime helpers for bash scripts: the contract is docs/runtime-helpers.md.
#
# Sourced on the first helper call by the stub BASH_ENV loads (bash-env.sh),
# in the caller's shell, or through BASH_ENV itself (the helper specs; it
# works either way).  Sourcing therefore only defines functions:
# no output, no variables, no option changes, nothing forked.  State lives in
# _cronium_* globals created on first use (CRONIUM_VARS and CRONIUM_INPUT_RAW
# come from the service's variables.sh, sourced on first use in bundled mode).
#
# The functions run in the caller's shell with the caller's settings (set -euo
# pipefail, IFS, noglob, ERR traps, ...), so: every expansion is quoted, failures
# we expect sit in && / || / if lists where set -e and ERR traps ignore them,
# nothing relies on (( )) as a command, no [[ =~ ]] (BASH_REMATCH belongs to the
# caller), and the only external command is mkdir, once, for out/.  Values are
# only ever copied, never evaluated.  Needs bash >= 4.2 (associative arrays,
# declare -g); /dev/tcp for API mode.

# Only bash reads BASH_ENV, never in posix mode (dotted names would not parse).
if [ -z "${BASH_VERSION-}" ] || shopt -qo posix; then return 0; fi

# ------------------------------------------------------------------ internals

# _cronium_err NAME MESSAGE: "cronium.NAME: MESSAGE" on stderr.  Returns 0 so a
# caller under set -e reaches its own `return 1`.
_cronium_err() {
	printf 'cronium.%s: %s\n' "$1" "$2" >&2
	return 0
}

# _cronium_mode NAME: api or bundled in _cronium_r.  Without
# CRONIUM_HELPER_MODE the mode follows the presence of CRONIUM_API_ENDPOINT.
_cronium_mode() {
	_cronium_r=${CRONIUM_HELPER_MODE-}
	if [ -z "$_cronium_r" ]; then
		_cronium_r=bundled
		[ -z "${CRONIUM_API_ENDPOINT-}" ] || _cronium_r=api
	fi
	if [ "$_cronium_r" = api ] || [ "$_cronium_r" = bundled ]; then return 0; fi
	_cronium_err "$1" "CRONIUM_HELPER_MODE must be api or bundled (got '$_cronium_r')"
	return 1
}

# _cronium_key NAME KEY: keys are 1-200 UTF-8 bytes.
_cronium_key() {
	local LC_ALL=C
	if [ "${#2}" -ge 1 ] && [ "${#2}" -le 200 ]; then return 0; fi
	_cronium_err "$1" "a variable key is 1-200 UTF-8 bytes"
	return 1
}

# _cronium_urlenc STRING: percent-encoded (every byte but A-Za-z0-9._~-) in
# _cronium_r.  LC_ALL=C makes ${s:i:1} a byte and "'c" its unsigned value.
_cronium_urlenc() {
	local LC_ALL=C s=$1 out= c i
	case $s in
	*[!abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-]*)
		for ((i = 0; i < ${#s}; i++)); do
			c=${s:i:1}
			case $c in
			[abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-]) ;;
			*) printf -v c '%%%02X' "'$c" ;;
			esac
			out+=$c
		done
		s=$out
		;;
	esac
	_cronium_r=$s
}

# _cronium_jstr STRING: a JSON string literal in _cronium_r.
_cronium_jstr() {
	local LC_ALL=C s=$1 out= c i
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\r'/\\r}
	s=${s//$'\t'/\\t}
	case $s in
	*[$'\001'-$'\037']*)
		for ((i = 0; i < ${#s}; i++)); do
			c=${s:i:1}
			case $c in
			[$'\001'-$'\037']) printf -v c '\\u%04x' "'$c" ;;
			esac
			out+=$c
		done
		s=$out
		;;
	esac
	_cronium_r=\"$s\"
}

# _cronium_utf8 CODEPOINT: its UTF-8 bytes appended to the caller's `out`.
_cronium_utf8() {
	local e
	if [ "$1" -lt 128 ]; then
		printf -v e '\\x%02x' "$1"
	elif [ "$1" -lt 2048 ]; then
		printf -v e '\\x%02x\\x%02x' $((0xC0 | $1 >> 6)) $((0x80 | ($1 & 0x3F)))
	elif [ "$1" -lt 65536 ]; then
		printf -v e '\\x%02x\\x%02x\\x%02x' $((0xE0 | $1 >> 12)) \
			$((0x80 | ($1 >> 6 & 0x3F))) $((0x80 | ($1 & 0x3F)))
	else
		printf -v e '\\x%02x\\x%02x\\x%02x\\x%02x' $((0xF0 | $1 >> 18)) \
			$((0x80 | ($1 >> 12 & 0x3F))) $((0x80 | ($1 >> 6 & 0x3F))) $((0x80 | ($1 & 0x3F)))
	fi
	printf -v e '%b' "$e"
	out+=$e
}

# _cronium_render TEXT: in _cronium_r, what getVariable prints for a value
# stored from TEXT with `auto` (JSON when it parses, else the string) or `json`
# semantics.  A string prints raw and anything else as its JSON text, so only a
# JSON string literal changes: it is decoded.  Other text renders as itself
# (JSON that is not a string stays semantically equal, not re-serialized).
_cronium_render() {
	local LC_ALL=C t=$1 s out= c h l
	_cronium_r=$1
	t=${t#"${t%%[!$' \t\r\n']*}"} # JSON whitespace around the value
	t=${t%"${t##*[!$' \t\r\n']}"}
	case $t in
	\"*\") ;;
	*) return 0 ;;
	esac
	s=${t:1:${#t}-2}
	case $s in
	*[$'\001'-$'\037']*) return 0 ;; # raw control characters: not JSON
	esac
	while :; do
		c=${s%%\\*}
		case $c in
		*\"*) return 0 ;; # an unescaped quote inside: not JSON
		esac
		out+=$c
		[ "${#c}" -lt "${#s}" ] || break
		s=${s:${#c}+1}
		c=${s:0:1}
		s=${s:1}
		case $c in
		\" | \\ | /) out+=$c ;;
		b) out+=$'\b' ;;
		f) out+=$'\f' ;;
		n) out+=$'\n' ;;
		r) out+=$'\r' ;;
		t) out+=$'\t' ;;
		u)
			h=${s:0:4}
			case $h in
			[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]) ;;
			*) return 0 ;;
			esac
			s=${s:4}
			h=$((16#$h))
			if [ "$h" -ge 55296 ] && [ "$h" -le 57343 ]; then # a surrogate
				l=${s:2:4}
				case ${s:0:2}$l in
				\\u[dD][cdefCDEF][0-9a-fA-F][0-9a-fA-F])
					if [ "$h" -le 56319 ]; then
						h=$((65536 + (h - 55296) * 1024 + (16#$l - 56320)))
						s=${s:6}
					else
						h=65533
					fi
					;;
				*) h=65533 ;; # lone: U+FFFD, as the service's UTF-8 encoding does
				esac
			fi
			# U+0000 can't live in a bash string: it is dropped
			[ "$h" = 0 ] || _cronium_utf8 "$h"
			;;
		*) return 0 ;;
		esac
	done
	_cronium_r=$out
}

# _cronium_io HOSTPORT METHOD PATH [CONTENT-TYPE BODY]: one HTTP/1.1 exchange on
# fd 9; _cronium_status and _cronium_body.  Runs with LC_ALL=C (byte counts).
_cronium_io() {
	local req line n v len=-1 chunked=
	_cronium_status=000
	req="$2 $3 HTTP/1.1"$'\r\n'"Host: $1"$'\r\n'"Authorization: Bearer ${CRONIUM_API_TOKEN-}"$'\r\n'
	req+="Accept: application/json, text/plain"$'\r\n'"Connection: close"$'\r\n'
	if [ $# -ge 5 ]; then
		req+="Content-Type: $4"$'\r\n'"Content-Length: ${#5}"$'\r\n'$'\r\n'"$5"
	else
		req+=$'\r\n'
	fi
	printf '%s' "$req" >&9 || return 1

	IFS= read -r line <&9 || return 1
	line=${line%$'\r'}
	case $line in
	HTTP/*' '[0-9][0-9][0-9] | HTTP/*' '[0-9][0-9][0-9]' '*) ;;
	*) return 1 ;;
	esac
	line=${line#* }
	_cronium_status=${line:0:3}
	while :; do
		IFS= read -r line <&9 || return 1
		line=${line%$'\r'}
		[ -n "$line" ] || break
		n=${line%%:*}
		v=${line#*:}
		v=${v//[$' \t']/}
		case ${n,,} in
		content-length)
			case $v in
			'' | *[!0123456789]*) return 1 ;;
			esac
			len=$((10#$v))
			;;
		transfer-encoding)
			case ${v,,} in
			*chunked*) chunked=1 ;;
			esac
			;;
		esac
	done

	_cronium_body=
	if [ -n "$chunked" ]; then
		while :; do
			IFS= read -r line <&9 || return 1
			line=${line%$'\r'}
			line=${line%%;*}
			line=${line//[$' \t']/}
			case $line in
			'' | *[!0123456789abcdefABCDEF]*) return 1 ;;
			esac
			[ "${#line}" -le 8 ] || return 1
			n=$((16#$line))
			[ "$n" -gt 0 ] || break
			v=
			IFS= read -r -N "$n" v <&9 || return 1
			_cronium_body+=$v
			IFS= read -r line <&9 || return 1 # the CRLF after the chunk
		done
	elif [ "$len" -gt 0 ]; then
		IFS= read -r -N "$len" _cronium_body <&9 || return 1
	elif [ "$len" -lt 0 ]; then
		IFS= read -r -d '' _cronium_body <&9 # until the server closes
	fi
	return 0
}

# _cronium_http NAME METHOD PATH [CONTENT-TYPE BODY]: a request to
# $CRONIUM_API_ENDPOINT (http://host[:port][/prefix]) through bash's /dev/tcp.
# Status 1 (message printed) when no HTTP response came back; the caller judges
# _cronium_status.
_cronium_http() {
	local LC_ALL=C fn=$1 ep=${CRONIUM_API_ENDPOINT-} hp host port prefix
	shift
	_cronium_status= _cronium_body=
	case $ep in
	http://*) ep=${ep#http://} ;;
	*)
		_cronium_err "$fn" "CRONIUM_API_ENDPOINT must be http://host:port (got '$ep')"
		return 1
		;;
	esac
	hp=${ep%%/*}
	prefix=${ep#"$hp"}
	prefix=${prefix%/}
	case $hp in
	\[*\]:*) host=${hp%\]:*} port=${hp##*\]:} ;;
	\[*\]) host=${hp%\]} port=80 ;;
	*:*) host=${hp%:*} port=${hp##*:} ;;
	*) host=$hp port=80 ;;
	esac
	host=${host#\[}
	case $port in
	'' | *[!0123456789]*) host= ;;
	esac
	if [ -z "$host" ]; then
		_cronium_err "$fn" "CRONIUM_API_ENDPOINT must be http://host:port (got '$CRONIUM_API_ENDPOINT')"
		return 1
	fi
	local wait=${CRONIUM_API_RETRY_SECONDS-60}
	case $wait in '' | *[!0123456789]*) wait=60 ;; esac
	local until=$((SECONDS + 10#$wait))
	# 2>/dev/null first: bash's own connect errors are replaced by ours.  The
	# redirection on the group restores any fd 9 of the caller afterwards.
	while :; do
		if { _cronium_io "$hp" "$1" "$prefix$2" "${@:3}"; } 2>/dev/null 9<>"/dev/tcp/$host/$port"; then
			return 0
		fi
		# No connection, so nothing was sent: the tunnel is away while whoever took
		# the run over forwards it again.  Try again for a while.
		[ -z "$_cronium_status" ] && [ "$SECONDS" -lt "$until" ] || break
		sleep 0.25
	done
	if [ -z "$_cronium_status" ]; then
		_cronium_err "$fn" "cannot connect to $CRONIUM_API_ENDPOINT"
	else
		_cronium_err "$fn" "bad HTTP response from $CRONIUM_API_ENDPOINT for $1 $prefix$2"
	fi
	return 1
}

# _cronium_fail NAME: the error of a non-2xx answer ({statusCode, error,
# message}) on stderr; a string message is cut out without a JSON parser (up
# to the first quote not escaped, then \" and \\ unescaped), else the body.
_cronium_fail() {
	local m=$_cronium_body c out=
	case $m in
	*'"message":"'*)
		m=${m#*'"message":"'}
		while :; do
			c=${m%%'"'*}
			out+=$c
			[ "${#c}" -lt "${#m}" ] || break
			m=${m#*'"'}
			c=${c##*[!\\]} # the backslashes ending the piece
			[ $((${#c} % 2)) = 1 ] || break
			out+='"'
		done
		out=${out//\\\"/\"}
		m=${out//\\\\/\\}
		;;
	esac
	_cronium_err "$1" "HTTP $_cronium_status${m:+: $m}"
}

# _cronium_call NAME METHOD PATH [CONTENT-TYPE BODY]: status 0 only for 2xx.
_cronium_call() {
	_cronium_http "$@" || return 1
	case $_cronium_status in
	2??) return 0 ;;
	esac
	_cronium_fail "$1"
	return 1
}

# _cronium_load NAME: bundled mode's snapshot: variables.sh, sourced once, with
# the setVariable records of out/ replayed on top in order.  Replaying continues
# on every call, so writes made by child processes or pipeline subshells (echo x
# | cronium.setVariable k) are read back too; a stat per call when idle.
_cronium_load() {
	local f n k v
	if [ -z "${_cronium_seen-}" ]; then
		f=${CRONIUM_WORK_DIR:-.}/variables.sh
		if [ ! -r "$f" ]; then
			_cronium_err "$1" "$f is missing (bundled mode)"
			return 1
		fi
		unset CRONIUM_VARS CRONIUM_INPUT_RAW
		declare -gA CRONIUM_VARS=()
		if ! . "$f"; then
			_cronium_err "$1" "cannot load $f"
			return 1
		fi
		_cronium_seen=0
	fi
	f=${CRONIUM_WORK_DIR:-.}/out/var.
	n=$((_cronium_seen + 1))
	while [ -e "$f$n.key" ]; do
		if [ -e "$f$n.type" ]; then
			k= v=
			IFS= read -r -d '' k 2>/dev/null <"$f$n.key" || :
			IFS= read -r -d '' v 2>/dev/null <"$f$n.val" || :
			if [ -n "$k" ]; then
				_cronium_render "$v"
				CRONIUM_VARS[$k]=$_cronium_r
			fi
		elif [ ! -e "$f$((n + 1)).key" ]; then
			break # being written: look again next time
		fi # else abandoned by its writer: skipped
		_cronium_seen=$n
		n=$((n + 1))
	done
	return 0
}

# _cronium_out NAME: $CRONIUM_WORK_DIR/out in _cronium_r, created if missing.
_cronium_out() {
	_cronium_r=${CRONIUM_WORK_DIR:-.}/out
	[ ! -d "$_cronium_r" ] || return 0
	command mkdir -- "$_cronium_r" 2>/dev/null || [ -d "$_cronium_r" ] || {
		_cronium_err "$1" "cannot create $_cronium_r"
		return 1
	}
}

# _cronium_record KEY TEXT: out/var.<n>.{key,val,type} for the next free n.
# The .key file is created empty and exclusively (noclobber: O_EXCL) to claim
# n, so concurrent writers (child processes, other languages) never share a
# record; its contents follow.  A write that fails (a full disk creates the
# file but cannot fill it) fails the call once: the claimed record has no
# .type, which readers and the service skip.
_cronium_record() {
	local out n c=
	_cronium_out setVariable || return 1
	out=$_cronium_r
	n=${_cronium_n:-0}
	case $- in
	*C*) c=1 ;;
	esac
	set -C
	while :; do
		n=$((n + 1))
		if { true >"$out/var.$n.key"; } 2>/dev/null; then break; fi
		if [ ! -e "$out/var.$n.key" ]; then
			[ -n "$c" ] || set +C
			_cronium_err setVariable "cannot create $out/var.$n.key"
			return 1
		fi
	done
	[ -n "$c" ] || set +C
	_cronium_n=$n
	if { printf '%s' "$1" >|"$out/var.$n.key" && printf '%s' "$2" >|"$out/var.$n.val" &&
		printf auto >|"$out/var.$n.type"; } 2>/dev/null; then
		return 0
	fi
	_cronium_err setVariable "cannot write $out/var.$n (is the disk full?)"
	return 1
}

# ------------------------------------------------------------------ helpers
# Each first line keeps the caller's `set -x` out of our internals (bash >= 4.4).

# cronium.input: the job's input, a string raw, anything else as JSON.
cronium.input() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	if [ $# -ne 0 ]; then
		_cronium_err input "usage: cronium.input"
		return 1
	fi
	_cronium_mode input || return 1
	if [ "$_cronium_r" = api ]; then
		_cronium_call input GET '/runtime/v1/input?format=raw' || return 1
		printf '%s' "$_cronium_body"
	else
		_cronium_load input || return 1
		printf '%s' "${CRONIUM_INPUT_RAW-null}"
	fi
}

# cronium.output [VALUE]: VALUE (or stdin, minus one trailing newline) becomes
# the output: JSON when it parses as JSON, else a string.
cronium.output() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	local _cronium_v=
	case $# in
	0)
		IFS= read -r -d '' _cronium_v || :
		_cronium_v=${_cronium_v%$'\n'}
		;;
	1) _cronium_v=$1 ;;
	*)
		_cronium_err output "usage: cronium.output [VALUE]"
		return 1
		;;
	esac
	_cronium_mode output || return 1
	if [ "$_cronium_r" = api ]; then
		_cronium_call output POST /runtime/v1/output 'text/plain; charset=utf-8' "$_cronium_v" || return 1
		return 0
	fi
	_cronium_out output || return 1
	if { printf '%s' "$_cronium_v" >|"$_cronium_r/output.val" && printf auto >|"$_cronium_r/output.type"; } 2>/dev/null; then
		return 0
	fi
	_cronium_err output "cannot write $_cronium_r/output.val (is the disk full?)"
	return 1
}

# cronium.getVariable KEY: the value (a string raw, anything else as JSON);
# nothing and status 1 when unset.
cronium.getVariable() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	if [ $# -ne 1 ]; then
		_cronium_err getVariable "usage: cronium.getVariable KEY"
		return 1
	fi
	_cronium_key getVariable "$1" || return 1
	_cronium_mode getVariable || return 1
	if [ "$_cronium_r" = api ]; then
		_cronium_urlenc "$1"
		_cronium_http getVariable GET "/runtime/v1/variables/$_cronium_r?format=raw" || return 1
		case $_cronium_status in
		2??) printf '%s' "$_cronium_body" ;;
		404) return 1 ;;
		*)
			_cronium_fail getVariable
			return 1
			;;
		esac
	else
		_cronium_load getVariable || return 1
		[ -n "${CRONIUM_VARS[$1]+set}" ] || return 1
		printf '%s' "${CRONIUM_VARS[$1]}"
	fi
}

# cronium.setVariable KEY [VALUE]: VALUE (or stdin, minus one trailing newline)
# stored as JSON when it parses as JSON, else as a string.
cronium.setVariable() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	local _cronium_v=
	case $# in
	1)
		IFS= read -r -d '' _cronium_v || :
		_cronium_v=${_cronium_v%$'\n'}
		;;
	2) _cronium_v=$2 ;;
	*)
		_cronium_err setVariable "usage: cronium.setVariable KEY [VALUE]"
		return 1
		;;
	esac
	_cronium_key setVariable "$1" || return 1
	_cronium_mode setVariable || return 1
	if [ "$_cronium_r" = api ]; then
		_cronium_urlenc "$1"
		_cronium_call setVariable PUT "/runtime/v1/variables/$_cronium_r" \
			'text/plain; charset=utf-8' "$_cronium_v" || return 1
		return 0
	fi
	# read back by the next _cronium_load, which replays the record
	_cronium_record "$1" "$_cronium_v" || return 1
	return 0
}

# cronium.event: the execution context JSON.
cronium.event() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	local _cronium_v=
	if [ $# -ne 0 ]; then
		_cronium_err event "usage: cronium.event"
		return 1
	fi
	_cronium_mode event || return 1
	if [ "$_cronium_r" = api ]; then
		_cronium_call event GET /runtime/v1/context || return 1
		printf '%s' "$_cronium_body"
		return
	fi
	_cronium_r=${CRONIUM_WORK_DIR:-.}/context.json
	if [ ! -r "$_cronium_r" ]; then
		_cronium_err event "$_cronium_r is missing (bundled mode)"
		return 1
	fi
	IFS= read -r -d '' _cronium_v <"$_cronium_r" || :
	printf '%s' "$_cronium_v"
}

# cronium.setCondition true|false
cronium.setCondition() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	if [ $# -ne 1 ] || { [ "$1" != true ] && [ "$1" != false ]; }; then
		_cronium_err setCondition "usage: cronium.setCondition true|false"
		return 1
	fi
	_cronium_mode setCondition || return 1
	if [ "$_cronium_r" = api ]; then
		_cronium_call setCondition POST /runtime/v1/condition application/json "{\"condition\":$1}" || return 1
		return 0
	fi
	_cronium_out setCondition || return 1
	if { printf '%s' "$1" >|"$_cronium_r/condition"; } 2>/dev/null; then
		return 0
	fi
	_cronium_err setCondition "cannot write $_cronium_r/condition (is the disk full?)"
	return 1
}

# cronium.toolAction TOOL ACTION [PARAMS-JSON]: prints the result JSON.
cronium.toolAction() {
	[[ $- != *x* ]] || { local - 2>/dev/null && set +x; }
	local _cronium_v
	if [ $# -lt 2 ] || [ $# -gt 3 ]; then
		_cronium_err toolAction "usage: cronium.toolAction TOOL ACTION [PARAMS-JSON]"
		return 1
	fi
	_cronium_mode toolAction || return 1
	if [ "$_cronium_r" != api ]; then
		_cronium_err toolAction "toolAction needs API mode (helperMode $_cronium_r has no network)"
		return 1
	fi
	_cronium_jstr "$1"
	_cronium_v="{\"tool\":$_cronium_r"
	_cronium_jstr "$2"
	_cronium_v+=",\"action\":$_cronium_r,\"params\":"
	if [ -n "${3-}" ]; then _cronium_v+="$3}"; else _cronium_v+='{}}'; fi
	_cronium_call toolAction POST /runtime/v1/tool-actions application/json "$_cronium_v" || return 1
	_cronium_v=$_cronium_body
	case $_cronium_v in
	'{"result":'*'}')
		_cronium_v=${_cronium_v#'{"result":'}
		_cronium_v=${_cronium_v%'}'}
		;;
	esac
	printf '%s' "$_cronium_v"
}
