import { BadRequestException } from '@nestjs/common';
import { CreateJobDto } from '../jobs/dto/create-job.dto';
import { PutVariableDto } from '../runtime-helpers/variables.controller';
import { makeValidationPipe } from './validation';

describe('validation pipe: free-form JSON and keys named like Object.prototype members', () => {
  const pipe = makeValidationPipe();
  const job = (body: string) =>
    pipe.transform(
      JSON.parse(`{"script":{"type":"bash","content":"x"},"targets":{"tags":["a"]}${body}}`),
      { type: 'body', metatype: CreateJobDto },
    );
  const refusal = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(BadRequestException);
      return (e as BadRequestException).message;
    }
    throw new Error('expected a 400');
  };

  it('keeps input, env and a variable value exactly as parsed (no key dropped, no throw)', async () => {
    const input = '{"__proto__":{"a":1},"constructor":{"b":[{"toString":2,"valueOf":null}]}}';
    const dto = (await job(`,"input":${input},"env":{"__proto__":"p","toString":"t"}`)) as any;
    expect(JSON.stringify(dto.input)).toBe(input);
    expect(JSON.stringify(dto.env)).toBe('{"__proto__":"p","toString":"t"}');
    const value = '{"hasOwnProperty":1,"__proto__":[]}';
    const v = (await pipe.transform(JSON.parse(`{"value":${value}}`), {
      type: 'body',
      metatype: PutVariableDto,
    })) as any;
    expect(JSON.stringify(v.value)).toBe(value);
  });

  it('refuses such keys where a DTO has fixed fields, naming them', async () => {
    expect(await refusal(job(',"constructor":1'))).toBe('property constructor should not exist');
    expect(
      await refusal(
        pipe.transform(JSON.parse('{"script":{"type":"bash","content":"x","__proto__":{}}}'), {
          type: 'body',
          metatype: CreateJobDto,
        }),
      ),
    ).toBe('property script.__proto__ should not exist');
  });

  it('takes null for an optional job field as absent, and checks env as given', async () => {
    const nulls = ['name', 'jobId', 'eventId', 'userId', 'env', 'input', 'timeoutSeconds']
      .concat(['helperMode', 'concurrency', 'maxErrors', 'failFast'])
      .map((f) => `,"${f}":null`)
      .join('');
    await expect(job(nulls)).resolves.toBeInstanceOf(CreateJobDto);
    expect(await refusal(job(',"env":[]'))).toMatch(/^env: must be an object/);
    expect(await refusal(job(',"env":{"A":1}'))).toBe('env: A must be a string');
  });
});
