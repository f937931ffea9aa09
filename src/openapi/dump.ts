import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AppModule } from '../app.module';
import { configureApp } from '../app-setup';

/**
 * The documents the service serves (/docs/json and /docs/asyncapi.json), built by booting
 * the app in-process on a throwaway SQLite file without listening: no sshd, no Redis, no
 * port. The document is the same as the served one (configureApp builds both).
 */
export async function buildDocuments(): Promise<ReturnType<typeof configureApp>> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-openapi-'));
  const saved = { ...process.env };
  Object.assign(process.env, {
    CRONIUM_DATA_DIR: dataDir,
    CRONIUM_SERVICE_TOKENS: 'openapi-dump-' + 'x'.repeat(24),
    DATABASE_URL: '',
    REDIS_URL: '',
  });
  try {
    const app = await NestFactory.create(AppModule, { logger: ['error'] });
    try {
      return configureApp(app);
    } finally {
      await app.close();
    }
  } finally {
    process.env = saved;
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** `node dist/openapi/dump.js openapi.json [asyncapi.json]` */
if (require.main === module) {
  const [openapiFile, asyncapiFile] = process.argv.slice(2);
  if (!openapiFile) {
    console.error('usage: dump.js <openapi.json> [asyncapi.json]');
    process.exit(64);
  }
  buildDocuments().then(
    (docs) => {
      fs.writeFileSync(openapiFile, JSON.stringify(docs.openapi, null, 2) + '\n');
      if (asyncapiFile)
        fs.writeFileSync(asyncapiFile, JSON.stringify(docs.asyncapi, null, 2) + '\n');
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
