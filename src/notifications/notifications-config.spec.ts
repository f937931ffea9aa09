import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from '../config/load-config';

describe('notifications and retention configuration', () => {
  let dataDir: string;
  beforeEach(() => (dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-notify-config-'))));
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const load = (env: NodeJS.ProcessEnv = {}) => loadConfig({ CRONIUM_DATA_DIR: dataDir, ...env });

  it('defaults: no allow list, 5 attempts; 30 days, no count limit', () => {
    const c = load();
    expect(c.notifications).toMatchObject({ allowList: [], maxAttempts: 5, timeoutMs: 10000 });
    expect(c.retention).toEqual({
      days: 30,
      maxExecutions: 0,
      intervalSeconds: 600,
      batchSize: 500,
    });
  });

  it('takes the allow list and retention from CRONIUM__ env vars', () => {
    const c = load({
      CRONIUM__NOTIFICATIONS__ALLOW_LIST: 'hooks.example.com, https://api.example.org/cronium/',
      CRONIUM__NOTIFICATIONS__MAX_ATTEMPTS: '3',
      CRONIUM__RETENTION__DAYS: '7',
      CRONIUM__RETENTION__MAX_EXECUTIONS: '1000',
    });
    expect(c.notifications.allowList).toEqual([
      'hooks.example.com',
      'https://api.example.org/cronium/',
    ]);
    expect(c.notifications.maxAttempts).toBe(3);
    expect(c.retention).toMatchObject({ days: 7, maxExecutions: 1000 });
  });

  it.each([
    [{ CRONIUM__NOTIFICATIONS__ALLOW_LIST: 'ftp://x.example/' }, 'notifications.allowList'],
    [{ CRONIUM__NOTIFICATIONS__ALLOW_LIST: 'a b' }, 'notifications.allowList'],
    [{ CRONIUM__NOTIFICATIONS__MAX_ATTEMPTS: '0' }, 'notifications.maxAttempts'],
    [{ CRONIUM__RETENTION__DAYS: '-1' }, 'retention.days'],
    [{ CRONIUM__RETENTION__BATCH_SIZE: '0' }, 'retention.batchSize'],
  ])('refuses %j naming %s', (env, key) => {
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(key);
  });
});
