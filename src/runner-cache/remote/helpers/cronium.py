"""cronium runtime helpers for python scripts: the contract is docs/runtime-helpers.md.

`import cronium` works (the runner puts this directory first on PYTHONPATH) and
sitecustomize.py also puts the module into builtins, so `cronium.input()` works
without an import.  Standard library only; python >= 3.6.

API mode talks JSON to $CRONIUM_API_ENDPOINT; bundled mode reads the snapshot
files of $CRONIUM_WORK_DIR and writes results to its out/ directory.
"""

import os

__all__ = [
    "CroniumError",
    "input",
    "output",
    "getVariable",
    "setVariable",
    "event",
    "setCondition",
    "toolAction",
    "get_variable",
    "set_variable",
    "set_condition",
    "tool_action",
]


class CroniumError(Exception):
    """A helper failed: bad argument, API error (`status` set) or I/O error."""

    def __init__(self, message, status=None):
        Exception.__init__(self, message)
        self.status = status


# http.client and json are imported on first use: this module is imported at
# every interpreter start (sitecustomize), most scripts never call a helper.


def _mode():
    mode = os.environ.get("CRONIUM_HELPER_MODE") or (
        "api" if os.environ.get("CRONIUM_API_ENDPOINT") else "bundled"
    )
    if mode not in ("api", "bundled"):
        raise CroniumError("CRONIUM_HELPER_MODE must be api or bundled (got %r)" % mode)
    return mode


def _retry_seconds():
    """How long a refused connection is tried again (CRONIUM_API_RETRY_SECONDS, 60)."""
    raw = os.environ.get("CRONIUM_API_RETRY_SECONDS", "60")
    return int(raw) if raw.isdigit() else 60


def _dumps(value):
    import json

    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CroniumError("value is not JSON-serializable: %s" % e)


def _check_key(key):
    if not isinstance(key, str) or not 1 <= len(key.encode("utf-8", "surrogatepass")) <= 200:
        raise CroniumError("a variable key is a string of 1-200 UTF-8 bytes")


# ------------------------------------------------------------------ API mode

_NO_BODY = object()


def _unix_connection(socket_path):
    """An HTTPConnection class that connects to the Unix socket at socket_path."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(socket_path)
            except OSError:
                s.close()
                raise
            self.sock = s

    return UnixConnection


def _request(method, path, payload=_NO_BODY, allow404=False):
    """One request; the decoded JSON answer (None for a 404 when allow404)."""
    import http.client
    import json
    import time
    from urllib.parse import urlsplit

    endpoint = os.environ.get("CRONIUM_API_ENDPOINT", "")
    bad = "CRONIUM_API_ENDPOINT must be http://host:port (got %r)" % endpoint
    # The run's private socket (python and node, where sshd allows it) before the port.
    socket_path = os.environ.get("CRONIUM_API_SOCKET") or None
    url = urlsplit("http://localhost" if socket_path else endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise CroniumError(bad)
    try:
        port = url.port
    except ValueError:
        raise CroniumError(bad)
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    if socket_path:
        cls = _unix_connection(socket_path)
    headers = {
        "Authorization": "Bearer " + os.environ.get("CRONIUM_API_TOKEN", ""),
        "Accept": "application/json",
        "Connection": "close",
    }
    body = None
    if payload is not _NO_BODY:
        body = _dumps(payload).encode("utf-8")
        headers["Content-Type"] = "application/json"
    full = url.path.rstrip("/") + path
    until = time.monotonic() + _retry_seconds()
    while True:
        conn = cls(url.hostname, port)
        try:
            conn.request(method, full, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            break
        except (ConnectionRefusedError, FileNotFoundError) as e:
            # Nothing was sent: the tunnel is away while whoever took the run over
            # forwards it again. Try again for a while.
            if time.monotonic() >= until:
                raise CroniumError("cannot reach %s: %s" % (endpoint, e))
            time.sleep(0.25)
        except (OSError, http.client.HTTPException) as e:
            raise CroniumError("cannot reach %s: %s" % (endpoint, e))
        finally:
            conn.close()
    if status == 404 and allow404:
        return None
    text = data.decode("utf-8", "replace")
    if not 200 <= status < 300:
        message = text
        try:
            err = json.loads(text)
            if isinstance(err, dict) and "message" in err:
                message = err["message"]
                if isinstance(message, list):
                    message = "; ".join(str(m) for m in message)
        except ValueError:
            pass
        raise CroniumError("%s %s: HTTP %d%s" % (method, path, status, ": %s" % message if message else ""), status)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise CroniumError("%s %s: the answer is not JSON" % (method, path), status)


def _field(answer, name):
    return answer.get(name) if isinstance(answer, dict) else None


def _key_path(key):
    from urllib.parse import quote

    return "/runtime/v1/variables/" + quote(key.encode("utf-8", "surrogatepass"), safe="")


# ------------------------------------------------------------------ bundled mode

_state = {"vars": None, "seen": 0, "n": 0}


def _work_dir():
    return os.environ.get("CRONIUM_WORK_DIR") or os.getcwd()


def _read_json(name):
    import json

    path = os.path.join(_work_dir(), name)
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise CroniumError("cannot read %s (bundled mode): %s" % (path, e.strerror or e))
    except ValueError as e:
        raise CroniumError("%s is not JSON: %s" % (path, e))


def _read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def _variables():
    """variables.json (loaded once) plus every complete out/var.<n> record, in order.

    Replaying continues on every call, so writes of child processes are read back too.
    """
    import json

    if _state["vars"] is None:
        data = _read_json("variables.json")
        if not isinstance(data, dict):
            raise CroniumError("variables.json is not an object")
        _state["vars"], _state["seen"] = data, 0
    out = os.path.join(_work_dir(), "out")
    n = _state["seen"] + 1
    while os.path.exists(os.path.join(out, "var.%d.key" % n)):
        base = os.path.join(out, "var.%d." % n)
        if os.path.exists(base + "type"):
            try:
                key, val, typ = _read_text(base + "key"), _read_text(base + "val"), _read_text(base + "type")
            except OSError:
                key = ""
            if key:
                try:
                    _state["vars"][key] = json.loads(val, parse_constant=_no_constant)
                except ValueError:
                    if typ.strip() == "json":
                        key = ""  # broken record: the service ignores it too
                    else:
                        _state["vars"][key] = val
        elif not os.path.exists(os.path.join(out, "var.%d.key" % (n + 1))):
            break  # being written: look again next time
        _state["seen"] = n
        n += 1
    return _state["vars"]


def _no_constant(name):
    raise ValueError("%s is not JSON" % name)  # NaN, Infinity: JSON.parse rejects them too


def _out_dir():
    out = os.path.join(_work_dir(), "out")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise CroniumError("cannot create %s: %s" % (out, e))
    return out


def _write(path, text, exclusive=False):
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode("utf-8", "surrogatepass"))


def _record(key, text):
    """out/var.<n>.{key,val,type} for the next free n (claimed with O_EXCL on .key)."""
    out = _out_dir()
    n = _state["n"]
    try:
        while True:
            n += 1
            try:
                _write(os.path.join(out, "var.%d.key" % n), key, exclusive=True)
                break
            except FileExistsError:
                continue
        _state["n"] = n
        _write(os.path.join(out, "var.%d.val" % n), text)
        _write(os.path.join(out, "var.%d.type" % n), "json")
    except OSError as e:
        raise CroniumError("cannot write %s: %s" % (out, e))


# ------------------------------------------------------------------ helpers


def input():  # noqa: A001 (shadows the builtin inside this module only)
    """The job's input (any JSON value; None when there is none)."""
    if _mode() == "api":
        return _field(_request("GET", "/runtime/v1/input"), "data")
    return _read_json("input.json")


