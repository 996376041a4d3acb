// The benches' floor: bare node:http and node:http2 (h2c) servers on loopback that read the request
// body and answer one fixed JSON body, so a client's cost can be measured against doing nothing.
import http from 'node:http';
import http2 from 'node:http2';

/** The answer every floor server gives (an app's empty apply result). */
export const FLOOR_ANSWER = '{"lastLogIndex":0,"results":[]}';

/** An HTTP/1.1 server on h1Port and an h2c server on h2Port, both on 127.0.0.1. */
export function serveFloor(h1Port: number, h2Port: number): void {
  http
    .createServer((req, res) => {
      req.on('data', () => undefined);
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(FLOOR_ANSWER));
    })
    .listen(h1Port, '127.0.0.1');
  const h2 = http2.createServer();
  h2.on('stream', (stream) => {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(FLOOR_ANSWER);
    });
  });
  h2.listen(h2Port, '127.0.0.1');
}
