/**
 * Small fakes of our own collaborators for the executor's unit specs: the runner cache
 * (it deploys the real runner on a miss) and runtime helpers without a tunnel.
 */
import { deployCommand } from '../../src/runner/commands';
import { buildRunnerArtifact } from '../../src/runner-cache/runner-artifact';
import type { EnsureResult } from '../../src/runner-cache/runner-cache.service';
import type {
  HelperRequest,
  PreparedHelpers,
} from '../../src/runtime-helpers/runtime-helpers.service';
import { execCommand } from '../../src/ssh/run-command';
import type { PooledConnection } from '../../src/ssh/ssh.types';

const artifact = buildRunnerArtifact();

/** The runner cache, reduced to what a target needs: deploys for real on a miss. */
export class FakeRunnerCache {
  readonly artifact = artifact;
  trusted = false;
  deployed = false;
  ensureCalls = 0;
  invalidated = 0;
  isTrusted() {
    return this.trusted;
  }
  async ensure(conn: PooledConnection, _serverId: string, baseDir: string): Promise<EnsureResult> {
    this.ensureCalls++;
    if (this.deployed) return { outcome: 'hit' };
    const r = await execCommand(conn, deployCommand(baseDir, artifact.hash), {
      stdin: artifact.tar,
    });
    if (r.code !== 0) throw new Error(`deploy failed: ${r.stdout}${r.stderr}`);
    this.deployed = true;
    return { outcome: 'deployed' };
  }
  async invalidate() {
    this.invalidated++;
    this.deployed = false;
  }
}

/** Runtime helpers reduced to files and env: no tunnel. */
export class FakeHelpers {
  requests: HelperRequest[] = [];
  collected: Buffer[] = [];
  released = 0;
  keep = false;
  async prepare(_conn: PooledConnection, req: HelperRequest): Promise<PreparedHelpers> {
    this.requests.push(req);
    return {
      mode: 'bundled',
      fallbackReason: null,
      endpoint: null,
      port: null,
      socketPath: null,
      env: { CRONIUM_HELPER_MODE: 'bundled' },
      files: { 'input.json': JSON.stringify(req.input) },
      keep: this.keep,
      tunnelMs: null,
      reconnect: async () => true,
      release: async () => {
        this.released++;
        return { output: null, condition: null };
      },
    };
  }
  async resumeApi(): Promise<PreparedHelpers> {
    throw new Error('FakeHelpers serves bundled mode only');
  }
  async applyBundled(_userId: string | null, collected: Buffer) {
    this.collected.push(collected);
    return { output: 'collected', condition: true };
  }
}
