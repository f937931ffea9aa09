import { TARGET_ERROR_CODES } from '../executions/error-codes';
import { LOG_STREAMS } from '../executions/records';
import { FINAL_EXECUTION_STATUSES, TARGET_STATUSES } from '../executions/statuses';

/** An AsyncAPI document (JSON); its shape is checked by the tests that read it. */
export type AsyncApiDocument = Record<string, unknown>;

const UUID = { type: 'string', format: 'uuid' };
const ISO = { type: 'string', format: 'date-time' };
const COUNT = { type: 'integer', minimum: 0 };

/** The fields every `update` carries, and the ones of one event type. */
const update = (type: string, description: string, fields: Record<string, unknown> = {}) => ({
  type: 'object',
  description,
  required: [
    'executionId',
    'seq',
    'type',
    'ts',
    ...Object.keys(fields).filter((f) => f !== 'batch'),
  ],
  properties: {
    executionId: UUID,
    seq: {
      type: 'integer',
      minimum: 1,
      description: 'numbers every event of the execution, gap-free from 1',
    },
    type: { type: 'string', const: type },
    ts: { ...ISO, description: 'when the event happened' },
    ...fields,
  },
});

const TARGET_STATUS = { type: 'string', enum: [...TARGET_STATUSES] };

/**
 * The `/v1/status` websocket as an AsyncAPI 3 document, served at /docs/asyncapi.json.
 * docs/websocket.md tells the same in prose (replay, batching, `lagged`, limits).
 */
export function asyncApiDocument(port: number): AsyncApiDocument {
  const statusUpdate = update('status', "a target's new status", {
    serverId: UUID,
    status: TARGET_STATUS,
    batch: { type: 'integer', minimum: 1, description: 'its rolling batch, if the job has them' },
  });
  const logUpdate = update('log', 'one line a target printed, without its newline', {
    serverId: UUID,
    stream: { type: 'string', enum: [...LOG_STREAMS] },
    text: { type: 'string' },
  });
  const resultUpdate = {
    ...update('result', "a target's end: the fields of a target of GET /v1/executions/{id}", {
      serverId: UUID,
      serverName: { type: 'string' },
      status: TARGET_STATUS,
      exitCode: { type: ['integer', 'null'] },
      signal: { type: ['string', 'null'] },
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: {
          code: { type: 'string', enum: [...TARGET_ERROR_CODES] },
          message: { type: 'string' },
        },
      },
      output: { description: 'what the script set with setOutput (any JSON)' },
      durationMs: { type: ['integer', 'null'] },
    }),
    additionalProperties: true,
  };
  resultUpdate.required = ['executionId', 'seq', 'type', 'ts', 'serverId', 'status'];
  const summaryUpdate = update('summary', "the execution's final status and counts", {
    status: { type: 'string', enum: [...FINAL_EXECUTION_STATUSES] },
    total: COUNT,
    succeeded: COUNT,
    failed: COUNT,
    timedOut: COUNT,
    cancelled: COUNT,
    skipped: COUNT,
  });
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'cronium-orchestrator status websocket',
      version: '1',
      description:
        'Live and replayed events of executions over plain RFC 6455 websockets. Every ' +
        'message is one JSON text frame `{"event": …, "data": …}`. A bad or missing token ' +
        'closes the connection at once with code 1008, reason `unauthorized`.',
    },
    defaultContentType: 'application/json',
    servers: {
      local: {
        host: `127.0.0.1:${port}`,
        protocol: 'ws',
        description: 'an instance of this service (HOST, PORT)',
        security: [
          { $ref: '#/components/securitySchemes/bearer' },
          { $ref: '#/components/securitySchemes/queryToken' },
        ],
      },
    },
    channels: {
      status: {
        address: '/v1/status',
        title: 'execution events',
        messages: {
          subscribe: { $ref: '#/components/messages/subscribe' },
          unsubscribe: { $ref: '#/components/messages/unsubscribe' },
          update: { $ref: '#/components/messages/update' },
          error: { $ref: '#/components/messages/error' },
        },
      },
    },
    operations: {
      subscribe: operation(
        'send',
        'subscribe',
        'Follow an execution: stored events after afterSeq, then live ones',
      ),
      unsubscribe: operation(
        'send',
        'unsubscribe',
        'Stop following an execution (or one server of it)',
      ),
      receiveUpdate: operation('receive', 'update', 'One event of a followed execution'),
      receiveError: operation(
        'receive',
        'error',
        'A message of the client was refused; the socket stays open',
      ),
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'a service token (CRONIUM_SERVICE_TOKENS) in the Authorization header',
        },
        queryToken: {
          type: 'httpApiKey',
          name: 'token',
          in: 'query',
          description: 'the same token as ?token=, for clients that cannot set headers',
        },
      },
      messages: {
        subscribe: {
          name: 'subscribe',
          summary: 'Client → server: start (or restart) a subscription',
          payload: envelope('subscribe', {
            type: 'object',
            required: ['executionId'],
            properties: {
              executionId: UUID,
              serverId: { ...UUID, description: "only this server's status, log and result" },
              afterSeq: { type: 'integer', minimum: 0, default: 0 },
            },
          }),
          examples: [
            {
              payload: {
                event: 'subscribe',
                data: { executionId: '9b2e7c1a-55f0-4a57-9d0e-2f1f3c1b8a10', afterSeq: 0 },
              },
            },
          ],
        },
        unsubscribe: {
          name: 'unsubscribe',
          summary: 'Client → server: stop subscriptions to an execution',
          payload: envelope('unsubscribe', {
            type: 'object',
            required: ['executionId'],
            properties: { executionId: UUID, serverId: UUID },
          }),
        },
        update: {
          name: 'update',
          summary: 'Server → client: one event of an execution, in seq order',
          payload: envelope('update', {
            oneOf: [
              statusUpdate,
              logUpdate,
              resultUpdate,
              summaryUpdate,
              update('end', 'the last event of the execution'),
              update(
                'lagged',
                'the subscriber fell behind and was stopped; resume with afterSeq = seq',
              ),
            ],
          }),
          examples: [
            {
              payload: {
                event: 'update',
                data: {
                  executionId: '9b2e7c1a-55f0-4a57-9d0e-2f1f3c1b8a10',
                  seq: 5,
                  type: 'log',
                  ts: '2025-01-31T10:00:00.123Z',
                  serverId: '4c1a9f0e-7b2d-4e8a-9c3f-1d2e3f4a5b6c',
                  stream: 'stdout',
                  text: 'hello',
                },
              },
            },
          ],
        },
        error: {
          name: 'error',
          summary:
            'Server → client: a refused message (bad JSON, event or data, unknown execution)',
          payload: envelope('error', {
            type: 'object',
            required: ['message'],
            properties: { message: { type: 'string' } },
          }),
        },
      },
    },
  };
}

/** An operation on the one channel, with its one message. */
function operation(action: 'send' | 'receive', message: string, summary: string) {
  return {
    action,
    channel: { $ref: '#/channels/status' },
    summary,
    messages: [{ $ref: `#/channels/status/messages/${message}` }],
  };
}

function envelope(event: string, data: Record<string, unknown>) {
  return {
    type: 'object',
    required: ['event', 'data'],
    properties: { event: { type: 'string', const: event }, data },
  };
}
