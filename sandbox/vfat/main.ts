/**
 * Process entry for a sandboxed FAT server:
 *
 *   node --jitless main.js --fuse-fd 3 --device-fd 4 [--ro] [-o uid=1000,gid=1000,...]
 *
 * Serves until unmount, then exits 0. Exit 2: mount refused (bad volume or
 * options, reason on stderr); 1: any other failure.
 */
import { FatError } from './errors';
import { serveFat } from './serve';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  const fuseFd = Number(arg('--fuse-fd') ?? 3);
  const deviceFd = Number(arg('--device-fd') ?? 4);
  const readOnly = process.argv.includes('--ro');
  const options = arg('-o');
  const log = (m: string) => process.stderr.write(`fusegate-vfat: ${m}\n`);
  try {
    await serveFat({ fuseFd, deviceFd, readOnly, options, log });
    return 0;
  } catch (err) {
    if (err instanceof FatError) {
      log(`mount refused: ${err.reason}`);
      return 2;
    }
    log(`failed: ${(err as Error).stack ?? err}`);
    return 1;
  }
}

main().then((code) => process.exit(code));
