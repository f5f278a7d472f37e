#!/usr/bin/env node
/**
 * `npm run demo`: a FAT "USB stick" mounted through udisks2 into fusegate's
 * sandbox, on a real systemd, narrated for a person watching.
 *
 * It boots systemd in a container (the e2e harness: test/e2e/), runs
 * `fusegate install` there, puts a FAT image with a few files on a loop
 * device, and shows what happens when udisks2 mounts it: the helper's
 * decision, the mount, the sandboxed fusegate-vfat@….service serving it
 * read-write, the files (and one copied on),
 * `fusegate status`, the unmount, and that the service instance is gone.
 * Then it tears everything down. Every command it runs is printed with its
 * output; it exits non-zero if any step fails.
 *
 * Run as root on a Debian 12 machine with /dev/fuse and loop devices (the
 * first run builds the container's root, about 45 s).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Container, type ExecResult, type LoopDevice, attachLoop, e2eAvailable } from '../test/e2e/harness';
import { makeImage, sampleFiles } from '../test/e2e/images';
import { listUnits, waitForNoUnits } from '../test/e2e/scenario';
import { type HostUdev, startHostUdev } from '../test/e2e/udev';

const REPO = resolve(__dirname, '../..');
const LABEL = 'FGSTICK';
const MEDIA = `/media/root/${LABEL}`;

const out = (s = '') => process.stdout.write(`${s}\n`);
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

function say(text: string): void {
  out();
  out(bold(`== ${text}`));
}

function indent(text: string): string {
  return text
    .replace(/\s+$/, '')
    .split('\n')
    .map((l) => `   ${l}`)
    .join('\n');
}

/** How a person would type the argument in a shell. */
function shellQuote(a: string): string {
  if (!/[\s*'"|;&<>()$\\?]/.test(a)) return a;
  if (!a.includes("'")) return `'${a}'`;
  return `"${a.replace(/["$`\\]/g, (ch) => `\\${ch}`)}"`;
}

class StepFailed extends Error {}

let failures = 0;

/** Runs a command inside the container, printing it and its output; fails the demo unless `ok(r)`. */
async function show(c: Container, argv: string[], opts: { ok?: (r: ExecResult) => boolean; note?: string } = {}): Promise<ExecResult> {
  out(`${dim('container#')} ${argv.map(shellQuote).join(' ')}`);
  const r = await c.exec(argv, { timeoutMs: 60_000 });
  const text = `${r.stdout}${r.stderr ? (r.stdout ? '\n' : '') + r.stderr : ''}`;
  if (text.trim() !== '') out(indent(text));
  const ok = opts.ok ? opts.ok(r) : r.code === 0;
  if (!ok) {
    failures++;
    throw new StepFailed(`step failed: ${argv.join(' ')} (exit ${r.timedOut ? 'timeout' : r.code})${opts.note ? `: ${opts.note}` : ''}`);
  }
  return r;
}

