#!/usr/bin/env node
/**
 * `cronium`: the command line of cronium-orchestrator (README "CLI"). Exit codes: see EXIT.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Api, ApiError, ExecutionView, ScriptType, ServerView } from './api';
import {
  CliConfig,
  configPath,
  DEFAULT_URL,
  loadConfig,
  readConfigFile,
  setConfigValue,
  UsageError,
} from './config';
import { isUuid } from '../common/uuid';
import { Follower, isFinal, waitForEnd } from './follow';
import { colourOn, formatDuration, paint, STATUS_COLOUR, table } from './output';

export const EXIT = {
  ok: 0,
  /** The execution ended, and not every target succeeded (or `servers check` failed). */
  failed: 1,
  /** Bad usage or input: an unknown option, a missing file, a 400 from the API. */
  usage: 2,
  /** The API could not be reached, refused the token (401/403), or failed (5xx). */
  api: 3,
  /** Not found (404) or in the wrong state (409), e.g. cancelling an ended execution. */
  notFound: 4,
  /** Ctrl-C: the execution was cancelled, or the CLI detached from it. */
  interrupted: 130,
} as const;

function exitCodeOf(e: unknown): number {
  if (e instanceof UsageError) return EXIT.usage;
  if (e instanceof ApiError) {
    if (e.status === 404 || e.status === 409) return EXIT.notFound;
    if (e.status >= 400 && e.status < 500 && e.status !== 401 && e.status !== 403)
      return EXIT.usage;
    return EXIT.api;
  }
  return EXIT.api;
}

const api = () => {
  const c: CliConfig = loadConfig();
  return new Api(c.url, c.token);
};

function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}
const printJson = (value: unknown) => print(JSON.stringify(value, null, 2));
const list = (values: string[] = []) =>
  values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);

function intOption(name: string, min: number, max: number) {
  return (raw: string) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(
        `${name} must be an integer from ${min} to ${max}, got ${raw}`,
      );
    return n;
  };
}

/** A file the user named; one that cannot be read is a usage error. */
function readFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

function readStdin(): string {
  return fs.readFileSync(0, 'utf8').replace(/\r?\n$/, '');
}

/** Server ids for ids or names (names are looked up, exactly). */
async function resolveServers(a: Api, refs: string[]): Promise<string[]> {
  if (refs.every((r) => isUuid(r))) return refs;
  const servers = await a.listServers();
  return refs.map((ref) => {
    if (isUuid(ref)) return ref;
    const s = servers.find((x) => x.name === ref);
    if (!s) throw new ApiError(404, `no server named ${ref}`);
    return s.id;
  });
}

const resolveServer = async (a: Api, ref: string) => (await resolveServers(a, [ref]))[0];

function scriptTypeOf(file: string, given?: string): ScriptType {
  if (given) return given as ScriptType;
  const ext = path.extname(file).toLowerCase();
  if (ext === '.py') return 'python';
  if (['.js', '.cjs', '.mjs'].includes(ext)) return 'node';
  return 'bash';
}

function targetsTable(ex: ExecutionView, colour: boolean): string {
  return table(
    ['SERVER', 'STATUS', 'EXIT', 'DURATION', 'ERROR'],
    ex.targets.map((t) => [
      t.serverName,
      paint(colour, STATUS_COLOUR[t.status] ?? 37, t.status),
      t.exitCode == null ? (t.signal ?? '-') : String(t.exitCode),
      formatDuration(t.durationMs),
      t.error ? `${t.error.code}: ${t.error.message}` : '',
    ]),
  );
}

interface FollowFlags {
  json?: boolean;
  progress?: boolean;
  color?: boolean;
  detach?: boolean;
  verbose?: boolean;
}

