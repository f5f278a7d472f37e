/** An in-memory model of a FAT tree (case-insensitive, case-preserving) and a seeded PRNG, for the torture test. */
import { upcase } from '../../../sandbox/vfat/names';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface MFile {
  kind: 'file';
  name: string;
  data: Buffer;
}
export interface MDir {
  kind: 'dir';
  name: string;
  children: Map<string, MNode>;
}
export type MNode = MFile | MDir;

export const key = (name: string) => upcase(name);

export function newDir(name: string): MDir {
  return { kind: 'dir', name, children: new Map() };
}

/** All directories with their path (list of names), root first. */
export function allDirs(root: MDir): { path: string[]; dir: MDir }[] {
  const out: { path: string[]; dir: MDir }[] = [];
  const walk = (d: MDir, p: string[]) => {
    out.push({ path: p, dir: d });
    for (const c of d.children.values()) if (c.kind === 'dir') walk(c, [...p, c.name]);
  };
  walk(root, []);
  return out;
}

export function isAncestor(a: MDir, b: MDir): boolean {
  if (a === b) return true;
  for (const c of a.children.values()) if (c.kind === 'dir' && isAncestor(c, b)) return true;
  return false;
}
