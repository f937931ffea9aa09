import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AppConfig } from './app-config';
import { ConfigError, deepMerge, loadConfig } from './load-config';

describe('loadConfig', () => {
  let root: string;
  let dataDir: string;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-config-'));
    dataDir = path.join(root, 'data');
  });

  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  const load = (env: NodeJS.ProcessEnv = {}) => loadConfig({ CRONIUM_DATA_DIR: dataDir, ...env });

  /** Runs loadConfig expecting a ConfigError and returns its message. */
  const configError = (env: NodeJS.ProcessEnv): string => {
    let caught: unknown;
    try {
      load(env);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    return (caught as Error).message;
  };

  it('loads the defaults', () => {
    const c = load();
    expect(c).toBeInstanceOf(AppConfig);
    expect(c.port).toBe(8089);
    expect(c.nodeEnv).toBe('development');
    expect(c.dataDir).toBe(dataDir);
    expect(c.hostKeys.policy).toBe('tofu');
    expect(c.ssh.maxChannelsPerConnection).toBe(8);
    expect(c.ssh.connectRetry).toEqual({
      attempts: 3,
      initialDelayMs: 200,
      factor: 2,
      maxDelayMs: 2000,
    });
    expect(c.ssh.breaker).toEqual({ failureThreshold: 5, cooldownMs: 30000 });
    expect(c.runner.baseDir).toBe('~/.cache/cronium');
    expect(c.shutdown.graceSeconds).toBe(30);
  });

  it('defaults the database url to sqlite:<dataDir>/cronium.db', () => {
    expect(load().database.url).toBe(`sqlite:${path.join(dataDir, 'cronium.db')}`);
  });

  it('applies the named environment variables, coercing numbers', () => {
    const c = load({
      PORT: '9123',
      DATABASE_URL: 'postgres://u:p@db:5432/cronium',
      CRONIUM_SERVICE_TOKENS: ' token-aaaaaaaaaaaaaaaa , token-bbbbbbbbbbbbbbbb,,',
      CRONIUM_SHUTDOWN_GRACE_SECONDS: '12.5',
      CRONIUM_JWT_SECRET: 'j'.repeat(40),
      CRONIUM_SECRETS_KEY: 'k'.repeat(40),
      NODE_ENV: 'test',
    });
    expect(c.port).toBe(9123);
    expect(c.database.url).toBe('postgres://u:p@db:5432/cronium');
    expect(c.auth.serviceTokens).toEqual(['token-aaaaaaaaaaaaaaaa', 'token-bbbbbbbbbbbbbbbb']);
    expect(c.shutdown.graceSeconds).toBe(12.5);
    expect(c.auth.jwtSecret).toBe('j'.repeat(40));
    expect(c.secrets.key).toBe('k'.repeat(40));
    expect(c.nodeEnv).toBe('test');
  });

  it('maps HOST, LOG_LEVEL, REDIS_URL and CRONIUM_REPLICA_ID; one process without Redis by default', () => {
    const d = load();
    expect(d.host).toBe('0.0.0.0');
    expect(d.queue.redisUrl).toBe('');
    expect(d.replicaId).toBe(`${os.hostname()}-${process.pid}`);
    const c = load({
      HOST: '127.0.0.1',
      LOG_LEVEL: 'DEBUG',
      REDIS_URL: 'redis://:pw@cache:6380/2',
      CRONIUM_REPLICA_ID: 'pod-7',
    });
    expect(c.host).toBe('127.0.0.1');
    expect(c.logLevel).toBe('debug');
    expect(c.queue.redisUrl).toBe('redis://:pw@cache:6380/2');
    expect(c.replicaId).toBe('pod-7');
  });

  it('refuses a REDIS_URL that is not redis:// or rediss://, naming REDIS_URL', () => {
    expect(() => load({ REDIS_URL: 'http://cache:6379' })).toThrow(/REDIS_URL/);
    expect(() => load({ LOG_LEVEL: 'loud' })).toThrow(/logLevel/);
  });

  it('takes LOG_FORMAT json or pretty (any case) and refuses anything else, naming LOG_FORMAT', () => {
    expect(load({}).logFormat).toBe('');
    expect(load({ LOG_FORMAT: 'JSON' }).logFormat).toBe('json');
    expect(load({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(() => load({ LOG_FORMAT: 'xml' })).toThrow(
      /logFormat: must be json or pretty \(LOG_FORMAT\)/,
    );
  });

  it('takes an IP address or a host name as HOST and refuses anything else, naming HOST', () => {
    for (const host of ['0.0.0.0', '::', '::1', '127.0.0.1', 'localhost', 'api.internal']) {
      expect(load({ HOST: host }).host).toBe(host);
    }
    for (const host of ['999.1.1.1', 'a host', 'http://x', '[::1]', '-x', 'x'.repeat(64)]) {
      expect(() => load({ HOST: host })).toThrow(
        /host: must be an IP address or a host name.*\(HOST\)/,
      );
    }
  });

  it('applies CRONIUM__SECTION__KEY overrides with number coercion and JSON values', () => {
    const c = load({
      CRONIUM__SSH__MAX_CHANNELS_PER_CONNECTION: '3',
      CRONIUM__SSH__READY_TIMEOUT_MS: '2500',
      CRONIUM__HOST_KEYS__POLICY: 'strict',
      CRONIUM__RUNNER__BASE_DIR: '/opt/cronium',
      CRONIUM__SSH__BREAKER__FAILURE_THRESHOLD: '7',
      CRONIUM__RUNNER__DEPLOY_RETRY:
        '{"attempts":4,"initialDelayMs":10,"factor":3,"maxDelayMs":90}',
    });
    expect(c.ssh.maxChannelsPerConnection).toBe(3);
    expect(typeof c.ssh.maxChannelsPerConnection).toBe('number');
    expect(c.ssh.readyTimeoutMs).toBe(2500);
    expect(c.hostKeys.policy).toBe('strict');
    expect(c.runner.baseDir).toBe('/opt/cronium');
    expect(c.ssh.breaker).toEqual({ failureThreshold: 7, cooldownMs: 30000 });
    expect(c.runner.deployRetry).toEqual({
      attempts: 4,
      initialDelayMs: 10,
      factor: 3,
      maxDelayMs: 90,
    });
  });

  it('ssh.maxJumpDepth: 3 by default, CRONIUM__SSH__MAX_JUMP_DEPTH overrides, 0 is refused', () => {
    expect(load().ssh.maxJumpDepth).toBe(3);
    expect(load({ CRONIUM__SSH__MAX_JUMP_DEPTH: '1' }).ssh.maxJumpDepth).toBe(1);
    expect(() => load({ CRONIUM__SSH__MAX_JUMP_DEPTH: '0' })).toThrow(/ssh\.maxJumpDepth/);
  });

  it('has the websocket fan-out limits, each overridable as CRONIUM__STATUS__…', () => {
    expect(load().status).toEqual({
      maxQueuedEvents: 100_000,
      maxQueuedBytes: 16 * 1024 * 1024,
      socketHighWater: 1024 * 1024,
      flushIntervalMs: 50,
      flushBatch: 100,
      replayPage: 1000,
      maxSubscriptionsPerSocket: 100,
      writeRetry: { attempts: 20, initialDelayMs: 100, factor: 2, maxDelayMs: 5000 },
    });
    const c = load({
      CRONIUM__STATUS__MAX_SUBSCRIPTIONS_PER_SOCKET: '7',
      CRONIUM__STATUS__REPLAY_PAGE: '250',
    });
    expect(c.status.maxSubscriptionsPerSocket).toBe(7);
    expect(c.status.replayPage).toBe(250);
    expect(c.status.flushBatch).toBe(100);
    expect(configError({ CRONIUM__STATUS__FLUSH_BATCH: '0' })).toMatch(/status\.flushBatch/);
  });

  it('a generic override of a list splits on commas and trims each item', () => {
    const c = load({
      CRONIUM__AUTH__SERVICE_TOKENS: 'token-aaaaaaaaaaaaaaaa, token-bbbbbbbbbbbbbbbb ,',
    });
    expect(c.auth.serviceTokens).toEqual(['token-aaaaaaaaaaaaaaaa', 'token-bbbbbbbbbbbbbbbb']);
  });

  it('merges the YAML file named by CRONIUM_CONFIG, with the environment on top', () => {
    const file = path.join(root, 'override.yaml');
    fs.writeFileSync(
      file,
      [
        'port: 7001',
        'hostKeys:',
        '  policy: strict',
        'ssh:',
        '  connectRetry: { attempts: 5 }',
        'shutdown:',
        '  graceSeconds: 3',
      ].join('\n'),
    );
    const c = load({ CRONIUM_CONFIG: file, CRONIUM_SHUTDOWN_GRACE_SECONDS: '4' });
    expect(c.port).toBe(7001);
    expect(c.hostKeys.policy).toBe('strict');
    // a deep merge: the other retry fields keep their defaults
    expect(c.ssh.connectRetry).toEqual({
      attempts: 5,
      initialDelayMs: 200,
      factor: 2,
      maxDelayMs: 2000,
    });
    expect(c.ssh.maxChannelsPerConnection).toBe(8);
    expect(c.shutdown.graceSeconds).toBe(4);
  });

  it('loads the repository test config', () => {
    const c = load({ CRONIUM_CONFIG: path.resolve(__dirname, '../../config/test.yaml') });
    expect(c.ssh.connectRetry.attempts).toBe(2);
    expect(c.runner.deployRetry.initialDelayMs).toBe(100);
  });

  it('an unreadable or non-mapping CRONIUM_CONFIG file is a ConfigError', () => {
    expect(configError({ CRONIUM_CONFIG: path.join(root, 'missing.yaml') })).toMatch(
      /missing\.yaml/,
    );
    const list = path.join(root, 'list.yaml');
    fs.writeFileSync(list, '- a\n- b\n');
    expect(configError({ CRONIUM_CONFIG: list })).toMatch(/must hold a mapping/);
  });

  it.each([
    [{ PORT: 'abc' }, /\bport\b/],
    [{ PORT: '70000' }, /\bport\b/],
    [{ CRONIUM__SSH__MAX_CHANNELS_PER_CONNECTION: '0' }, /ssh\.maxChannelsPerConnection/],
    [{ CRONIUM__SSH__MAX_CHANNELS_PER_CONNECTION: 'lots' }, /ssh\.maxChannelsPerConnection/],
    [{ CRONIUM__HOST_KEYS__POLICY: 'maybe' }, /hostKeys\.policy/],
    [{ CRONIUM__SSH__CONNECT_RETRY__ATTEMPTS: '0' }, /ssh\.connectRetry\.attempts/],
    [{ DATABASE_URL: 'mysql://x' }, /database\.url/],
    [{ CRONIUM_SERVICE_TOKENS: 'short' }, /auth\.serviceTokens/],
    [{ NODE_ENV: 'staging' }, /nodeEnv/],
  ])('rejects an invalid value %j naming the key', (env, key) => {
    const msg = configError(env as NodeJS.ProcessEnv);
    expect(msg).toMatch(/^invalid configuration: /);
    expect(msg).toMatch(key);
  });

  it('rejects an unknown CRONIUM__ key, naming the variable', () => {
    expect(configError({ CRONIUM__NOPE__X: '1' })).toMatch(/CRONIUM__NOPE__X/);
    expect(configError({ CRONIUM__SSH__NOPE: '1' })).toMatch(/CRONIUM__SSH__NOPE/);
  });

  it('rejects an unknown key in the YAML file', () => {
    const file = path.join(root, 'extra.yaml');
    fs.writeFileSync(file, 'ssh:\n  bogusSetting: 1\n');
    expect(configError({ CRONIUM_CONFIG: file })).toMatch(/bogusSetting/);
  });

  it('generates dev secrets once into the data dir (0600) and re-reads them', () => {
    expect(fs.existsSync(dataDir)).toBe(false);
    const first = load();
    expect(first.auth.jwtSecret.length).toBeGreaterThanOrEqual(32);
    expect(first.secrets.key).toMatch(/^[0-9a-f]{64}$/);
    expect(first.auth.serviceTokens).toHaveLength(1);
    expect(first.auth.serviceTokens[0]).toMatch(/^dev-/);

    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    for (const f of ['jwt-secret', 'secrets-key', 'service-token']) {
      const st = fs.statSync(path.join(dataDir, f));
      expect(st.mode & 0o777).toBe(0o600);
    }
    expect(fs.readFileSync(path.join(dataDir, 'jwt-secret'), 'utf8').trim()).toBe(
      first.auth.jwtSecret,
    );
    expect(fs.readFileSync(path.join(dataDir, 'secrets-key'), 'utf8').trim()).toBe(
      first.secrets.key,
    );
    expect(fs.readFileSync(path.join(dataDir, 'service-token'), 'utf8').trim()).toBe(
      first.auth.serviceTokens[0],
    );

    const second = load();
    expect(second.auth.jwtSecret).toBe(first.auth.jwtSecret);
    expect(second.secrets.key).toBe(first.secrets.key);
    expect(second.auth.serviceTokens).toEqual(first.auth.serviceTokens);

    // a different data dir gets different secrets
    const other = loadConfig({ CRONIUM_DATA_DIR: path.join(root, 'other') });
    expect(other.auth.jwtSecret).not.toBe(first.auth.jwtSecret);
    expect(other.secrets.key).not.toBe(first.secrets.key);
  });

  it('does not write a dev secret the environment provides', () => {
    const c = load({ CRONIUM_JWT_SECRET: 'e'.repeat(40) });
    expect(c.auth.jwtSecret).toBe('e'.repeat(40));
    expect(fs.existsSync(path.join(dataDir, 'jwt-secret'))).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'secrets-key'))).toBe(true);
  });

  it('in production a missing secret is an error naming it, and nothing is generated', () => {
    const msg = configError({
      NODE_ENV: 'production',
      CRONIUM_SECRETS_KEY: 'k'.repeat(40),
      CRONIUM_SERVICE_TOKENS: 'token-aaaaaaaaaaaaaaaa',
    });
    expect(msg).toMatch(/auth\.jwtSecret/);
    expect(msg).toMatch(/CRONIUM_JWT_SECRET/);
    expect(fs.existsSync(path.join(dataDir, 'jwt-secret'))).toBe(false);

    expect(
      configError({
        NODE_ENV: 'production',
        CRONIUM_JWT_SECRET: 'j'.repeat(40),
        CRONIUM_SERVICE_TOKENS: 'token-aaaaaaaaaaaaaaaa',
      }),
    ).toMatch(/CRONIUM_SECRETS_KEY/);
  });

  it('in production with every secret provided it loads', () => {
    const c = load({
      NODE_ENV: 'production',
      CRONIUM_JWT_SECRET: 'j'.repeat(40),
      CRONIUM_SECRETS_KEY: 'k'.repeat(40),
      CRONIUM_SERVICE_TOKENS: 'token-aaaaaaaaaaaaaaaa',
    });
    expect(c.nodeEnv).toBe('production');
    expect(fs.existsSync(path.join(dataDir, 'jwt-secret'))).toBe(false);
  });
});

describe('deepMerge', () => {
  it('merges nested mappings and replaces arrays and scalars', () => {
    const base = { a: 1, b: { c: 2, d: [1, 2] }, e: 'x' };
    const out = deepMerge(base, { b: { d: [3] }, e: 'y', f: true });
    expect(out).toEqual({ a: 1, b: { c: 2, d: [3] }, e: 'y', f: true });
    expect(base).toEqual({ a: 1, b: { c: 2, d: [1, 2] }, e: 'x' }); // not mutated
  });
});
