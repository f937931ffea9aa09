import 'reflect-metadata';
import { Type } from 'class-transformer';
import {
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsObject,
  IsString,
  Matches,
  Max,
  Min,
  MinLength,
  ValidateBy,
  ValidateNested,
} from 'class-validator';
import { isIP } from 'node:net';
import { ALLOW_ENTRY_RE } from '../notifications/allow-list';

const HOST_NAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** An IP address, or a host name that is not a malformed dotted quad (`999.1.1.1`). */
export function isListenHost(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  if (isIP(v) !== 0) return true;
  return HOST_NAME_RE.test(v) && !/^[\d.]+$/.test(v);
}

function IsListenHost() {
  return ValidateBy({
    name: 'isListenHost',
    validator: {
      validate: isListenHost,
      defaultMessage: () =>
        'host must be an IP address or a host name, e.g. 0.0.0.0, :: or 127.0.0.1 (HOST)',
    },
  });
}

/** Typed, validated configuration. Every timeout, limit and retry count lives here. */
/** Exponential backoff with jitter between tries. */
export class BackoffConfig {
  @IsInt() @Min(0) initialDelayMs!: number;
  @IsNumber() @Min(1) factor!: number;
  @IsInt() @Min(0) maxDelayMs!: number;
}

export class RetryConfig extends BackoffConfig {
  @IsInt() @Min(1) @Max(20) attempts!: number;
}

export class DatabaseConfig {
  @Matches(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/, {
    message: 'database.url must be sqlite:<path> or postgres://…',
  })
  url!: string;
}

export class AuthConfig {
  @IsArray() @IsString({ each: true }) @MinLength(16, { each: true }) serviceTokens!: string[];
  @IsString() @MinLength(32) jwtSecret!: string;
  @IsInt() @Min(0) jwtMarginSeconds!: number;
}

export class SecretsConfig {
  @IsString() @MinLength(32) key!: string;
}

export class HostKeysConfig {
  @IsIn(['tofu', 'strict']) policy!: 'tofu' | 'strict';
}

export class BreakerConfig {
  @IsInt() @Min(1) failureThreshold!: number;
  @IsInt() @Min(0) cooldownMs!: number;
}

export class SshConfig {
  @IsInt() @Min(100) readyTimeoutMs!: number;
  @IsInt() @Min(0) keepaliveIntervalMs!: number;
  @IsInt() @Min(1) keepaliveCountMax!: number;
  @IsInt() @Min(1) @Max(1000) maxChannelsPerConnection!: number;
  /** Connections to one endpoint: a second opens when the first's channels are all busy. */
  @IsInt() @Min(1) @Max(64) maxConnectionsPerServer!: number;
  @IsInt() @Min(0) idleTimeoutMs!: number;
  @IsInt() @Min(1) maxConcurrentHandshakes!: number;
  /** Jump hosts a server may be reached through, one behind the other (ProxyJump chain). */
  @IsInt() @Min(1) @Max(10) maxJumpDepth!: number;
  @ValidateNested() @Type(() => RetryConfig) connectRetry!: RetryConfig;
  @ValidateNested() @Type(() => RetryConfig) channelOpenRetry!: RetryConfig;
  @ValidateNested() @Type(() => BreakerConfig) breaker!: BreakerConfig;
}

export class RunnerConfig {
  @IsString() baseDir!: string;
  @IsInt() @Min(0) trustSeconds!: number;
  @ValidateNested() @Type(() => RetryConfig) deployRetry!: RetryConfig;
  @IsInt() @Min(1) leaseSeconds!: number;
  @IsInt() @Min(1) heartbeatSeconds!: number;
  /** Bounded by the lease, not by a count. */
  @ValidateNested() @Type(() => BackoffConfig) reattachBackoff!: BackoffConfig;
}

export class ExecutorConfig {
  @IsInt() @Min(1) defaultTimeoutSeconds!: number;
  @IsInt() @Min(1) maxTimeoutSeconds!: number;
  @IsNumber() @Min(0) killGraceSeconds!: number;
  @IsInt() @Min(1024) outputCapBytes!: number;
  @IsInt() @Min(256) maxLineBytes!: number;
  @IsInt() @Min(1) defaultConcurrency!: number;
  @IsInt() @Min(1) globalConcurrency!: number;
  @IsInt() @Min(1) collectTimeoutSeconds!: number;
  @IsBoolean() prewarmRunner!: boolean;
  @IsInt() @Min(1) ownerHeartbeatSeconds!: number;
  @IsInt() @Min(2) ownerStaleSeconds!: number;
  /**
   * `ulimit -u` for the script's processes (0: none). It bounds a fork bomb of a plain
   * SSH user; root ignores it (RLIMIT_NPROC does not apply to root).
   */
  @IsInt() @Min(0) @Max(1000000) maxProcesses!: number;
  /**
   * Keep each execution's sealed job (script, env, input) after it ends, so that it can be
   * re-run; off, it is cleared at the end and a rerun is a 409.
   */
  @IsBoolean() keepJobForRerun!: boolean;
}

