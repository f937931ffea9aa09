import { BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';
import { Transform } from 'class-transformer';

function flatten(errors: ValidationError[], prefix = ''): string[] {
  const out: string[] = [];
  for (const e of errors) {
    const key = prefix ? `${prefix}.${e.property}` : e.property;
    for (const msg of Object.values(e.constraints ?? {})) {
      out.push(
        msg.startsWith(e.property) ? `${key}${msg.slice(e.property.length)}` : `${key}: ${msg}`,
      );
    }
    if (e.children?.length) out.push(...flatten(e.children, key));
  }
  return out;
}

/** Unknown fields are refused; messages name the offending field by its full path. */
export function makeValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    exceptionFactory: (errors) => new BadRequestException(flatten(errors).join('; ')),
  });
}

/**
 * A query parameter that must be a plain decimal integer (no `0x10`, `1e3`, `+1`, empty
 * or 16+ digits): anything else becomes NaN, which @IsInt then refuses with its message.
 */
export const QueryInt = () =>
  Transform(({ value }) =>
    typeof value === 'string' && /^(0|[1-9][0-9]{0,14})$/.test(value) ? Number(value) : NaN,
  );
