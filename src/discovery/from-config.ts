/** The discovery the configuration asks for. */
import type { Config } from '../config/config.js';
import { kubeCredentials } from '../config/kubernetes-files.js';
import type { Scheduler } from '../core/clock.js';
import { GateError } from '../core/errors.js';
import { dnsDiscoveryFor } from './dns.js';
import { KubernetesDiscovery, portSpecOf } from './kubernetes.js';
import { StaticDiscovery } from './static.js';
import type { Discovery } from './types.js';

export type DiscoveryConfig = Pick<
  Config,
  | 'discovery'
  | 'targets'
  | 'dnsName'
  | 'dnsServer'
  | 'dnsIntervalMs'
  | 'dnsTimeoutMs'
  | 'kubernetesService'
  | 'kubernetesNamespace'
  | 'kubernetesPort'
  | 'kubeconfig'
  | 'kubernetesTimeoutMs'
  | 'kubernetesWatchTimeoutMs'
>;

export interface DiscoveryExtras {
  readonly onError?: (error: GateError) => void;
  /** Watch life (relists, reconnects) for the log. */
  readonly log?: (fields: Record<string, unknown>, msg: string) => void;
  /** Intervals and backoffs; default the system's. */
  readonly scheduler?: Scheduler;
  /** Where KUBERNETES_SERVICE_HOST/PORT are read; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * `discovery=static` → the targets list; `discovery=dns` → dns-name re-resolved every dns-interval;
 * `discovery=kubernetes` → the EndpointSlices of kubernetes-service, watched.
 */
export function discoveryFor(config: DiscoveryConfig, extras: DiscoveryExtras = {}): Discovery {
  if (config.discovery === 'dns') return dnsDiscoveryFor(config, extras.onError, extras.scheduler);
  if (config.discovery === 'kubernetes') return kubernetesDiscoveryFor(config, extras);
  return new StaticDiscovery(config.targets);
}

function kubernetesDiscoveryFor(config: DiscoveryConfig, extras: DiscoveryExtras): KubernetesDiscovery {
  const service = config.kubernetesService;
  if (service === undefined) throw new GateError('config_invalid', 'kubernetes-service is required with discovery=kubernetes');
  const credentials = kubeCredentials({ kubeconfig: config.kubeconfig, env: extras.env ?? process.env });
  const namespace = config.kubernetesNamespace ?? credentials.namespace;
  if (namespace === undefined) throw new GateError('config_invalid', 'kubernetes-namespace is required: the credentials name no namespace');
  return new KubernetesDiscovery({
    credentials,
    namespace,
    service,
    port: portSpecOf(config.kubernetesPort),
    timeoutMs: config.kubernetesTimeoutMs,
    watchTimeoutMs: config.kubernetesWatchTimeoutMs,
    scheduler: extras.scheduler,
    onError: extras.onError,
    log: extras.log,
  });
}
