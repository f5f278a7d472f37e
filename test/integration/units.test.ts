/**
 * The generated units: the reviewed copy in units/ matches the generator,
 * systemd itself accepts every directive, and every service scores an
 * exposure of at most 0.2 in `systemd-analyze security --offline=yes`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adaptedBackends, allUnits } from '../../admin/units';

const UNITS_DIR = path.resolve(__dirname, '../../units');
const MAX_EXPOSURE = 0.2;

describe('generated systemd units', () => {
  it('units/ holds exactly what the generator writes', () => {
    const generated = allUnits();
    const onDisk = fs.readdirSync(UNITS_DIR).filter((f) => f.endsWith('.socket') || f.endsWith('.service') || f.endsWith('.slice'));
    expect(onDisk.sort()).toEqual(generated.map((u) => u.name).sort());
    for (const u of generated) expect(fs.readFileSync(path.join(UNITS_DIR, u.name), 'utf8')).toBe(u.text);
  });

  it('has a socket and a template service for every adapted backend', () => {
    const names = allUnits().map((u) => u.name);
    for (const b of adaptedBackends()) expect(names).toEqual(expect.arrayContaining([`${b.name}.socket`, `${b.name}@.service`]));
    expect(adaptedBackends().map((b) => b.name)).toEqual(
      expect.arrayContaining(['fuse2fs', 'fusefat', 'exfat-fuse', 'ntfs-3g', 'squashfuse', 'fuseiso']),
    );
  });

  it('puts every instance in fusegate.slice, capped as a whole, and caps each instance and socket', () => {
    const units = allUnits();
    const slice = units.find((u) => u.name === 'fusegate.slice');
    expect(slice, 'fusegate.slice is generated').toBeDefined();
    expect(slice!.text).toMatch(/^\[Slice\]$/m);
    expect(slice!.text).toMatch(/^MemoryMax=25%$/m);
    expect(slice!.text).toMatch(/^TasksMax=512$/m);
    for (const b of adaptedBackends()) {
      const service = units.find((u) => u.name === `${b.name}@.service`)!.text;
      expect(service).toMatch(/^Slice=fusegate\.slice$/m);
      expect(service).toMatch(/^CPUQuota=100%$/m);
      expect(service).toMatch(/^MemoryMax=512M$/m);
      expect(service).toMatch(/^TasksMax=32$/m);
      expect(units.find((u) => u.name === `${b.name}.socket`)!.text).toMatch(/^MaxConnections=16$/m);
    }
  });

  it('the preflight checker gets every hardening line a FUSE server gets, and a socket outside /run/filesystems', () => {
    const units = allUnits();
    const checker = units.find((u) => u.name === 'fusegate-check@.service')!.text;
    const server = units.find((u) => u.name === 'fuse2fs@.service')!.text;
    const hardening = server.slice(server.indexOf('# Who:')).split('\n').filter((l) => /^[A-Z]\w+=/.test(l));
    expect(hardening.length).toBeGreaterThan(30);
    for (const line of hardening) expect(checker.split('\n'), line).toContain(line);
    expect(checker).toMatch(/^ExecStart=\S+ --jitless --no-expose-wasm \S+\/dist\/sandbox\/check-start\.js$/m);
    expect(checker).toMatch(/^RuntimeMaxSec=\d+$/m);
    const socket = units.find((u) => u.name === 'fusegate-check.socket')!.text;
    expect(socket).toMatch(/^ListenSequentialPacket=\/run\/fusegate\/check$/m);
    expect(socket).toMatch(/^Accept=yes$/m);
    expect(socket).toMatch(/^SocketMode=0600$/m);
  });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-units-'));
  for (const u of allUnits()) fs.writeFileSync(path.join(dir, u.name), u.text);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const u of allUnits().filter((x) => x.name.endsWith('@.service'))) {
    it(`${u.name} scores an exposure of at most ${MAX_EXPOSURE}`, () => {
      const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', u.name], { cwd: dir, encoding: 'utf8' });
      const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout);
      expect(m, r.stdout + r.stderr).not.toBeNull();
      expect(Number(m![1])).toBeLessThanOrEqual(MAX_EXPOSURE);
    });
  }

  it('every unit passes systemd-analyze verify of its directives', () => {
    // verify needs the referenced binaries; check only for unknown or misspelled directives.
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...allUnits().map((u) => path.join(dir, u.name))], { encoding: 'utf8' });
    const unknown = (r.stderr ?? '').split('\n').filter((l) => /Unknown (key|section)|Failed to parse|Invalid/i.test(l));
    expect(unknown).toEqual([]);
  });
});
