import { ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { NamePrefix, QueryList } from '../../common/query-list';
import { QueryInt } from '../../common/validation';
import { TAGS_MAX } from '../server-rules';
import { IsTagList } from './server-validators';

/** The most servers one page of `GET /v1/servers?limit=` holds. */
export const MAX_SERVER_PAGE = 500;

/** `GET /v1/servers`: every filter given must hold (AND); ordered by name. */
export class ListServersQuery {
  @ApiPropertyOptional({
    type: [String],
    description: 'Only servers carrying every one of these tags (exact): tag=a&tag=b or tag=a,b',
  })
  @IsOptional()
  @QueryList()
  @ArrayMaxSize(TAGS_MAX)
  @IsTagList()
  tag?: string[];

  @NamePrefix('servers')
  name?: string;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: MAX_SERVER_PAGE,
    description: 'Page size; without it every matching server comes back in one page',
  })
  @IsOptional()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(MAX_SERVER_PAGE)
  limit?: number;

  /** Checked by decodeServerCursor, which says what is wrong with it. */
  @ApiPropertyOptional({ description: 'X-Next-Cursor of the previous page (opaque)' })
  @IsOptional()
  @IsString()
  cursor?: string;
}
