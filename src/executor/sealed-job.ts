import { SecretBox } from '../common/secret-box';
import type { ScriptType } from '../executions/request';

/** The part of a job only its executor needs: kept sealed at rest. */
export interface SealedJob {
  script: { type: ScriptType; content: string };
  env: Record<string, string>;
  input: unknown;
}

const aad = (executionId: string) => `execution-job:${executionId}`;

/** AES-GCM with the secrets key, bound to the execution (a copy onto another does not open). */
export function sealJob(box: SecretBox, executionId: string, job: SealedJob): string {
  return box.seal(JSON.stringify(job), aad(executionId));
}

/** Throws SecretBoxError when the value was not sealed for this execution with this key. */
export function openJob(box: SecretBox, executionId: string, sealed: string): SealedJob {
  return JSON.parse(box.open(sealed, aad(executionId))) as SealedJob;
}
