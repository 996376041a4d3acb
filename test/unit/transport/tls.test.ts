import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { HelloRequestSchema, type HelloResponse } from '../../../gen/raftd/v1/raft_pb.js';
import { TransportError } from '../../../daemon/transport/errors.js';
import { helloMethod } from '../../../daemon/transport/service.js';
import { GrpcTransport } from '../../../daemon/transport/transport.js';
import { appMsg, freePort, makeNode, until, type TestNode } from './helpers.js';

// Real certificates, made here with the openssl CLI: a CA, node certs it signs, and a rogue
// CA with a cert of its own that must be refused.
function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', `/CN=${name}`);
}

function makeCert(dir: string, ca: string, name: string): { caFile: string; certFile: string; keyFile: string } {
  writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  return { caFile: join(dir, 'ca.crt'), certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
}

describe('GrpcTransport mutual TLS', function () {
  this.timeout(30000);
  let dir: string;
  let tls1: ReturnType<typeof makeCert>;
  let tls2: ReturnType<typeof makeCert>;
  let rogue: ReturnType<typeof makeCert>;
  const open: TestNode[] = [];
  const track = (n: TestNode): TestNode => (open.push(n), n);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'raftd-tls-test-'));
    makeCa(dir, 'ca');
    makeCa(dir, 'rogue-ca');
    tls1 = makeCert(dir, 'ca', 'node1');
    tls2 = makeCert(dir, 'ca', 'node2');
    // Signed by the rogue CA, but trusting the real CA: a stranger who knows the address.
    rogue = makeCert(dir, 'rogue-ca', 'rogue');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await Promise.all(open.splice(0).map((n) => n.t.close()));
  });

  it('carries messages and snapshots between peers with certificates from the CA', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = track(makeNode(1, pa, [[2, pb]], { tls: tls1 }));
    const b = track(makeNode(2, pb, [[1, pa]], { tls: tls2 }));
    await Promise.all([a.t.start(), b.t.start()]);
    a.t.send(2, [{ group: 1, message: appMsg(1, 2, 0) }]);
    b.t.send(1, [{ group: 1, message: appMsg(2, 1, 5) }]);
    await until(() => b.received() === 1 && a.received() === 1, 5000, 'both directions');
    async function* one(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('state');
    }
    await a.t.sendSnapshot(2, { group: 1, from: 1, to: 2, term: 1, metadata: { index: 5, term: 1, confState: { voters: [1, 2], learners: [] } } }, one());
    expect(b.snapshots[0]!.bytes.toString()).to.equal('state');
  });

  it('refuses a peer whose certificate is not signed by the CA', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = track(makeNode(2, pb, [], { tls: tls2 }));
    const r = track(makeNode(1, pa, [[2, pb]], { tls: rogue }));
    await Promise.all([b.t.start(), r.t.start()]);
    r.t.send(2, [{ group: 1, message: appMsg(1, 2, 0) }]);
    await until(() => r.t.unreachablePeers().includes(2), 5000, 'rogue refused');
    await new Promise((res) => setTimeout(res, 200));
    expect(b.received()).to.equal(0);
  });

  it('refuses a client without any certificate, and a plaintext client', async () => {
    const pb = await freePort();
    const b = track(makeNode(2, pb, [], { tls: tls2 }));
    await b.t.start();
    const hello = (creds: grpc.ChannelCredentials): Promise<grpc.ServiceError | HelloResponse> => {
      const client = new grpc.Client(b.addr, creds);
      return new Promise<grpc.ServiceError | HelloResponse>((resolve) => {
        client.makeUnaryRequest(helloMethod.path, helloMethod.requestSerialize, helloMethod.responseDeserialize, create(HelloRequestSchema, { clusterId: 'test' }), new grpc.Metadata(), { deadline: Date.now() + 3000 }, (err, res) => resolve(err ?? res!));
      }).finally(() => client.close());
    };
    const ca = readFileSync(tls2.caFile);
    const noCert = await hello(grpc.credentials.createSsl(ca));
    expect(noCert).to.have.property('code', grpc.status.UNAVAILABLE);
    const plain = await hello(grpc.credentials.createInsecure());
    expect(plain).to.have.property('code', grpc.status.UNAVAILABLE);
    // Control: the same call with a valid client certificate succeeds.
    const good = await hello(grpc.credentials.createSsl(ca, readFileSync(tls1.keyFile), readFileSync(tls1.certFile)));
    // With certificates and no cluster secret, Hello names the node to an authenticated caller.
    expect(good).to.have.property('nodeId', 2n);
  });

  it('fails fast with TLS_CONFIG when a certificate file is missing', () => {
    expect(() => new GrpcTransport({ nodeId: 1, clusterId: 'x', listenAddr: '127.0.0.1:0', peers: new Map(), tls: { ...tls1, certFile: join(dir, 'nope.crt') } }, { onMessages: () => undefined, onSnapshot: async () => undefined }))
      .to.throw(TransportError)
      .with.property('code', 'TLS_CONFIG');
  });
});
