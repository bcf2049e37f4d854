/** The discovery the configuration asks for. */
import type { Config } from '../config/config.js';
import type { Scheduler } from '../core/clock.js';
import type { GateError } from '../core/errors.js';
import { dnsDiscoveryFor } from './dns.js';
import { StaticDiscovery } from './static.js';
import type { Discovery } from './types.js';

/** `discovery=static` → the targets list; `discovery=dns` → dns-name re-resolved every dns-interval. */
export function discoveryFor(
  config: Pick<Config, 'discovery' | 'targets' | 'dnsName' | 'dnsServer' | 'dnsIntervalMs' | 'dnsTimeoutMs'>,
  onError?: (error: GateError) => void,
  scheduler?: Scheduler,
): Discovery {
  return config.discovery === 'dns' ? dnsDiscoveryFor(config, onError, scheduler) : new StaticDiscovery(config.targets);
}
