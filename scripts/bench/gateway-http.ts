// POSTs to a ClickHouse-style HTTP endpoint (RaftHouse's gateway) for the bench and stress scripts,
// over kept-alive connections.

import * as http from 'node:http';

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** One POST of `body` to `base` with the query string `query`; any status. */
export function post(base: string, query: Record<string, string>, body: Buffer | string): Promise<{ status: number; text: string }> {
  const u = new URL(`${base}/?${new URLSearchParams(query)}`);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The body of a 200 answer; anything else is thrown. */
export async function must(p: Promise<{ status: number; text: string }>): Promise<string> {
  const r = await p;
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text}`);
  return r.text;
}

/** Closes the kept-alive connections. */
export function closeConnections(): void {
  agent.destroy();
}
