// The one way tests, benchmarks and chaos runs pick a free loopback port.

import { createServer } from 'node:net';

const handedOut = new Set<number>();

/**
 * A port free right now, outside the kernel's ephemeral range (32768-60999 here), so that no
 * outgoing connection of another process can take it between this check and the server's bind,
 * and never the same one twice in this process.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (handedOut.has(port)) continue;
    const free = await new Promise<boolean>((res) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', () => res(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
    });
    if (free) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port found in 20000-31999');
}