export class LimitsConfig {
  @IsInt() @Min(1) maxScriptBytes!: number;
  @IsInt() @Min(1) maxInputBytes!: number;
  @IsInt() @Min(0) maxEnvVars!: number;
  /** Arrays and objects nested deeper than this, anywhere a JSON value comes in, are a 400. */
  @IsInt() @Min(2) @Max(10000) maxJsonDepth!: number;
}

export class ShutdownConfig {
  @IsNumber() @Min(0) graceSeconds!: number;
  /**
   * Hand running targets over instead of cancelling them: the next start (or another
   * replica) re-attaches. Always so with a queue on Redis.
   */
  @IsBoolean() handover!: boolean;
}

/** The work queue: in-process without a Redis URL, BullMQ on Redis with one. */
export class QueueConfig {
  @Matches(/^(|rediss?:\/\/\S+)$/, {
    message:
      'REDIS_URL (queue.redisUrl) must be redis://[user:password@]host[:port][/db] or rediss://…',
  })
  redisUrl!: string;
  /** Prefix of every Redis key and channel, so clusters can share one Redis. */
  @Matches(/^[A-Za-z0-9:_-]{1,64}$/) prefix!: string;
  /** Executions one replica drives at once (targets are bounded by executor limits). */
  @IsInt() @Min(1) workerConcurrency!: number;
  /** BullMQ job lock: a replica that stops renewing it for this long has stalled. */
  @IsInt() @Min(1000) lockDurationMs!: number;
  /** How often replicas look for stalled jobs (and hand them to another worker). */
  @IsInt() @Min(500) stalledIntervalMs!: number;
  /** A job whose execution is owned by a live replica is offered again after this. */
  @IsInt() @Min(100) retryDelayMs!: number;
  /** Connecting to Redis at boot: longer than this and the boot fails. */
  @IsInt() @Min(100) connectTimeoutMs!: number;
}

export class ToolActionsConfig {
  /** Platform endpoint receiving `{tool, action, params, context}` as an HTTP POST; '' = none. */
  @IsString() endpoint!: string;
  /** Allow-listed webhooks: tool name → URL. */
  @IsObject() webhooks!: Record<string, string>;
  @IsInt() @Min(100) timeoutMs!: number;
}

export class RuntimeConfig {
  /** Helper calls per second allowed per execution target (token bucket). */
  @IsNumber() @Min(1) ratePerSecond!: number;
  @IsInt() @Min(1) burst!: number;
  @IsInt() @Min(1024) maxBodyBytes!: number;
  /** Also serve the helper API on 127.0.0.1:<port> (benchmarks, local debugging); 0 = tunnels only. */
  @IsInt() @Min(0) @Max(65535) loopbackPort!: number;
}

/**
 * Every websocket fan-out limit (`/v1/status`). Memory per subscription is bounded by
 * maxQueuedEvents / maxQueuedBytes (plus one replay page while replaying), and per socket
 * by socketHighWater on top of that.
 */
export class StatusConfig {
  /**
   * Events waiting for one subscription (live backlog) before it is dropped as `lagged`.
   * Sized for bursts, not for steady state: a script that prints fast can emit tens of
   * thousands of short lines within one event-loop turn (one large SSH read), before any
   * socket could take them, and a reader that keeps up must not be dropped for that.
   */
  @IsInt() @Min(1) maxQueuedEvents!: number;
  /** Same, in approximate bytes on the wire (what bounds memory for long lines). */
  @IsInt() @Min(1) maxQueuedBytes!: number;
  /** No more writes while the socket holds this much unsent data (ws.bufferedAmount). */
  @IsInt() @Min(1) socketHighWater!: number;
  /** Queued events go out every flushIntervalMs, or at once when flushBatch are waiting. */
  @IsInt() @Min(1) flushIntervalMs!: number;
  @IsInt() @Min(1) flushBatch!: number;
  /** Stored events read per query when replaying. */
  @IsInt() @Min(1) replayPage!: number;
  /** Subscriptions one socket may hold. */
  @IsInt() @Min(1) maxSubscriptionsPerSocket!: number;
  @ValidateNested() @Type(() => RetryConfig) writeRetry!: RetryConfig;
}

