/**
 * The Kubernetes manifests in deploy/ render and validate: the kustomize base through
 * `kubectl kustomize`, every object against the Kubernetes schemas (kubernetes-models) with
 * unknown fields rejected, the Istio objects against Istio's CRD schemas, and the Envoy Gateway,
 * Gateway API and Traefik objects against field lists taken from their API references. On top,
 * the properties the gate relies on: discovery that sees starting pods, probes on the admin
 * port, a locked-down pod, two replicas with a disruption budget, fail-closed gateway settings,
 * and RBAC that grants Kubernetes discovery exactly the reads it makes (and the DNS component none).
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { AuthorizationPolicy } from '@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy';
import { IstioOperator } from '@kubernetes-models/istio/install.istio.io/v1alpha1/IstioOperator';
import { loadConfig } from '../../src/config/config.js';
import { DECISION_ID_HEADER, HTTP_UPSTREAM_HEADER, REASON_HEADER } from '../../src/decide/types.js';
import { S, checkShape, strictValidate, type Shape } from './strict-model.js';
import { boolKeys, parseArgs } from '../../src/cli/args.js';
import { loadProbeConfig } from '../../src/probe/config.js';
import { PROBE_OPTIONS } from '../../src/probe/options.js';
import { DAEMON_MAX_RETRY_COUNT, DAEMON_SCAN_INTERVAL_MS, daemonRetryWaitMs } from '../../src/core/daemon.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const ADMIN_PORT = 9190;

type Obj = Record<string, any>;

function docsOf(file: string): Obj[] {
  return parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8')).map((d) => d.toJS() as Obj);
}

function render(dir = join(DEPLOY, 'kubernetes')): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj);
}

/** The base with the dns component, as an overlay would enable it (kustomize wants relative paths). */
function renderDnsComponent(): Obj[] {
  const overlay = mkdtempSync(join(tmpdir(), 'plugin-gate-k8s-dns-'));
  try {
    const base = relative(overlay, join(DEPLOY, 'kubernetes'));
    writeFileSync(join(overlay, 'kustomization.yaml'), `resources:\n  - ${base}\ncomponents:\n  - ${base}/dns\n`);
    return render(overlay);
  } finally {
    rmSync(overlay, { recursive: true, force: true });
  }
}

/**
 * A kubeconfig that satisfies the credential check, so a discovery=kubernetes file can be loaded
 * outside a cluster; its context namespace stands in for the pod's own (the service account's file).
 */
function testKubeconfig(dir: string, namespace: string): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(
    path,
    `apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: t, context: {cluster: c, user: u, namespace: ${namespace}}}]\n`,
  );
  return path;
}

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/Ingress': Ingress,
  'security.istio.io/v1/AuthorizationPolicy': AuthorizationPolicy,
  'install.istio.io/v1alpha1/IstioOperator': IstioOperator,
};

