import { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type {
  OperationObject,
  PathItemObject,
  ResponseObject,
} from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import { AppConfig } from '../config/app-config';
import { ErrorBody, errorExample } from './errors';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

/**
 * The errors every route can answer with, whatever its handler does; a route's own
 * decorators describe the ones that depend on it (and win when both name a status).
 */
const COMMON_ERRORS: {
  status: number;
  applies: (path: string, op: OperationObject) => boolean;
  description: string;
  message: string;
}[] = [
  {
    // StrictQueryInterceptor, the validation pipe and the body checks in app-setup.ts
    status: 400,
    applies: (path) => path.startsWith('/v1/'),
    description: 'the request is invalid: an unknown or malformed query parameter or body field',
    message: 'unknown query parameter "x": POST /v1/executions/:id/cancel takes none',
  },
  {
    // the global ServiceTokenGuard, on every route not marked @Public()
    status: 401,
    applies: (_path, op) => !!op.security?.length,
    description: 'the bearer token is missing or not a service token',
    message: 'missing or invalid bearer token',
  },
  {
    // the JSON body parser's limit, before any handler
    status: 413,
    applies: (_path, op) => !!op.requestBody,
    description: 'the request body is larger than the service accepts',
    message: 'request body is too large',
  },
  {
    // node's HTTP parser, answered by app-setup.ts before any route
    status: 431,
    applies: () => true,
    description: 'the request line or headers are too large',
    message: 'request line or headers are too large',
  },
  {
    status: 500,
    applies: (path) => path.startsWith('/v1/'),
    description: 'an unexpected fault (logged); the message says no more',
    message: 'internal error',
  },
  {
    // HttpExceptionFilter, when the database cannot be reached
    status: 503,
    applies: (path) => path.startsWith('/v1/'),
    description: 'the database is unavailable; try again shortly',
    message: 'the database is unavailable; try again shortly',
  },
];

/** The OpenAPI document of the HTTP API, as served at /docs/json. */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = app.get(AppConfig);
  const doc = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('cronium-orchestrator')
      .setDescription(
        'Runs bash, python and node scripts on remote servers over SSH, agentless. ' +
          'Authenticate with a service bearer token (CRONIUM_SERVICE_TOKENS). Live events ' +
          'of an execution come over the `/v1/status` websocket, described by the AsyncAPI ' +
          'document at `/docs/asyncapi.json`. Every error is an `ErrorBody`.',
      )
      .setVersion('1')
      .addServer('http://{host}:{port}', 'an instance of this service', {
        host: { default: '127.0.0.1', description: 'where it listens (HOST)' },
        port: { default: String(config.port), description: 'its port (PORT)' },
      })
      .addSecurity('bearer', {
        type: 'http',
        scheme: 'bearer',
        description: 'a service token from CRONIUM_SERVICE_TOKENS (opaque, not a JWT)',
      })
      .addTag('servers', 'the SSH inventory: hosts, credentials, pinned host keys')
      .addTag('jobs', 'starting executions')
      .addTag('executions', 'following, cancelling and re-running executions; their logs')
      .addTag('variables', 'runtime variables scripts read and write, per userId')
      .addTag('health', 'probes for orchestrators and load balancers (no token)')
      .build(),
    {
      extraModels: [ErrorBody],
      operationIdFactory: (controller, method) =>
        controller.replace(/Controller$/, '').replace(/^./, (c) => c.toLowerCase()) +
        method.replace(/^./, (c) => c.toUpperCase()),
    },
  );
  doc.info.contact = { name: 'cronium-orchestrator maintainers' };
  doc.info.license = { name: 'UNLICENSED (proprietary; see package.json)' };
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = (item as PathItemObject)[method];
      if (!op) continue;
      // Routes without @ApiBearerAuth are the @Public() ones: say so, not "unspecified".
      op.security ??= [];
      for (const e of COMMON_ERRORS) {
        if (op.responses[e.status] || !e.applies(path, op)) continue;
        op.responses[e.status] = errorResponse(e.status, e.description, e.message);
      }
    }
  }
  return doc;
}

function errorResponse(status: number, description: string, message: string): ResponseObject {
  return {
    description,
    content: {
      'application/json': {
        schema: { $ref: '#/components/schemas/ErrorBody' },
        example: errorExample(status, message),
      },
    },
  };
}
