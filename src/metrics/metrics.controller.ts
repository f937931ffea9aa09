import { ApiExcludeController } from '@nestjs/swagger';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import { Public } from '../auth/public.decorator';

/**
 * The package's Prometheus scrape endpoint (GET /metrics, prom-client's default registry
 * in its text format), outside the /v1 prefix and without auth. PrometheusModule.register
 * sets its path.
 */
@ApiExcludeController()
@Public()
export class MetricsController extends PrometheusController {}
