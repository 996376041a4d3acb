import { expect } from 'chai';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, helpText, loadConfig, OPTIONS, parsePeers } from '../../../daemon/config.js';
import { ensureSecretsDir, resolveSecret, SecretError } from '../../../protocol/secrets.js';

describe('raftd config', () => {
  it('has defaults for every option, printed by --help', () => {
    const cfg = loadConfig(['--insecure'], {});
    expect(cfg.id).to.equal(1);
    expect(cfg.tickMs).to.equal(100);
    expect(cfg.appUrl).to.equal('memory:');
    const help = helpText();
    for (const o of OPTIONS) {
      expect(help).to.contain(o.flag);
      expect(help).to.contain(o.env);
    }
  });

  it('takes environment variables, and flags over them', () => {
    const cfg = loadConfig(['--id', '3', '--raft-addr=127.0.0.1:7003'], { RAFTD_ID: '2', RAFTD_TICK_MS: '50', RAFT_SYNC: '1', RAFTD_INSECURE: '1' });
    expect(cfg.id).to.equal(3);
    expect(cfg.tickMs).to.equal(50);
    expect(cfg.sync).to.equal(true);
    expect(cfg.raftAddr).to.equal('127.0.0.1:7003');
  });

  it('parses peers and refuses duplicates and bad addresses with one clear line', () => {
    expect([...parsePeers('1=127.0.0.1:7001, 2=localhost:7002')]).to.deep.equal([
      [1, '127.0.0.1:7001'],
      [2, 'localhost:7002'],
    ]);
    expect(() => parsePeers('1=a:1,1=b:2')).to.throw(ConfigError, /appears twice/);
    expect(() => parsePeers('1=a:1,2=a:1')).to.throw(ConfigError, /share the address/);
    expect(() => parsePeers('1=nohost')).to.throw(ConfigError, /not host:port/);
    expect(() => parsePeers('x=a:1')).to.throw(ConfigError, /not id=host:port/);
    expect(() => parsePeers('1=a:70000')).to.throw(ConfigError, /out of range/);
  });

  it('takes secrets from files or the environment, never from flag values, and requires them by default', () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftd-secrets-'));
    const paths = ensureSecretsDir(join(dir, 's'));
    expect(statSync(paths.apiToken).mode & 0o777).to.equal(0o600);
    const again = readFileSync(paths.apiToken, 'utf8');
    ensureSecretsDir(join(dir, 's'));
    expect(readFileSync(paths.apiToken, 'utf8')).to.equal(again); // kept, not regenerated
    const cfg = loadConfig(['--secrets-dir', join(dir, 's'), '--app-url', 'http://127.0.0.1:1'], {});
    expect(cfg.apiToken).to.equal(again.trim());
    expect(cfg.adminToken).to.have.length.greaterThan(30);
    expect(cfg.adminToken).to.not.equal(cfg.apiToken);
    expect(cfg.appSecret).to.have.length.greaterThan(30);
    expect(cfg.clusterSecret).to.have.length.greaterThan(30);
    // A secret of its own wins over the directory; the environment holds a value or a path.
    writeFileSync(join(dir, 'tok'), 'a-token-from-its-own-file\n');
    expect(loadConfig(['--secrets-dir', join(dir, 's'), '--api-token-file', join(dir, 'tok')], {}).apiToken).to.equal('a-token-from-its-own-file');
    expect(loadConfig(['--secrets-dir', join(dir, 's')], { RAFTD_API_TOKEN: 'a-token-from-the-environment' }).apiToken).to.equal('a-token-from-the-environment');
    expect(loadConfig(['--secrets-dir', join(dir, 's')], { RAFTD_API_TOKEN_FILE: join(dir, 'tok') }).apiToken).to.equal('a-token-from-its-own-file');
    // Secure by default: nothing given is refused with one line naming what is missing.
    expect(() => loadConfig([], {})).to.throw(ConfigError, /no --api-token-file, --admin-token-file, --cluster-secret-file/);
    expect(() => loadConfig(['--secrets-dir', join(dir, 'none')], {})).to.throw(ConfigError, /--api-token-file/);
    // A secret as a flag value is refused (ps shows it), and so are weak or empty ones.
    expect(() => loadConfig(['--api-token', 's3cret-s3cret-s3cret'], {})).to.throw(ConfigError, /not taken on the command line/);
    writeFileSync(join(dir, 'short'), 'abc\n');
    expect(() => loadConfig(['--insecure', '--api-token-file', join(dir, 'short')], {})).to.throw(ConfigError, /shorter than/);
    writeFileSync(join(dir, 'empty'), '\n');
    expect(() => loadConfig(['--insecure', '--api-token-file', join(dir, 'empty')], {})).to.throw(ConfigError, /empty/);
    expect(() => loadConfig(['--insecure', '--api-token-file', join(dir, 'missing')], {})).to.throw(ConfigError, /cannot read/);
    // An operator's own secret (a ClickHouse password) may be short, never empty.
    expect(resolveSecret(join(dir, 'short'), 'X', {}, 'a password', 1)).to.equal('abc');
    expect(() => resolveSecret(join(dir, 'empty'), 'X', {}, 'a password', 1)).to.throw(SecretError, /empty/);
    expect(() => resolveSecret(join(dir, 'short'), 'X', {}, 'a token')).to.throw(SecretError, /shorter than 16/);
    writeFileSync(join(dir, 'same'), 'the-same-token-for-both\n');
    expect(() => loadConfig(['--secrets-dir', join(dir, 's'), '--api-token-file', join(dir, 'same'), '--admin-token-file', join(dir, 'same')], {})).to.throw(ConfigError, /must differ/);
  });

  it('checks the whole configuration', () => {
    const I = { RAFTD_INSECURE: '1' };
    expect(() => loadConfig(['--peers', '2=127.0.0.1:7002'], I)).to.throw(ConfigError, /does not list this node/);
    expect(() => loadConfig(['--peers', '1=127.0.0.1:9999'], I)).to.throw(ConfigError, /--raft-addr is/);
    expect(() => loadConfig(['--bogus'], I)).to.throw(ConfigError, /unknown option/);
    expect(() => loadConfig(['--id'], I)).to.throw(ConfigError, /needs a value/);
    expect(() => loadConfig(['--tick-ms', 'fast'], I)).to.throw(ConfigError, /not a non-negative integer/);
    expect(() => loadConfig(['--election-ticks', '1', '--heartbeat-ticks', '1'], I)).to.throw(ConfigError, /greater than/);
    expect(() => loadConfig(['--app-url', 'ftp://x'], I)).to.throw(ConfigError, /not an http/);
    expect(() => loadConfig(['--apply-linger-ms', '60001'], I)).to.throw(ConfigError, /apply-linger-ms must be between/);
    expect(loadConfig(['--apply-linger-ms', '0'], I).applyLingerMs).to.equal(0);
    expect(() => loadConfig(['--tls-ca', 'a.pem'], I)).to.throw(ConfigError, /all of/);
  });
});