def output(data):
    """Sets the target's output (any JSON value)."""
    if _mode() == "api":
        _request("POST", "/runtime/v1/output", {"data": data})
        return None
    text = _dumps(data)
    out = _out_dir()
    try:
        _write(os.path.join(out, "output.val"), text)
        _write(os.path.join(out, "output.type"), "json")
    except OSError as e:
        raise CroniumError("cannot write %s: %s" % (out, e))
    return None


def getVariable(key):
    """The variable's value, or None when it is unset."""
    _check_key(key)
    if _mode() == "api":
        answer = _request("GET", _key_path(key), allow404=True)
        return _field(answer, "value")
    import copy

    return copy.deepcopy(_variables().get(key))


def setVariable(key, value):
    """Stores any JSON value under the user's scope."""
    _check_key(key)
    if _mode() == "api":
        _request("PUT", _key_path(key), {"value": value})
        return None
    _record(key, _dumps(value))
    return None


def event():
    """The execution context: executionId, jobId, eventId, userId, serverId, ..."""
    if _mode() == "api":
        return _request("GET", "/runtime/v1/context")
    return _read_json("context.json")


def setCondition(condition):
    """Sets the target's condition (a bool)."""
    if not isinstance(condition, bool):
        raise CroniumError("setCondition takes a bool (got %s)" % type(condition).__name__)
    if _mode() == "api":
        _request("POST", "/runtime/v1/condition", {"condition": condition})
        return None
    out = _out_dir()
    try:
        _write(os.path.join(out, "condition"), "true" if condition else "false")
    except OSError as e:
        raise CroniumError("cannot write %s: %s" % (out, e))
    return None


def toolAction(tool, action, params=None):
    """Runs a tool action and returns its result (API mode only)."""
    mode = _mode()
    if mode != "api":
        raise CroniumError("toolAction needs API mode (helperMode %s has no network)" % mode)
    payload = {"tool": tool, "action": action, "params": {} if params is None else params}
    return _field(_request("POST", "/runtime/v1/tool-actions", payload), "result")


get_variable = getVariable
set_variable = setVariable
set_condition = setCondition
tool_action = toolAction
