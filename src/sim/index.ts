/** The simulated Dify plugin-daemon fleet: one import for tests, the demo and the CLI. */
export { systemScheduler, type Scheduler, type TimerHandle } from '../core/clock.js';
export { DAEMON_LAUNCH_CONCURRENCY, DAEMON_MAX_RETRY_COUNT, DAEMON_SCAN_INTERVAL_MS, daemonRetryWaitMs } from '../core/daemon.js';
export {
  DEFAULT_PLUGIN_VERSION,
  uniqueIdentifierFor,
  type PluginPhase,
  type PluginSpec,
  type ReadinessDetail,
  type SimPluginState,
} from './lifecycle.js';
export {
  SimDaemon,
  daemonErrorEnvelope,
  type SimDaemonOptions,
  type SimDaemonSnapshot,
  type SimEvent,
  type SimEventKind,
  type SimMode,
  type SimStats,
} from './daemon.js';
export { SimFleet, type FleetChangeListener, type PluginOverride, type RuntimeInstall, type SimFleetOptions } from './fleet.js';
export { FleetDiscovery, type FleetDiscoveryOptions } from './discovery.js';
export {
  Kubelet,
  crashPod,
  healthCheckReady,
  rollingUpdate,
  type CrashOptions,
  type KubeletOptions,
  type Readiness,
  type Rollout,
  type RolloutEvent,
  type RolloutEventKind,
  type RollingUpdateOptions,
} from './rollout.js';
export { DEMO_PLUGINS, DEMO_RUNTIME_INSTALL, demoScenario, type DemoScenario } from './scenario.js';