/** Schema errors and unknown fields of one object, by the model for its apiVersion/kind. */
function problems(obj: Obj): string[] {
  const Model = MODELS[`${obj['apiVersion']}/${obj['kind']}`];
  assert.ok(Model, `a schema for ${obj['apiVersion']} ${obj['kind']}`);
  const r = strictValidate(new Model(obj));
  return [...r.schemaErrors, ...r.unknownKeys.map((k) => `${k}: unknown field`)];
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

const rendered = render();
const byKind = (kind: string): Obj[] => rendered.filter((o) => o['kind'] === kind);
const named = (kind: string, name: string): Obj => {
  const o = byKind(kind).find((x) => x['metadata']['name'] === name);
  assert.ok(o, `${kind} ${name}`);
  return o;
};
const NAMESPACE = named('Deployment', 'plugin-gate')['metadata']['namespace'] as string;

describe('kubectl kustomize deploy/kubernetes', () => {
  it('renders the gate, its discovery Service and the Envoy front', () => {
    const kinds = rendered.map((o) => `${o['kind']}/${String(o['metadata']['name']).replace(/-[a-z0-9]{10}$/, '')}`).sort();
    assert.deepEqual(kinds, [
      'ConfigMap/plugin-gate-config',
      'ConfigMap/plugin-gate-envoy-config',
      'Deployment/plugin-gate',
      'Deployment/plugin-gate-envoy',
      'PodDisruptionBudget/plugin-gate',
      'PodDisruptionBudget/plugin-gate-envoy',
      'Role/plugin-gate-discovery',
      'RoleBinding/plugin-gate-discovery',
      'Service/plugin-daemon-headless',
      'Service/plugin-gate',
      'Service/plugin-gate-envoy',
      'Service/plugin-gate-headless',
      'ServiceAccount/plugin-gate',
    ]);
    for (const o of rendered) assert.equal(o['metadata']['namespace'], NAMESPACE, `${o['kind']} ${o['metadata']['name']} namespace`);
  });

  for (const obj of rendered) {
    it(`${obj['kind']} ${obj['metadata']['name']} validates against the Kubernetes schema, no unknown fields`, () => {
      assert.deepEqual(problems(obj), []);
    });
  }

  it('every Service selects pods of a Deployment here, except the daemon discovery Service', () => {
    const templates = byKind('Deployment').map((d) => d['spec']['template']['metadata']['labels'] as Record<string, string>);
    for (const svc of byKind('Service')) {
      if (svc['metadata']['name'] === 'plugin-daemon-headless') continue;
      assert.ok(
        templates.some((l) => matches(svc['spec']['selector'], l)),
        `Service ${svc['metadata']['name']} selects a Deployment's pods`,
      );
    }
  });
});

describe('plugin-gate Deployment', () => {
  const dep = named('Deployment', 'plugin-gate');
  const pod = dep['spec']['template']['spec'] as Obj;
  const c = (pod['containers'] as Obj[])[0]!;
  const port = (nameOrNumber: string | number): number =>
    typeof nameOrNumber === 'number' ? nameOrNumber : (c['ports'] as Obj[]).find((p) => p['name'] === nameOrNumber)!['containerPort'];

  it('runs at least two replicas, spread over nodes, guarded by a PodDisruptionBudget', () => {
    assert.ok(dep['spec']['replicas'] >= 2);
    const anti = pod['affinity']['podAntiAffinity']['preferredDuringSchedulingIgnoredDuringExecution'] as Obj[];
    assert.ok(anti.some((t) => t['podAffinityTerm']['topologyKey'] === 'kubernetes.io/hostname'));
    const pdb = named('PodDisruptionBudget', 'plugin-gate');
    assert.ok(matches(pdb['spec']['selector']['matchLabels'], dep['spec']['template']['metadata']['labels']));
    assert.ok(pdb['spec']['minAvailable'] >= 1 || pdb['spec']['maxUnavailable'] !== undefined);
    assert.equal(dep['spec']['strategy']['rollingUpdate']['maxUnavailable'], 0);
  });

  it('probes readiness on /readyz and liveness on /healthz of the admin port', () => {
    assert.equal(c['readinessProbe']['httpGet']['path'], '/readyz');
    assert.equal(port(c['readinessProbe']['httpGet']['port']), ADMIN_PORT);
    assert.equal(c['livenessProbe']['httpGet']['path'], '/healthz');
    assert.equal(port(c['livenessProbe']['httpGet']['port']), ADMIN_PORT);
    assert.deepEqual(
      (c['ports'] as Obj[]).map((p) => p['containerPort']).sort(),
      [9190, 9191, 9192],
    );
  });

  it('runs locked down: non-root, read-only root filesystem, no privilege escalation, no capabilities', () => {
    assert.equal(pod['securityContext']['runAsNonRoot'], true);
    assert.equal(pod['securityContext']['seccompProfile']['type'], 'RuntimeDefault');
    assert.ok(pod['securityContext']['runAsUser'] > 0);
    assert.equal(c['securityContext']['readOnlyRootFilesystem'], true);
    assert.equal(c['securityContext']['allowPrivilegeEscalation'], false);
    assert.deepEqual(c['securityContext']['capabilities']['drop'], ['ALL']);
    assert.equal(pod['enableServiceLinks'], false, 'no Service-link variables next to PLUGIN_GATE_* options');
    assert.ok(c['resources']['requests']['cpu'] && c['resources']['requests']['memory'] && c['resources']['limits']['memory']);
  });

  it('reads its configuration from the generated ConfigMap', () => {
    assert.deepEqual(c['args'], ['--config', '/etc/plugin-gate/config.yaml']);
    const mount = (c['volumeMounts'] as Obj[]).find((m) => m['mountPath'] === '/etc/plugin-gate')!;
    const vol = (pod['volumes'] as Obj[]).find((v) => v['name'] === mount['name'])!;
    const cm = byKind('ConfigMap').find((x) => x['metadata']['name'] === vol['configMap']['name']);
    assert.ok(cm, `ConfigMap ${vol['configMap']['name']} (kustomize rewrote the name with its hash)`);
    assert.ok(typeof cm['data']['config.yaml'] === 'string');
  });
});

describe('gate configuration and discovery', () => {
  const dir = mkdtempSync(join(tmpdir(), 'plugin-gate-k8s-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('config.yaml is accepted by the gate and watches the EndpointSlices of the daemon Service, in its own namespace', () => {
    const cm = byKind('ConfigMap').find((x) => String(x['metadata']['name']).startsWith('plugin-gate-config-'))!;
    const file = join(dir, 'config.yaml');
    writeFileSync(file, cm['data']['config.yaml']);
    // In a pod the service account supplies the credentials; here a kubeconfig stands in for them.
    const config = loadConfig({ flags: { kubeconfig: testKubeconfig(dir, NAMESPACE) }, env: {}, file });
    assert.equal(config.discovery, 'kubernetes');
    const headless = named('Service', 'plugin-daemon-headless');
    assert.equal(config.kubernetesService, headless['metadata']['name']);
    assert.equal(config.kubernetesNamespace, undefined, "the gate's own namespace, which is the Service's");
    assert.equal(headless['metadata']['namespace'], NAMESPACE);
    const port = (headless['spec']['ports'] as Obj[]).find((p) => p['name'] === config.kubernetesPort);
    assert.equal(port?.['targetPort'], 5002, 'kubernetes-port names the daemon port of the Service');
    assert.deepEqual([config.grpcListen.port, config.httpListen?.port, config.adminListen.port], [9191, 9192, ADMIN_PORT]);
    // Without credentials the same file is refused at start-up, naming the key.
    assert.throws(() => loadConfig({ flags: {}, env: {}, file }), /kubeconfig: \(unset\) is required with discovery=kubernetes outside a pod/);
  });

  it('RBAC: the gate runs as its ServiceAccount, whose Role grants get/list/watch on endpointslices and get on the one daemon Service, nothing more', () => {
    const dep = named('Deployment', 'plugin-gate');
    const pod = dep['spec']['template']['spec'] as Obj;
    assert.equal(pod['serviceAccountName'], 'plugin-gate');
    assert.equal(pod['automountServiceAccountToken'], true, 'the token discovery authenticates with');
    named('ServiceAccount', 'plugin-gate');
    const role = named('Role', 'plugin-gate-discovery');
    assert.deepEqual(role['rules'], [
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['services'], resourceNames: ['plugin-daemon-headless'], verbs: ['get'] },
    ]);
    const binding = named('RoleBinding', 'plugin-gate-discovery');
    assert.deepEqual(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'plugin-gate-discovery' });
    assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: 'plugin-gate', namespace: NAMESPACE }]);
    assert.equal(byKind('ClusterRole').length + byKind('ClusterRoleBinding').length, 0, 'no cluster-wide rights');
  });

  it('the dns component: no API access at all, DNS discovery through the headless Service, every object valid', () => {
    const objs = renderDnsComponent();
    const kinds = new Set(objs.map((o) => o['kind']));
    for (const k of ['ServiceAccount', 'Role', 'RoleBinding']) assert.ok(!kinds.has(k), `no ${k}`);
    for (const o of objs) assert.deepEqual(problems(o), [], `${o['kind']} ${o['metadata']['name']}`);
    const pod = objs.find((o) => o['kind'] === 'Deployment' && o['metadata']['name'] === 'plugin-gate')!['spec']['template']['spec'] as Obj;
    assert.equal(pod['automountServiceAccountToken'], false);
    assert.equal(pod['serviceAccountName'], undefined);
    const cm = objs.find((x) => x['kind'] === 'ConfigMap' && String(x['metadata']['name']).startsWith('plugin-gate-config-'))!;
    const vol = (pod['volumes'] as Obj[]).find((v) => v['name'] === 'config')!;
    assert.equal(vol['configMap']['name'], cm['metadata']['name'], 'the Deployment mounts the replaced ConfigMap');
    const file = join(dir, 'config-dns.yaml');
    writeFileSync(file, cm['data']['config.yaml']);
    const config = loadConfig({ flags: {}, env: {}, file });
    assert.equal(config.discovery, 'dns');
    const headless = objs.find((o) => o['kind'] === 'Service' && o['metadata']['name'] === 'plugin-daemon-headless')!;
    assert.deepEqual(config.dnsName, { host: `plugin-daemon-headless.${NAMESPACE}.svc.cluster.local`, port: 5002 });
    assert.equal(headless['spec']['ports'][0]['port'], 5002);
    assert.equal(headless['spec']['publishNotReadyAddresses'], true);
  });

  it('the daemon discovery Service is headless and publishes not-ready pods', () => {
    const headless = named('Service', 'plugin-daemon-headless');
    assert.equal(headless['spec']['clusterIP'], 'None');
    assert.equal(headless['spec']['publishNotReadyAddresses'], true);
    assert.ok(Object.keys(headless['spec']['selector']).length > 0);
    assert.ok(!(headless['spec']['ports'] as Obj[]).some((p) => p['port'] === 5003), 'the remote-debugging port is not discovered');
  });

  it('the gate Services expose gRPC (appProtocol grpc), HTTP and admin; Envoy sees ready gates only', () => {
    const svc = named('Service', 'plugin-gate');
    const ports = Object.fromEntries((svc['spec']['ports'] as Obj[]).map((p) => [p['name'], p]));
    assert.equal(ports['grpc']['port'], 9191);
    assert.equal(ports['grpc']['appProtocol'], 'grpc');
    assert.equal(ports['http']['port'], 9192);
    assert.equal(ports['admin']['port'], ADMIN_PORT);
    const headless = named('Service', 'plugin-gate-headless');
    assert.equal(headless['spec']['clusterIP'], 'None');
    assert.notEqual(headless['spec']['publishNotReadyAddresses'], true);
  });
});

