import * as path from 'node:path';
import { AppConfig } from '../../src/config/app-config';
import { loadConfig } from '../../src/config/load-config';

/** The suite's configuration (config/test.yaml: fast retries, short graces) on a data dir. */
export function testConfig(dataDir: string): AppConfig {
  return loadConfig({
    NODE_ENV: 'test',
    CRONIUM_CONFIG: path.resolve(__dirname, '../../config/test.yaml'),
    CRONIUM_DATA_DIR: dataDir,
  });
}
