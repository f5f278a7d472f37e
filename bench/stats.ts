/** Small statistics and timing helpers shared by the benchmarks. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';

export function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const median = (v: readonly number[]) => percentile(v, 50);

/** Wall time of one command, in ms; throws if it fails. */
export function timeCommand(cmd: string, args: string[], opts: SpawnSyncOptions = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: 'ignore', ...opts });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}`);
  return ms;
}

export interface Summary {
  name: string;
  runs: number;
  p50: number;
  p95: number;
  min: number;
}

export function summarize(name: string, samples: readonly number[]): Summary {
  return { name, runs: samples.length, p50: median(samples), p95: percentile(samples, 95), min: Math.min(...samples) };
}

export const fmt = (ms: number) => ms.toFixed(1);

export const mean = (v: readonly number[]) => (v.length === 0 ? NaN : v.reduce((a, b) => a + b, 0) / v.length);

/** Like summarize() but with the mean and max too, for tables that show spread. */
export interface FullSummary extends Summary {
  mean: number;
  max: number;
}

export function summarizeFull(name: string, samples: readonly number[]): FullSummary {
  return { ...summarize(name, samples), mean: mean(samples), max: samples.length ? Math.max(...samples) : NaN };
}

/** a / b, or null when either is missing or b is 0 (JSON has no NaN). */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return a / b;
}
