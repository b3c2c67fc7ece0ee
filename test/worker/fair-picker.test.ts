import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/reporting/errors.js';
import { FairPicker } from '../../src/worker/fair-picker.js';

/** Picks `n` times, finishing each pick at once (a backlogged tenant never runs dry). */
function drain(picker: FairPicker, n: number): string[] {
  const order: string[] = [];
  for (let i = 0; i < n; i++) {
    const slug = picker.pick();
    if (slug === null) break;
    order.push(slug);
    picker.finish(slug);
  }
  return order;
}

/** A picker with these tenants ready, weight 1 each and no cap to speak of. */
function readyPicker(slugs: readonly string[]): FairPicker {
  const picker = new FairPicker();
  for (const slug of slugs) {
    picker.upsert({ slug, weight: 1, cap: 100 });
    picker.markReady(slug);
  }
  return picker;
}

function count(order: readonly string[], slug: string): number {
  return order.filter((s) => s === slug).length;
}

describe('FairPicker', () => {
  it('picks two backlogged tenants of weights 3 and 1 exactly 3:1 in every window of 4', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'heavy', weight: 3, cap: 100 });
    picker.upsert({ slug: 'light', weight: 1, cap: 100 });
    picker.markReady('heavy');
    picker.markReady('light');
    const order = drain(picker, 4000);
    expect(order).toHaveLength(4000);
    for (let start = 0; start + 4 <= order.length; start += 4) {
      const window = order.slice(start, start + 4);
      expect(count(window, 'heavy')).toBe(3);
      expect(count(window, 'light')).toBe(1);
    }
    // Any window of 400 consecutive picks, wherever it starts, is 300:100 give or take one turn.
    for (let start = 0; start + 400 <= order.length; start += 37) {
      const window = order.slice(start, start + 400);
      expect(count(window, 'heavy')).toBeGreaterThanOrEqual(299);
      expect(count(window, 'heavy')).toBeLessThanOrEqual(301);
    }
  });

  it('keeps the 3:1 ratio while picks overlap (several running at once, finished out of order)', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'heavy', weight: 3, cap: 8 });
    picker.upsert({ slug: 'light', weight: 1, cap: 8 });
    picker.markReady('heavy');
    picker.markReady('light');
    const running: string[] = [];
    const order: string[] = [];
    for (let i = 0; i < 8; i++) {
      const slug = picker.pick()!;
      running.push(slug);
      order.push(slug);
    }
    for (let i = 0; i < 4000; i++) {
      // Finish a deterministic, shuffled one of the eight running, then fill the slot.
      const done = running.splice((i * 5) % running.length, 1)[0]!;
      picker.finish(done);
      const slug = picker.pick()!;
      running.push(slug);
      order.push(slug);
    }
    for (let start = 0; start + 400 <= order.length; start += 50) {
      const heavy = count(order.slice(start, start + 400), 'heavy');
      expect(heavy / (400 - heavy)).toBeGreaterThanOrEqual(2.7);
      expect(heavy / (400 - heavy)).toBeLessThanOrEqual(3.3);
    }
  });

  it('does not starve a late tenant: it is served within one round of joining', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'noisy', weight: 5, cap: 100 });
    picker.markReady('noisy');
    expect(drain(picker, 100)).toEqual(Array(100).fill('noisy'));
    const quiet = Array.from({ length: 20 }, (_, i) => `quiet-${i}`);
    for (const slug of quiet) {
      picker.upsert({ slug, weight: 1, cap: 100 });
      picker.markReady(slug);
    }
    // One round is noisy's 5 plus each quiet tenant's 1: every quiet tenant within 25 picks.
    const round = drain(picker, 25);
    for (const slug of quiet) expect(round).toContain(slug);
    expect(count(round, 'noisy')).toBe(5);
  });

  it('keeps the 3:1 ratio when one tenant’s picks last longer and it reaches its cap', () => {
    // Eight slots; a pick lasts 4 ticks for one tenant, 1 for the other (its Redis master
    // is slower, or its jobs are), so the slower one fills every slot and hits its cap.
    for (const [heavyTicks, lightTicks] of [
      [4, 1],
      [1, 4],
    ]) {
      const picker = new FairPicker();
      picker.upsert({ slug: 'heavy', weight: 3, cap: 8 });
      picker.upsert({ slug: 'light', weight: 1, cap: 8 });
      picker.markReady('heavy');
      picker.markReady('light');
      const ticks = (slug: string) => (slug === 'heavy' ? heavyTicks! : lightTicks!);
      const order: string[] = [];
      const slots = Array.from({ length: 8 }, () => {
        const slug = picker.pick()!;
        order.push(slug);
        return { slug, until: ticks(slug) };
      });
      for (let now = 1; order.length < 4000; now++) {
        for (const slot of slots) {
          if (slot.until !== now) continue;
          picker.finish(slot.slug);
          slot.slug = picker.pick()!;
          slot.until = now + ticks(slot.slug);
          order.push(slot.slug);
        }
      }
      for (let start = 0; start + 400 <= order.length; start += 50) {
        const heavy = count(order.slice(start, start + 400), 'heavy');
        expect(heavy / (400 - heavy)).toBeGreaterThanOrEqual(2.7);
        expect(heavy / (400 - heavy)).toBeLessThanOrEqual(3.3);
      }
    }
  });

  it('skips a tenant at its cap and takes it back when a pick finishes', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'capped', weight: 4, cap: 2 });
    picker.upsert({ slug: 'other', weight: 1, cap: 100 });
    picker.markReady('capped');
    picker.markReady('other');
    expect([picker.pick(), picker.pick()]).toEqual(['capped', 'capped']);
    expect(picker.running('capped')).toBe(2);
    // At its cap: only `other` is served, however many times we ask.
    expect([picker.pick(), picker.pick(), picker.pick()]).toEqual(['other', 'other', 'other']);
    picker.finish('capped');
    // Back in the round with what was left of its turn, and its place: at the head.
    expect(picker.pick()).toBe('capped');
    expect(picker.running('capped')).toBe(2);
    expect(picker.pick()).toBe('other');
    // Freed again: the last pick of its turn, then the turn passes on.
    picker.finish('capped');
    picker.finish('capped');
    expect([picker.pick(), picker.pick()]).toEqual(['capped', 'other']);
  });

  it('returns null when every ready tenant is at its cap, and when none is ready', () => {
    const picker = new FairPicker();
    expect(picker.pick()).toBeNull();
    picker.upsert({ slug: 'a', weight: 1, cap: 1 });
    expect(picker.pick()).toBeNull();
    picker.markReady('a');
    expect(picker.pick()).toBe('a');
    expect(picker.pick()).toBeNull();
    expect(picker.hasEligible).toBe(false);
    picker.finish('a');
    expect(picker.hasEligible).toBe(true);
  });

  it('skips a blocked tenant until it is unblocked; it keeps its turn and rejoins at the head', () => {
    const picker = readyPicker(['a', 'b', 'c']);
    expect(drain(picker, 1)).toEqual(['a']);
    // b is picked, but its pool cannot lend.
    expect(picker.pick()).toBe('b');
    picker.block('b');
    picker.finish('b');
    expect(picker.hasBlocked).toBe(true);
    expect(drain(picker, 4)).toEqual(['c', 'a', 'c', 'a']);
    picker.unblock('b');
    expect(picker.hasBlocked).toBe(false);
    // The pick b could not use was not charged: b goes first, then the round goes on.
    expect(drain(picker, 3)).toEqual(['b', 'c', 'a']);
    // Blocked in the order c, a: unblocked together, they rejoin the head in that order.
    expect(drain(picker, 1)).toEqual(['b']);
    for (const slug of ['c', 'a']) {
      expect(picker.pick()).toBe(slug);
      picker.block(slug);
      picker.finish(slug);
    }
    expect(drain(picker, 2)).toEqual(['b', 'b']);
    picker.unblockAll();
    expect(drain(picker, 3)).toEqual(['c', 'a', 'b']);
  });

  it('spends the turn of a tenant blocked with keepTurn: false (its database failed): it rejoins at the tail', () => {
    const picker = readyPicker(['a', 'b', 'c']);
    expect(drain(picker, 1)).toEqual(['a']);
    expect(picker.pick()).toBe('b');
    picker.block('b', { keepTurn: false });
    picker.finish('b');
    expect(drain(picker, 2)).toEqual(['c', 'a']);
    picker.unblockAll();
    expect(drain(picker, 3)).toEqual(['c', 'a', 'b']);
  });

  it('unblocks one tenant per connection given back: the one blocked longest for a busy pool, one whose database failed last', () => {
    const picker = readyPicker(['a', 'b', 'c', 'd']);
    // a's database failed; then b, c and d find their pools busy, in that order.
    expect(picker.pick()).toBe('a');
    picker.block('a', { keepTurn: false });
    picker.finish('a');
    for (const slug of ['b', 'c', 'd']) {
      expect(picker.pick()).toBe(slug);
      picker.block(slug);
      picker.finish(slug);
    }
    expect(picker.pick()).toBeNull();
    for (const slug of ['b', 'c', 'd', 'a']) {
      picker.unblockOne();
      // Only that tenant is back in the round (it then runs dry, leaving the round).
      expect(picker.pick()).toBe(slug);
      picker.finish(slug);
      picker.markEmpty(slug);
      expect(picker.pick()).toBeNull();
    }
    expect(picker.hasBlocked).toBe(false);
    picker.unblockOne();
  });

  it('drops an empty tenant from the round and forgets the rest of its turn', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'a', weight: 3, cap: 100 });
    picker.upsert({ slug: 'b', weight: 1, cap: 100 });
    picker.markReady('a');
    picker.markReady('b');
    expect(picker.pick()).toBe('a');
    picker.finish('a');
    picker.markEmpty('a');
    expect(drain(picker, 3)).toEqual(['b', 'b', 'b']);
    picker.markReady('a');
    // A fresh turn of 3, not 3 plus the 2 it had left.
    expect(drain(picker, 8)).toEqual(['b', 'a', 'a', 'a', 'b', 'a', 'a', 'a']);
  });

  it('keeps a tenant ready when a readiness signal arrived while its fetch was in flight', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'a', weight: 1, cap: 100 });
    picker.markReady('a');
    // A fetch starts; while it is in flight a job is enqueued and the signal comes in.
    const fetchAsOf = picker.stamp();
    expect(picker.pick()).toBe('a');
    picker.markReady('a');
    // The fetch found nothing (it ran before the enqueue): the signal must not be lost.
    picker.markEmpty('a', fetchAsOf);
    picker.finish('a');
    expect(picker.pick()).toBe('a');
    // Without a new signal, the next empty fetch does take it out.
    picker.markEmpty('a', picker.stamp());
    picker.finish('a');
    expect(picker.pick()).toBeNull();
  });

  it('decides by when the engine was asked, not by the order the answers arrive in', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'a', weight: 1, cap: 100 });
    picker.upsert({ slug: 'b', weight: 1, cap: 100 });
    // A read of the ready index is sent; then 'a's last job is taken (and leaves the index).
    const readAsOf = picker.stamp();
    const takeAsOf = picker.stamp();
    // The take's answer comes first: 'a' is empty as of its take.
    picker.markEmpty('a', takeAsOf);
    // The read's answer, older news, still lists 'a': it stays out of the round.
    picker.markReady('a', readAsOf);
    picker.markReady('b', readAsOf);
    expect(drain(picker, 2)).toEqual(['b', 'b']);
    // The same two answers in the other order end the same way.
    const readAsOf2 = picker.stamp();
    const takeAsOf2 = picker.stamp();
    picker.markReady('a', readAsOf2);
    expect(drain(picker, 2)).toContain('a');
    picker.markEmpty('a', takeAsOf2);
    expect(drain(picker, 2)).toEqual(['b', 'b']);
    // News asked for after the take (a job enqueued since) brings it back.
    picker.markReady('a', picker.stamp());
    expect(drain(picker, 2)).toContain('a');
  });

  it('a job found puts back a tenant another slot marked empty by an earlier fetch, not by a later one', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'a', weight: 1, cap: 100 });
    picker.markReady('a');
    const earlier = picker.stamp();
    const take = picker.stamp();
    expect(picker.pick()).toBe('a');
    // Another slot's earlier fetch found nothing, then this slot's take found a job after all.
    picker.markEmpty('a', earlier);
    picker.markReady('a', take);
    picker.finish('a');
    expect(picker.pick()).toBe('a');
    // That job was the last one waiting: marked empty as of its take, the tenant leaves.
    picker.markEmpty('a', take);
    picker.finish('a');
    expect(picker.pick()).toBeNull();
    // A fetch sent later than the take found nothing: the take's answer, arriving after, is older news.
    const take2 = picker.stamp();
    const later = picker.stamp();
    picker.markEmpty('a', later);
    picker.markReady('a', take2);
    expect(picker.pick()).toBeNull();
  });

  it('is deterministic: the same calls give the same picks', () => {
    const run = () => {
      const picker = new FairPicker();
      for (let i = 0; i < 50; i++) {
        picker.upsert({ slug: `t${i}`, weight: (i % 4) + 1, cap: (i % 3) + 1 });
        picker.markReady(`t${i}`);
      }
      const order: string[] = [];
      for (let i = 0; i < 500; i++) {
        const slug = picker.pick();
        if (slug === null) break;
        order.push(slug);
        if (i % 3 === 0) picker.finish(slug);
        if (i % 7 === 0) picker.markEmpty(slug);
        if (i % 11 === 0) picker.markReady(`t${i % 50}`);
      }
      return order;
    };
    expect(run()).toEqual(run());
  });

  it('applies a new weight and cap on upsert, and forgets a removed tenant', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'a', weight: 1, cap: 100 });
    picker.upsert({ slug: 'b', weight: 1, cap: 100 });
    picker.markReady('a');
    picker.markReady('b');
    expect(drain(picker, 4)).toEqual(['a', 'b', 'a', 'b']);
    picker.upsert({ slug: 'a', weight: 2, cap: 100 });
    expect(drain(picker, 6)).toEqual(['a', 'a', 'b', 'a', 'a', 'b']);
    picker.remove('b');
    expect(picker.has('b')).toBe(false);
    expect(drain(picker, 3)).toEqual(['a', 'a', 'a']);
    picker.upsert({ slug: 'a', weight: 2, cap: 1 });
    expect(picker.pick()).toBe('a');
    expect(picker.pick()).toBeNull();
  });

  it('rejects a weight or cap that is not an integer ≥ 1', () => {
    const picker = new FairPicker();
    expect(() => picker.upsert({ slug: 'a', weight: 0, cap: 1 })).toThrow(ValidationError);
    expect(() => picker.upsert({ slug: 'a', weight: 1, cap: 1.5 })).toThrow(/Expected `cap` of tenant "a"/);
  });
  it('repick takes the next pick for the same tenant exactly when finish-then-pick would', () => {
    // Two pickers fed the same events: one finishes and picks, the other repicks.
    const make = () => {
      const picker = new FairPicker();
      picker.upsert({ slug: 'a', weight: 3, cap: 2 });
      picker.upsert({ slug: 'b', weight: 1, cap: 2 });
      picker.upsert({ slug: 'c', weight: 2, cap: 1 });
      for (const slug of ['a', 'b', 'c']) picker.markReady(slug);
      return picker;
    };
    const plain = make();
    const chained = make();
    // Four slots' worth of picks in flight, then 2,000 completions in a fixed rotation.
    const inFlight = [0, 1, 2, 3].map(() => {
      const a = plain.pick();
      expect(chained.pick()).toBe(a);
      return a;
    });
    let repicks = 0;
    for (let i = 0; i < 2000; i++) {
      const slot = i % inFlight.length;
      const done = inFlight[slot]!;
      if (done === null) continue;
      plain.finish(done);
      const next = plain.pick();
      if (chained.repick(done)) {
        repicks += 1;
        expect(next).toBe(done);
      } else {
        expect(next).not.toBe(done);
        chained.finish(done);
        expect(chained.pick()).toBe(next);
      }
      inFlight[slot] = next;
      expect(chained.stats()).toEqual(plain.stats());
    }
    // Weighted turns make the same tenant come round again often; different tenants too.
    expect(repicks).toBeGreaterThan(0);
    expect(repicks).toBeLessThan(2000);
  });

  it('repick changes nothing for a tenant the round would not pick next', () => {
    const picker = new FairPicker();
    picker.upsert({ slug: 'a', weight: 1, cap: 1 });
    picker.upsert({ slug: 'b', weight: 1, cap: 1 });
    picker.markReady('a');
    picker.markReady('b');
    expect(picker.pick()).toBe('a');
    expect(picker.repick('a')).toBe(false);
    expect(picker.running('a')).toBe(1);
    picker.markEmpty('b');
    // Now the round has only a: a finish-then-pick would pick it again.
    expect(picker.repick('a')).toBe(true);
    expect(picker.running('a')).toBe(1);
    expect(picker.repick('unknown')).toBe(false);
    picker.finish('a');
    expect(picker.repick('a')).toBe(false);
    expect(picker.running('a')).toBe(0);
  });
});
