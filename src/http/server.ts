// The HTTP server around the app's request listener: listening with the keep-alive settings a
// load balancer needs, and closing while requests in flight finish.
import { createServer, type RequestListener, type Server } from 'node:http';
import type { Config } from '../config.ts';

export function listen(listener: RequestListener, config: Config): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(listener);
    server.listen(config.PORT, config.HOST, () => resolve(server));
    // A load balancer that reuses an idle connection at the moment this server closes it gets a
    // reset and answers the sender 502. The server must keep idle connections longer than the
    // balancer does (AWS ALB: 60 s), so its timeout is configurable; Node's own is 5 s. Headers
    // of a request on a kept connection must be allowed at least as long.
    server.keepAliveTimeout = config.HTTP_KEEP_ALIVE_TIMEOUT_MS;
    server.headersTimeout = Math.max(server.headersTimeout, config.HTTP_KEEP_ALIVE_TIMEOUT_MS + 1000);
    server.once('error', reject);
  });
}

// server.close() stops listening and closes idle keep-alive sockets once; a socket busy with a
// request becomes idle again afterwards, so keep closing idle ones until the server reports done.
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    server.close(() => {
      clearInterval(sweep);
      resolve();
    });
  });
}
