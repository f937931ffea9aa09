'use strict';
// cronium runtime helpers for node scripts: the contract is docs/runtime-helpers.md,
// typings in cronium.d.ts.
//
// The runner preloads this file (`node -r <helpers>/cronium.js`), which sets
// globalThis.cronium, and puts this directory first on NODE_PATH, so
// require('cronium') returns the same module.  Node stdlib only, plain ES2017
// (remote servers may run an old node).  Every helper returns a Promise.
//
// API mode talks JSON to $CRONIUM_API_ENDPOINT; bundled mode reads the snapshot
// files of $CRONIUM_WORK_DIR and writes results to its out/ directory.

const fs = require('fs');
const path = require('path');

class CroniumError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'CroniumError';
    if (status !== undefined) this.status = status;
  }
}

function mode() {
  const env = process.env;
  const m = env.CRONIUM_HELPER_MODE || (env.CRONIUM_API_ENDPOINT ? 'api' : 'bundled');
  if (m !== 'api' && m !== 'bundled') {
    throw new CroniumError(`CRONIUM_HELPER_MODE must be api or bundled (got '${m}')`);
  }
  return m;
}

/** JSON text of a value; undefined, functions, BigInt and cycles are errors. */
function toJson(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new CroniumError(`value is not JSON-serializable: ${e.message}`);
  }
  if (text === undefined) throw new CroniumError('value is not JSON-serializable: undefined');
  return text;
}

function checkKey(key) {
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > 200) {
    throw new CroniumError('a variable key is a string of 1-200 UTF-8 bytes');
  }
}

function field(answer, name) {
  return answer !== null && typeof answer === 'object' ? answer[name] : undefined;
}

// ------------------------------------------------------------------ API mode

/** How long a refused connection is tried again (CRONIUM_API_RETRY_SECONDS, 60). */
function retrySeconds() {
  const raw = process.env.CRONIUM_API_RETRY_SECONDS ?? '60';
  return /^[0-9]+$/.test(raw) ? Number(raw) : 60;
}

/**
 * One request; resolves the decoded JSON answer (undefined for a 404 when allow404). A
 * refused connection sent nothing (the tunnel is away while whoever took the run over
 * forwards it again): it is tried again for a while.
 */