describe('Envoy front Deployment', () => {
  const dep = named('Deployment', 'plugin-gate-envoy');
  const pod = dep['spec']['template']['spec'] as Obj;
  const c = (pod['containers'] as Obj[])[0]!;

  it('serves deploy/envoy/envoy.yaml from its ConfigMap, with an Envoy new enough for metadata routing', () => {
    const vol = (pod['volumes'] as Obj[]).find((v) => v['configMap'] !== undefined)!;
    const cm = byKind('ConfigMap').find((x) => x['metadata']['name'] === vol['configMap']['name'])!;
    assert.equal(cm['data']['envoy.yaml'], readFileSync(join(DEPLOY, 'envoy/envoy.yaml'), 'utf8'));
    assert.ok((c['args'] as string[]).includes('/etc/envoy/envoy.yaml'));
    const m = /:v(\d+)\.(\d+)/.exec(c['image']);
    assert.ok(m, `versioned Envoy image: ${c['image']}`);
    assert.ok(Number(m[1]) > 1 || Number(m[2]) >= 28, 'Envoy >= 1.28 (original_dst_lb_config.metadata_key)');
  });

  it('is probed on the health listener of envoy.yaml and runs locked down', () => {
    const envoyYaml = readFileSync(join(DEPLOY, 'envoy/envoy.yaml'), 'utf8');
    const healthPort = (c['ports'] as Obj[]).find((p) => p['name'] === c['readinessProbe']['httpGet']['port'])!['containerPort'];
    assert.ok(envoyYaml.includes(`port_value: ${healthPort}`), `envoy.yaml listens on ${healthPort}`);
    assert.ok(dep['spec']['replicas'] >= 2);
    assert.equal(pod['securityContext']['runAsNonRoot'], true);
    assert.equal(c['securityContext']['readOnlyRootFilesystem'], true);
    assert.equal(c['securityContext']['allowPrivilegeEscalation'], false);
    assert.equal(named('Service', 'plugin-gate-envoy')['spec']['ports'][0]['port'], 5002);
  });
});

