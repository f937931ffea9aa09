import { registerDecorator, ValidationArguments, ValidationOptions } from 'class-validator';
import { HostKeyFormatError, parseHostKeyInput } from '../host-key';
import {
  checkBaseDir,
  checkBecomePassword,
  checkHost,
  checkName,
  checkPrivateKey,
  checkServerId,
  checkTag,
  checkUsername,
} from '../server-rules';

export { IsOptionalNotNull } from '../../common/validation';

/** Builds a property decorator from a rule that returns an error message or null. */
function rule(
  name: string,
  check: (value: unknown, args: ValidationArguments) => string | null,
  options?: ValidationOptions,
): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    const messages = new WeakMap<object, string>();
    registerDecorator({
      name,
      target: target.constructor,
      propertyName: propertyName as string,
      options: {
        ...options,
        message: (args: ValidationArguments) =>
          messages.get(args.object) ?? `${args.property} is invalid`,
      },
      validator: {
        validate(value: unknown, args: ValidationArguments) {
          const msg = check(value, args);
          if (msg) messages.set(args.object, msg);
          return msg === null;
        },
      },
    });
  };
}

export const IsServerName = () => rule('isServerName', (v, a) => checkName(v, a.property));
export const IsServerHost = () => rule('isServerHost', (v, a) => checkHost(v, a.property));
export const IsSshUsername = () => rule('isSshUsername', (v, a) => checkUsername(v, a.property));
/** Non-strings are left to `@IsString()`, so one mistake gives one message. */
export const IsBaseDir = () =>
  rule('isBaseDir', (v, a) => (typeof v === 'string' ? checkBaseDir(v, a.property) : null));

/** Another server's id (UUID); non-strings are left to `@IsString()`. */
export const IsServerId = () =>
  rule('isServerId', (v, a) => (typeof v === 'string' ? checkServerId(v, a.property) : null));

/** null is left to the caller (no password on create; remove it on update). */
export const IsBecomePassword = () =>
  rule('isBecomePassword', (v, a) => (v === null ? null : checkBecomePassword(v, a.property)));

/** Every tag matches the tag pattern (array shape and size are checked separately). */
export const IsTagList = () =>
  rule('isTagList', (v, a) => {
    if (!Array.isArray(v)) return null;
    for (const t of v) {
      const msg = checkTag(t, a.property);
      if (msg) return msg;
    }
    return null;
  });

/** A host key line or SHA256 fingerprint that `parseHostKeyInput` accepts. */
export const IsHostKeyInput = () =>
  rule('isHostKeyInput', (v, a) => {
    if (typeof v !== 'string') return null; // left to @IsString()
    try {
      parseHostKeyInput(v as string);
      return null;
    } catch (e) {
      if (e instanceof HostKeyFormatError) return `${a.property}: ${e.message}`;
      return `${a.property}: cannot be parsed`;
    }
  });

/** A private key ssh2 can load, decrypted with the sibling `passphrase` when given. */
export const IsParsablePrivateKey = () =>
  rule('isParsablePrivateKey', (v, a) => {
    if (typeof v !== 'string') return null; // left to @IsString()
    const res = checkPrivateKey(v, (a.object as { passphrase?: unknown }).passphrase, a.property);
    return res.ok ? null : res.message;
  });
