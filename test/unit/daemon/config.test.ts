import { expect } from 'chai';
import { ConfigError, helpText, loadConfig, OPTIONS, parsePeers } from '../../../daemon/config.js';

describe('raftd config', () => {
  it('has defaults for every option, printed by --help', () => {
    const cfg = loadConfig([], {});
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
    const cfg = loadConfig(['--id', '3', '--raft-addr=127.0.0.1:7003'], { RAFTD_ID: '2', RAFTD_TICK_MS: '50', RAFT_SYNC: '1' });
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

  it('checks the whole configuration', () => {
    expect(() => loadConfig(['--peers', '2=127.0.0.1:7002'], {})).to.throw(ConfigError, /does not list this node/);
    expect(() => loadConfig(['--peers', '1=127.0.0.1:9999'], {})).to.throw(ConfigError, /--raft-addr is/);
    expect(() => loadConfig(['--bogus'], {})).to.throw(ConfigError, /unknown option/);
    expect(() => loadConfig(['--id'], {})).to.throw(ConfigError, /needs a value/);
    expect(() => loadConfig(['--tick-ms', 'fast'], {})).to.throw(ConfigError, /not a non-negative integer/);
    expect(() => loadConfig(['--election-ticks', '1', '--heartbeat-ticks', '1'], {})).to.throw(ConfigError, /greater than/);
    expect(() => loadConfig(['--app-url', 'ftp://x'], {})).to.throw(ConfigError, /not an http/);
    expect(() => loadConfig(['--apply-linger-ms', '60001'], {})).to.throw(ConfigError, /apply-linger-ms must be between/);
    expect(loadConfig(['--apply-linger-ms', '0'], {}).applyLingerMs).to.equal(0);
    expect(() => loadConfig(['--tls-ca', 'a.pem'], {})).to.throw(ConfigError, /all of/);
    expect(() => loadConfig(['--http-addr', '0.0.0.0:8001'], {})).to.throw(ConfigError, /api-token/);
    expect(loadConfig(['--http-addr', '0.0.0.0:8001', '--api-token', 's3cret'], {}).apiToken).to.equal('s3cret');
  });
});
