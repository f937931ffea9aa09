import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { plainToInstance } from 'class-transformer';
import { validateSync, ValidationError } from 'class-validator';
import * as yaml from 'js-yaml';
import { AppConfig } from './app-config';

export class ConfigError extends Error {}

type Plain = Record<string, any>;

const CONFIG_DIR = path.resolve(__dirname, '../../config');

/** Env vars the spec names, mapped onto config keys. */
const NAMED_ENV: Record<string, { key: string; parse?: (v: string) => unknown }> = {
  PORT: { key: 'port' },
  HOST: { key: 'host' },
  LOG_LEVEL: { key: 'logLevel', parse: (v) => v.toLowerCase() },
  LOG_FORMAT: { key: 'logFormat', parse: (v) => v.toLowerCase() },
  DATABASE_URL: { key: 'database.url' },
  CRONIUM_DATA_DIR: { key: 'dataDir' },
  CRONIUM_SERVICE_TOKENS: {
    key: 'auth.serviceTokens',
    parse: (v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
  },
  CRONIUM_JWT_SECRET: { key: 'auth.jwtSecret' },
  CRONIUM_SECRETS_KEY: { key: 'secrets.key' },
  CRONIUM_SHUTDOWN_GRACE_SECONDS: { key: 'shutdown.graceSeconds' },
  CRONIUM_REPLICA_ID: { key: 'replicaId' },
  REDIS_URL: { key: 'queue.redisUrl' },
  NODE_ENV: { key: 'nodeEnv' },
};

/** Dev secrets kept in the data dir when the environment does not provide them. */
const DEV_SECRETS: { key: string; file: string; make: () => unknown }[] = [
  { key: 'auth.jwtSecret', file: 'jwt-secret', make: () => randomBytes(48).toString('base64url') },
  { key: 'secrets.key', file: 'secrets-key', make: () => randomBytes(32).toString('hex') },
  {
    key: 'auth.serviceTokens',
    file: 'service-token',
    make: () => 'dev-' + randomBytes(24).toString('base64url'),
  },
];

function isObject(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepMerge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over ?? {})) {
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k], v) : v;
  }
  return out;
}

function readYaml(file: string): Plain {
  let doc: unknown;
  try {
    doc = yaml.load(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  if (doc == null) return {};
  if (!isObject(doc)) throw new ConfigError(`config file ${file} must hold a mapping`);
  return doc;
}

function getPath(obj: Plain, key: string): unknown {
  return key.split('.').reduce<any>((o, k) => (o == null ? undefined : o[k]), obj);
}

/** Sets a dotted key; an env string becomes a number or boolean when the default is one. */
function setPath(obj: Plain, key: string, raw: unknown): void {
  const parts = key.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(o[p])) o[p] = {};
    o = o[p];
  }
  const last = parts[parts.length - 1];
  const current = o[last];
  let value = raw;
  if (typeof raw === 'string') {
    if (typeof current === 'number' && raw.trim() !== '' && !Number.isNaN(Number(raw)))
      value = Number(raw);
    else if (typeof current === 'boolean' && (raw === 'true' || raw === 'false'))
      value = raw === 'true';
    else if (Array.isArray(current))
      value = raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
  }
  o[last] = value;
}

/** Resolves `CRONIUM__SSH__READY_TIMEOUT_MS` to `ssh.readyTimeoutMs` against the known keys. */
function resolveGenericKey(defaults: Plain, segments: string[]): string | undefined {
  const norm = (s: string) => s.replace(/_/g, '').toLowerCase();
  const out: string[] = [];
  let node: unknown = defaults;
  for (const seg of segments) {
    if (!isObject(node)) return undefined;
    const match = Object.keys(node).find((k) => norm(k) === norm(seg));
    if (!match) return undefined;
    out.push(match);
    node = node[match];
  }
  return out.join('.');
}

function flattenErrors(errors: ValidationError[], prefix = ''): string[] {
  const out: string[] = [];
  for (const e of errors) {
    const key = prefix ? `${prefix}.${e.property}` : e.property;
    if (e.constraints) {
      for (const msg of Object.values(e.constraints)) {
        out.push(
          `${key}: ${msg.startsWith(e.property) ? msg.slice(e.property.length).trim() : msg}`,
        );
      }
    }
    if (e.children?.length) out.push(...flattenErrors(e.children, key));
  }
  return out;
}

function isEmpty(v: unknown): boolean {
  return v == null || v === '' || (Array.isArray(v) && v.length === 0);
}

/** Reads a dev secret from the data dir, creating it (0600) on first use. */
function devSecret(dataDir: string, file: string, make: () => unknown): string {
  const p = path.join(dataDir, file);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch (e: any) {
    if (e.code !== 'ENOENT') throw e;
  }
  const value = String(make());
  try {
    fs.writeFileSync(p, value + '\n', { mode: 0o600, flag: 'wx' });
    return value;
  } catch (e: any) {
    if (e.code === 'EEXIST') return fs.readFileSync(p, 'utf8').trim();
    throw e;
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const defaults = readYaml(path.join(CONFIG_DIR, 'default.yaml'));
  let merged = deepMerge(defaults, { nodeEnv: 'development' });
  if (env.CRONIUM_CONFIG) merged = deepMerge(merged, readYaml(path.resolve(env.CRONIUM_CONFIG)));

  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (!name.startsWith('CRONIUM__')) continue;
    const key = resolveGenericKey(defaults, name.slice('CRONIUM__'.length).split('__'));
    if (!key) throw new ConfigError(`${name}: no such configuration key`);
    let parsed: unknown = value;
    if (/^[[{]/.test(value)) {
      try {
        parsed = JSON.parse(value);
      } catch {
        /* keep the string; validation names the key */
      }
    }
    setPath(merged, key, parsed);
  }
  for (const [name, { key, parse }] of Object.entries(NAMED_ENV)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(merged, key, parse ? parse(value) : value);
  }

  if (isEmpty(merged.replicaId)) merged.replicaId = `${os.hostname()}-${process.pid}`;
  if (isEmpty(merged.database?.url)) {
    setPath(merged, 'database.url', `sqlite:${path.join(merged.dataDir, 'cronium.db')}`);
  }

  for (const s of DEV_SECRETS) {
    if (!isEmpty(getPath(merged, s.key))) continue;
    if (merged.nodeEnv === 'production') {
      const envName = Object.entries(NAMED_ENV).find(([, v]) => v.key === s.key)?.[0];
      throw new ConfigError(`${s.key}: required in production (set ${envName})`);
    }
    const value = devSecret(String(merged.dataDir), s.file, s.make);
    setPath(merged, s.key, s.key === 'auth.serviceTokens' ? [value] : value);
  }

  const config = plainToInstance(AppConfig, merged);
  const errors = validateSync(config, { whitelist: true, forbidNonWhitelisted: true });
  if (errors.length) {
    throw new ConfigError(`invalid configuration: ${flattenErrors(errors).join('; ')}`);
  }
  return config;
}
