/**
 * The budget's idle list: a Set's order (insertion order, re-adding after a delete moves
 * to the end) kept by links through the slots, with nothing allocated per move.
 */
import { describe, expect, it } from 'vitest';
import { type IdleLinks, IdleList } from '../../src/tenancy/pool/idle-list.js';

interface Slot extends IdleLinks {
  name: string;
}

const slot = (name: string): Slot => ({ name });
const names = (list: IdleList<Slot>) => list.toArray().map((s) => s.name);

describe('IdleList', () => {
  it('keeps insertion order; a slot taken off and put back goes last', () => {
    const list = new IdleList<Slot>();
    const [a, b, c] = [slot('a'), slot('b'), slot('c')];
    for (const s of [a, b, c]) list.add(s);
    expect(names(list)).toEqual(['a', 'b', 'c']);
    expect(list.delete(a)).toBe(true);
    list.add(a);
    expect(names(list)).toEqual(['b', 'c', 'a']);
    expect(list.delete(c)).toBe(true);
    expect(names(list)).toEqual(['b', 'a']);
    expect(list.size).toBe(2);
  });

  it('ignores adding a listed slot and deleting one not listed, as a Set does', () => {
    const list = new IdleList<Slot>();
    const [a, b] = [slot('a'), slot('b')];
    list.add(a);
    list.add(b);
    list.add(a);
    expect(names(list)).toEqual(['a', 'b']);
    expect(list.delete(slot('stranger'))).toBe(false);
    expect(list.delete(b)).toBe(true);
    expect(list.delete(b)).toBe(false);
    expect(names(list)).toEqual(['a']);
    expect(list.size).toBe(1);
  });

  it('finds the oldest slot a predicate accepts, leaving it listed', () => {
    const list = new IdleList<Slot>();
    for (const name of ['a1', 'b1', 'a2', 'b2']) list.add(slot(name));
    expect(list.find((s) => s.name.startsWith('b'))?.name).toBe('b1');
    expect(list.find((s) => s.name === 'nobody')).toBeUndefined();
    expect(list.size).toBe(4);
  });

  it('empties down to nothing and fills again', () => {
    const list = new IdleList<Slot>();
    const only = slot('only');
    list.add(only);
    list.delete(only);
    expect(names(list)).toEqual([]);
    expect(list.find(() => true)).toBeUndefined();
    const next = slot('next');
    list.add(next);
    list.add(only);
    expect(names(list)).toEqual(['next', 'only']);
  });
});
