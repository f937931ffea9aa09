import {
  BadRequestException,
  ConflictException,
  Injectable,
  Logger,
  NotFoundException,
  OnModuleDestroy,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Observable, Subject } from 'rxjs';
import { badCursor, decodeOpaque, encodeOpaque } from '../common/opaque-cursor';
import { prefixRange } from '../common/query-list';
import { SecretBox, SecretBoxError } from '../common/secret-box';
import { AppConfig } from '../config/app-config';
import { TargetError } from '../executions/error-codes';
import { ServerEntity } from '../persistence/entities/server.entity';
import { ServersRepository } from '../persistence/servers.repository';
import { isUniqueViolation } from '../persistence/write-errors';
import { SeenHostKey, SshEndpoint } from '../ssh/ssh.types';
import { CreateServerDto } from './dto/create-server.dto';
import { ListServersQuery } from './dto/list-servers-query.dto';
import { ServerView } from './dto/server-view.dto';
import { UpdateServerDto } from './dto/update-server.dto';
import { HostKeyFormatError, parseHostKeyInput, ParsedHostKey } from './host-key';
import {
  checkBaseDir,
  checkBecomePassword,
  checkHost,
  checkName,
  checkPrivateKey,
  checkServerId,
  checkTag,
  checkUsername,
  isUuid,
  normalizeTags,
  SECRET_MAX,
  TAGS_MAX,
} from './server-rules';

/** What is sealed in `ServerEntity.credentials` (AAD = the server id). */
interface StoredCredentials {
  privateKey?: string;
  passphrase?: string;
  password?: string;
}

export interface TargetSelector {
  serverIds?: readonly string[];
  tags?: readonly string[];
}

/** The longest a decrypted endpoint is kept without hearing of a change (a lost bus message). */
const ENDPOINT_TTL_MS = 60_000;

const STRICT_HINT =
  'the host-key policy is strict, so a server needs its host key (an OpenSSH public key line or a SHA256:… fingerprint)';

/** The name a servers cursor (encodeOpaque of ['server', name]) goes on after. */
function decodeServerCursor(cursor: string): string {
  const v = decodeOpaque(cursor);
  if (!Array.isArray(v) || v.length !== 2 || v[0] !== 'server' || typeof v[1] !== 'string') {
    throw badCursor('not a servers cursor');
  }
  return v[1];
}

/**
 * The server inventory: CRUD with credentials sealed at rest (AES-256-GCM bound to the
 * server id), host-key pinning (given up front, or trust-on-first-use), tags.
 */
@Injectable()
export class ServersService implements OnModuleDestroy {
  private readonly logger = new Logger(ServersService.name);
  private readonly box: SecretBox;
  private readonly changes = new Subject<string>();
  /** Emits a server id after the server was updated or deleted (connections should go). */
  readonly changes$: Observable<string> = this.changes.asObservable();
  /**
   * Decrypted endpoints, so a warm job neither reads nor decrypts its server: kept until
   * the server changes (here: changes$; on another replica: its bus message, through
   * forgetEndpoint) or, should such a message be lost, for ENDPOINT_TTL_MS at most.
   */
  private readonly endpoints = new Map<string, { at: number; endpoint: SshEndpoint }>();
  /** Bumped by every forgetEndpoint: a row read before it may be stale, and is not kept. */
  private generation = 0;

  constructor(
    private readonly repo: ServersRepository,
    private readonly config: AppConfig,
  ) {
    this.box = new SecretBox(config.secrets.key);
  }

  onModuleDestroy(): void {
    this.changes.complete();
  }

  get hostKeyPolicy(): 'tofu' | 'strict' {
    return this.config.hostKeys.policy;
  }

  // ---------------------------------------------------------------- REST operations

