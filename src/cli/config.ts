/**
 * Where the CLI finds the service: CRONIUM_URL and CRONIUM_TOKEN, each falling back to
 * ~/.config/cronium/config.json ($XDG_CONFIG_HOME/cronium/config.json when set). The file
 * holds a token, so it must be private: a file readable by group or others is refused.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface CliConfig {
  url: string;
  token: string;
}

/** A problem the user has to fix (exit code 2). */
export class UsageError extends Error {}

export const DEFAULT_URL = 'http://127.0.0.1:8089';

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'cronium', 'config.json');
}

/** The config file's contents ({} when there is none). Refuses a group/world readable file. */
export function readConfigFile(file = configPath()): Partial<CliConfig> {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return {};
  }
  if ((st.mode & 0o077) !== 0) {
    throw new UsageError(
      `${file} is open to group or others (mode ${(st.mode & 0o777).toString(8)}); ` +
        `it holds a token: run chmod 600 ${file}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`${file} must hold a JSON object like {"url": "…", "token": "…"}`);
  }
  const { url, token } = parsed as Record<string, unknown>;
  return {
    ...(typeof url === 'string' ? { url } : {}),
    ...(typeof token === 'string' ? { token } : {}),
  };
}

/** Environment first, then the file. The URL defaults to the local service. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  const needFile = !env.CRONIUM_URL || !env.CRONIUM_TOKEN;
  const file = needFile ? readConfigFile(configPath(env)) : {};
  const url = (env.CRONIUM_URL || file.url || DEFAULT_URL).replace(/\/+$/, '');
  const token = env.CRONIUM_TOKEN || file.token;
  if (!/^https?:\/\/[^/]/.test(url)) {
    throw new UsageError(`the service URL must start with http:// or https://, got ${url}`);
  }
  if (!token) {
    throw new UsageError(
      `no service token: set CRONIUM_TOKEN or run \`cronium config set token -\` (reads it from stdin)`,
    );
  }
  return { url, token };
}

/** Sets one key of the config file, creating it (and its folder) private: 0600 and 0700. */
export function setConfigValue(key: keyof CliConfig, value: string, file = configPath()): void {
  const current = readConfigFile(file);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ ...current, [key]: value }, null, 2) + '\n', {
    mode: 0o600,
  });
  fs.renameSync(tmp, file);
}
