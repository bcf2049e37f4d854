/**
 * The demo fleet, shared by `npm run demo`, the sim CLI and tests so they all
 * tell the same story: three pods cold-starting a dozen real-world plugins two
 * at a time, one plugin that never starts, one that starts after a few failed
 * attempts, one whose launch is much faster on one pod, and one installed while
 * the fleet runs.
 */
import type { PluginId } from '../core/plugin-id.js';
import type { RuntimeInstall, SimFleetOptions } from './fleet.js';
import type { PluginSpec } from './lifecycle.js';

/** Daemon-time launch durations: Python environment set-up takes tens of seconds to minutes. */
export const DEMO_PLUGINS: readonly PluginSpec[] = [
  { id: 'langgenius/openai', version: '0.2.1', launchMs: 80_000 },
  { id: 'langgenius/anthropic', version: '0.1.8', launchMs: 95_000 },
  { id: 'langgenius/tavily', version: '0.0.5', launchMs: 45_000 },
  { id: 'langgenius/ollama', version: '0.0.6', launchMs: 60_000 },
  // Never starts: gives up after 15 failed launches (waits 0,0,30×5,60×7 s between them).
  { id: 'langgenius/comfyui', version: '0.0.3', launchMs: 8_000, failures: 'always' },
  { id: 'langgenius/tongyi', version: '0.0.41', launchMs: 160_000 },
  { id: 'langgenius/jina', version: '0.0.8', launchMs: 120_000 },
  // Fails 4 times (two 30 s waits after the third and fourth failure), then runs.
  { id: 'langgenius/firecrawl', version: '0.0.9', launchMs: 30_000, failures: 4 },
  { id: 'langgenius/deepseek', version: '0.0.6', launchMs: 90_000 },
  { id: 'langgenius/siliconflow', version: '0.0.20', launchMs: 140_000 },
  { id: 'langgenius/gemini', version: '0.2.3', launchMs: 180_000 },
  { id: 'langgenius/azure_openai', version: '0.0.21', launchMs: 220_000 },
];

/** Installed through pod-1 seven minutes (daemon time) into the run; the others follow after their scan. */
export const DEMO_RUNTIME_INSTALL: RuntimeInstall = {
  atMs: 420_000,
  spec: { id: 'langgenius/wikipedia', version: '0.0.4', launchMs: 35_000 },
  firstPodIndex: 0,
};

export interface DemoScenario {
  /** Ready to pass to `new SimFleet(...)` (add `scheduler`, `readyCheck`, `basePort` as needed). */
  readonly fleet: SimFleetOptions;
  readonly timeScale: number;
  readonly alwaysFails: PluginId;
  readonly failsThenRuns: PluginId;
  /** Ready on pod-3 long before the other pods: requests for it must go to pod-3 meanwhile. */
  readonly fastOnOnePod: { readonly pluginId: PluginId; readonly podIndex: number };
  readonly runtimeInstalled: PluginId;
  /**
   * Daemon ms after start by which every pod has settled (all plugins running or
   * given up, the run-time install included); multiply by `timeScale` for real time.
   */
  readonly settledByMs: number;
}

/**
 * At the default scale of 0.05 the cold start plays out in about a minute of
 * real time (≈ 20 min of daemon time); 0.01 makes it ~12 s.
 */
export function demoScenario(timeScale = 0.05): DemoScenario {
  return {
    timeScale,
    fleet: {
      pods: 3,
      plugins: DEMO_PLUGINS,
      timeScale,
      podPlugins: [
        // Per-pod differences (disk speed, warm package caches) so pods diverge.
        { 'langgenius/anthropic': { launchMs: 150_000 } },
        { 'langgenius/openai': { launchMs: 130_000 }, 'langgenius/tongyi': { launchMs: 230_000 }, 'langgenius/gemini': { launchMs: 240_000 } },
        { 'langgenius/jina': { launchMs: 15_000 }, 'langgenius/tavily': { launchMs: 70_000 } },
      ],
      runtimeInstalls: [DEMO_RUNTIME_INSTALL],
    },
    alwaysFails: 'langgenius/comfyui',
    failsThenRuns: 'langgenius/firecrawl',
    fastOnOnePod: { pluginId: 'langgenius/jina', podIndex: 2 },
    runtimeInstalled: DEMO_RUNTIME_INSTALL.spec.id,
    settledByMs: 1_500_000,
  };
}