/** Follows a new execution to its end, prints its table (or JSON) and sets the exit code. */
async function followAndReport(
  a: Api,
  started: ExecutionView,
  flags: FollowFlags,
): Promise<number> {
  if (flags.detach) {
    if (flags.json) printJson(started);
    else print(started.id);
    return EXIT.ok;
  }
  const follower = new Follower(a, started, {
    collect: flags.json,
    progress: flags.progress !== false,
    noColour: flags.color === false,
    system: flags.verbose,
  });
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      follower.say(`cancelling execution ${started.id}… (Ctrl-C again to detach)`);
      follower.setNote('cancelling');
      a.cancel(started.id).catch((e) => {
        if (!(e instanceof ApiError && e.status === 409))
          follower.say(`cancel failed: ${e.message}`);
      });
      return;
    }
    follower.say(`detached; execution ${started.id} goes on: cronium status ${started.id}`);
    if (flags.json) print(JSON.stringify({ id: started.id, detached: true }));
    process.exit(EXIT.interrupted);
  };
  process.on('SIGINT', onSigint);
  try {
    const ex = await follower.run();
    if (flags.json) {
      printJson({ ...ex, logs: follower.lines });
    } else {
      const colour = colourOn(process.stdout, flags.color === false);
      print('');
      print(targetsTable(ex, colour));
      const s = ex.summary;
      print(
        `execution ${ex.id} ${paint(colour, STATUS_COLOUR[ex.status] ?? 37, ex.status)}: ` +
          `${s.succeeded}/${s.total} succeeded` +
          (ex.reason ? ` (${ex.reason})` : ''),
      );
    }
    if (interrupts > 0) return EXIT.interrupted;
    return ex.status === 'succeeded' ? EXIT.ok : EXIT.failed;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

const followOptions = (c: Command) =>
  c
    .option('--json', 'print one JSON document at the end: the execution and its log lines')
    .option('--no-progress', 'no progress line (it is only drawn when stderr is a TTY)')
    .option('--no-color', 'no colours (also: NO_COLOR=1; colours only on a TTY)')
    .option('--detach', 'print the execution id and exit at once')
    .option('-v, --verbose', "also print the service's system lines (runner deployed, …)");

/** The version in package.json (two folders up from dist/cli/main.js and src/cli/main.ts). */
function packageVersion(): string {
  try {
    const file = path.join(__dirname, '..', '..', 'package.json');
    return String(JSON.parse(fs.readFileSync(file, 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

export function buildProgram(): Command {
  const program = new Command('cronium')
    .description('Run scripts on your servers through cronium-orchestrator')
    .version(packageVersion())
    .showHelpAfterError()
    .exitOverride();

  const servers = program.command('servers').description('the server inventory');
  servers
    .command('add <name>')
    .description('register a server (the key or password is stored encrypted)')
    .requiredOption('--host <host>', 'hostname or IP address')
    .option('--port <port>', 'SSH port', intOption('--port', 1, 65535))
    .requiredOption('--user <user>', 'SSH user name')
    .option('--key-file <path>', 'private key file (OpenSSH/PEM)')
    .option('--password-stdin', 'read the SSH password from stdin')
    .option('--passphrase-stdin', "read the key's passphrase from stdin")
    .option('--host-key <key>', 'pin this host key (a public key line or SHA256:… fingerprint)')
    .option('--tags <tags...>', 'tags, comma or space separated')
    .option('--base-dir <dir>', 'remote base directory')
    .option('--jump <server>', 'reach it through this server (id or name)')
    .option('--json', 'print the server as JSON')
    .action(async (name: string, o) => {
      if (!o.keyFile === !o.passwordStdin)
        throw new UsageError('give exactly one of --key-file and --password-stdin');
      if (o.passwordStdin && o.passphraseStdin)
        throw new UsageError('--passphrase-stdin goes with --key-file');
      const privateKey = o.keyFile ? readFile(o.keyFile) : undefined;
      const a = api();
      const s = await a.createServer({
        name,
        host: o.host,
        port: o.port,
        username: o.user,
        privateKey,
        ...(o.passwordStdin ? { password: readStdin() } : {}),
        ...(o.passphraseStdin ? { passphrase: readStdin() } : {}),
        hostKey: o.hostKey,
        tags: o.tags ? list(o.tags) : undefined,
        baseDir: o.baseDir,
        jumpServerId: o.jump ? await resolveServer(a, o.jump) : undefined,
      });
      if (o.json) printJson(s);
      else print(`added ${s.name} ${s.id}`);
    });
  servers
    .command('ls')
    .description('list the servers')
    .option('--json', 'print them as JSON')
    .action(async (o) => {
      const all: ServerView[] = await api().listServers();
      if (o.json) {
        printJson(all);
        return;
      }
      print(
        table(
          ['ID', 'NAME', 'ADDRESS', 'USER', 'TAGS', 'HOST KEY'],
          all.map((s) => [
            s.id,
            s.name,
            `${s.host}:${s.port}`,
            s.username,
            s.tags.join(','),
            s.hostKeyFingerprint ?? '-',
          ]),
        ),
      );
    });
  servers
    .command('check <server>')
    .description('connect, run `true`, show the host key and latency (exit 1 when it fails)')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, o) => {
      const a = api();
      const r = await a.checkServer(await resolveServer(a, ref));
      if (o.json) printJson(r);
      else if (r.ok)
        print(
          `ok: ${r.hostKeyType ?? ''} ${r.fingerprint ?? ''}, connect ${r.connectMs} ms, ` +
            `latency ${r.latencyMs} ms`,
        );
      else print(`failed: ${r.error?.code}: ${r.error?.message}`);
      process.exitCode = r.ok ? EXIT.ok : EXIT.failed;
    });
  servers
    .command('rm <server>')
    .description('delete a server')
    .action(async (ref: string) => {
      const a = api();
      const id = await resolveServer(a, ref);
      await a.deleteServer(id);
      print(`deleted ${id}`);
    });

  followOptions(
    program
      .command('run [command...]')
      .description(
        "run a script on servers and stream its output: cronium run --tags web -- 'uptime'",
      )
      .option('--tags <tags...>', 'servers carrying any of these tags (comma or space separated)')
      .option('--server <server...>', 'these servers (ids or names)')
      .option('--file <path>', 'the script from a file instead of the command')
      .addOption(
        new Option('--type <type>', 'script type (default: from the extension, else bash)').choices(
          ['bash', 'python', 'node'],
        ),
      )
      .option('--timeout <seconds>', 'per-target timeout', intOption('--timeout', 1, 604800))
      .option('--concurrency <n>', 'targets at a time', intOption('--concurrency', 1, 10000))
      .option('--name <name>', 'a name for the execution'),
  ).action(async (command: string[], o) => {
    if (o.file && command.length) throw new UsageError('give a command or --file, not both');
    if (!o.file && !command.length)
      throw new UsageError(
        "give a command (after --) or --file, e.g. cronium run --tags web -- 'uptime'",
      );
    if (!o.tags && !o.server) throw new UsageError('give --tags or --server');
    const content = o.file ? readFile(o.file) : command.join(' ');
    const a = api();
    const started = await a.submitJob({
      name: o.name,
      script: { type: o.file ? scriptTypeOf(o.file, o.type) : (o.type ?? 'bash'), content },
      targets: {
        ...(o.tags ? { tags: list(o.tags) } : {}),
        ...(o.server ? { serverIds: await resolveServers(a, list(o.server)) } : {}),
      },
      timeoutSeconds: o.timeout,
      concurrency: o.concurrency,
    });
    if (!started.targets.length) {
      print(`execution ${started.id}: no server matched`);
    }
    process.exitCode = await followAndReport(a, started, o);
  });

  followOptions(
    program
      .command('rerun <id>')
      .description("run an ended execution's job again on its failed targets (or --all)")
      .option('--all', 'every target, not only the failed ones')
      .option('--include-skipped', 'the skipped targets too'),
  ).action(async (id: string, o) => {
    const a = api();
    const started = await a.rerun(id, {
      only: o.all ? 'all' : 'failed',
      ...(o.includeSkipped ? { includeSkipped: true } : {}),
    });
    process.exitCode = await followAndReport(a, started, o);
  });

  program
    .command('logs <id>')
    .description("an execution's log, [server-name] prefixed")
    .option('-f, --follow', 'keep printing until the execution ends')
    .option('--server <server>', "only this server's lines (id or name)")
    .option('--json', 'print a JSON array of the lines')
    .option('--no-color', 'no colours')
    .option('-v, --verbose', "also print the service's system lines")
    .action(async (id: string, o) => {
      const a = api();
      const ex = await a.getExecution(id);
      const serverId = o.server ? await resolveServer(a, o.server) : undefined;
      const follower = new Follower(a, ex, {
        serverId,
        collect: o.json,
        noColour: o.color === false,
        system: o.verbose,
      });
      if (o.follow && !isFinal(ex.status)) await follower.run();
      else await follower.showStored();
      if (o.json) printJson(follower.lines);
    });

  program
    .command('status <id>')
    .description('one execution and its targets')
    .option('--wait', 'wait for its end; then exit 0 when every target succeeded, else 1')
    .option('--json', 'print the execution as JSON')
    .option('--no-color', 'no colours')
    .action(async (id: string, o) => {
      const a = api();
      const ex = o.wait ? await waitForEnd(a, id) : await a.getExecution(id);
      if (o.json) printJson(ex);
      else {
        const colour = colourOn(process.stdout, o.color === false);
        print(
          `execution ${ex.id}${ex.name ? ` (${ex.name})` : ''}: ` +
            paint(colour, STATUS_COLOUR[ex.status] ?? 37, ex.status) +
            `, ${ex.summary.succeeded}/${ex.summary.total} succeeded, created ${ex.createdAt}` +
            (ex.rerunOf ? `, rerun of ${ex.rerunOf}` : ''),
        );
        print(targetsTable(ex, colour));
      }
      if (o.wait) process.exitCode = ex.status === 'succeeded' ? EXIT.ok : EXIT.failed;
    });

  program
    .command('cancel <id>')
    .description('cancel a running execution (exit 4 when it has already ended)')
    .action(async (id: string) => {
      const ex = await api().cancel(id);
      print(`cancelling execution ${ex.id} (${ex.status})`);
    });

  program
    .command('ls')
    .description('executions, newest first')
    .option(
      '--status <status...>',
      'only these statuses (queued running succeeded failed partial cancelled)',
    )
    .option('--server <server>', 'only executions with this server (id or name)')
    .option('--limit <n>', 'how many', intOption('--limit', 1, 200), 20)
    .option('--json', 'print the page as JSON')
    .action(async (o) => {
      const a = api();
      const page = await a.listExecutions({
        status: o.status ? list(o.status) : undefined,
        serverId: o.server ? await resolveServer(a, o.server) : undefined,
        limit: o.limit,
      });
      if (o.json) {
        printJson(page);
        return;
      }
      print(
        table(
          ['ID', 'STATUS', 'TARGETS', 'CREATED', 'NAME'],
          page.items.map((e) => [
            e.id,
            e.status,
            `${e.summary.succeeded}/${e.summary.total} ok`,
            e.createdAt,
            e.name ?? '',
          ]),
        ),
      );
    });

  const config = program.command('config').description(`settings in ${configPath()}`);
  config
    .command('set <key> <value>')
    .description('set url or token; a value of - is read from stdin (keeps the token out of ps)')
    .action((key: string, value: string) => {
      if (key !== 'url' && key !== 'token') throw new UsageError('key must be url or token');
      setConfigValue(key, value === '-' ? readStdin() : value);
      print(`${key} saved to ${configPath()}`);
    });
  config
    .command('show')
    .description('the URL and where the token comes from (never the token)')
    .action(() => {
      const file = readConfigFile();
      const url = process.env.CRONIUM_URL || file.url;
      const from = process.env.CRONIUM_TOKEN
        ? 'CRONIUM_TOKEN'
        : file.token
          ? configPath()
          : 'nowhere';
      print(`url: ${url ?? `(default) ${DEFAULT_URL}`}\ntoken: from ${from}`);
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    process.stderr.write(`cronium: ${(e as Error).message}\n`);
    process.exitCode = exitCodeOf(e);
  }
}

if (require.main === module) void main(process.argv);
