#!/usr/bin/env node
/**
 * `plugin-gate`: parse flags, environment and file; validate; run until SIGTERM.
 * Exit codes: 0 ok, 1 runtime failure (e.g. a port in use), 2 bad configuration.
 */
// First: the signal handlers must be in place before anything else loads (SIGUSR1 would open the inspector).
import { onStopSignals, reportSignalsTo } from './signals.js';
import { readFileSync } from 'node:fs';
import { helpText, loadConfig, type Config } from '../config/config.js';
import { formatHostPort } from '../core/address.js';
import { GateError } from '../core/errors.js';
import { startGate } from '../app/app.js';
import { packageRoot } from '../core/package-root.js';
import { parseArgs } from './args.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function summary(c: Config): string {
  const where =
    c.discovery === 'dns'
      ? `dns ${c.dnsName?.host}:${c.dnsName?.port}`
      : c.discovery === 'kubernetes'
        ? `kubernetes EndpointSlices of Service ${c.kubernetesNamespace ?? '(the credentials\' namespace)'}/${c.kubernetesService}, port ${c.kubernetesPort ?? '(the only one)'}, ${c.kubeconfig === undefined ? 'in-cluster credentials' : `kubeconfig ${c.kubeconfig}`}`
        : `static ${c.targets.join(',')}`;
  return [
    `config ok`,
    `  discovery: ${where}`,
    `  grpc ${formatHostPort(c.grpcListen)}, http ${c.httpListen === undefined ? 'off' : formatHostPort(c.httpListen)}, admin ${formatHostPort(c.adminListen)}`,
    `  sources ${c.sources.join(',')} every ${c.pollIntervalMs}ms (timeout ${c.pollTimeoutMs}ms)`,
    `  tls ${c.tlsCert === undefined ? 'off' : c.tlsClientCa === undefined ? 'on' : 'mutual'} (gRPC and HTTP faces; admin is plain HTTP)`,
  ].join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.help) {
    process.stdout.write(helpText() + '\n');
    return 0;
  }
  if (args.version) {
    process.stdout.write(`plugin-gate ${version()}\n`);
    return 0;
  }
  let config: Config;
  try {
    if (args.problems.length > 0) throw GateError.invalidConfig(args.problems);
    config = loadConfig({ flags: args.flags, env: process.env, file: args.configFile ?? process.env['PLUGIN_GATE_CONFIG'] });
  } catch (err) {
    if (err instanceof GateError && err.code === 'config_invalid') {
      for (const p of err.problems) process.stderr.write(`plugin-gate: config: ${p}\n`);
      return 2;
    }
    throw err;
  }
  if (args.checkConfig) {
    process.stdout.write(summary(config) + '\n');
    return 0;
  }

  const gate = await startGate(config);
  process.on('unhandledRejection', (reason) => gate.logger.error({ err: String(reason) }, 'unhandled rejection'));
  reportSignalsTo((signal, what) => gate.logger.warn({ signal }, `${signal} ${what}`));
  await new Promise<void>((resolve) => {
    onStopSignals(
      (signal) => {
        gate.logger.info({ signal }, 'shutting down');
        void gate.shutdown().then(resolve);
      },
      (signal) => {
        gate.logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      },
    );
  });
  // Exit here rather than when the event loop empties: log lines a blocked
  // stdout never took would otherwise keep the process alive (shutdown already
  // gave them their bounded flush).
  process.exit(0);
}

// `plugin-gate probe …` is the readiness sidecar: the same binary and image, its own command.
const argv = process.argv.slice(2);
const command = argv[0] === 'probe' ? import('../probe/cli.js').then((m) => m.probeMain(argv.slice(1))) : main(argv);
command.then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`plugin-gate: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
