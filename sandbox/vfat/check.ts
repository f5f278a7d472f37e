/**
 * checkVolume: a whole-volume consistency check, in the spirit of
 * `fsck.fat -n` (it never writes). It walks every directory from the root
 * and every cluster chain, and reports:
 *
 * - out-of-range: a first cluster or a FAT link outside the data area;
 * - bad-link: a chain that runs into a free or a bad cluster;
 * - loop: a chain that comes back to one of its own clusters;
 * - cross-link: two objects (or a directory and a file) sharing a cluster;
 * - size-mismatch: a file whose chain is longer or shorter than its size
 *   needs (a non-empty file without clusters, an empty one with some);
 * - bad-directory: a directory that cannot be read (its chain is broken or
 *   longer than a directory may be);
 * - lost-clusters: clusters in use in the FAT that no object reaches.
 *
 * Each cluster gets one owner on the walk (an Int32Array indexed by cluster
 * number), so the work is bounded by the cluster count and the directory
 * count: a hostile volume cannot make it loop or allocate without limit.
 * The first owner of a cluster keeps it, as fsck.fat keeps the first file.
 *
 * Meant for an unmounted volume (the preflight before a mount): on a mounted
 * one, files unlinked while still open count as lost clusters.
 */
import { ATTR_DIR, parseDir } from './dirent';
import { FREE } from './fat';
import type { Volume } from './volume';
import { MAX_DIR_BYTES } from './volume';

export type ProblemKind = 'out-of-range' | 'bad-link' | 'loop' | 'cross-link' | 'size-mismatch' | 'bad-directory' | 'lost-clusters';

export interface VolumeProblem {
  kind: ProblemKind;
  /** the object's path from the root ("/" for the root itself, "" for lost clusters) */
  path: string;
  message: string;
}

export interface CheckReport {
  ok: boolean;
  problems: VolumeProblem[];
  /** problems found beyond `maxProblems` (not listed) */
  moreProblems: number;
  files: number;
  directories: number;
  /** clusters reached from the root */
  usedClusters: number;
  lostClusters: number;
}

export interface CheckOptions {
  /** list at most this many problems (default 1000); the count goes on */
  maxProblems?: number;
}

interface Pending {
  path: string;
  /** first cluster, or 0 for the FAT12/16 fixed root */
  cluster: number;
}

export function checkVolume(volume: Volume, o: CheckOptions = {}): CheckReport {
  const { geo, fat, dev } = volume;
  const maxProblems = o.maxProblems ?? 1000;
  const report: CheckReport = { ok: true, problems: [], moreProblems: 0, files: 0, directories: 0, usedClusters: 0, lostClusters: 0 };
  const problem = (kind: ProblemKind, path: string, message: string) => {
    report.ok = false;
    if (report.problems.length < maxProblems) report.problems.push({ kind, path, message });
    else report.moreProblems++;
  };
  const inRange = (c: number) => c >= 2 && c <= geo.maxCluster;
  /** owner[c]: index+1 into `owners` of the object whose chain holds c */
  const owner = new Int32Array(geo.maxCluster + 1);
  const owners: string[] = [];

  /** Claims the chain from `start` for `path`; returns its clusters up to the first problem (null when unusable). */
  const walk = (path: string, start: number, maxLength: number): { chain: number[]; broken: boolean } => {
    owners.push(path);
    const me = owners.length;
    const chain: number[] = [];
    if (!inRange(start)) {
      problem('out-of-range', path, `first cluster ${start} is outside the data area (2..${geo.maxCluster})`);
      return { chain, broken: true };
    }
    let c = start;
    for (;;) {
      if (owner[c] !== 0) {
        if (owner[c] === me) problem('loop', path, `cluster chain loops back to cluster ${c}`);
        else problem('cross-link', path, `cluster ${c} also belongs to ${owners[owner[c] - 1]}`);
        return { chain, broken: true };
      }
      owner[c] = me;
      chain.push(c);
      report.usedClusters++;
      if (chain.length > maxLength) {
        problem('bad-directory', path, `cluster chain longer than ${maxLength} clusters`);
        return { chain, broken: true };
      }
      const next = fat.get(c);
      if (fat.isEoc(next)) return { chain, broken: false };
      if (next === FREE) {
        problem('bad-link', path, `cluster chain runs into free cluster after ${c}`);
        return { chain, broken: true };
      }
      if (next === fat.bad) {
        problem('bad-link', path, `cluster chain runs into a bad cluster after ${c}`);
        return { chain, broken: true };
      }
      if (!inRange(next)) {
        problem('out-of-range', path, `cluster ${c} links to ${next}, outside the data area`);
        return { chain, broken: true };
      }
      c = next;
    }
  };

  const readDir = (d: Pending): Buffer | null => {
    if (d.cluster === 0) return dev.read(geo.rootDirOffset, geo.rootDirBytes);
    const { chain, broken } = walk(d.path, d.cluster, Math.max(1, Math.floor(MAX_DIR_BYTES / geo.clusterSize)));
    if (broken) {
      problem('bad-directory', d.path, 'directory not checked: its cluster chain is broken');
      return null;
    }
    const buf = Buffer.alloc(chain.length * geo.clusterSize);
    chain.forEach((c, i) => dev.readInto(buf, i * geo.clusterSize, geo.dataOffset + (c - 2) * geo.clusterSize, geo.clusterSize));
    return buf;
  };

  const stack: Pending[] = [{ path: '/', cluster: geo.fatType === 32 ? geo.rootCluster : 0 }];
  while (stack.length > 0) {
    const d = stack.pop()!;
    report.directories++;
    const buf = readDir(d);
    if (buf === null) continue;
    const parsed = parseDir(buf, geo.fatType, 'mixed', d.path, () => {});
    const prefix = d.path === '/' ? '/' : `${d.path}/`;
    for (const e of parsed.entries) {
      const path = prefix + e.name;
      if (e.attr & ATTR_DIR) {
        if (e.cluster === 0) problem('out-of-range', path, 'directory without a first cluster');
        else stack.push({ path, cluster: e.cluster });
        continue;
      }
      report.files++;
      const need = Math.ceil(e.size / geo.clusterSize);
      if (e.cluster === 0) {
        if (need > 0) problem('size-mismatch', path, `size ${e.size} but no clusters`);
        continue;
      }
      const { chain, broken } = walk(path, e.cluster, geo.clusterCount);
      if (!broken && chain.length !== need) {
        problem('size-mismatch', path, `size ${e.size} needs ${need} clusters, the chain has ${chain.length}`);
      }
    }
  }

  let lost = 0;
  for (let c = 2; c <= geo.maxCluster; c++) {
    const v = fat.get(c);
    if (v !== FREE && v !== fat.bad && owner[c] === 0) lost++;
  }
  report.lostClusters = lost;
  if (lost > 0) problem('lost-clusters', '', `${lost} clusters are in use in the FAT but belong to no file or directory`);
  return report;
}