export class MetricsConfig {
  @IsNumber() @Min(0) logIntervalSeconds!: number;
}

/** Completion notifications (`notify` on a job): a signed POST of the summary, retried. */
export class NotificationsConfig {
  /**
   * Where notifications may go: hosts (`hooks.example.com`, `127.0.0.1:8080`) or URL
   * prefixes (`https://hooks.example.com/cronium/`). Empty: any `notify` is a 400.
   */
  @IsArray()
  @Matches(ALLOW_ENTRY_RE, {
    each: true,
    message: 'each entry must be a host[:port] or an http(s):// URL prefix',
  })
  allowList!: string[];
  /** Delivery attempts per execution, the first included. */
  @IsInt() @Min(1) @Max(100) maxAttempts!: number;
  @ValidateNested() @Type(() => BackoffConfig) backoff!: BackoffConfig;
  /** One attempt, connect to response; longer is a failed attempt. */
  @IsInt() @Min(100) timeoutMs!: number;
  /** How often each replica looks for due deliveries (the end of one here wakes it at once). */
  @IsInt() @Min(50) pollIntervalMs!: number;
}

/** The periodic sweep of finished executions (variables are never swept). */
export class RetentionConfig {
  /** Finished executions older than this (by finishedAt) go; 0: no age limit. */
  @IsNumber() @Min(0) days!: number;
  /** Finished executions beyond the newest N (by createdAt) go; 0: no count limit. */
  @IsInt() @Min(0) maxExecutions!: number;
  /** Between sweeps; 0: never sweep. */
  @IsInt() @Min(0) intervalSeconds!: number;
  /** Rows one DELETE statement removes at most; the event loop gets a turn between them. */
  @IsInt() @Min(1) @Max(10000) batchSize!: number;
}

export class AppConfig {
  @IsInt() @Min(0) @Max(65535) port!: number;
  /** Address the HTTP server listens on: an IP address (`0.0.0.0`, `::`, `127.0.0.1`) or a host name. */
  @IsListenHost() host!: string;
  /** Log level; empty: `warn` under NODE_ENV=test, else `info`. */
  @IsIn(['', 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) logLevel!: string;
  /** `json` (one object a line) or `pretty`; empty: pretty on a terminal outside tests, else json. */
  @IsIn(['', 'json', 'pretty'], { message: 'logFormat must be json or pretty (LOG_FORMAT)' })
  logFormat!: '' | 'json' | 'pretty';
  @IsString() dataDir!: string;
  /** Who runs a target: recorded on it, in logs and in metrics. */
  @IsString() @Matches(/^[A-Za-z0-9._:-]{1,128}$/) replicaId!: string;
  @IsIn(['development', 'production', 'test']) nodeEnv!: string;
  @ValidateNested() @Type(() => DatabaseConfig) database!: DatabaseConfig;
  @ValidateNested() @Type(() => AuthConfig) auth!: AuthConfig;
  @ValidateNested() @Type(() => SecretsConfig) secrets!: SecretsConfig;
  @ValidateNested() @Type(() => HostKeysConfig) hostKeys!: HostKeysConfig;
  @ValidateNested() @Type(() => SshConfig) ssh!: SshConfig;
  @ValidateNested() @Type(() => RunnerConfig) runner!: RunnerConfig;
  @ValidateNested() @Type(() => ExecutorConfig) executor!: ExecutorConfig;
  @ValidateNested() @Type(() => LimitsConfig) limits!: LimitsConfig;
  @ValidateNested() @Type(() => ShutdownConfig) shutdown!: ShutdownConfig;
  @ValidateNested() @Type(() => QueueConfig) queue!: QueueConfig;
  @ValidateNested() @Type(() => StatusConfig) status!: StatusConfig;
  @ValidateNested() @Type(() => MetricsConfig) metrics!: MetricsConfig;
  @ValidateNested() @Type(() => ToolActionsConfig) toolActions!: ToolActionsConfig;
  @ValidateNested() @Type(() => RuntimeConfig) runtime!: RuntimeConfig;
  @ValidateNested() @Type(() => NotificationsConfig) notifications!: NotificationsConfig;
  @ValidateNested() @Type(() => RetentionConfig) retention!: RetentionConfig;
}
