/**
 * Static checks across rules: rules an earlier rule makes unreachable, and
 * kernel rules that trust spoofable identifiers.
 *
 * The shadow check is conservative: it reports a rule only when an earlier
 * rule provably matches everything the later one does (every key of the
 * earlier condition also constrains the later one, at least as tightly). It
 * can miss shadowing it cannot prove (user names vs uids, overlapping globs),
 * never invent it.
 */
import { MATCH_KEYS } from './schema';
import { isGlob, optionMatches, PatternSet } from './match';
import type { Condition, MatchKey, Rule } from './types';

export function findShadowed(rules: readonly Rule[]): Array<{ rule: Rule; by: Rule }> {
  const sets = new Map<Array<string | number>, PatternSet>();
  const setOf = (k: MatchKey, v: Array<string | number>): PatternSet => {
    let s = sets.get(v);
    if (s === undefined) { s = new PatternSet(v.map(String), MATCH_KEYS[k].fold === true); sets.set(v, s); }
    return s;
  };

  const valuesCover = (k: MatchKey, wide: boolean | Array<string | number>, narrow: boolean | Array<string | number>): boolean => {
    if (typeof wide === 'boolean' || typeof narrow === 'boolean') return wide === narrow;
    const set = setOf(k, wide);
    const literal = new Set(wide.map(String));
    return narrow.every((item) => {
      const s = String(item);
      // A glob is only known to be covered by the same glob or by a bare '*'.
      if (isGlob(s)) return literal.has(s) || literal.has('*');
      return MATCH_KEYS[k].kind === 'options' ? optionMatches(set, s) : set.test(s);
    });
  };

  const conditionCovers = (wide: Condition, narrow: Condition): boolean => {
    for (const k of Object.keys(wide) as MatchKey[]) {
      const n = narrow[k];
      if (n === undefined || !valuesCover(k, wide[k]!, n)) return false;
    }
    return true;
  };

  const covers = (a: Rule, b: Rule): boolean => {
    if (a.unless.length > 0) return false;
    if (a.match.length === 0) return true;
    if (b.match.length === 0) return false;
    return b.match.every((cb) => a.match.some((ca) => conditionCovers(ca, cb)));
  };

  const out: Array<{ rule: Rule; by: Rule }> = [];
  for (let j = 1; j < rules.length; j++) {
    for (let i = 0; i < j; i++) {
      if (covers(rules[i]!, rules[j]!)) { out.push({ rule: rules[j]!, by: rules[i]! }); break; }
    }
  }
  return out;
}

const SPOOFABLE: readonly MatchKey[] = ['uuid', 'partuuid', 'label'];
/** fstab_match values that do not come from the content. */
const NOT_FROM_CONTENT = ['path', 'id'];
/** Buses only fixed hardware is on; virtual is not among them (loop devices are virtual). */
const INTERNAL_BUSES = ['nvme', 'ata', 'scsi', 'virtio', 'xen'];

/**
 * Whether a condition ties the device to the administrator's own hardware
 * or image: fixed_disk, a root-only image, a named node or backing file, or
 * buses that only fixed disks are on. `fstab: true` does not: an fstab line
 * that says LABEL= or UUID= matches whatever carries that label, and
 * `removable: false` or an `unless` on hot-plug buses lets loop devices by.
 */
function pinned(c: Condition): boolean {
  if (c.fixed_disk === true || c.image_root_only === true) return true;
  if (c.source !== undefined || c.backing_file !== undefined) return true;
  return Array.isArray(c.bus) && c.bus.length > 0 && c.bus.every((b) => INTERNAL_BUSES.includes(String(b)));
}

/** A condition that trusts something read from the content: a UUID or label, or an fstab line naming one. */
function trustsContent(c: Condition): boolean {
  if ((Object.keys(c) as MatchKey[]).some((k) => SPOOFABLE.includes(k))) return true;
  if (c.fstab !== true) return false;
  const how = c.fstab_match;
  return !Array.isArray(how) || how.some((m) => !NOT_FROM_CONTENT.includes(String(m)));
}

/** Kernel rules where some alternative trusts a UUID/label (directly or through fstab) without pinning the device. */
export function spoofableTrust(rules: readonly Rule[]): Rule[] {
  const pinnedByUnless = (r: Rule): boolean => r.unless.some((c) => Object.keys(c).length === 1 && c.fixed_disk === false);
  return rules.filter((r) => r.action === 'kernel' && !pinnedByUnless(r) && r.match.some((c) => trustsContent(c) && !pinned(c)));
}
