/**
 * The ConnectionBudget on its own: slot counting, the FIFO queue across members, reclaim
 * of the least recently used idle connection of another member, and close. The members
 * here are plain objects standing in for pools (the budget never touches a driver); the
 * budget against real servers is in tenant-pools/budget.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ClosedError } from '../../src/reporting/errors.js';
import {
  type BudgetMember,
  ConnectionBudget,
  type IdleSlot,
  MemberRequests,
} from '../../src/tenancy/pool/budget.js';

interface TestSlot extends IdleSlot {
  name: string;
}

function member(log: string[]): BudgetMember {
  return {
    async surrender(slot) {
      log.push(`surrender ${(slot as TestSlot).name}`);
    },
  };
}

describe('ConnectionBudget', () => {
  it('grants free slots up to max, then queues requests and grants them in FIFO order', async () => {
    const budget = new ConnectionBudget(2);
    const log: string[] = [];
    const m = member(log);
    await budget.request(m).granted;
    await budget.request(m).granted;
    expect(budget.snapshot()).toMatchObject({ max: 2, open: 2, waiting: 0 });
    const order: number[] = [];
    const queued = [1, 2, 3].map((n) => budget.request(m).granted.then(() => order.push(n)));
    expect(budget.snapshot().waiting).toBe(3);
    expect(budget.hasWaiters).toBe(true);
    // A newcomer does not overtake the queue, even through tryTake.
    expect(budget.tryTakeFree()).toBe(false);
    expect(await budget.tryTake(m)).toBe(false);
    budget.free();
    budget.free();
    budget.free();
    await Promise.all(queued);
    expect(order).toEqual([1, 2, 3]);
    // Each freed slot passed to a waiter: still two open, never more.
    expect(budget.snapshot()).toMatchObject({ open: 2, waiting: 0 });
    budget.free();
    budget.free();
    expect(budget.snapshot().open).toBe(0);
  });

  it("reclaims the least recently used idle connection of another member, never the requester's own", async () => {
    const budget = new ConnectionBudget(3);
    const log: string[] = [];
    const a = member(log);
    const b = member(log);
    for (let i = 0; i < 3; i++) expect(budget.tryTakeFree()).toBe(true);
    const slots: TestSlot[] = [
      { member: b, name: 'b1' },
      { member: a, name: 'a1' },
      { member: a, name: 'a2' },
    ];
    for (const slot of slots) budget.addIdle(slot);
    // b asks: its own b1 is the oldest idle but is skipped; a1 is taken.
    await budget.request(b).granted;
    expect(log).toEqual(['surrender a1']);
    expect(budget.reclaims).toBe(1);
    // a asks through tryTake: b1 is the oldest idle of another member.
    expect(await budget.tryTake(a)).toBe(true);
    expect(log).toEqual(['surrender a1', 'surrender b1']);
    // The slot moved: the count never changed.
    expect(budget.snapshot()).toMatchObject({ open: 3, idle: 1 });
    // Only a's own idle connection is left: a must queue.
    const pending = budget.request(a);
    expect(budget.snapshot().waiting).toBe(1);
    expect(pending.cancel()).toBe(true);
    expect(budget.snapshot().waiting).toBe(0);
  });

  it('rejects queued requests with ClosedError on close and refuses new ones', async () => {
    const budget = new ConnectionBudget(1);
    const m = member([]);
    expect(budget.tryTakeFree()).toBe(true);
    const queued = budget.request(m).granted;
    budget.close();
    await expect(queued).rejects.toBeInstanceOf(ClosedError);
    await expect(budget.request(m).granted).rejects.toBeInstanceOf(ClosedError);
    expect(budget.tryTakeFree()).toBe(false);
  });
});

describe('MemberRequests', () => {
  it('withdraws surplus requests newest first, keeping the older ones in the queue', async () => {
    const budget = new ConnectionBudget(1);
    const m = member([]);
    const other = member([]);
    expect(budget.tryTakeFree()).toBe(true);
    const requests = new MemberRequests(budget, m);
    const granted: string[] = [];
    requests.add(() => granted.push('m1'));
    budget.request(other).granted.then(() => granted.push('other'));
    requests.add(() => granted.push('m2'));
    expect(requests.length).toBe(2);
    requests.trimTo(1);
    expect(requests.length).toBe(1);
    expect(budget.snapshot().waiting).toBe(2);
    budget.free();
    budget.free();
    await new Promise((resolve) => setImmediate(resolve));
    expect(granted).toEqual(['m1', 'other']);
    expect(requests.length).toBe(0);
  });
});
