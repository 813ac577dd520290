// A TCP proxy in front of the test Postgres, so a test can make the database vanish (refuse
// connections, or accept and then say nothing) and come back, without stopping the shared server.
import net from 'node:net';

export type Proxy = {
  url: (databaseUrl: string) => string;
  /** Drop every connection and refuse new ones. */
  down: () => Promise<void>;
  /** Accept connections but never answer: a database that hangs. */
  hang: () => void;
  up: () => Promise<void>;
  close: () => Promise<void>;
};

export async function startProxy(target: { host: string; port: number }): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  let mode: 'up' | 'hang' = 'up';
  let server: net.Server | undefined;
  let port = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        sockets.add(client);
        client.on('close', () => sockets.delete(client));
        client.on('error', () => {});
        if (mode === 'hang') return;
        const upstream = net.connect(target.port, target.host);
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as net.AddressInfo).port;
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      sockets.clear();
      if (server) server.close(() => resolve());
      else resolve();
      server = undefined;
    });

  await listen();
  return {
    url: (databaseUrl) => {
      const u = new URL(databaseUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    down: stop,
    hang: () => {
      mode = 'hang';
      for (const s of sockets) s.destroy();
    },
    up: async () => {
      mode = 'up';
      if (!server) await listen();
    },
    close: stop,
  };
}
