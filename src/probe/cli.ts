/**
 * `plugin-gate probe …`: the sidecar command. Same exit codes as the gate:
 * 0 ok, 1 runtime failure (e.g. the port in use), 2 bad configuration.
 */
import { helpFor } from '../config/config.js';
import { formatHostPort } from '../core/address.js';
import { GateError } from '../core/errors.js';
import { boolKeys, parseArgs } from '../cli/args.js';
import { loadProbeConfig, type ProbeConfig } from './config.js';
import { PROBE_OPTIONS } from './options.js';
import { startProbe } from './probe.js';
import { onStopSignals, reportSignalsTo } from '../cli/signals.js';

const INTRO = [
  'plugin-gate probe: pod readiness for one Dify plugin daemon, from its plugins (a sidecar in the daemon pod)',
  '',
  'usage: plugin-gate probe --target 127.0.0.1:5002 [--config FILE] [--OPTION VALUE ...] [--check-config] [--help]',
  '',
  'Serves GET /readyz (200 or 503), /status (JSON, same status code), /metrics and /healthz on --listen.',
  'Ready, by default, once every plugin the daemon reports is running or has given up and the daemon is past',
  'start-up; --require and --min-running replace that rule (both given: both must hold). With --latch (default)',
  'the pod stays ready until the daemon process restarts; a daemon that does not answer is never ready.',
];

function summary(c: ProbeConfig): string {
  const rule = [
    c.require.length > 0 ? `require ${c.require.join(',')}` : undefined,
    c.minRunning !== undefined ? `min-running ${c.minRunning}` : undefined,
  ].filter((x) => x !== undefined);
  return [
    'config ok',
    `  probe: target ${c.target}, listen ${formatHostPort(c.listen)}`,
    `  ready when: ${rule.length > 0 ? rule.join(' and ') : 'every reported plugin is running or gave up, past start-up'}; failed ${c.failed}; latch ${c.latch ? 'on' : 'off'}`,
    `  sources ${c.sources.join(',')} every ${c.pollIntervalMs}ms (timeout ${c.pollTimeoutMs}ms)`,
  ].join('\n');
}

export async function probeMain(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, boolKeys(PROBE_OPTIONS));
  if (args.help) {
    process.stdout.write(helpFor(PROBE_OPTIONS, INTRO) + '\n');
    return 0;
  }
  let config: ProbeConfig;
  try {
    if (args.problems.length > 0) throw GateError.invalidConfig(args.problems);
    config = loadProbeConfig({ flags: args.flags, env: process.env, file: args.configFile ?? process.env['PLUGIN_GATE_CONFIG'] });
  } catch (err) {
    if (err instanceof GateError && err.code === 'config_invalid') {
      for (const p of err.problems) process.stderr.write(`plugin-gate probe: config: ${p}\n`);
      return 2;
    }
    throw err;
  }
  if (args.checkConfig) {
    process.stdout.write(summary(config) + '\n');
    return 0;
  }
  const probe = await startProbe(config);
  process.on('unhandledRejection', (reason) => probe.logger.error({ err: String(reason) }, 'unhandled rejection'));
  reportSignalsTo((signal, what) => probe.logger.warn({ signal }, `${signal} ${what}`));
  await new Promise<void>((resolve) => {
    onStopSignals(
      // The pod is going away and the kubelet stops probing it: close at once, no drain.
      (signal) => {
        probe.logger.info({ signal }, 'shutting down');
        void probe.close().then(resolve);
      },
      () => process.exit(1),
    );
  });
  // As the gate: exit here, not when the event loop empties (a blocked stdout must not keep us alive).
  process.exit(0);
}
