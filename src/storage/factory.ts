import { checkS3Config } from '../config/cross-checks';
import type { Config } from '../config/schema';
import type { StorageDriver } from './driver';
import { LocalDriver } from './local-driver';
import { describeS3Error, S3Driver } from './s3-driver';

/** The configured storage driver, initialised and checked. */
export async function createDriver(config: Config): Promise<StorageDriver> {
  switch (config.storage.driver) {
    case 'local': {
      const driver = new LocalDriver(config.storage.local);
      await driver.init();
      return driver;
    }
    case 's3':
      return createS3Driver(config.storage.s3);
    default:
      throw new Error(`unknown storage driver ${String(config.storage.driver)}`);
  }
}

async function createS3Driver(s3: Config['storage']['s3']): Promise<S3Driver> {
  checkS3Config(s3);
  const driver = new S3Driver({
    bucket: s3.bucket,
    region: s3.region,
    endpoint: s3.endpoint || undefined,
    forcePathStyle: s3.forcePathStyle,
    prefix: s3.prefix,
    credentials: s3.accessKeyId ? { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } : undefined,
    partSize: s3.partSize,
    concurrency: s3.concurrency,
  });
  try {
    await driver.ping();
  } catch (err) {
    driver.close();
    const where = s3.endpoint ? `endpoint ${s3.endpoint}` : `AWS S3 (region ${s3.region})`;
    throw new Error(`cannot reach bucket ${s3.bucket} at ${where}: ${describeS3Error(err)}`);
  }
  return driver;
}
