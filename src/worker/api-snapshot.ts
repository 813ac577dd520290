// Folds an object read from Stripe's API and stores the read as an events row of source
// 'stripe-api' in the same transaction: the one path shared by parent fetches, thin events and
// backfill. It reads nothing from Stripe itself; the caller did.
import type postgres from 'postgres';
import { randomBytes } from 'node:crypto';
import type { FoldResult } from '../db/fold.ts';
import { insertApiSnapshot } from '../db/stripe-api.ts';
import type { StripeObject } from '../stripe/catalog.ts';
import type { Origin } from '../stripe/graph.ts';
import { foldSnapshot } from './fold.ts';

export type ApiRead = {
  /** When Stripe answered: the snapshot's order key (whole seconds, as Stripe's events have). */
  fetchedAt: Date;
  account: string | null;
  apiVersion: string;
  /** Why it was read, for the record: 'parent of invoices/in_1.customer_id', 'thin event evt_1', 'backfill run 3'. */
  reason: string;
  /**
   * More to commit with the fold, or not at all: a backfill's cursor, the thin event that asked
   * for the read. `folded` is what the fold did and the id the read is stored under.
   */
  inTransaction?: (tx: postgres.TransactionSql, folded: { result: FoldResult; eventId: string } | undefined) => Promise<void>;
};

export type ApiFold = { result: FoldResult; eventId: string } | { ignored: string };

/**
 * The id the read is stored under, and the order key's last tie-break. It starts with `api_`,
 * which sorts before `evt_`: an event of the same second and rank wins over the read, since the
 * read cannot say whether it saw that event's change. The milliseconds keep two reads in order.
 */
export function apiEventId(objectId: string, fetchedAt: Date): string {
  return `api_${String(fetchedAt.getTime()).padStart(13, '0')}_${randomBytes(3).toString('hex')}_${objectId}`;
}

export async function foldApiSnapshot(sql: postgres.Sql, object: StripeObject, read: ApiRead): Promise<ApiFold> {
  const objectId = String(object.id);
  const eventId = apiEventId(objectId, read.fetchedAt);
  const created = Math.floor(read.fetchedAt.getTime() / 1000);
  const livemode = typeof object.livemode === 'boolean' ? object.livemode : null;
  const origin: Origin = { eventId, created, account: read.account, apiVersion: read.apiVersion, livemode };
  const type = `${typeof object.object === 'string' ? object.object : 'object'}.fetched`;
  const outcome = await foldSnapshot(sql, object, origin, {
    inTransaction: async (tx, outcomes) => {
      const o = outcomes[0];
      if (!o || !('result' in o)) return read.inTransaction?.(tx, undefined);
      // Shaped like a Stripe event, so a replay of this row folds the same snapshot with the same key.
      const payload = {
        id: eventId,
        object: 'event',
        type,
        created,
        livemode,
        account: read.account,
        api_version: read.apiVersion,
        fetched_at: read.fetchedAt.toISOString(),
        reason: read.reason,
        data: { object },
      };
      await insertApiSnapshot(tx, { eventId, type, account: read.account, livemode, apiVersion: read.apiVersion, created, payload, result: o.result });
      await read.inTransaction?.(tx, { result: o.result, eventId });
    },
  });
  return 'result' in outcome ? { result: outcome.result, eventId } : outcome;
}
