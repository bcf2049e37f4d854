/**
 * Every Envoy configuration in deploy/ is a valid envoy.config.bootstrap.v3.Bootstrap by the
 * official Envoy API protos (strict proto3 JSON mapping, see proto-json.ts), and keeps the
 * settings the gate depends on: fail closed, 503 on errors, a bounded check timeout, client
 * routing headers stripped before ext_authz, and an ORIGINAL_DST cluster routed by the gate.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import protobuf from 'protobufjs';
import { checkMessage, loadEnvoyProtos } from './proto-json.js';
import { DECISION_ID_HEADER, HTTP_UPSTREAM_HEADER, METADATA_NAMESPACE, METADATA_UPSTREAM_HOST, REASON_HEADER } from '../../src/decide/types.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';
const ROUTE_HEADER = 'x-envoy-original-dst-host';
/** Headers a client must never be able to set for the gate or the ORIGINAL_DST cluster. */
const STRIPPED = [ROUTE_HEADER, HTTP_UPSTREAM_HEADER, REASON_HEADER, DECISION_ID_HEADER];
const DAEMON_TIMEOUT_S = 600;

type Obj = Record<string, any>;

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...yamlFiles(full));
    else if (/\.ya?ml$/.test(name)) out.push(full);
  }
  return out;
}

/** Every Envoy bootstrap in deploy/: whole files, and envoy*.yaml values inside ConfigMaps. */
function envoyConfigs(): { name: string; text: string; doc: Obj }[] {
  const found: { name: string; text: string; doc: Obj }[] = [];
  for (const file of yamlFiles(DEPLOY)) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(ROOT, file);
    for (const [i, d] of parseAllDocuments(text).entries()) {
      const doc = d.toJS() as unknown;
      if (typeof doc !== 'object' || doc === null) continue;
      const o = doc as Obj;
      if (o['apiVersion'] === undefined && ('static_resources' in o || 'staticResources' in o)) {
        found.push({ name: rel, text, doc: o });
      } else if (o['kind'] === 'ConfigMap') {
        for (const [key, value] of Object.entries((o['data'] ?? {}) as Record<string, string>)) {
          if (/envoy.*\.ya?ml$/.test(key)) found.push({ name: `${rel}#${i}:${key}`, text: value, doc: parse(value) as Obj });
        }
      }
    }
  }
  return found;
}

function seconds(d: unknown): number {
  assert.equal(typeof d, 'string', `duration ${JSON.stringify(d)} is a string`);
  const m = /^(\d+(?:\.\d+)?)s$/.exec(d as string);
  assert.ok(m, `duration ${JSON.stringify(d)}`);
  return Number(m[1]);
}

function hcmOf(listener: Obj): Obj {
  const filter = listener['filter_chains'][0]['filters'][0];
  assert.equal(filter['name'], 'envoy.filters.network.http_connection_manager');
  return filter['typed_config'];
}