describe('a broken manifest fails validation', () => {
  const dep = named('Deployment', 'plugin-gate');

  it('an unknown field: kubernetes-models alone accepts it, the strict pass does not', () => {
    const broken = structuredClone(dep);
    broken['spec']['template']['spec']['containers'][0]['imagePullPolicyy'] = 'Always';
    broken['spec']['replica'] = 3;
    assert.doesNotThrow(() => new Deployment(broken).validate(), 'the models do not reject unknown fields by themselves');
    assert.deepEqual(problems(broken), ['spec.replica: unknown field', 'spec.template.spec.containers[0].imagePullPolicyy: unknown field']);
  });

  it('a wrong type and a missing required field', () => {
    const wrongType = structuredClone(dep);
    wrongType['spec']['replicas'] = 'two';
    assert.ok(problems(wrongType).some((p) => /replicas must be integer/.test(p)));
    const missing = structuredClone(dep);
    delete missing['spec']['template']['spec']['containers'][0]['name'];
    assert.ok(problems(missing).some((p) => /containers\/0 must have required property name/.test(p)));
  });

  it('a wrong value in a Service and an Istio policy', () => {
    const svc = structuredClone(named('Service', 'plugin-gate'));
    svc['spec']['ports'][0]['port'] = '9191';
    assert.ok(problems(svc).length > 0);
    const ap = structuredClone(docsOf('istio/authorization-policy.yaml')[0]!);
    ap['spec']['action'] = 'CUSTOMISED';
    assert.ok(problems(ap).some((p) => /action/.test(p)));
    const ap2 = structuredClone(docsOf('istio/authorization-policy.yaml')[0]!);
    ap2['spec']['provider']['nam'] = 'plugin-gate';
    assert.deepEqual(problems(ap2), ['spec.provider.nam: unknown field']);
  });
});

