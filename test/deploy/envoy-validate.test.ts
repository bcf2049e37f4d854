/**
 * Every Envoy configuration in deploy/ passes the real Envoy's own check,
 * `envoy --mode validate` (the pinned version, scripts/envoy-requirements.txt),
 * in addition to the proto parse of envoy-config.test.ts: the standalone files,
 * the ConfigMap that `kubectl kustomize deploy/kubernetes` renders, and the file
 * the compose override mounts. The Envoy images in compose and Kubernetes carry
 * that same version.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { pinnedEnvoyVersion, validateEnvoyConfig } from '../support/envoy.js';
import { packageRoot } from '../../src/core/package-root.js';

const ROOT = packageRoot();
const DEPLOY = join(ROOT, 'deploy');
const COMPOSE = join(DEPLOY, 'compose/docker-compose.plugin-gate.yaml');
const IMAGE = `envoyproxy/envoy:v${pinnedEnvoyVersion()}`;

type Obj = Record<string, any>;

function validates(name: string, text: string): void {
  const r = validateEnvoyConfig(text);
  assert.ok(r.ok, `${name}: envoy --mode validate failed:\n${r.output}`);
  assert.match(r.output, /OK$/);
}

describe(`envoy --mode validate (Envoy ${pinnedEnvoyVersion()}) on every Envoy configuration in deploy/`, () => {
  const standalone = readdirSync(join(DEPLOY, 'envoy')).filter((f) => /\.ya?ml$/.test(f));

  it('finds the three standalone configurations', () => {
    assert.deepEqual(standalone.sort(), ['envoy-header-routing.yaml', 'envoy-http-service.yaml', 'envoy.yaml']);
  });

  for (const f of standalone) {
    it(`deploy/envoy/${f}`, () => validates(f, readFileSync(join(DEPLOY, 'envoy', f), 'utf8')));
  }

  it("the Kubernetes ConfigMap's envoy.yaml, as kustomize renders it", () => {
    const out = execFileSync('kubectl', ['kustomize', join(DEPLOY, 'kubernetes')], { encoding: 'utf8', timeout: 60_000 });
    const maps = parseAllDocuments(out)
      .map((d) => d.toJS() as Obj)
      .filter((o) => o['kind'] === 'ConfigMap' && typeof o['data']?.['envoy.yaml'] === 'string');
    assert.equal(maps.length, 1, 'one ConfigMap with envoy.yaml');
    validates('kubernetes ConfigMap', maps[0]!['data']['envoy.yaml'] as string);
  });

  it('the configuration the compose override mounts into Envoy', () => {
    const compose = parse(readFileSync(COMPOSE, 'utf8')) as Obj;
    const svc = compose['services']['plugin-gate-envoy'] as Obj;
    const mount = (svc['volumes'] as string[]).find((v) => v.split(':')[1] === '/etc/envoy/envoy.yaml');
    assert.ok(mount, 'compose mounts /etc/envoy/envoy.yaml');
    validates('compose', readFileSync(resolve(dirname(COMPOSE), mount.split(':')[0]!), 'utf8'));
  });

  it(`the Envoy images in compose and Kubernetes are ${IMAGE}, and deploy/README.md says so`, () => {
    const compose = parse(readFileSync(COMPOSE, 'utf8')) as Obj;
    assert.equal(compose['services']['plugin-gate-envoy']['image'], IMAGE);
    const k8s = parseAllDocuments(readFileSync(join(DEPLOY, 'kubernetes/plugin-gate-envoy.yaml'), 'utf8')).map((d) => d.toJS() as Obj);
    const images = k8s
      .filter((o) => o['kind'] === 'Deployment')
      .flatMap((o) => (o['spec']['template']['spec']['containers'] as Obj[]).map((c) => c['image'] as string));
    assert.deepEqual(images, [IMAGE]);
    assert.ok(readFileSync(join(DEPLOY, 'README.md'), 'utf8').includes(`\`${IMAGE}\``), `deploy/README.md names ${IMAGE}`);
  });

  it('fails a configuration Envoy would refuse (the check is real)', () => {
    const broken = readFileSync(join(DEPLOY, 'envoy/envoy.yaml'), 'utf8').replace('lb_policy: CLUSTER_PROVIDED', 'lb_policy: ROUND_ROBIN');
    const r = validateEnvoyConfig(broken);
    assert.equal(r.ok, false);
    assert.match(r.output, /ORIGINAL_DST|original_dst|CLUSTER_PROVIDED/i);
  });
});
