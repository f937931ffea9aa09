import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { ListExecutionsQuery } from '../jobs/dto/list-query.dto';
import { prefixRange } from './query-list';

describe('prefixRange', () => {
  const inRange = (prefix: string, s: string) => {
    const { from, to } = prefixRange(prefix);
    // JS compares UTF-16 code units; these strings have no astral characters but the ones noted
    return s >= from && (to === null || s < to);
  };

  it('holds exactly the strings that start with the prefix', () => {
    expect(prefixRange('ab')).toEqual({ from: 'ab', to: 'ac' });
    expect(prefixRange('50%')).toEqual({ from: '50%', to: '50&' });
    for (const s of ['ab', 'abc', 'ab%', 'ab\u{10ffff}']) expect(inRange('ab', s)).toBe(true);
    for (const s of ['a', 'ac', 'aB', 'Ab', 'b', '']) expect(inRange('ab', s)).toBe(false);
  });

  it('steps over the surrogate block and past U+10FFFF', () => {
    expect(prefixRange('a\ud7ff')).toEqual({ from: 'a\ud7ff', to: 'a\ue000' });
    expect(prefixRange('a\u{10ffff}')).toEqual({ from: 'a\u{10ffff}', to: 'b' });
    expect(prefixRange('\u{10ffff}')).toEqual({ from: '\u{10ffff}', to: null });
  });
});

describe('QueryList (GET /v1/executions?status=)', () => {
  const check = (query: Record<string, unknown>) => {
    const q = plainToInstance(ListExecutionsQuery, query);
    return { q, errors: validateSync(q).flatMap((e) => Object.values(e.constraints ?? {})) };
  };

  it('takes repeated and comma-separated values alike', () => {
    expect(check({ status: ['failed', 'partial'] }).q.status).toEqual(['failed', 'partial']);
    expect(check({ status: 'failed,partial' }).q.status).toEqual(['failed', 'partial']);
    expect(check({ status: ['failed,partial', 'queued'] }).q.status).toEqual([
      'failed',
      'partial',
      'queued',
    ]);
    expect(check({ status: 'failed' }).errors).toEqual([]);
  });

  it('refuses an empty or unknown item, naming the field', () => {
    for (const status of ['', 'failed,', 'nope', ['failed', '']]) {
      expect(check({ status }).errors.join()).toMatch(/^status must be one or more of/);
    }
  });
});
