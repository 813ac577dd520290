// The relay's queries on the outbox: claim due deliveries (sql/functions/outbox_claim.sql) with the
// message and the subscription they need, record what came back (outbox_record.sql) after locking
// the subscriptions whose breakers it changes, hand back unfinished claims, and find the circuits
// whose probe is due. The API's queries are in db/subscriptions.ts and db/deliveries.ts.
import type postgres from 'postgres';
import type { Sql } from './client.ts';

/** The LISTEN/NOTIFY channel that wakes relays: deliveries were written or became due. */
export const OUTBOX_CHANNEL = 'webhook_inbox_outbox';

/** A claimed delivery: everything needed to sign and send it. */
export type ClaimedDelivery = {
  delivery_id: string;
  attempt: number;
  previous_version: number | null;
  message_id: string;
  type: string;
  object: string;
  object_id: string;
  version: number;
  /** Unix seconds of the change. */
  created: number;
  data: unknown;
  links: Record<string, string | null>;
  source_event: string | null;
  subscription_id: string;
  url: string;
  headers: Record<string, string>;
  secret: string;
  /** The secret before a rotation, while the overlap lasts. */
  previous_secret: string | null;
};

export type ClaimOptions = {
  limit: number;
  perSubscription: number;
  leaseSeconds: number;
  workerId: string;
  /** Subscriptions this relay has as many requests in flight to as it allows: skip them. */
  exclude: string[];
  /** Claim one delivery of this subscription only, whatever its circuit: the half-open probe. */
  probe?: string;
};

/** The claim statement; in a transaction that commits synchronously (see claimDeliveries). */
function claimQuery(tx: Sql, o: ClaimOptions) {
  return tx<ClaimedDelivery[]>`
    select delivery_id::text as delivery_id, attempt, previous_version::float8 as previous_version, message_id, type, object,
           object_id, version::float8 as version, extract(epoch from created)::bigint::float8 as created, data, links,
           source_event, subscription_id, url, headers, secret, previous_secret
      from outbox_claim(${o.limit}, ${o.perSubscription}, ${o.leaseSeconds}, ${o.workerId}, ${o.exclude}::text[], ${o.probe ?? null})`;
}

/**
 * Claims deliveries to send now. The transaction commits with synchronous_commit on, whatever the
 * database's default: its commit flushes the WAL up to itself, so the fold commits that wrote these
 * messages (made with synchronous_commit off) are on disk before anything is sent. A crash of
 * Postgres can then no longer take back a change whose message a subscriber has seen.
 */
export async function claimDeliveries(sql: postgres.Sql, options: ClaimOptions): Promise<ClaimedDelivery[]> {
  return sql.begin(async (tx) => {
    await tx`set local synchronous_commit = on`;
    return [...(await claimQuery(tx, options))];
  });
}

/** A subscription's breaker as stored, locked for the caller's transaction. */
export type LockedSubscription = { id: string; breaker: unknown; enabled: boolean };

/** What outbox_record writes for one attempt. */
export type AttemptRecord = {
  delivery_id: string;
  subscription_id: string;
  object_id: string;
  version: number;
  attempt: number;
  attempted_at: string;
  duration_ms: number;
  status_code: number | null;
  outcome: 'success' | 'http' | 'timeout' | 'network' | 'ssrf';
  error: string | null;
  response_body: string | null;
  status: 'DELIVERED' | 'FAILED' | 'DEAD';
  next_attempt_at: string | null;
};

/** What outbox_record writes for one subscription's breaker. */
export type BreakerRecord = {
  id: string;
  breaker: unknown;
  circuit_state: string;
  circuit_probe_at: string | null;
  enabled: boolean;
  disabled_reason: string | null;
  last_success_at: string | null;
  last_failure_at: string | null;
  transitions: { at: string; from: string; to: string; reason: string }[];
};

/**
 * Records attempts in one transaction: locks the subscriptions they went to (in id order, FOR NO
 * KEY UPDATE: deliveries inserted by the fold meanwhile only need KEY SHARE on them), lets `decide`
 * compute the deliveries' and breakers' next states from the locked breakers, and writes them all
 * with one statement. Returns how many waiting deliveries became due and what `decide` returned.
 *
 * It commits without waiting for the WAL flush: a record lost in a crash of Postgres only means
 * those deliveries are sent again (same webhook-id), never that an older version goes after a
 * newer one (what the claim superseded was committed synchronously).
 */
export async function recordAttempts<T extends { attempts: AttemptRecord[]; breakers: BreakerRecord[] }>(
  sql: postgres.Sql,
  subscriptionIds: string[],
  decide: (locked: LockedSubscription[]) => T,
): Promise<{ woken: number; decided: T }> {
  return sql.begin(async (tx) => {
    await tx`set local synchronous_commit = off`;
    const locked = await tx<LockedSubscription[]>`
      select id, breaker, enabled from outbox_subscriptions
       where id = any(${[...new Set(subscriptionIds)].sort()}::text[]) order by id for no key update`;
    const decided = decide([...locked]);
    const [row] = await tx<[{ woken: number }]>`
      select outbox_record(${tx.json(decided.attempts as unknown as postgres.JSONValue)},
                           ${tx.json(decided.breakers as unknown as postgres.JSONValue)}) as woken`;
    return { woken: row.woken, decided };
  });
}

/** Hands back claims a stopping relay did not finish. */
export async function releaseDeliveries(sql: Sql, ids: string[], workerId: string): Promise<number> {
  if (ids.length === 0) return 0;
  const [row] = await sql<[{ n: number }]>`select outbox_release(${ids}::bigint[], ${workerId}) as n`;
  return row.n;
}

/** Subscriptions whose open circuit may send its probe now (or whose probe was lost). */
export async function dueProbes(sql: Sql): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    select id from outbox_subscriptions
     where enabled and deleted_at is null and circuit_state in ('open', 'half_open') and circuit_probe_at <= now()
     order by circuit_probe_at limit 20`;
  return rows.map((r) => r.id);
}

/**
 * The half-open probe: in one transaction, lock the subscription (SKIP LOCKED: another relay is
 * probing it), let `admit` decide from its breaker, and if it admits, store the new breaker state
 * and claim one delivery of it. Nothing to probe with: nothing changes (the transaction rolls back).
 */
export async function claimProbe(
  sql: postgres.Sql,
  id: string,
  options: Omit<ClaimOptions, 'probe' | 'limit' | 'perSubscription' | 'exclude'>,
  admit: (breaker: unknown) => BreakerRecord | null,
): Promise<{ claimed: ClaimedDelivery[]; breaker: BreakerRecord | null }> {
  const nothing = new Error('no probe');
  try {
    return await sql.begin(async (tx) => {
      await tx`set local synchronous_commit = on`;
      const [row] = await tx<{ breaker: unknown }[]>`
        select breaker from outbox_subscriptions where id = ${id} and enabled
           and circuit_state in ('open', 'half_open') and circuit_probe_at <= now()
           for no key update skip locked`;
      if (!row) throw nothing;
      const next = admit(row.breaker);
      if (!next) throw nothing;
      const claimed = [...(await claimQuery(tx, { ...options, limit: 1, perSubscription: 1, exclude: [], probe: id }))];
      if (claimed.length === 0) throw nothing;
      await tx`select outbox_record('[]'::jsonb, ${tx.json([next] as unknown as postgres.JSONValue)})`;
      return { claimed, breaker: next };
    });
  } catch (err) {
    if (err === nothing) return { claimed: [], breaker: null };
    throw err;
  }
}
