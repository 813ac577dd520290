// Entry point: parse config, make the logger, hand over to runService (src/service.ts), which
// opens the database, migrates, starts HTTP and/or workers by ROLE, and handles SIGTERM/SIGINT.
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createLogger } from './log.ts';
import { runService } from './service.ts';
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

const config = readConfig();
await runService({ config, log: createLogger(config.LOG_LEVEL), startWorkers });