async function main(): Promise<number> {
  const avail = e2eAvailable();
  if (!avail.ok) {
    process.stderr.write(`demo: this machine cannot boot the demo container: ${avail.why}\n`);
    return 2;
  }
  let scratch = '';
  let loop: LoopDevice | undefined;
  let udev: HostUdev | undefined;
  let c: Container | undefined;
  let tornDown = false;
  const teardown = async (): Promise<void> => {
    if (tornDown) return;
    tornDown = true;
    say('Tearing down: the container, the loop device, the host udevd, the image');
    await c?.stop().catch((e: Error) => out(`   container: ${e.message}`));
    await loop?.detach().catch((e: Error) => out(`   loop device: ${e.message}`));
    await udev?.stop().catch((e: Error) => out(`   udevd: ${e.message}`));
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    out('   done: nothing of the demo is left on this machine.');
  };
  process.once('SIGINT', () => {
    void teardown().then(() => process.exit(130));
  });

  try {
    out(bold('fusegate demo: a FAT USB stick, mounted by udisks2, served from a sandbox'));
    out('This kernel has no FAT driver at all: if the stick mounts, a sandboxed FUSE server is serving it.');

    say('A "USB stick": a 16 MiB FAT image with a few files, on a loop device');
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-demo-'));
    const image = join(scratch, 'stick.img');
    await makeImage('vfat', image, { scratch, label: LABEL });
    loop = await attachLoop(image);
    out(`   ${image} (label ${LABEL}, ${sampleFiles().size} files) on ${loop.path}`);

    say('udev data for udisks2: a systemd-udevd on the host, for the length of the demo');
    udev = await startHostUdev({ log: (l) => out(`   ${l}`) });
    await udev.coldplug([loop.path]);
    out(`   udev knows ${loop.path} now (/run/udev/data)`);

    say('Booting systemd in a container (systemd-nspawn over a cached Debian 12 root)');
    c = await Container.boot({ projectDir: REPO, devices: [loop.path], bindUdev: true, log: (l) => out(`   ${l}`) });

    say('Installing fusegate the way an administrator would');
    const inst = await c.install();
    const summary = inst.stdout.split('\n').filter((l) => /^(installed: (mount\.vfat|sockets|units .*fusegate-vfat)|fusegate .* install)/.test(l));
    out(`${dim('container#')} fusegate install`);
    out(indent(`${summary.join('\n')}\n(${inst.stdout.trim().split('\n').length} lines in all)`));

    say('No FAT driver in this kernel; udisks2 sees the stick');
    await show(c, ['sh', '-c', 'grep -w vfat /proc/filesystems || echo "(no vfat in /proc/filesystems)"']);
    await show(c, ['sh', '-c', `udisksctl info -b ${loop.path} | grep -E '^ +(Id(Type|Label|Usage)|Device):'`]);

    say('A desktop would now call udisks2 to mount it; udisks2 runs mount.vfat, which is fusegate');
    await show(c, ['udisksctl', 'mount', '-b', loop.path]);

    say("The helper's decision, from the journal (one structured entry per mount)");
    await show(c, ['journalctl', '--no-pager', '-o', 'cat', 'SYSLOG_IDENTIFIER=fusegate']);
    await show(c, [
      'sh',
      '-c',
      // Only the decision entry carries FUSEGATE_UHELPER.
      "journalctl --no-pager -o verbose SYSLOG_IDENTIFIER=fusegate FUSEGATE_UHELPER=udisks2 | grep -E '^ +(FUSEGATE_[A-Z_]+|_CMDLINE)='",
    ]);

    say("The mount: a FUSE filesystem served by fusegate-vfat, fusegate's own FAT server, read-write");
    await show(c, ['findmnt', '-o', 'TARGET,SOURCE,FSTYPE,OPTIONS', MEDIA]);

    say('The sandbox: one fusegate-vfat@….service instance for this mount, serving it with --jitless Node');
    const units = await listUnits(c, 'fusegate-vfat@*');
    if (units.length !== 1) throw new StepFailed(`expected one fusegate-vfat@ instance, found ${units.length}`);
    const unit = units[0]!.unit;
    await show(c, ['systemctl', 'status', '--no-pager', '--lines=0', unit]);
    await show(c, ['systemctl', 'show', '--property=User,DynamicUser,PrivateDevices,PrivateNetwork,CapabilityBoundingSet,NoNewPrivileges', unit]);

    say('The files');
    await show(c, ['ls', '-l', MEDIA]);
    await show(c, ['cat', `${MEDIA}/README.TXT`]);

    say('Copying a file onto the stick (a FAT stick is writable by default)');
    await show(c, ['cp', '/etc/os-release', `${MEDIA}/número.txt`]);
    await show(c, ['ls', '-l', `${MEDIA}/número.txt`]);

    say('fusegate status pairs the mount with its sandbox');
    await show(c, ['fusegate', 'status']);

    say('Unmounting through udisks2');
    try {
      await show(c, ['udisksctl', 'unmount', '-b', loop.path], {
        note: 'udisks2 does not see the sandboxed mount as belonging to the device (a plain fuse mount; see the report)',
      });
    } catch (e) {
      if (!(e instanceof StepFailed)) throw e;
      out(`   ${bold('FAILED')}: ${e.message}`);
      out('   unmounting with umount(8) instead, so the demo can show the clean-up:');
      await show(c, ['umount', MEDIA]);
    }

    say('Nothing is left: no mount, and the service instance is gone');
    await show(c, ['sh', '-c', `findmnt ${MEDIA} || echo "(${MEDIA} is not mounted)"`]);
    const left = await waitForNoUnits(c, 'fusegate-vfat@*');
    await show(c, ['systemctl', 'list-units', '--all', '--no-pager', 'fusegate-vfat@*'], {
      ok: (r) => r.code === 0 && left.length === 0,
    });
  } catch (e) {
    if (!(e instanceof StepFailed)) failures++;
    out();
    out(bold(`demo failed: ${(e as Error).message}`));
  } finally {
    await teardown();
  }
  out();
  out(failures === 0 ? bold('demo finished: every step worked') : bold(`demo finished with ${failures} failed step(s)`));
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(4);
  },
);
