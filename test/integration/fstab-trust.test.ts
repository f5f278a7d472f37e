/**
 * Issue 12, finding 2, reproduced as root with real devices: an fstab line
 * `LABEL=backup <dir> ext4 defaults` and an ext4 image labelled `backup`
 * that a user made, attached with losetup (udisks2 lets an active local user
 * do that). The label is copied from the content, so it must not earn the
 * kernel driver: not under the shipped policy, not under the built-in
 * fail-closed rule. A fixed internal disk with the same fstab line still
 * gets the kernel: a zram device stands in for one (only root can create
 * one, as only root can put a disk in the machine). An image file that fstab
 * names by path gets the kernel only when only root can write it.
 *
 * The helper reads FUSEGATE_FSTAB instead of /etc/fstab (helper/args.ts);
 * `policy explain` is given the same file through its facts hook.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../policy/cli';
import { attachLoop, makeImage, realDevicesOrFailInCI, releaseAll, tempDir } from '../support/devices';
import { mountsAt, unmountAll } from '../support/mounts';

const canRun = realDevicesOrFailInCI('fstab trust tests');
const HELPER = path.resolve(__dirname, '../../dist/helper/mount.fusegate.js');
const DEFAULT_POLICY = path.resolve(__dirname, '../../policy/default-policy.yaml');

/** A zram disk of `mib` MiB (hot_add), or null when this kernel has no zram. */
function addZram(mib: number): string | null {
  if (!fs.existsSync('/sys/class/zram-control/hot_add')) spawnSync('modprobe', ['zram', 'num_devices=0'], { stdio: 'ignore' });
  if (!fs.existsSync('/sys/class/zram-control/hot_add')) return null;
  const id = fs.readFileSync('/sys/class/zram-control/hot_add', 'utf8').trim();
  fs.writeFileSync(`/sys/block/zram${id}/disksize`, `${mib}M`);
  return `/dev/zram${id}`;
}

function removeZram(dev: string): void {
  const id = dev.replace('/dev/zram', '');
  try { fs.writeFileSync(`/sys/block/zram${id}/reset`, '1'); } catch { /* already reset */ }
  try { fs.writeFileSync('/sys/class/zram-control/hot_remove', id); } catch { /* already gone */ }
}

