import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'cronium:public';
/** Marks a route as open to anyone (health probes, Prometheus). */
export const Public = () => SetMetadata(IS_PUBLIC, true);