describe('Istio', () => {
  const [operator] = docsOf('istio/mesh-config.yaml');
  const [policy] = docsOf('istio/authorization-policy.yaml');

  it('both objects validate against the Istio schemas', () => {
    assert.deepEqual(problems(policy!), []);
    // The packaged IstioOperator schema declares apiVersion, kind and metadata only: its spec is
    // checked against the MeshConfig field list in the next test.
    assert.deepEqual(problems(operator!), ['spec: unknown field']);
  });

  it('registers plugin-gate as a fail-closed gRPC ext_authz provider answering errors with 503', () => {
    // MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationGrpcProvider, as in Istio's API.
    const provider = S.obj(
      {
        service: S.str({ pattern: /^plugin-gate\./ }),
        port: S.int(1, 65535),
        timeout: S.str({ pattern: /^\d+(\.\d+)?s$/ }),
        failOpen: S.bool(),
        statusOnError: S.str({ pattern: /^[45]\d\d$/ }),
        clearRouteCache: S.bool(),
        includeRequestBodyInCheck: S.any(),
      },
      ['service', 'port'],
    );
    const spec = S.obj({
      meshConfig: S.obj({ extensionProviders: S.list(S.obj({ name: S.str(), envoyExtAuthzGrpc: provider }, ['name', 'envoyExtAuthzGrpc']), 1) }),
    });
    assert.deepEqual(checkShape(spec, operator!['spec']), []);
    const p = operator!['spec']['meshConfig']['extensionProviders'][0];
    assert.equal(p['envoyExtAuthzGrpc']['port'], 9191);
    assert.equal(p['envoyExtAuthzGrpc']['failOpen'], false);
    assert.equal(p['envoyExtAuthzGrpc']['statusOnError'], '503');
    const t = Number(String(p['envoyExtAuthzGrpc']['timeout']).replace(/s$/, ''));
    assert.ok(t >= 0.1 && t < 600);
    assert.equal(policy!['spec']['action'], 'CUSTOM');
    assert.equal(policy!['spec']['provider']['name'], p['name']);
  });

  it('applies the policy to the daemon pods (same labels as the discovery Service), port 5002 only', () => {
    assert.deepEqual(policy!['spec']['selector']['matchLabels'], named('Service', 'plugin-daemon-headless')['spec']['selector']);
    assert.deepEqual(policy!['spec']['rules'][0]['to'][0]['operation']['ports'], ['5002']);
  });
});

