/**
 * The broker's system files agree with each other and with the code: the
 * bus name, the unit the activation file names, the polkit action ids and
 * their defaults (broker/files.ts).
 */
import { describe, expect, it } from 'vitest';
import { brokerUnit, dbusActivation, dbusPolicy, polkitActions } from '../../broker/files';
import { ACTION, BUS_NAME, UNIT_NAME } from '../../broker/names';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { reviewedBrokerFiles } from '../../admin/write-units';

describe('broker files', () => {
  it('activation goes through systemd to the unit that owns the name', () => {
    expect(dbusActivation()).toContain(`Name=${BUS_NAME}`);
    expect(dbusActivation()).toContain(`SystemdService=${UNIT_NAME}`);
    const unit = brokerUnit({ libDir: '/usr/lib/fusegate', node: '/usr/bin/node' });
    expect(unit).toContain('Type=dbus');
    expect(unit).toContain(`BusName=${BUS_NAME}`);
    expect(unit).toContain('ExecStart=/usr/bin/node /usr/lib/fusegate/dist/broker/service.js');
  });
  it('gives the broker no mount namespace of its own (its mounts would be invisible to the user)', () => {
    const unit = brokerUnit({ libDir: '/usr/lib/fusegate', node: '/usr/bin/node' });
    // Each of these makes systemd set up a mount namespace for the service (checked in a container: PrivateIPC= too).
    for (const key of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'PrivateMounts', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectControlGroups', 'ProtectProc', 'ProcSubset', 'PrivateIPC', 'ReadOnlyPaths', 'InaccessiblePaths', 'TemporaryFileSystem']) {
      expect(unit).not.toMatch(new RegExp(`^${key}=`, 'm'));
    }
  });
  it('lets only root own the name and anyone call it', () => {
    expect(dbusPolicy()).toMatch(new RegExp(`<policy user="root">\\s*<allow own="${BUS_NAME.replace(/\./g, '\\.')}"/>`));
    expect(dbusPolicy()).toContain(`<allow send_destination="${BUS_NAME}" send_interface="${BUS_NAME}"/>`);
  });
  it('declares each action with the defaults the design gives it', () => {
    const xml = polkitActions();
    const defaults = (id: string) => {
      const block = xml.slice(xml.indexOf(`<action id="${id}">`));
      const m = /<allow_any>(.*?)<\/allow_any>\s*<allow_inactive>(.*?)<\/allow_inactive>\s*<allow_active>(.*?)<\/allow_active>/.exec(block)!;
      return m.slice(1);
    };
    expect(defaults(ACTION.mountSandboxed)).toEqual(['auth_admin', 'auth_admin', 'yes']);
    expect(defaults(ACTION.mountKernel)).toEqual(['auth_admin_keep', 'auth_admin_keep', 'auth_admin_keep']);
    expect(defaults(ACTION.unmountOthers)).toEqual(['auth_admin', 'auth_admin', 'auth_admin']);
  });
  it('units/broker/ holds exactly what install writes, for review', () => {
    const dir = path.resolve(__dirname, '../../units/broker');
    const files = reviewedBrokerFiles();
    expect(fs.readdirSync(dir).sort()).toEqual(files.map((f) => f.name).sort());
    for (const f of files) expect(fs.readFileSync(path.join(dir, f.name), 'utf8'), f.name).toBe(f.text);
  });
});