  async create(dto: CreateServerDto): Promise<ServerView> {
    this.checkFields(dto, true);
    const hasKey = dto.privateKey != null;
    const hasPassword = dto.password != null;
    if (hasKey === hasPassword) {
      throw new BadRequestException(
        hasKey
          ? 'privateKey, password: give one of them, not both'
          : 'privateKey, password: exactly one of them is required',
      );
    }
    if (!hasKey && dto.passphrase != null) {
      throw new BadRequestException('passphrase: only applies to privateKey');
    }
    const credentials = hasKey
      ? this.keyCredentials(dto.privateKey!, dto.passphrase)
      : { password: dto.password! };

    const pin = dto.hostKey != null ? this.parseHostKey(dto.hostKey) : null;
    if (!pin && this.hostKeyPolicy === 'strict') {
      throw new BadRequestException(`hostKey: is required — ${STRICT_HINT}`);
    }

    await this.assertNameFree(dto.name);
    const jumpServerId = dto.jumpServerId != null ? dto.jumpServerId.toLowerCase() : null;
    if (jumpServerId) await this.checkJump(null, jumpServerId);
    const now = Date.now();
    const id = randomUUID();
    const entity: ServerEntity = {
      id,
      name: dto.name,
      host: dto.host,
      port: dto.port ?? 22,
      username: dto.username,
      authType: hasKey ? 'key' : 'password',
      credentials: this.seal(id, credentials),
      becomePassword: dto.becomePassword != null ? this.sealBecome(id, dto.becomePassword) : null,
      hostKeyFingerprint: pin?.fingerprint ?? null,
      hostKeyType: pin?.type ?? null,
      hostKeyPinnedAt: pin ? now : null,
      hostKeySource: pin ? 'given' : null,
      tags: normalizeTags(dto.tags),
      baseDir: dto.baseDir ?? null,
      jumpServerId,
      createdAt: now,
      updatedAt: now,
    };
    try {
      await this.repo.insert(entity);
    } catch (e) {
      throw this.mapWriteError(e, dto.name);
    }
    this.logger.log(`server ${id} "${entity.name}" registered (${entity.authType} auth)`);
    return this.toView(entity);
  }

  /**
   * Servers by name: those carrying every tag of `tag`, whose name starts with `name`,
   * after the cursor's; `limit` a page (nextCursor set when it was full), else all of them.
   */
  async list(
    q: ListServersQuery = {},
  ): Promise<{ items: ServerView[]; nextCursor: string | null }> {
    const rows = await this.repo.list({
      name: q.name === undefined ? undefined : prefixRange(q.name),
      afterName: q.cursor === undefined ? undefined : decodeServerCursor(q.cursor),
    });
    const tags = q.tag ?? [];
    // Tags live in a JSON text column (one schema for both databases); the inventory is
    // small enough to filter here.
    const matching = rows.filter((r) => tags.every((t) => (r.tags ?? []).includes(t)));
    const page = q.limit === undefined ? matching : matching.slice(0, q.limit);
    const more = q.limit !== undefined && matching.length > q.limit;
    return {
      items: page.map((r) => this.toView(r)),
      nextCursor: more ? encodeOpaque(['server', page[page.length - 1].name]) : null,
    };
  }

  async get(id: string): Promise<ServerView> {
    return this.toView(await this.getEntity(id));
  }

