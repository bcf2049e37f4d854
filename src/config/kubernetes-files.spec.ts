import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './config.js';
import { configProblems as problems } from '../../test/support/config-problems.js';
import { kubeCredentialProblems, kubeCredentials } from './kubernetes-files.js';

describe('Kubernetes credentials and options', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pg-kcred-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ca.pem'), 'CA');

  it('in a pod: server from KUBERNETES_SERVICE_HOST/PORT, CA, namespace, and the token re-read on every call', async () => {
    const d = mkdtempSync(join(dir, 'sa-'));
    writeFileSync(join(d, 'token'), 'one\n');
    writeFileSync(join(d, 'ca.crt'), 'PEM');
    writeFileSync(join(d, 'namespace'), 'dify');
    const c = kubeCredentials({ kubeconfig: undefined, env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }, serviceAccountDir: d });
    assert.equal(c.server, 'https://[fd00::1]:6443');
    assert.equal(c.namespace, 'dify');
    assert.equal(c.ca?.toString(), 'PEM');
    assert.equal(await c.token(), 'one');
    writeFileSync(join(d, 'token'), 'two\n');
    assert.equal(await c.token(), 'two');
    const missing = kubeCredentialProblems({ kubeconfig: undefined, env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, serviceAccountDir: join(dir, 'nowhere') });
    assert.equal(missing.length, 2, missing.join('\n'));
    assert.match(missing[0]!, /in-cluster CA .*no such file/);
    assert.match(missing[1]!, /in-cluster token .*no such file/);
  });

  it('a kubeconfig: current-context, relative files, tokenFile; exec plugins are refused with a reason', async () => {
    writeFileSync(join(dir, 'tok'), 'file-token');
    const kc = join(dir, 'kc');
    writeFileSync(
      kc,
      'current-context: a\nclusters: [{name: c, cluster: {server: "https://k.example:6443/", certificate-authority: ca.pem}}]\n' +
        'users: [{name: u, user: {tokenFile: tok}}, {name: e, user: {exec: {command: aws}}}]\n' +
        'contexts: [{name: a, context: {cluster: c, user: u, namespace: ns1}}, {name: b, context: {cluster: c, user: e}}]\n',
    );
    const c = kubeCredentials({ kubeconfig: kc, env: {} });
    assert.equal(c.server, 'https://k.example:6443');
    assert.equal(c.ca?.toString(), 'CA');
    assert.equal(c.namespace, 'ns1');
    assert.equal(await c.token(), 'file-token');
    writeFileSync(kc, (await import('node:fs')).readFileSync(kc, 'utf8').replace('current-context: a', 'current-context: b'));
    const p = kubeCredentialProblems({ kubeconfig: kc, env: {} });
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^kubeconfig: .*exec or auth-provider plugin/);
    assert.match(kubeCredentialProblems({ kubeconfig: join(dir, 'absent'), env: {} })[0]!, /^kubeconfig: ".*absent" cannot be read: no such file/);
  });

  it('discovery=kubernetes: one line per bad key, naming it', () => {
    const kc = join(dir, 'ok-kc');
    writeFileSync(kc, 'current-context: a\nclusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n');
    const flags = { discovery: 'kubernetes', kubeconfig: kc };
    const lines = problems(() =>
      loadConfig({ flags: { ...flags, 'kubernetes-namespace': 'Bad_NS', 'kubernetes-port': 'not a port', 'kubernetes-watch-timeout': '1ms' }, env: {}, file: undefined }),
    );
    assert.deepEqual(
      lines.map((l) => l.split(':')[0]),
      ['kubernetes-watch-timeout', 'kubernetes-service', 'kubernetes-namespace', 'kubernetes-port'],
      lines.join('\n'),
    );
    // No namespace anywhere: said once, naming the option.
    assert.deepEqual(problems(() => loadConfig({ flags: { ...flags, 'kubernetes-service': 'plugin-daemon' }, env: {}, file: undefined })), [
      'kubernetes-namespace: (unset) is required: neither the service account nor the kubeconfig context names a namespace',
    ]);
    const c = loadConfig({ flags: { ...flags, 'kubernetes-service': 'plugin-daemon', 'kubernetes-namespace': 'dify', 'kubernetes-port': '5002' }, env: {}, file: undefined });
    assert.deepEqual([c.discovery, c.kubernetesService, c.kubernetesNamespace, c.kubernetesPort, c.kubernetesTimeoutMs, c.kubernetesWatchTimeoutMs], [
      'kubernetes',
      'plugin-daemon',
      'dify',
      '5002',
      10_000,
      60_000,
    ]);
    // Outside a pod without a kubeconfig: one line naming the missing key.
    assert.deepEqual(problems(() => loadConfig({ flags: { discovery: 'kubernetes', 'kubernetes-service': 'x' }, env: {}, file: undefined })), [
      'kubeconfig: (unset) is required with discovery=kubernetes outside a pod: KUBERNETES_SERVICE_HOST is not set, so there is no in-cluster API server',
    ]);
  });
});
