// `npm start`: parse the config, make the logger, start the service (src/service.ts: database,
// migrations, HTTP and/or workers by ROLE), and own the process's signals and exit status.
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createLogger } from './log.ts';
import { startService, type Service, type ServiceOptions } from './service.ts';
import { startWorkers } from './worker/index.ts';

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`webhook-inbox: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/**
 * `npm start`: startService, then SIGTERM/SIGINT run the ordered shutdown and exit 0, or exit 1
 * if it takes longer than SHUTDOWN_TIMEOUT_MS. A failure to start exits 1.
 */
async function runService(options: ServiceOptions): Promise<void> {
  const { config, log } = options;
  let service: Service | undefined;
  let signalled: string | undefined;

  const shutdown = async (signal: string) => {
    if (signalled) {
      log.warn({ signal }, 'already shutting down');
      return;
    }
    signalled = signal;
    const force = setTimeout(() => {
      log.error({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS }, 'shutdown took longer than SHUTDOWN_TIMEOUT_MS; exiting anyway');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    force.unref();
    // A signal during startup is acted on once startup is done (or failed).
    if (!service) return;
    await service.stop(signal);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  try {
    service = await startService(options);
  } catch {
    process.exit(1);
  }
  if (signalled) {
    await service.stop(signalled);
    process.exit(0);
  }
}

const config = readConfig();
await runService({ config, log: createLogger(config.LOG_LEVEL), startWorkers });