  async update(id: string, dto: UpdateServerDto): Promise<ServerView> {
    const current = await this.getEntity(id);
    this.checkFields(dto, false);
    const patch: Partial<ServerEntity> = {};

    if (dto.name !== undefined && dto.name !== current.name) {
      await this.assertNameFree(dto.name, current.id);
      patch.name = dto.name;
    }
    if (dto.host !== undefined && dto.host !== current.host) patch.host = dto.host;
    if (dto.port !== undefined && dto.port !== current.port) patch.port = dto.port;
    if (dto.username !== undefined && dto.username !== current.username) {
      patch.username = dto.username;
    }
    // A new port or user on the same host is the same machine: its key stays pinned.
    const hostMoved = 'host' in patch;
    const unpin = () =>
      Object.assign(patch, {
        hostKeyFingerprint: null,
        hostKeyType: null,
        hostKeyPinnedAt: null,
        hostKeySource: null,
      });

    if (dto.hostKey !== undefined) {
      if (dto.hostKey === null) {
        if (this.hostKeyPolicy === 'strict') {
          throw new BadRequestException(`hostKey: cannot be removed — ${STRICT_HINT}`);
        }
        unpin(); // re-pinned on the next first contact
      } else {
        const pin = this.parseHostKey(dto.hostKey);
        patch.hostKeyFingerprint = pin.fingerprint;
        patch.hostKeyType = pin.type;
        patch.hostKeyPinnedAt = Date.now();
        patch.hostKeySource = 'given';
      }
    } else if (hostMoved && current.hostKeyFingerprint !== null) {
      if (this.hostKeyPolicy === 'strict') {
        throw new BadRequestException(
          `hostKey: is required when the host changes — ${STRICT_HINT}`,
        );
      }
      // A different host is a different machine: trust it again on first use.
      unpin();
    }

    const newKey = dto.privateKey != null;
    const newPassword = dto.password != null;
    if (newKey && newPassword) {
      throw new BadRequestException('privateKey, password: give one of them, not both');
    }
    if (newKey) {
      patch.credentials = this.seal(
        current.id,
        this.keyCredentials(dto.privateKey!, dto.passphrase),
      );
      patch.authType = 'key';
    } else if (newPassword) {
      if (dto.passphrase != null) {
        throw new BadRequestException('passphrase: only applies to privateKey');
      }
      patch.credentials = this.seal(current.id, { password: dto.password! });
      patch.authType = 'password';
    } else if (dto.passphrase != null) {
      // A new passphrase for the stored key (the key itself was re-encrypted elsewhere).
      if (current.authType !== 'key') {
        throw new BadRequestException('passphrase: only applies to privateKey');
      }
      const stored = this.openCredentials(current);
      patch.credentials = this.seal(
        current.id,
        this.keyCredentials(stored.privateKey ?? '', dto.passphrase, 'passphrase'),
      );
    }

    if (dto.tags !== undefined) patch.tags = normalizeTags(dto.tags);
    if (dto.baseDir !== undefined) patch.baseDir = dto.baseDir;
    if (dto.jumpServerId !== undefined) {
      const jump = dto.jumpServerId === null ? null : dto.jumpServerId.toLowerCase();
      if (jump !== current.jumpServerId) {
        if (jump) await this.checkJump(current.id, jump);
        patch.jumpServerId = jump;
      }
    }
    if (dto.becomePassword !== undefined) {
      patch.becomePassword =
        dto.becomePassword === null ? null : this.sealBecome(current.id, dto.becomePassword);
    }

    if (Object.keys(patch).length === 0) return this.toView(current);
    patch.updatedAt = Math.max(Date.now(), current.updatedAt + 1);
    try {
      if (!(await this.repo.update(current.id, patch))) throw this.notFound(id);
    } catch (e) {
      throw this.mapWriteError(e, patch.name ?? current.name);
    }
    this.forgetEndpoint(current.id);
    this.changes.next(current.id);
    this.logger.log(
      `server ${current.id} updated (${Object.keys(patch)
        .filter((k) => k !== 'updatedAt')
        .join(', ')})`,
    );
    return this.get(current.id);
  }

  async remove(id: string): Promise<void> {
    if (!isUuid(id)) throw this.notFound(id);
    const key = id.toLowerCase();
    const behind = await this.repo.findByJump(key);
    if (behind.length) {
      throw new ConflictException(
        `server ${key} is the jump host of ${behind
          .slice(0, 5)
          .map((s) => `"${clip(s.name)}"`)
          .join(', ')}${behind.length > 5 ? ` and ${behind.length - 5} more` : ''}; ` +
          'change or clear their jumpServerId first',
      );
    }
    if (!(await this.repo.delete(key))) throw this.notFound(id);
    this.forgetEndpoint(key);
    this.changes.next(key);
    this.logger.log(`server ${key} deleted`);
  }

  // ---------------------------------------------------------------- for other modules

  /** The stored row; 404 (`server <id> not found`) for unknown or malformed ids. */
  async getEntity(id: string): Promise<ServerEntity> {
    if (!isUuid(id)) throw this.notFound(id);
    const row = await this.repo.findById(id.toLowerCase());
    if (!row) throw this.notFound(id);
    return row;
  }