describe.skipIf(!canRun)('fstab LABEL=/UUID= earn the kernel driver only on fixed internal disks', () => {
  let dir: string;
  let mnt: string;
  let fstab: string;
  let sockets: string;
  let brokenPolicy: string;
  let userLoop: string;
  let userImg: string;
  let rootLoop: string;
  let zram: string | null = null;

  beforeAll(() => {
    if (!fs.existsSync(HELPER)) throw new Error(`${HELPER} missing: run 'npm run build'`);
    dir = tempDir('fusegate-fstab-trust-');
    mnt = path.join(dir, 'backup');
    fs.mkdirSync(mnt);
    fstab = path.join(dir, 'fstab');
    fs.writeFileSync(fstab, `LABEL=backup ${mnt} ext4 defaults 0 2\n`);
    sockets = path.join(dir, 'sockets'); // no backend listens: a sandbox decision cannot mount here
    fs.mkdirSync(sockets);
    brokenPolicy = path.join(dir, 'broken.yaml');
    fs.writeFileSync(brokenPolicy, 'version: 1\nrules:\n  - name: x\n    action: teleport\n');

    // The user's image: made by them, theirs, labelled like the fstab line.
    const userDir = path.join(dir, 'home');
    fs.mkdirSync(userDir);
    userImg = makeImage(userDir, 'ext4', 16, 'backup');
    fs.chownSync(userImg, 1000, 1000);
    userLoop = attachLoop(userImg);
    // Root's image with the same label: root-only content, but the label still proves nothing.
    rootLoop = attachLoop(makeImage(fs.mkdtempSync(path.join(dir, 'root-')), 'ext4', 16, 'backup'));

    zram = addZram(16);
    if (zram !== null) execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'backup', zram]);
  });

  afterEach(() => unmountAll(mnt));
  afterAll(() => {
    unmountAll(mnt);
    if (zram !== null) removeZram(zram);
    releaseAll();
  });

  function helper(source: string, policy = DEFAULT_POLICY, fstabFile = fstab) {
    const env = { ...process.env, FUSEGATE_POLICY: policy, FUSEGATE_FSTAB: fstabFile, FUSEGATE_SOCKET_DIR: sockets };
    const r = spawnSync(process.execPath, [HELPER, source, mnt, '-v'], { env, encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stderr: r.stderr };
  }

  async function explain(source: string, policy = DEFAULT_POLICY, json = true, fstabFile = fstab): Promise<{ code: number; out: string }> {
    let out = '';
    const args = ['explain', source, mnt, '--policy', policy, ...(json ? ['--json'] : [])];
    const code = await main(args, { facts: { fstab: fstabFile }, out: (s) => { out += s; }, err: (s) => { out += s; } });
    return { code, out };
  }

  it('a user-made loop device labelled like the fstab line is not given to the kernel (explain)', async () => {
    const j = JSON.parse((await explain(userLoop)).out);
    expect(j.facts.label.value).toBe('backup');
    expect(j.facts.fstab).toMatchObject({ value: true, line: 1 });
    expect(j.facts.fstabMatch).toEqual({ value: 'label', source: `${fstab} line 1: LABEL=backup` });
    expect(j.facts.fixedDisk).toEqual({ value: false, source: expect.stringMatching(/^sysfs \/sys\/devices\/virtual\/block\/loop\d+: a loop device: /) });
    // the name as this machine's /etc/passwd has it (a fresh machine may have no user 1000)
    const owner = fs.readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[2] === '1000')?.[0] ?? null;
    expect(j.facts.imageOwner.value).toEqual({ id: 1000, name: owner });
    expect(j.facts.imageOwner.source).toContain(`fstat(2) of ${userImg} (the inode LOOP_GET_STATUS64 reports)`);
    expect(j.facts.imageMode.value).toBe('0644');
    expect(j.facts.imageRootOnly).toEqual({ value: false, source: `${userImg} is owned by uid 1000` });
    expect(j.decision.action).not.toBe('kernel');
    expect(j.decision).toMatchObject({ action: 'fuse', rule: 'images-and-loop-devices' });
  });

  it('explain prints the trust facts with where each came from', async () => {
    const r = await explain(userLoop, DEFAULT_POLICY, false);
    expect(r.out).toMatch(/^ {2}fixed_disk +false +\[sysfs \/sys\/devices\/virtual\/block\/loop\d+: a loop device: [^\]]*\]$/m);
    expect(r.out).toMatch(new RegExp(`^ {2}fstab_match +label +\\[${fstab} line 1: LABEL=backup\\]$`, 'm'));
    expect(r.out).toMatch(/^ {2}image_owner +1000(\(\w+\))? +\[fstat\(2\) of .*\(the inode LOOP_GET_STATUS64 reports\), name from \/etc\/passwd\]$/m);
    expect(r.out).toMatch(/^ {2}image_root_only +false +\[.* is owned by uid 1000\]$/m);
    expect(r.out).toMatch(/^ {2}no {5}fstab-fixed-disks/m);
  });

  it('the helper does not mount it on the kernel driver (default policy: sandbox, no backend here → refused)', () => {
    const r = helper(userLoop);
    expect(r.code).toBe(32);
    expect(r.stderr).toContain('images-and-loop-devices');
    expect(mountsAt(mnt)).toEqual([]);
  });

  it('the fail-closed built-in rule refuses it too', async () => {
    const r = helper(userLoop, brokenPolicy);
    expect(r.code).toBe(32);
    expect(r.stderr).toMatch(/policy not loaded, failing closed/);
    expect(mountsAt(mnt)).toEqual([]);
    const j = JSON.parse((await explain(userLoop, brokenPolicy)).out);
    expect(j.decision).toMatchObject({ action: 'deny', rule: 'default' });
  });

  it("root's own image matched by LABEL= only is not trusted either: the label proves nothing", async () => {
    const j = JSON.parse((await explain(rootLoop)).out);
    expect(j.facts.imageRootOnly.value).toBe(true);
    expect(j.facts.fstabMatch.value).toBe('label');
    expect(j.decision.action).toBe('fuse');
    expect(helper(rootLoop).code).toBe(32);
    expect(mountsAt(mnt)).toEqual([]);
  });

  it("an image file fstab names by path earns the kernel only when only root can write it", async () => {
    // The user's image, named by its path: the content is still the user's.
    const userFstab = path.join(dir, 'fstab-user-image');
    fs.writeFileSync(userFstab, `${userImg} ${mnt} ext4 loop 0 2\n`);
    const j = JSON.parse((await explain(userImg, DEFAULT_POLICY, true, userFstab)).out);
    expect(j.facts.kind.value).toBe('image');
    expect(j.facts.fstabMatch).toEqual({ value: 'path', source: `${userFstab} line 1: ${userImg}` });
    expect(j.facts.imageRootOnly).toEqual({ value: false, source: `${userImg} is owned by uid 1000` });
    expect(j.decision).toMatchObject({ action: 'fuse', rule: 'images-and-loop-devices' });
    expect(helper(userImg, DEFAULT_POLICY, userFstab).code).toBe(32);
    expect(mountsAt(mnt)).toEqual([]);

    // Root's image in a root-only directory, named by its path: the administrator's own.
    const rootImg = makeImage(fs.mkdtempSync(path.join(dir, 'srv-')), 'ext4', 16, 'srv');
    const rootFstab = path.join(dir, 'fstab-root-image');
    fs.writeFileSync(rootFstab, `${rootImg} ${mnt} ext4 loop 0 2\n`);
    const k = JSON.parse((await explain(rootImg, DEFAULT_POLICY, true, rootFstab)).out);
    expect(k.facts.imageOwner.value).toEqual({ id: 0, name: 'root' });
    expect(k.facts.imageRootOnly.value).toBe(true);
    expect(k.decision).toMatchObject({ action: 'kernel', rule: 'fstab-fixed-disks' });
    const r = helper(rootImg, DEFAULT_POLICY, rootFstab);
    expect(r.code).toBe(0);
    expect(mountsAt(mnt)[0]!.fsType).toBe('ext4');
  });

  it('a fixed internal disk (zram) with the same LABEL= line still gets the kernel driver', async () => {
    if (zram === null) throw new Error('this kernel has no zram (/sys/class/zram-control missing even after modprobe zram)');
    const j = JSON.parse((await explain(zram)).out);
    expect(j.facts.fixedDisk).toEqual({ value: true, source: expect.stringMatching(/^sysfs \/sys\/devices\/virtual\/block\/zram\d+: a zram device/) });
    expect(j.facts.fstabMatch.value).toBe('label');
    expect(j.decision).toMatchObject({ action: 'kernel', rule: 'fstab-fixed-disks' });

    const r = helper(zram);
    expect(r.stderr).toContain("kernel driver, by rule 'fstab-fixed-disks'");
    expect(r.code).toBe(0);
    expect(mountsAt(mnt)[0]).toMatchObject({ fsType: 'ext4', source: zram });
    expect(spawnSync('umount', [mnt]).status).toBe(0);

    // …and under the fail-closed rule.
    const fc = helper(zram, brokenPolicy);
    expect(fc.code).toBe(0);
    expect(mountsAt(mnt)[0]).toMatchObject({ fsType: 'ext4', source: zram });
  });
});
