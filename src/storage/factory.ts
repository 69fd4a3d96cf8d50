import type { Config } from '../config/schema';
import type { StorageDriver } from './driver';
import { LocalDriver } from './local-driver';

/** The configured storage driver, initialised and checked. */
export async function createDriver(config: Config): Promise<StorageDriver> {
  switch (config.storage.driver) {
    case 'local': {
      const driver = new LocalDriver(config.storage.local);
      await driver.init();
      return driver;
    }
    default:
      throw new Error(`unknown storage driver ${String(config.storage.driver)}`);
  }
}