async function request(method, p, payload, allow404) {
  const until = Date.now() + retrySeconds() * 1000;
  for (;;) {
    try {
      return await requestOnce(method, p, payload, allow404);
    } catch (e) {
      if (!e.refused || Date.now() >= until) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function requestOnce(method, p, payload, allow404) {
  return new Promise((resolve, reject) => {
    const endpoint = process.env.CRONIUM_API_ENDPOINT || '';
    // The run's private socket (python and node, where sshd allows it) before the port.
    const socketPath = process.env.CRONIUM_API_SOCKET || null;
    let url;
    try {
      url = new URL(socketPath ? 'http://localhost' : endpoint);
      if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname)
        throw new Error();
    } catch (e) {
      throw new CroniumError(`CRONIUM_API_ENDPOINT must be http://host:port (got '${endpoint}')`);
    }
    const body = payload === undefined ? undefined : Buffer.from(toJson(payload));
    const headers = {
      Authorization: `Bearer ${process.env.CRONIUM_API_TOKEN || ''}`,
      Accept: 'application/json',
      Connection: 'close',
    };
    if (body) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = body.length;
    }
    const lib = require(url.protocol === 'https:' ? 'https' : 'http');
    const req = lib.request(
      {
        method,
        ...(socketPath
          ? { socketPath }
          : { hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port || undefined }),
        path: url.pathname.replace(/\/+$/, '') + p,
        headers,
        agent: false, // no keep-alive socket may hold the script's event loop open
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', (e) => reject(new CroniumError(`cannot reach ${endpoint}: ${e.message}`)));
        res.on('end', () => {
          const status = res.statusCode;
          const text = Buffer.concat(chunks).toString('utf8');
          if (status === 404 && allow404) return resolve(undefined);
          let data;
          try {
            data = text ? JSON.parse(text) : undefined;
          } catch (e) {
            data = undefined;
            if (status >= 200 && status < 300) {
              return reject(new CroniumError(`${method} ${p}: the answer is not JSON`, status));
            }
          }
          if (status >= 200 && status < 300) return resolve(data);
          let message = field(data, 'message');
          if (Array.isArray(message)) message = message.join('; ');
          if (message === undefined) message = text;
          reject(
            new CroniumError(
              `${method} ${p}: HTTP ${status}${message ? `: ${message}` : ''}`,
              status,
            ),
          );
        });
      },
    );
    req.on('error', (e) => {
      const err = new CroniumError(`cannot reach ${endpoint}: ${e.message}`);
      // a socket file not there (yet again) is as good as refused: nothing was sent
      err.refused = e.code === 'ECONNREFUSED' || (socketPath !== null && e.code === 'ENOENT');
      reject(err);
    });
    req.end(body);
  });
}

function keyPath(key) {
  let enc;
  try {
    enc = encodeURIComponent(key);
  } catch (e) {
    throw new CroniumError('a variable key must be valid unicode');
  }
  // the few characters encodeURIComponent leaves alone besides A-Za-z0-9._~-
  enc = enc.replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `/runtime/v1/variables/${enc}`;
}

// ------------------------------------------------------------------ bundled mode

/** variables as key -> JSON text (a Map: keys such as __proto__ are data). */
const state = { vars: null, seen: 0, n: 0 };

function workDir() {
  return process.env.CRONIUM_WORK_DIR || process.cwd();
}

function readJson(name) {
  const file = path.join(workDir(), name);
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CroniumError(`cannot read ${file} (bundled mode): ${e.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CroniumError(`${file} is not JSON: ${e.message}`);
  }
}

/**
 * variables.json (loaded once) plus every complete out/var.<n> record, in order.
 * Replaying continues on every call, so writes of child processes are read back too.
 */
function variables() {
  if (state.vars === null) {
    const data = readJson('variables.json');
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      throw new CroniumError('variables.json is not an object');
    }
    const vars = new Map();
    for (const k of Object.keys(data)) vars.set(k, JSON.stringify(data[k]));
    state.vars = vars;
    state.seen = 0;
  }
  const base = path.join(workDir(), 'out', 'var.');
  for (let n = state.seen + 1; fs.existsSync(`${base}${n}.key`); n++) {
    if (fs.existsSync(`${base}${n}.type`)) {
      try {
        const key = fs.readFileSync(`${base}${n}.key`, 'utf8');
        const val = fs.readFileSync(`${base}${n}.val`, 'utf8');
        const type = fs.readFileSync(`${base}${n}.type`, 'utf8').trim();
        let text;
        try {
          text = JSON.stringify(JSON.parse(val));
        } catch (e) {
          // auto: not JSON, so a string; json: broken, the service ignores it too
          text = type === 'json' ? undefined : JSON.stringify(val);
        }
        if (key && text !== undefined) state.vars.set(key, text);
      } catch (e) {
        // unreadable record: skipped
      }
    } else if (!fs.existsSync(`${base}${n + 1}.key`)) {
      break; // being written: look again next time
    }
    state.seen = n;
  }
  return state.vars;
}

function outDir() {
  const out = path.join(workDir(), 'out');
  try {
    fs.mkdirSync(out, { recursive: true });
  } catch (e) {
    throw new CroniumError(`cannot create ${out}: ${e.message}`);
  }
  return out;
}

function writeFiles(out, files) {
  try {
    for (const [name, text] of files) fs.writeFileSync(path.join(out, name), text, { mode: 0o600 });
  } catch (e) {
    throw new CroniumError(`cannot write ${out}: ${e.message}`);
  }
}

/** out/var.<n>.{key,val,type} for the next free n (claimed with O_EXCL on .key). */
function record(key, text) {
  const out = outDir();
  let n = state.n;
  for (;;) {
    n++;
    try {
      fs.writeFileSync(path.join(out, `var.${n}.key`), key, { flag: 'wx', mode: 0o600 });
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw new CroniumError(`cannot write ${out}: ${e.message}`);
    }
  }
  state.n = n;
  writeFiles(out, [
    [`var.${n}.val`, text],
    [`var.${n}.type`, 'json'],
  ]);
}

// ------------------------------------------------------------------ helpers

/** The job's input (any JSON value; null when there is none). */
async function input() {
  if (mode() === 'api') {
    const data = field(await request('GET', '/runtime/v1/input'), 'data');
    return data === undefined ? null : data;
  }
  return readJson('input.json');
}

/** Sets the target's output (any JSON value). */
async function output(data) {
  const text = toJson(data);
  if (mode() === 'api') {
    await request('POST', '/runtime/v1/output', { data });
    return;
  }
  writeFiles(outDir(), [
    ['output.val', text],
    ['output.type', 'json'],
  ]);
}

/** The variable's value, or undefined when it is unset. */
async function getVariable(key) {
  checkKey(key);
  if (mode() === 'api') return field(await request('GET', keyPath(key), undefined, true), 'value');
  const text = variables().get(key);
  return text === undefined ? undefined : JSON.parse(text);
}

/** Stores any JSON value under the user's scope. */
async function setVariable(key, value) {
  checkKey(key);
  const text = toJson(value);
  if (mode() === 'api') {
    await request('PUT', keyPath(key), { value });
    return;
  }
  record(key, text);
}

/** The execution context: executionId, jobId, eventId, userId, serverId, ... */
async function event() {
  if (mode() === 'api') return request('GET', '/runtime/v1/context');
  return readJson('context.json');
}

/** Sets the target's condition (a boolean). */
async function setCondition(condition) {
  if (typeof condition !== 'boolean') {
    throw new CroniumError(`setCondition takes a boolean (got ${typeof condition})`);
  }
  if (mode() === 'api') {
    await request('POST', '/runtime/v1/condition', { condition });
    return;
  }
  writeFiles(outDir(), [['condition', condition ? 'true' : 'false']]);
}

/** Runs a tool action and returns its result (API mode only). */
async function toolAction(tool, action, params) {
  const m = mode();
  if (m !== 'api')
    throw new CroniumError(`toolAction needs API mode (helperMode ${m} has no network)`);
  const payload = { tool, action, params: params === undefined ? {} : params };
  return field(await request('POST', '/runtime/v1/tool-actions', payload), 'result');
}

module.exports = {
  CroniumError,
  input,
  output,
  getVariable,
  setVariable,
  event,
  setCondition,
  toolAction,
};
globalThis.cronium = module.exports;
