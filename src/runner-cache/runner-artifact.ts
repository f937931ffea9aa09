import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTar } from './tar';

/** Where the remote runner's sources live (works from src/ under ts-jest and from dist/). */
export const REMOTE_DIR = path.resolve(__dirname, '../../src/runner-cache/remote');

export interface RunnerArtifact {
  /** sha256 of the tar, hex: names the remote directory. */
  hash: string;
  version: string;
  tar: Buffer;
  files: string[];
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${ent.name}` : ent.name;
    if (ent.isDirectory()) out.push(...listFiles(path.join(dir, ent.name), rel));
    else if (ent.isFile()) out.push(rel);
  }
  return out.sort();
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Packs remote/ into a reproducible tar plus a SHA256SUMS file, so a deployed runner can
 * later be re-verified in place with `sha256sum -c`.
 */
export function buildRunnerArtifact(dir = REMOTE_DIR): RunnerArtifact {
  const files = listFiles(dir).filter((f) => f !== 'SHA256SUMS');
  if (!files.includes('runner.sh')) throw new Error(`runner.sh missing in ${dir}`);
  const entries = files.map((name) => {
    const data = fs.readFileSync(path.join(dir, name));
    return { name, data, mode: name.endsWith('.sh') ? 0o755 : 0o644 };
  });
  const sums = entries.map((e) => `${sha256(e.data)}  ${e.name}\n`).join('');
  entries.push({ name: 'SHA256SUMS', data: Buffer.from(sums), mode: 0o644 });
  const tar = buildTar(entries);
  const version = fs.readFileSync(path.join(dir, 'VERSION'), 'utf8').trim();
  return { hash: sha256(tar), version, tar, files: entries.map((e) => e.name) };
}