// Field lists from the Envoy Gateway API reference (gateway.envoyproxy.io/v1alpha1, v1.8+) and the
// Gateway API v1 specification. Only the branches these manifests use are spelt out in depth.
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const meta = S.obj({ name: S.str(), namespace: S.str(), labels: S.map(S.str()), annotations: S.map(S.str()) }, ['name']);
const backendRef = S.obj({ group: S.str(), kind: S.str(), name: S.str(), namespace: S.str(), port: S.int(1, 65535), weight: S.int(0), fallback: S.bool() }, ['name']);
const policyTargetRef = S.obj({ group: S.str(), kind: S.str(), name: S.str(), sectionName: S.str() }, ['group', 'kind', 'name']);
const SHAPES: Record<string, Shape> = {
  'gateway.networking.k8s.io/v1/Gateway': S.obj(
    {
      apiVersion: S.str(),
      kind: S.str(),
      metadata: meta,
      spec: S.obj(
        {
          gatewayClassName: S.str(),
          listeners: S.list(
            S.obj(
              {
                name: S.str(),
                hostname: S.str(),
                port: S.int(1, 65535),
                protocol: S.str({ enum: ['HTTP', 'HTTPS', 'TLS', 'TCP', 'UDP'] }),
                tls: S.any(),
                allowedRoutes: S.obj({ namespaces: S.obj({ from: S.str({ enum: ['All', 'Same', 'Selector'] }), selector: S.any() }), kinds: S.any() }),
              },
              ['name', 'port', 'protocol'],
            ),
            1,
          ),
          addresses: S.any(),
          infrastructure: S.any(),
          backendTLS: S.any(),
        },
        ['gatewayClassName', 'listeners'],
      ),
    },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  ),
  'gateway.networking.k8s.io/v1/HTTPRoute': S.obj(
    {
      apiVersion: S.str(),
      kind: S.str(),
      metadata: meta,
      spec: S.obj({
        parentRefs: S.list(S.obj({ group: S.str(), kind: S.str(), namespace: S.str(), name: S.str(), sectionName: S.str(), port: S.int(1, 65535) }, ['name'])),
        hostnames: S.list(S.str()),
        rules: S.list(
          S.obj({
            name: S.str(),
            matches: S.list(
              S.obj({
                path: S.obj({ type: S.str({ enum: ['Exact', 'PathPrefix', 'RegularExpression'] }), value: S.str() }),
                headers: S.any(),
                queryParams: S.any(),
                method: S.str(),
              }),
            ),
            filters: S.any(),
            backendRefs: S.list(S.obj({ group: S.str(), kind: S.str(), name: S.str(), namespace: S.str(), port: S.int(1, 65535), weight: S.int(0), filters: S.any() }, ['name'])),
            timeouts: S.obj({ request: S.str({ pattern: DURATION }), backendRequest: S.str({ pattern: DURATION }) }),
            retry: S.any(),
            sessionPersistence: S.any(),
          }),
        ),
      }),
    },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  ),
  'gateway.envoyproxy.io/v1alpha1/SecurityPolicy': S.obj(
    {
      apiVersion: S.str(),
      kind: S.str(),
      metadata: meta,
      spec: S.obj({
        targetRef: policyTargetRef,
        targetRefs: S.list(policyTargetRef),
        targetSelectors: S.any(),
        apiKeyAuth: S.any(),
        cors: S.any(),
        basicAuth: S.any(),
        jwt: S.any(),
        oidc: S.any(),
        authorization: S.any(),
        extAuth: S.obj({
          grpc: S.obj({ backendRef: backendRef, backendRefs: S.list(backendRef), backendSettings: S.any() }),
          http: S.any(),
          headersToExtAuth: S.list(S.str()),
          bodyToExtAuth: S.obj({ maxRequestBytes: S.int(1) }, ['maxRequestBytes']),
          timeout: S.str({ pattern: DURATION }),
          failOpen: S.bool(),
          recomputeRoute: S.bool(),
          includeRouteMetadata: S.bool(),
          contextExtensions: S.any(),
          statusOnError: S.int(400, 599),
        }),
      }),
    },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  ),
  'gateway.envoyproxy.io/v1alpha1/EnvoyPatchPolicy': S.obj(
    {
      apiVersion: S.str(),
      kind: S.str(),
      metadata: meta,
      spec: S.obj(
        {
          type: S.str({ enum: ['JSONPatch'] }),
          targetRef: S.obj({ group: S.str(), kind: S.str(), name: S.str() }, ['group', 'kind', 'name']),
          priority: S.int(-(2 ** 31), 2 ** 31 - 1),
          jsonPatches: S.list(
            S.obj(
              {
                type: S.str({
                  enum: [
                    'type.googleapis.com/envoy.config.listener.v3.Listener',
                    'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
                    'type.googleapis.com/envoy.config.cluster.v3.Cluster',
                    'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
                    'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
                  ],
                }),
                name: S.str(),
                operation: S.obj(
                  { op: S.str({ enum: ['add', 'remove', 'replace', 'move', 'copy', 'test'] }), path: S.str({ pattern: /^\// }), jsonPath: S.str(), from: S.str(), value: S.any() },
                  ['op'],
                ),
              },
              ['type', 'name', 'operation'],
            ),
          ),
        },
        ['type', 'targetRef'],
      ),
    },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  ),
  'traefik.io/v1alpha1/Middleware': S.obj(
    {
      apiVersion: S.str(),
      kind: S.str(),
      metadata: meta,
      spec: S.obj({
        headers: S.obj({ customRequestHeaders: S.map(S.str()), customResponseHeaders: S.map(S.str()) }),
        forwardAuth: S.obj(
          {
            address: S.str({ pattern: /^https?:\/\// }),
            tls: S.any(),
            trustForwardHeader: S.bool(),
            authResponseHeaders: S.list(S.str()),
            authResponseHeadersRegex: S.str(),
            authRequestHeaders: S.list(S.str()),
            addAuthCookiesToResponse: S.list(S.str()),
            headerField: S.str(),
            forwardBody: S.bool(),
            maxBodySize: S.int(),
            preserveLocationHeader: S.bool(),
            preserveRequestMethod: S.bool(),
          },
          ['address'],
        ),
      }),
    },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  ),
  'traefik.io/v1alpha1/IngressRoute': S.obj(
    {
      apiVersion: S.str(),
      kind: S.str(),
      metadata: meta,
      spec: S.obj(
        {
          entryPoints: S.list(S.str()),
          routes: S.list(
            S.obj(
              {
                kind: S.str({ enum: ['Rule'] }),
                match: S.str(),
                priority: S.int(),
                syntax: S.str(),
                middlewares: S.list(S.obj({ name: S.str(), namespace: S.str() }, ['name'])),
                services: S.list(S.obj({ name: S.str(), namespace: S.str(), port: S.int(1, 65535), kind: S.str(), scheme: S.str(), weight: S.int(0), passHostHeader: S.bool() }, ['name'])),
                observability: S.any(),
              },
              ['match'],
            ),
            1,
          ),
          tls: S.any(),
        },
        ['routes'],
      ),
    },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  ),
};

function shapeProblems(obj: Obj): string[] {
  const shape = SHAPES[`${obj['apiVersion']}/${obj['kind']}`];
  assert.ok(shape, `a field list for ${obj['apiVersion']} ${obj['kind']}`);
  return checkShape(shape, obj);
}

describe('Envoy Gateway', () => {
  const routeDocs = docsOf('envoy-gateway/httproute.yaml');
  const [security] = docsOf('envoy-gateway/security-policy.yaml');
  const [patch] = docsOf('envoy-gateway/envoy-patch-policy.yaml');
  const route = routeDocs.find((d) => d['kind'] === 'HTTPRoute')!;
  const gateway = routeDocs.find((d) => d['kind'] === 'Gateway')!;

  it('every object has known fields and types', () => {
    for (const o of [...routeDocs, security!, patch!]) assert.deepEqual(shapeProblems(o), [], `${o['kind']} ${o['metadata']['name']}`);
  });

  it('the SecurityPolicy fails closed, answers errors with 503, bounds the check and targets the daemon route', () => {
    const ext = security!['spec']['extAuth'];
    assert.equal(ext['failOpen'], false);
    assert.equal(ext['statusOnError'], 503);
    const m = /^(\d+)(ms|s)$/.exec(ext['timeout']);
    assert.ok(m);
    const ms = Number(m[1]) * (m[2] === 's' ? 1000 : 1);
    assert.ok(ms >= 100 && ms < 600_000, `timeout ${ext['timeout']}`);
    assert.deepEqual(ext['grpc']['backendRefs'], [{ name: 'plugin-gate', port: 9191 }]);
    assert.deepEqual(security!['spec']['targetRefs'], [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: route['metadata']['name'] }]);
  });

  it('the route attaches to the Gateway the patch policy targets, with no overall timeout', () => {
    assert.equal(route['spec']['parentRefs'][0]['name'], gateway['metadata']['name']);
    assert.equal(patch!['spec']['targetRef']['name'], gateway['metadata']['name']);
    assert.equal(route['spec']['rules'][0]['timeouts']['request'], '0s');
    for (const o of [route, gateway, security!, patch!]) assert.equal(o['metadata']['namespace'], route['metadata']['namespace']);
  });

  it('a misspelt field fails', () => {
    const broken = structuredClone(security!);
    broken['spec']['extAuth']['failopen'] = false;
    assert.deepEqual(shapeProblems(broken), ['spec.extAuth.failopen: unknown field']);
  });
});

describe('Traefik and ingress-nginx', () => {
  const traefik = docsOf('traefik/middleware.yaml');
  const [ingress] = docsOf('nginx/ingress-nginx.yaml');
  const gateHeaders = [HTTP_UPSTREAM_HEADER, REASON_HEADER, DECISION_ID_HEADER];

  it('every object has known fields and types', () => {
    for (const o of traefik) assert.deepEqual(shapeProblems(o), [], `${o['kind']} ${o['metadata']['name']}`);
    assert.deepEqual(problems(ingress!), []);
  });

  it('Traefik strips the gate headers before ForwardAuth and copies them from the answer', () => {
    const strip = traefik.find((o) => o['spec']['headers'] !== undefined)!;
    const auth = traefik.find((o) => o['spec']['forwardAuth'] !== undefined)!;
    const routeDoc = traefik.find((o) => o['kind'] === 'IngressRoute')!;
    const stripped = Object.entries(strip['spec']['headers']['customRequestHeaders'] as Record<string, string>)
      .filter(([, v]) => v === '')
      .map(([k]) => k.toLowerCase());
    for (const h of gateHeaders) assert.ok(stripped.includes(h), `${h} stripped`);
    const copied = (auth['spec']['forwardAuth']['authResponseHeaders'] as string[]).map((h) => h.toLowerCase());
    assert.ok(copied.includes(HTTP_UPSTREAM_HEADER) && copied.includes(REASON_HEADER));
    assert.equal(auth['spec']['forwardAuth']['trustForwardHeader'], false);
    const order = (routeDoc['spec']['routes'][0]['middlewares'] as Obj[]).map((m) => m['name']);
    assert.deepEqual(order, [strip['metadata']['name'], auth['metadata']['name']]);
  });

  it('ingress-nginx asks the gate and copies its routing header', () => {
    const a = ingress!['metadata']['annotations'] as Record<string, string>;
    assert.match(a['nginx.ingress.kubernetes.io/auth-url']!, /^http:\/\/plugin-gate\.[a-z-]+\.svc\.cluster\.local:9192\//);
    const copied = a['nginx.ingress.kubernetes.io/auth-response-headers']!.split(',').map((h) => h.trim().toLowerCase());
    assert.ok(copied.includes(HTTP_UPSTREAM_HEADER));
  });
});

describe('deploy/kubernetes/probe: the readiness sidecar component', () => {
  const dir = mkdtempSync(join(tmpdir(), 'plugin-gate-probe-k8s-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // An overlay as a user writes it: their daemon Deployment plus the component. Kustomize wants
  // the component path relative to the overlay.
  writeFileSync(join(dir, 'plugin-daemon.yaml'), readFileSync(join(ROOT, 'test/deploy/fixtures/plugin-daemon.yaml'), 'utf8'));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    `resources: [plugin-daemon.yaml]\ncomponents: [${JSON.stringify(relative(dir, join(DEPLOY, 'kubernetes/probe')))}]\n`,
  );
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 });
  const docs = parseAllDocuments(out).map((d) => d.toJS() as Obj);
  const dep = docs[0]!;
  const pod = dep['spec']['template']['spec'] as Obj;
  const containers = pod['containers'] as Obj[];
  const probe = containers.find((c) => c['name'] === 'plugin-gate-probe')!;
  const daemon = containers.find((c) => c['name'] === 'plugin-daemon')!;
  const original = docsOf('../test/deploy/fixtures/plugin-daemon.yaml')[0]!;

  it('renders onto a daemon Deployment, which still validates against the Kubernetes schema', () => {
    assert.equal(docs.length, 1);
    assert.deepEqual(problems(dep), []);
    assert.ok(probe, 'the sidecar is added');
    assert.deepEqual(daemon, original['spec']['template']['spec']['containers'][0], 'the daemon container is left as it was');
  });

  it('runs `plugin-gate probe` on the daemon in its pod, with arguments the probe accepts', () => {
    assert.equal(probe['image'], named('Deployment', 'plugin-gate')['spec']['template']['spec']['containers'][0]['image'], 'the gate image');
    const args = probe['args'] as string[];
    assert.equal(args[0], 'probe');
    const parsed = parseArgs(args.slice(1), boolKeys(PROBE_OPTIONS));
    assert.deepEqual(parsed.problems, []);
    const config = loadProbeConfig({ flags: parsed.flags, env: {}, file: undefined });
    const daemonPort = (daemon['ports'] as Obj[]).find((p) => p['name'] === 'daemon')!['containerPort'];
    assert.equal(config.target, `127.0.0.1:${daemonPort}`);
    const port = (probe['ports'] as Obj[]).find((p) => p['name'] === 'probe')!['containerPort'];
    assert.equal(config.listen.port, port);
  });

  it('the pod is Ready only through the sidecar\'s /readyz; start-up budget covers a plugin giving up', () => {
    for (const which of ['startupProbe', 'readinessProbe']) {
      assert.equal(probe[which]['httpGet']['path'], '/readyz', which);
      assert.equal(probe[which]['httpGet']['port'], 'probe', which);
    }
    assert.equal(probe['livenessProbe']['httpGet']['path'], '/healthz');
    // The default rule waits for a failing plugin to give up: 15 failed launches, each retry at the
    // daemon's next scan after its wait. With 40 s per launch attempt that is the least budget.
    let giveUpMs = 0;
    for (let f = 1; f < DAEMON_MAX_RETRY_COUNT; f++) giveUpMs += daemonRetryWaitMs(f) + DAEMON_SCAN_INTERVAL_MS;
    giveUpMs += DAEMON_MAX_RETRY_COUNT * 40_000;
    const budgetS = probe['startupProbe']['failureThreshold'] * probe['startupProbe']['periodSeconds'];
    assert.ok(budgetS * 1000 >= giveUpMs, `startup budget ${budgetS}s covers ${giveUpMs / 1000}s`);
    assert.ok(dep['spec']['progressDeadlineSeconds'] > budgetS, 'a rollout is not declared failed while pods are within their budget');
  });

  it('rolling updates remove an old pod only once a new one is Ready', () => {
    assert.equal(dep['spec']['strategy']['type'], 'RollingUpdate');
    assert.equal(dep['spec']['strategy']['rollingUpdate']['maxUnavailable'], 0);
    assert.ok(dep['spec']['strategy']['rollingUpdate']['maxSurge'] >= 1);
  });

  it('the sidecar runs locked down', () => {
    const sc = probe['securityContext'];
    assert.equal(sc['runAsNonRoot'], true);
    assert.equal(sc['readOnlyRootFilesystem'], true);
    assert.equal(sc['allowPrivilegeEscalation'], false);
    assert.deepEqual(sc['capabilities']['drop'], ['ALL']);
    assert.ok(probe['resources']['requests']['memory'] && probe['resources']['limits']['memory']);
  });

  it('no Service-link variables in the pod: the probe refuses PLUGIN_GATE_* names that are not its options', () => {
    assert.equal(pod['enableServiceLinks'], false);
    // What a Service named plugin-gate would inject, refused by the probe's configuration.
    assert.throws(() => loadProbeConfig({ flags: { target: '127.0.0.1:5002' }, env: { PLUGIN_GATE_SERVICE_HOST: '10.0.0.1' }, file: undefined }), /PLUGIN_GATE_SERVICE_HOST: .*Service link/);
  });
});