  /**
   * Everything the SSH pool needs to reach a server, credentials decrypted (cached), with
   * its jump hosts' endpoints in `jump` (nearest first).
   */
  async getEndpoint(id: string, hops = 0): Promise<SshEndpoint> {
    const key = isUuid(id) ? id.toLowerCase() : id;
    const hit = this.endpoints.get(key);
    if (hit && Date.now() - hit.at < ENDPOINT_TTL_MS) return { ...hit.endpoint };
    const generation = this.generation;
    const server = await this.getEntity(id);
    const endpoint = this.endpointOf(server);
    if (server.jumpServerId) {
      // Refused at POST/PATCH; a row written around a concurrent edit is refused here.
      if (hops >= this.config.ssh.maxJumpDepth) {
        throw new TargetError(
          'connect_failed',
          `the jump chain of ${server.name} is longer than ssh.maxJumpDepth (${this.config.ssh.maxJumpDepth})`,
        );
      }
      endpoint.jump = await this.getEndpoint(server.jumpServerId, hops + 1).catch((e) => {
        if (!(e instanceof NotFoundException)) throw e;
        throw new TargetError(
          'connect_failed',
          `the jump host ${server.jumpServerId} of ${server.name} is not in the inventory`,
        );
      });
    }
    // Kept unless a change came in while the row was being read (it may be stale then).
    if (generation === this.generation) {
      this.endpoints.set(key, { at: Date.now(), endpoint: { ...endpoint } });
    }
    return endpoint;
  }

  /**
   * The server changed (here or on another replica): its endpoint is read again, and so
   * are the endpoints of the servers reached through it.
   */
  forgetEndpoint(id: string): void {
    this.generation++;
    const key = id.toLowerCase();
    for (const [k, v] of this.endpoints) {
      if (k === key || jumpIdsOf(v.endpoint).includes(key)) this.endpoints.delete(k);
    }
  }

  /**
   * Decrypts a row's credentials into an endpoint. Throws TargetError('auth_failed') when
   * they cannot be opened (e.g. CRONIUM_SECRETS_KEY changed since they were stored).
   */
  endpointOf(server: ServerEntity): SshEndpoint {
    const creds = this.openCredentials(server);
    const endpoint: SshEndpoint = {
      serverId: server.id,
      serverName: server.name,
      host: server.host,
      port: server.port,
      username: server.username,
      hostKeyFingerprint: server.hostKeyFingerprint,
      hostKeyType: server.hostKeyType,
    };
    if (server.authType === 'key') {
      endpoint.privateKey = creds.privateKey;
      if (creds.passphrase) endpoint.passphrase = creds.passphrase;
    } else {
      endpoint.password = creds.password;
    }
    const becomePassword = this.openBecome(server);
    if (becomePassword !== undefined) endpoint.becomePassword = becomePassword;
    return endpoint;
  }

