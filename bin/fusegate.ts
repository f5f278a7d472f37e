#!/usr/bin/env node
/**
 * `fusegate` — the administrator's command. Each subcommand lives in the
 * folder of the component it belongs to and is loaded only when asked for, so
 * `fusegate policy check` never pays for D-Bus and `fusegate status` never
 * parses YAML it does not need.
 */
import { isHelpWord } from '../lib/cli-args';
import { FusegateError, MountExit } from '../lib/errors';
import { processIo } from '../lib/output';
import { VERSION } from '../lib/version';

const USAGE = `Usage: fusegate COMMAND [ARGS...]

Mount untrusted filesystems through sandboxed FUSE servers.

Commands:
  policy check [FILE] [--json]
        validate a policy file (default /etc/fusegate/policy.yaml)
  policy explain SOURCE [DIR] [-t TYPE] [-o OPTS] [--uid N] [--json]
        show the facts, every rule tried and the decision for a mount
  install [--root DIR] [--take-over[=TYPE,...]] [--dry-run]
        install the helper, the units (sockets enabled), the default policy
        and the fdmap preload; idempotent
  uninstall [--root DIR] [--purge] [--dry-run]
        remove what install put in place and restore taken-over helpers
  doctor [--root DIR] [--json]
        check everything a sandboxed mount needs, with a fix for each problem
  status [--json]
        list active sandboxed mounts: source, mountpoint, backend, unit, pid, memory
  mount [-r] [-t TYPE] [-o OPTS] SOURCE [DIR]
        as an ordinary user: mount an image or device you can read, through
        the broker (polkit decides; default DIR /run/media/$USER/<label>)
  unmount DIR
        as an ordinary user: unmount what you mounted
  help  show this text
  --version, -V
        print fusegate's version

Each command takes --help. The mount helper is mount.fusegate(8)
(mount.fusegate --help); the policy format is in policy/README.md.`;

type Subcommand = (args: string[]) => Promise<number> | number;

const SUBCOMMANDS: Record<string, () => Subcommand> = {
  policy: () => require('../policy/cli').main,
  install: () => require('../admin/install').installMain,
  uninstall: () => require('../admin/install').uninstallMain,
  doctor: () => require('../admin/doctor').main,
  status: () => require('../admin/status').main,
  mount: () => require('../broker/client').mountMain,
  unmount: () => require('../broker/client').unmountMain,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || isHelpWord(command)) {
    processIo.out(USAGE + '\n');
    return command === undefined ? MountExit.USAGE : MountExit.SUCCESS;
  }
  if (command === '--version' || command === '-V') {
    process.stdout.write(`fusegate ${VERSION}\n`);
    return MountExit.SUCCESS;
  }
  const load = SUBCOMMANDS[command];
  if (load === undefined) {
    processIo.err(`fusegate: unknown command '${command}'; run 'fusegate help' for the list\n`);
    return MountExit.USAGE;
  }
  return load()(rest);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof FusegateError) {
      processIo.err(`fusegate: ${err.message}\n`);
      if (err.hint) processIo.err(`fusegate: ${err.hint}\n`);
      process.exitCode = err.exitCode;
    } else {
      processIo.err(`fusegate: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = MountExit.INTERNAL;
    }
  },
);
