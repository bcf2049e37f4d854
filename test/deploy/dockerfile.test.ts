/**
 * The Dockerfile's structure, checked without a Docker engine: two stages, every build-context
 * COPY source present and not excluded by .dockerignore, a pruned runtime stage running as a
 * numeric non-root user, the three ports, a curl-free HEALTHCHECK on the admin /healthz, and an
 * ENTRYPOINT that is the package's `plugin-gate` bin. scripts/docker-steps.sh performs the build
 * itself (npm ci, build, prune, start, /healthz); this test keeps the file honest in every run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Instruction {
  readonly op: string;
  readonly rest: string;
}

function instructions(text: string): Instruction[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const sp = l.indexOf(' ');
      return { op: l.slice(0, sp).toUpperCase(), rest: l.slice(sp + 1).trim() };
    });
}

const dockerfile = instructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const stages: Instruction[][] = [];
for (const ins of dockerfile) {
  if (ins.op === 'FROM') stages.push([ins]);
  else if (stages.length > 0) stages.at(-1)!.push(ins);
}
const [build, runtime] = stages;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };

describe('Dockerfile', () => {
  it('has a build stage and a runtime stage on the same Node LTS base', () => {
    assert.equal(stages.length, 2);
    assert.match(build![0]!.rest, /^\$\{NODE_IMAGE\} AS build$/);
    assert.match(runtime![0]!.rest, /^\$\{NODE_IMAGE\} AS runtime$/);
    const arg = dockerfile.find((i) => i.op === 'ARG' && i.rest.startsWith('NODE_IMAGE='))!;
    const m = /^NODE_IMAGE=node:(\d+)-[a-z]+-slim$/.exec(arg.rest);
    assert.ok(m, `slim official Node image: ${arg.rest}`);
    assert.equal(Number(m[1]) % 2, 0, 'an even (LTS) Node major');
    assert.ok(Number(m[1]) >= 22, 'a Node line still supported');
  });

  it('builds with npm ci, the package image build script, and prunes dev dependencies', () => {
    const runs = build!.filter((i) => i.op === 'RUN').map((i) => i.rest);
    const at = (re: RegExp): number => runs.findIndex((r) => re.test(r));
    assert.ok(at(/^npm ci\b/) >= 0 && at(/^npm ci\b/) < at(/^npm run build:image$/), 'npm ci before the build');
    assert.ok(at(/^npm run build:image$/) < at(/^npm prune --omit=dev\b/), 'prune after the build');
    assert.equal(pkg.scripts['build:image'], 'tsc -p tsconfig.build.json');
    assert.equal(runtime!.filter((i) => i.op === 'RUN').length, 0, 'nothing runs in the runtime stage');
  });

  it('compiles only what the image runs: src without the unit specs, the simulated fleet and the demo', () => {
    // tsconfig files allow comments; these hold none inside strings.
    const cfg = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8').replace(/^\s*\/\/.*$/gm, '')) as { include: string[]; exclude: string[] };
    assert.deepEqual(cfg.include, ['src/**/*.ts']);
    for (const x of ['src/**/*.spec.ts', 'src/sim/**', 'src/demo/**']) assert.ok(cfg.exclude.includes(x), `excludes ${x}`);
    const copied = build!.filter((i) => i.op === 'COPY').flatMap((i) => i.rest.split(/\s+/).slice(0, -1));
    assert.ok(!copied.includes('test'), 'test/ is not part of the image build');
    assert.ok(copied.includes('tsconfig.build.json'));
  });

  it('copies only files that exist and that .dockerignore lets through', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const ins of build!.filter((i) => i.op === 'COPY')) {
      const parts = ins.rest.split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        assert.ok(existsSync(join(ROOT, src)), `${src} exists`);
        assert.ok(!ignored.includes(src), `${src} is not in .dockerignore`);
      }
    }
    const fromBuild = runtime!.filter((i) => i.op === 'COPY').map((i) => i.rest);
    for (const path of ['/app/package.json', '/app/node_modules', '/app/dist/src']) {
      assert.ok(fromBuild.some((r) => r.startsWith(`--from=build ${path} `)), `runtime copies ${path}`);
    }
    assert.ok(!fromBuild.some((r) => /\/app\/(src|test)\b/.test(r)), 'no sources or tests in the runtime stage');
  });

  it('runs as a numeric non-root user, exposes the three ports, checks /healthz with node itself', () => {
    const user = runtime!.find((i) => i.op === 'USER')!;
    const m = /^(\d+):(\d+)$/.exec(user.rest);
    assert.ok(m && Number(m[1]) > 0, `numeric non-root USER: ${user.rest}`);
    assert.deepEqual(runtime!.find((i) => i.op === 'EXPOSE')!.rest.split(/\s+/).sort(), ['9190', '9191', '9192']);
    const hc = runtime!.find((i) => i.op === 'HEALTHCHECK')!.rest;
    const cmd = JSON.parse(hc.slice(hc.indexOf('CMD ') + 4)) as string[];
    assert.equal(cmd[0], 'node');
    assert.ok(cmd.join(' ').includes("fetch('http://127.0.0.1:9190/healthz')"));
  });

  it("starts the package's plugin-gate bin", () => {
    const entry = JSON.parse(runtime!.find((i) => i.op === 'ENTRYPOINT')!.rest) as string[];
    assert.deepEqual(entry, ['node', pkg.bin['plugin-gate']]);
  });

  it('scripts/docker-steps.sh is valid bash', () => {
    execFileSync('bash', ['-n', join(ROOT, 'scripts/docker-steps.sh')], { timeout: 10_000 });
  });
});