  /**
   * Resolves job targets: servers named by id plus servers carrying any of the tags,
   * de-duplicated and ordered by name. Unknown (or malformed) ids are a 404 naming them.
   */
  async findByIdsAndTags(selector: TargetSelector): Promise<ServerEntity[]> {
    const ids = [...new Set(selector.serverIds ?? [])];
    const tags = new Set(selector.tags ?? []);
    const found = new Map<string, ServerEntity>();

    if (ids.length) {
      const valid = ids.filter(isUuid).map((s) => s.toLowerCase());
      const rows = valid.length ? await this.repo.findByIds([...new Set(valid)]) : [];
      for (const r of rows) found.set(r.id, r);
      const unknown = ids.filter((s) => !isUuid(s) || !found.has(s.toLowerCase()));
      if (unknown.length) {
        throw new NotFoundException(
          `${unknown.length === 1 ? 'server' : 'servers'} not found: ${unknown
            .map((s) => clip(s))
            .join(', ')}`,
        );
      }
    }
    if (tags.size) {
      for (const r of await this.repo.findByAnyTag(tags)) if (!found.has(r.id)) found.set(r.id, r);
    }
    return [...found.values()].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1,
    );
  }

  /**
   * Trust on first use: pins `seen` if the server has no pinned key yet. The first caller
   * wins (conditional UPDATE … WHERE hostKeyFingerprint IS NULL); any later caller gets
   * whether its key equals the pinned one. With `expect`, the pin is only learned while the
   * server still points at that endpoint (a connection made before an edit learns nothing).
   * Never learns under the strict policy.
   */
  async learnHostKey(
    serverId: string,
    seen: SeenHostKey,
    expect?: Pick<SshEndpoint, 'host' | 'port' | 'username'>,
  ): Promise<boolean> {
    if (this.hostKeyPolicy === 'strict') return false;
    if (!isUuid(serverId) || !seen?.fingerprint) return false;
    const id = serverId.toLowerCase();
    const key = { fingerprint: seen.fingerprint, type: seen.type ?? null };
    if (await this.repo.pinHostKeyIfUnset(id, key, expect)) {
      this.forgetEndpoint(id); // the pin is part of the endpoint
      this.logger.log(
        `server ${id}: host key ${seen.fingerprint} (${seen.type}) pinned on first use`,
      );
      return true;
    }
    const row = await this.repo.findById(id);
    if (!row || row.hostKeyFingerprint !== seen.fingerprint) return false;
    if (
      expect &&
      (row.host !== expect.host || row.port !== expect.port || row.username !== expect.username)
    ) {
      return false;
    }
    if (row.hostKeyType === null && seen.type) {
      // Pinned by fingerprint alone: remember the type now that a matching key was seen.
      await this.repo.setHostKeyTypeIfUnset(id, seen.fingerprint, seen.type);
      this.forgetEndpoint(id);
    }
    return true;
  }

  /** The remote base directory for a server: its own, else the configured default. */
  baseDirOf(server: Pick<ServerEntity, 'baseDir'>): string {
    return server.baseDir ?? this.config.runner.baseDir;
  }

  /** The remote base directory of a server by id (a restarted execution's targets). */
  async baseDirOfServer(id: string): Promise<string> {
    return this.baseDirOf(await this.getEntity(id));
  }

  /** The API view: never credentials. */
  toView(s: ServerEntity): ServerView {
    return {
      id: s.id,
      name: s.name,
      host: s.host,
      port: s.port,
      username: s.username,
      authType: s.authType,
      hasBecomePassword: s.becomePassword != null,
      hostKeyFingerprint: s.hostKeyFingerprint ?? null,
      hostKeyType: s.hostKeyType ?? null,
      hostKeyPinnedAt: s.hostKeyPinnedAt ? new Date(Number(s.hostKeyPinnedAt)).toISOString() : null,
      hostKeySource: s.hostKeySource ?? null,
      tags: [...(s.tags ?? [])],
      baseDir: s.baseDir ?? null,
      jumpServerId: s.jumpServerId ?? null,
      createdAt: new Date(Number(s.createdAt)).toISOString(),
      updatedAt: new Date(Number(s.updatedAt)).toISOString(),
    };
  }

  // ---------------------------------------------------------------- internals

  /**
   * `jumpServerId` for server `id` (null: being created) must name another inventory
   * server, must not lead back to `id`, and the longest chain through `id` (its jumps
   * above, the servers jumping through it below) must stay within ssh.maxJumpDepth.
   */
  private async checkJump(id: string | null, jumpId: string): Promise<void> {
    const max = this.config.ssh.maxJumpDepth;
    if (jumpId === id)
      throw new BadRequestException('jumpServerId: a server cannot be its own jump host');
    const rows = new Map((await this.repo.list()).map((r) => [r.id, r]));
    if (!rows.has(jumpId)) {
      throw new BadRequestException(`jumpServerId: server ${jumpId} not found`);
    }
    let above = 0;
    for (let at: string | null = jumpId; at; at = rows.get(at)?.jumpServerId ?? null) {
      if (at === id) {
        throw new BadRequestException(
          `jumpServerId: server ${jumpId} is reached through this server (a cycle)`,
        );
      }
      if (++above > max) break;
    }
    // The servers reached through this one get longer chains too.
    const below = (at: string, n: number): number =>
      n > max
        ? n
        : Math.max(
            n,
            ...[...rows.values()]
              .filter((r) => r.jumpServerId === at)
              .map((r) => below(r.id, n + 1)),
          );
    const depth = above + (id ? below(id, 0) : 0);
    if (depth > max) {
      throw new BadRequestException(
        `jumpServerId: the jump chain would be ${depth} hops long; at most ${max} (ssh.maxJumpDepth)`,
      );
    }
  }

  /**
   * Field rules again, so callers that bypass the HTTP ValidationPipe (other modules,
   * tests) cannot store what the API would refuse.
   */
  private checkFields(dto: Partial<CreateServerDto & UpdateServerDto>, creating: boolean): void {
    const errors: string[] = [];
    const add = (m: string | null) => m && errors.push(m);
    if (creating || dto.name !== undefined) add(checkName(dto.name));
    if (creating || dto.host !== undefined) add(checkHost(dto.host));
    if (creating || dto.username !== undefined) add(checkUsername(dto.username));
    if (
      dto.port !== undefined &&
      !(Number.isInteger(dto.port) && dto.port >= 1 && dto.port <= 65535)
    ) {
      add('port must be an integer from 1 to 65535');
    }
    if (dto.baseDir != null) add(checkBaseDir(dto.baseDir));
    if (dto.jumpServerId != null) add(checkServerId(dto.jumpServerId, 'jumpServerId'));
    if (dto.tags !== undefined) {
      if (!Array.isArray(dto.tags)) add('tags must be an array');
      else if (dto.tags.length > TAGS_MAX)
        add(`tags must contain no more than ${TAGS_MAX} elements`);
      else for (const t of dto.tags) if (add(checkTag(t))) break;
    }
    for (const f of ['password', 'passphrase'] as const) {
      const v = dto[f];
      if (v != null && (typeof v !== 'string' || v.length > SECRET_MAX)) {
        add(`${f} must be a string of at most ${SECRET_MAX} characters`);
      }
    }
    if (dto.password === '') add('password must not be empty');
    if (dto.becomePassword != null) add(checkBecomePassword(dto.becomePassword));
    if (errors.length) throw new BadRequestException(errors.join('; '));
  }

  private keyCredentials(
    privateKey: string,
    passphrase: string | undefined | null,
    field: 'privateKey' | 'passphrase' = 'privateKey',
  ): StoredCredentials {
    const res = checkPrivateKey(privateKey, passphrase);
    if (!res.ok) {
      throw new BadRequestException(
        field === 'privateKey' ? res.message : 'passphrase: does not open the stored privateKey',
      );
    }
    return passphrase ? { privateKey, passphrase } : { privateKey };
  }

  private parseHostKey(input: string): ParsedHostKey {
    try {
      return parseHostKeyInput(input);
    } catch (e) {
      if (e instanceof HostKeyFormatError) throw new BadRequestException(`hostKey: ${e.message}`);
      throw e;
    }
  }

  private seal(id: string, creds: StoredCredentials): string {
    return this.box.seal(JSON.stringify(creds), id);
  }

  /** The sudo password is sealed on its own (AAD `become:<id>`): it outlives new SSH credentials. */
  private sealBecome(id: string, password: string): string {
    return this.box.seal(password, `become:${id}`);
  }

  /**
   * Undefined when there is none, or when it cannot be opened (logged): only a job with
   * `become` needs it, and sudo then refuses it (`become_failed`), not every job.
   */
  private openBecome(server: ServerEntity): string | undefined {
    if (!server.becomePassword) return undefined;
    try {
      return this.box.open(server.becomePassword, `become:${server.id}`);
    } catch (e) {
      if (!(e instanceof SecretBoxError)) throw e;
      this.logger.error(`server ${server.id}: stored becomePassword cannot be decrypted`);
      return undefined;
    }
  }

  private openCredentials(server: ServerEntity): StoredCredentials {
    try {
      return JSON.parse(this.box.open(server.credentials, server.id)) as StoredCredentials;
    } catch (e) {
      if (e instanceof SecretBoxError || e instanceof SyntaxError) {
        this.logger.error(`server ${server.id}: stored credentials cannot be decrypted`);
        throw new TargetError(
          'auth_failed',
          'stored credentials cannot be decrypted (was CRONIUM_SECRETS_KEY changed?)',
        );
      }
      throw e;
    }
  }

  private async assertNameFree(name: string, exceptId?: string): Promise<void> {
    const other = await this.repo.findByName(name);
    if (other && other.id !== exceptId) throw this.nameConflict(name);
  }

  private nameConflict(name: string): ConflictException {
    return new ConflictException(`a server named "${clip(name)}" already exists`);
  }

  private notFound(id: string): NotFoundException {
    return new NotFoundException(`server ${clip(String(id))} not found`);
  }

  /** Unique-name races that slipped past the pre-check become 409, not 500. */
  private mapWriteError(e: unknown, name: string): unknown {
    return isUniqueViolation(e) ? this.nameConflict(name) : e;
  }
}

/** The ids of the jump hosts an endpoint is reached through, nearest first. */
export function jumpIdsOf(ep: SshEndpoint): string[] {
  const ids: string[] = [];
  for (let j = ep.jump; j; j = j.jump) ids.push(j.serverId);
  return ids;
}

function clip(s: string, max = 80): string {
  return s.length > max ? s.slice(0, max) + '…' : s;
}