function daemonListener(doc: Obj): Obj {
  const l = (doc['static_resources']['listeners'] as Obj[]).find((x) => x['address']['socket_address']['port_value'] === 5002);
  assert.ok(l, 'a listener on port 5002 (the daemon port dify-api is pointed at)');
  return l;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

const configs = envoyConfigs();

describe('Envoy configurations in deploy/', () => {
  it('finds the front proxy, the header-routing variant and the Kubernetes copy', () => {
    const names = configs.map((c) => c.name);
    for (const expected of ['deploy/envoy/envoy.yaml', 'deploy/envoy/envoy-header-routing.yaml', 'deploy/kubernetes/envoy.yaml']) {
      assert.ok(names.includes(expected), `${expected} among ${names.join(', ')}`);
    }
  });

  it('loads the official protos, leaving out only files whose imports are not shipped', () => {
    const { missingImports } = loadEnvoyProtos();
    // What @grpc/grpc-js-xds does not ship: the removed v2 API and three third-party trees.
    // Configs that name a type from those files fail as "unknown type" instead of passing.
    for (const m of missingImports) {
      assert.match(m, /^(envoy\/api\/v2\/|envoy\/admin\/v2alpha\/|opencensus\/|opentelemetry\/|io\/prometheus\/)/, m);
    }
  });

  for (const c of configs) {
    it(`${c.name} is a valid Bootstrap by the Envoy protos`, () => {
      assert.deepEqual(checkMessage(BOOTSTRAP, c.doc), []);
    });
  }

  it('the Kubernetes copy is byte-identical to deploy/envoy/envoy.yaml', () => {
    assert.equal(readFileSync(join(DEPLOY, 'kubernetes/envoy.yaml'), 'utf8'), readFileSync(join(DEPLOY, 'envoy/envoy.yaml'), 'utf8'));
  });
});

describe('gate settings in every Envoy configuration', () => {
  for (const c of configs) {
    describe(c.name, () => {
      const doc = c.doc;
      const hcm = hcmOf(daemonListener(doc));
      const filters = hcm['http_filters'] as Obj[];
      const extIndex = filters.findIndex((f) => f['name'] === 'envoy.filters.http.ext_authz');
      const ext = filters[extIndex]?.['typed_config'] as Obj;
      const clusters = doc['static_resources']['clusters'] as Obj[];
      // deploy/envoy/envoy-http-service.yaml asks the HTTP forward-auth face through http_service.
      const viaHttp = ext?.['http_service'] !== undefined;
      const cluster = (name: string): Obj => {
        const found = clusters.find((x) => x['name'] === name);
        assert.ok(found, `cluster ${name}`);
        return found;
      };

      it('ext_authz fails closed, answers errors with 503 and bounds the check', () => {
        assert.ok(extIndex >= 0, 'an ext_authz filter');
        assert.equal(ext['transport_api_version'], 'V3');
        assert.equal(ext['failure_mode_allow'], false);
        assert.ok(ext['status_on_error']['code'] === 'ServiceUnavailable' || ext['status_on_error']['code'] === 503);
        const t = seconds(viaHttp ? ext['http_service']['server_uri']['timeout'] : ext['grpc_service']['timeout']);
        assert.ok(t >= 0.1 && t < DAEMON_TIMEOUT_S, `check timeout ${t}s is >= 100 ms and below dify-api's ${DAEMON_TIMEOUT_S} s`);
        assert.equal(ext['with_request_body'], undefined, 'no request body buffered for the check');
        assert.equal(filters.at(-1)?.['name'], 'envoy.filters.http.router');
      });

      it('strips client copies of the routing and decision headers before ext_authz', () => {
        const early = ((hcm['early_header_mutation_extensions'] ?? []) as Obj[]).flatMap((e) => (e['typed_config']['mutations'] as Obj[]).map((m) => m['remove']));
        const before = filters.slice(0, extIndex).filter((f) => f['name'] === 'envoy.filters.http.header_mutation');
        const inFilters = before.flatMap((f) => (f['typed_config']['mutations']['request_mutations'] as Obj[]).map((m) => m['remove']));
        const removed = new Set([...early, ...inFilters]);
        for (const h of STRIPPED) assert.ok(removed.has(h), `${h} removed before ext_authz (removed: ${[...removed].join(', ')})`);
        if (before.length > 0) assert.equal(filters[0]?.['name'], 'envoy.filters.http.header_mutation', 'the strip filter is the first filter');
      });

      it('routes / and /e/ to an ORIGINAL_DST cluster chosen by the gate, with timeouts fit for 600 s streams', () => {
        const routes = hcm['route_config']['virtual_hosts'].flatMap((v: Obj) => v['routes']) as Obj[];
        const prefixes = routes.map((r) => r['match']['prefix']);
        assert.ok(prefixes.includes('/'), 'a / route');
        assert.ok(prefixes.includes('/e/'), 'an /e/ (endpoint webhook) route');
        assert.ok(seconds(hcm['stream_idle_timeout']) > DAEMON_TIMEOUT_S, 'stream idle timeout above the daemon timeout');
        for (const r of routes) {
          const action = r['route'] as Obj;
          const timeout = seconds(action['timeout']);
          assert.ok(timeout === 0 || timeout >= DAEMON_TIMEOUT_S, `route ${r['name']} timeout ${timeout}s is 0 or >= ${DAEMON_TIMEOUT_S}s`);
          assert.ok(seconds(action['idle_timeout']) > DAEMON_TIMEOUT_S, `route ${r['name']} idle timeout`);
          const target = cluster(action['cluster']);
          assert.equal(target['type'], 'ORIGINAL_DST');
          assert.equal(target['lb_policy'], 'CLUSTER_PROVIDED');
          const odl = target['original_dst_lb_config'] as Obj;
          if (viaHttp) {
            // The gate's allow header, copied onto the request (client copies stripped above).
            assert.equal(odl['use_http_header'], true);
            assert.equal(odl['http_header_name'], HTTP_UPSTREAM_HEADER);
            assert.deepEqual(ext['http_service']['authorization_response']['allowed_upstream_headers']['patterns'], [{ exact: HTTP_UPSTREAM_HEADER }]);
            assert.match(c.text, /--http-request-from request --http-deny-status 429/, 'documents how to run the gate');
          } else if (c.name.includes('header-routing')) {
            assert.equal(odl['use_http_header'], true);
            assert.equal(odl['http_header_name'] ?? ROUTE_HEADER, ROUTE_HEADER);
            assert.match(c.text, /--route-header x-envoy-original-dst-host/, 'documents how to run the gate');
          } else {
            assert.deepEqual(odl['metadata_key'], { key: METADATA_NAMESPACE, path: [{ key: METADATA_UPSTREAM_HOST }] });
            assert.equal(odl['use_http_header'], undefined, 'no header routing next to metadata routing');
          }
        }
      });

      it(viaHttp ? "reaches the gate's HTTP forward-auth port" : 'reaches the gate over HTTP/2 and health-checks it with grpc.health.v1', () => {
        if (viaHttp) {
          const gate = cluster(ext['http_service']['server_uri']['cluster']);
          assert.equal(gate['load_assignment']['endpoints'][0]['lb_endpoints'][0]['endpoint']['address']['socket_address']['port_value'], 9192);
          assert.ok(gate['circuit_breakers']['thresholds'].length > 0);
          return;
        }
        const gate = cluster(ext['grpc_service']['envoy_grpc']['cluster_name']);
        const opts = gate['typed_extension_protocol_options']['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
        assert.ok(opts['explicit_http_config']['http2_protocol_options'], 'HTTP/2 to the gate');
        const hc = (gate['health_checks'] as Obj[])[0]!;
        assert.equal(hc['grpc_health_check']['service_name'], 'envoy.service.auth.v3.Authorization');
        assert.equal(gate['type'], 'STRICT_DNS');
        assert.equal(gate['load_assignment']['endpoints'][0]['lb_endpoints'][0]['endpoint']['address']['socket_address']['port_value'], 9191);
        assert.ok(gate['circuit_breakers']['thresholds'].length > 0);
      });

      it('keeps the admin interface on loopback and logs the gate decision', () => {
        assert.deepEqual(doc['admin']['address']['socket_address'], { address: '127.0.0.1', port_value: 9901 });
        const log = JSON.stringify(hcm['access_log']);
        // http_service: dynamic metadata from the gate's response headers, keyed by header name.
        const reasonKey = viaHttp ? REASON_HEADER : 'reason';
        const idKey = viaHttp ? DECISION_ID_HEADER : 'decision_id';
        assert.ok(log.includes(`"gate_reason":"%DYNAMIC_METADATA(${METADATA_NAMESPACE}:${reasonKey})%"`));
        assert.ok(log.includes(`"gate_decision_id":"%DYNAMIC_METADATA(${METADATA_NAMESPACE}:${idKey})%"`));
        assert.ok(log.includes('%REQ(X-PLUGIN-ID)%'));
      });
    });
  }
});

describe('the proto checker catches broken configurations', () => {
  const base = parse(readFileSync(join(DEPLOY, 'envoy/envoy.yaml'), 'utf8')) as Obj;
  const daemonHcm = (d: Obj): Obj => hcmOf(daemonListener(d));
  const extOf = (d: Obj): Obj => (daemonHcm(d)['http_filters'] as Obj[])[0]!['typed_config'];
  const gateCluster = (d: Obj): Obj => (d['static_resources']['clusters'] as Obj[]).find((x) => x['name'] === 'plugin_gate')!;
  const errorsAfter = (mutate: (d: Obj) => void): string[] => {
    const d = clone(base);
    mutate(d);
    return checkMessage(BOOTSTRAP, d);
  };
  const expectError = (mutate: (d: Obj) => void, pattern: RegExp): void => {
    const errs = errorsAfter(mutate);
    assert.ok(errs.some((e) => pattern.test(e)), `expected an error matching ${pattern}, got ${JSON.stringify(errs)}`);
  };

  it('accepts the unmodified base, and camelCase JSON names as well as snake_case', () => {
    assert.deepEqual(checkMessage(BOOTSTRAP, base), []);
    assert.deepEqual(
      errorsAfter((d) => {
        const c = gateCluster(d);
        c['connectTimeout'] = c['connect_timeout'];
        delete c['connect_timeout'];
        d['staticResources'] = d['static_resources'];
        delete d['static_resources'];
      }),
      [],
    );
  });

  it('rejects an unknown field, also inside an Any-typed config', () => {
    expectError((d) => (gateCluster(d)['conect_timeout'] = '1s'), /conect_timeout: unknown field of envoy\.config\.cluster\.v3\.Cluster/);
    expectError((d) => (extOf(d)['failure_mode_allows'] = false), /failure_mode_allows: unknown field of envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthz/);
  });

  it('rejects a field given under both of its names', () => {
    expectError((d) => (gateCluster(d)['connectTimeout'] = '1s'), /given twice/);
  });

  it('rejects wrong scalar types', () => {
    expectError((d) => (d['admin']['address']['socket_address']['port_value'] = 'ninety'), /port_value: expected uint32/);
    expectError((d) => (extOf(d)['failure_mode_allow'] = 'false'), /failure_mode_allow: expected bool/);
    expectError((d) => (d['admin']['address']['socket_address']['port_value'] = 70000), /port_value: must be <= 65535/);
  });

  it('rejects an unknown enum name', () => {
    expectError((d) => (gateCluster(d)['lb_policy'] = 'ROUND_ROBINN'), /unknown envoy\.config\.cluster\.v3\.Cluster\.LbPolicy value "ROUND_ROBINN"/);
    expectError((d) => (extOf(d)['status_on_error']['code'] = 'Unavailable'), /unknown envoy\.type\.v3\.StatusCode value/);
  });

  it('rejects an unknown Any @type', () => {
    expectError(
      (d) => ((daemonHcm(d)['http_filters'] as Obj[])[0]!['typed_config']['@type'] = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzz'),
      /@type: unknown message type "envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthzz"/,
    );
  });

  it('reads Durations as protobuf strings only', () => {
    expectError((d) => (extOf(d)['grpc_service']['timeout'] = 0.25), /timeout: expected a duration string/);
    expectError((d) => (extOf(d)['grpc_service']['timeout'] = '250ms'), /timeout: expected a duration string/);
  });

  it('takes wrapper types as plain values and Struct as free-form', () => {
    expectError((d) => ((gateCluster(d)['health_checks'] as Obj[])[0]!['unhealthy_threshold'] = { value: 2 }), /unhealthy_threshold: expected uint32/);
    assert.deepEqual(
      errorsAfter((d) => (gateCluster(d)['metadata'] = { filter_metadata: { anything: { goes: [1, 'two', { three: null }], here: true } } })),
      [],
    );
  });

  it('rejects two members of one oneof', () => {
    expectError((d) => (extOf(d)['http_service'] = { server_uri: { uri: 'http://gate', cluster: 'plugin_gate', timeout: '1s' } }), /oneof services already set/);
  });

  it('enforces the protoc-gen-validate rules Envoy checks at load time', () => {
    expectError((d) => (gateCluster(d)['name'] = ''), /string min_len is 1, got 0/);
    expectError((d) => delete daemonHcm(d)['route_config'], /one of rds, route_config, scoped_routes is required/);
    expectError((d) => delete (gateCluster(d)['health_checks'] as Obj[])[0]!['timeout'], /timeout: required field of envoy\.config\.core\.v3\.HealthCheck is missing/);
  });

  it('rejects deprecated fields', () => {
    const { root } = loadEnvoyProtos();
    const clusterType = root.lookupType('envoy.config.cluster.v3.Cluster');
    const deprecated = clusterType.fieldsArray.find((f: protobuf.Field) => f.options?.['deprecated'] === true && f.type === 'bool');
    assert.ok(deprecated, 'the Cluster message still has a deprecated bool field to try');
    expectError((d) => (gateCluster(d)[deprecated.name] = false), /deprecated field of envoy\.config\.cluster\.v3\.Cluster/);
    expectError((d) => (extOf(d)['transport_api_version'] = 'V2'), /deprecated envoy\.config\.core\.v3\.ApiVersion value "V2"/);
  });

  it('rejects fields of the wrong shape: list for a message, object for a list, bad map keys', () => {
    expectError((d) => (d['admin']['address'] = [d['admin']['address']]), /admin\.address: expected an object/);
    expectError((d) => (d['static_resources']['clusters'] = { plugin_gate: gateCluster(d) }), /clusters: expected a list/);
    expectError((d) => (gateCluster(d)['typed_extension_protocol_options'] = ['x']), /typed_extension_protocol_options: expected a map/);
  });
});

/** RFC 6902 add / remove / replace on a JSON document, for the EnvoyPatchPolicy. */
function applyPatch(doc: Obj, op: { op: string; path: string; value?: unknown }): void {
  const parts = op.path
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = parts.pop();
  assert.ok(last !== undefined, `patch path ${op.path}`);
  let parent: any = doc;
  for (const p of parts) {
    parent = parent[p];
    assert.ok(parent !== undefined, `patch path ${op.path} exists`);
  }
  if (op.op === 'remove') {
    assert.ok(last in parent, `remove ${op.path}: the member exists (else Envoy Gateway rejects the policy)`);
    delete parent[last];
  } else if (op.op === 'add') parent[last] = clone(op.value);
  else if (op.op === 'replace') {
    assert.ok(last in parent, `replace ${op.path}: the member exists`);
    parent[last] = clone(op.value);
  } else assert.fail(`unsupported patch op ${op.op}`);
}

describe('Envoy Gateway EnvoyPatchPolicy', () => {
  const policy = parse(readFileSync(join(DEPLOY, 'envoy-gateway/envoy-patch-policy.yaml'), 'utf8')) as Obj;
  const routes = parseAllDocuments(readFileSync(join(DEPLOY, 'envoy-gateway/httproute.yaml'), 'utf8')).map((d) => d.toJS() as Obj);
  const route = routes.find((r) => r['kind'] === 'HTTPRoute')!;
  const clusterName = `httproute/${route['metadata']['namespace']}/${route['metadata']['name']}/rule/0`;

  // The cluster Envoy Gateway generates for a Service backendRef (protojson, as the patch sees it):
  // EDS, least-request, locality-weighted. Shape taken from `egctl config envoy-proxy cluster`
  // output of v1.x; fields EG may add beyond these are left untouched by the patch.
  const generated: Obj = {
    name: clusterName,
    type: 'EDS',
    edsClusterConfig: { edsConfig: { ads: {}, resourceApiVersion: 'V3' }, serviceName: clusterName },
    connectTimeout: '10s',
    lbPolicy: 'LEAST_REQUEST',
    commonLbConfig: { localityWeightedLbConfig: {} },
    perConnectionBufferLimitBytes: 32768,
    dnsLookupFamily: 'V4_PREFERRED',
    ignoreHealthOnHostRemoval: true,
    circuitBreakers: { thresholds: [{ maxRetries: 1024 }] },
  };

  it('patches only the daemon route cluster', () => {
    assert.equal(policy['spec']['type'], 'JSONPatch');
    assert.equal(policy['spec']['targetRef']['kind'], 'Gateway');
    assert.equal(policy['spec']['targetRef']['name'], route['spec']['parentRefs'][0]['name']);
    assert.equal(route['spec']['rules'].length, 1, 'one rule, so one generated cluster');
    for (const p of policy['spec']['jsonPatches'] as Obj[]) {
      assert.equal(p['type'], 'type.googleapis.com/envoy.config.cluster.v3.Cluster');
      assert.equal(p['name'], clusterName);
    }
  });

  it('turns the generated cluster into a valid ORIGINAL_DST cluster routed by the gate metadata', () => {
    assert.deepEqual(checkMessage('envoy.config.cluster.v3.Cluster', generated), [], 'the stand-in for the generated cluster is itself valid');
    const patched = clone(generated);
    for (const p of policy['spec']['jsonPatches'] as Obj[]) applyPatch(patched, p['operation']);
    assert.deepEqual(checkMessage('envoy.config.cluster.v3.Cluster', patched), []);
    assert.equal(patched['type'], 'ORIGINAL_DST');
    assert.equal(patched['lbPolicy'], 'CLUSTER_PROVIDED');
    assert.equal(patched['edsClusterConfig'], undefined);
    assert.deepEqual(patched['commonLbConfig'], {});
    assert.deepEqual(patched['originalDstLbConfig'], { metadataKey: { key: METADATA_NAMESPACE, path: [{ key: METADATA_UPSTREAM_HOST }] } });
  });
});
