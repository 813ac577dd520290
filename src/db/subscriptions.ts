// The API's queries on subscriptions: register, list, look up (with the circuit and its latest
// transitions), change, delete (history kept), rotate the secret, recover what failed in a window,
// and the statistics. Secrets are returned only by create and rotate; header values never.
import { randomBytes } from 'node:crypto';
import type postgres from 'postgres';
import { initialBreaker, resetBreaker, type BreakerState } from '../outbox/breaker.ts';
import type { Sql } from './client.ts';
import { OUTBOX_CHANNEL } from './outbox.ts';

/** A subscription as the API shows it: header names only, never their values or the secret. */
export type SubscriptionItem = {
  id: string;
  url: string;
  description: string | null;
  types: string[] | null;
  header_names: string[];
  enabled: boolean;
  disabled_reason: string | null;
  disabled_at: Date | null;
  deleted_at: Date | null;
  circuit: {
    state: string;
    consecutive_failures: number;
    failing_since: Date | null;
    next_probe_at: Date | null;
  };
  previous_secret_expires_at: Date | null;
  last_success_at: Date | null;
  last_failure_at: Date | null;
  created_at: Date;
  updated_at: Date;
};

type Row = Omit<SubscriptionItem, 'circuit'> & { circuit_state: string; circuit_probe_at: Date | null; breaker: BreakerState };

const COLUMNS = (sql: Sql) => sql`
  id, url, description, types, array(select jsonb_object_keys(headers) order by 1) as header_names, enabled,
  disabled_reason, disabled_at, deleted_at, circuit_state, circuit_probe_at, breaker,
  case when previous_secret_expires_at > now() then previous_secret_expires_at end as previous_secret_expires_at,
  last_success_at, last_failure_at, created_at, updated_at`;

function item(r: Row): SubscriptionItem {
  const { circuit_state, circuit_probe_at, breaker, ...rest } = r;
  return {
    ...rest,
    circuit: {
      state: circuit_state,
      consecutive_failures: breaker.consecutiveFailures,
      failing_since: breaker.failingSince === null ? null : new Date(breaker.failingSince),
      next_probe_at: circuit_probe_at,
    },
  };
}

export const newSubscriptionId = () => `ep_${randomBytes(12).toString('hex')}`;

export type NewSubscription = {
  url: string;
  description?: string | undefined;
  types?: string[] | undefined;
  headers?: Record<string, string> | undefined;
  secret: string;
};

export async function createSubscription(sql: Sql, s: NewSubscription): Promise<SubscriptionItem> {
  const [row] = await sql<Row[]>`
    insert into outbox_subscriptions (id, url, description, types, headers, secret, breaker)
    values (${newSubscriptionId()}, ${s.url}, ${s.description ?? null}, ${s.types ?? null}, ${sql.json(s.headers ?? {})},
            ${s.secret}, ${sql.json(initialBreaker(Date.now()) as unknown as postgres.JSONValue)})
    returning ${COLUMNS(sql)}`;
  return item(row!);
}

/** Every subscription not deleted, oldest first. */
export async function listSubscriptions(sql: Sql): Promise<SubscriptionItem[]> {
  const rows = await sql<Row[]>`select ${COLUMNS(sql)} from outbox_subscriptions where deleted_at is null order by created_at, id`;
  return rows.map(item);
}

/** One subscription, deleted ones included (their history stays). */
export async function getSubscription(sql: Sql, id: string): Promise<SubscriptionItem | undefined> {
  const [row] = await sql<Row[]>`select ${COLUMNS(sql)} from outbox_subscriptions where id = ${id}`;
  return row ? item(row) : undefined;
}

export type Transition = { at: Date; from: string; to: string; reason: string };

export async function recentTransitions(sql: Sql, id: string, limit = 20): Promise<Transition[]> {
  return sql<Transition[]>`
    select at, from_state as from, to_state as to, reason from circuit_transitions
     where subscription_id = ${id} order by at desc, id desc limit ${limit}`;
}

export type SubscriptionPatch = {
  url?: string | undefined;
  description?: string | null | undefined;
  types?: string[] | null | undefined;
  headers?: Record<string, string> | undefined;
  enabled?: boolean | undefined;
};

/**
 * Changes what the patch names. Enabling a disabled subscription also resets its circuit (closed,
 * nothing counted), and the transition is recorded; disabling says by_request. Undefined when there
 * is no such subscription, or it was deleted.
 */
export async function updateSubscription(sql: postgres.Sql, id: string, patch: SubscriptionPatch): Promise<SubscriptionItem | undefined> {
  return sql.begin(async (tx) => {
    const [current] = await tx<{ enabled: boolean; breaker: BreakerState }[]>`
      select enabled, breaker from outbox_subscriptions where id = ${id} and deleted_at is null for no key update`;
    if (!current) return undefined;
    const has = (k: keyof SubscriptionPatch) => Object.hasOwn(patch, k) && patch[k] !== undefined;
    let breaker = current.breaker;
    if (patch.enabled === true && (!current.enabled || breaker.state !== 'closed')) {
      const reset = resetBreaker(breaker, Date.now());
      breaker = reset.state;
      if (reset.transition) {
        await tx`insert into circuit_transitions (subscription_id, at, from_state, to_state, reason)
                 values (${id}, now(), ${reset.transition.from}, ${reset.transition.to}, 'reset')`;
      }
    }
    const [row] = await tx<Row[]>`
      update outbox_subscriptions set
        url = ${has('url') ? patch.url! : tx`url`},
        description = ${Object.hasOwn(patch, 'description') ? (patch.description ?? null) : tx`description`},
        types = ${Object.hasOwn(patch, 'types') ? (patch.types ?? null) : tx`types`},
        headers = ${has('headers') ? tx.json(patch.headers!) : tx`headers`},
        enabled = ${has('enabled') ? patch.enabled! : tx`enabled`},
        disabled_reason = ${patch.enabled === true ? null : patch.enabled === false ? 'by_request' : tx`disabled_reason`},
        disabled_at = ${patch.enabled === true ? null : patch.enabled === false ? tx`coalesce(disabled_at, now())` : tx`disabled_at`},
        breaker = ${tx.json(breaker as unknown as postgres.JSONValue)},
        circuit_state = ${breaker.state},
        circuit_probe_at = ${breaker.state === 'closed' ? null : tx`circuit_probe_at`},
        updated_at = now()
      where id = ${id}
      returning ${COLUMNS(tx)}`;
    return item(row!);
  });
}

/**
 * Stops deliveries to it for good: disabled and marked deleted; its waiting deliveries become DEAD
 * (last_error says why). Its messages, deliveries and attempts stay for the record (until retention).
 */
export async function deleteSubscription(sql: postgres.Sql, id: string): Promise<boolean> {
  return sql.begin(async (tx) => {
    const rows = await tx`
      update outbox_subscriptions set deleted_at = now(), enabled = false, disabled_reason = 'deleted',
             disabled_at = coalesce(disabled_at, now()), updated_at = now()
       where id = ${id} and deleted_at is null returning id`;
    if (rows.length === 0) return false;
    await tx`
      update deliveries set status = 'DEAD', last_error = 'the subscription was deleted', finished_at = now(), locked_until = null
       where subscription_id = ${id} and status in ('PENDING', 'FAILED')`;
    return true;
  });
}

/** A new secret; the old one keeps signing beside it until `overlapMs` from now. */
export async function rotateSecret(sql: Sql, id: string, secret: string, overlapMs: number): Promise<{ previous_secret_expires_at: Date } | undefined> {
  const [row] = await sql<{ previous_secret_expires_at: Date }[]>`
    update outbox_subscriptions
       set previous_secret = secret, secret = ${secret},
           previous_secret_expires_at = now() + make_interval(secs => ${overlapMs / 1000}), updated_at = now()
     where id = ${id} and deleted_at is null
     returning previous_secret_expires_at`;
  return row;
}

/**
 * Sends again everything of one subscription that failed or died in [since, until) (by its last
 * attempt): DEAD and FAILED deliveries become PENDING, due now, with a fresh count of attempts.
 * The claim still never sends a version older than one the subscriber has.
 */
export async function recoverDeliveries(sql: Sql, id: string, since: string, until: string | undefined): Promise<number> {
  const rows = await sql`
    update deliveries set status = 'PENDING', attempts = 0, next_attempt_at = now(), finished_at = null, locked_until = null
     where subscription_id = ${id} and status in ('DEAD', 'FAILED')
       and last_attempt_at >= ${since}::timestamptz
       and (${until ?? null}::timestamptz is null or last_attempt_at < ${until ?? null}::timestamptz)
     returning 1`;
  if (rows.length > 0) await sql`select pg_notify(${OUTBOX_CHANNEL}, '')`;
  return rows.length;
}

// ---- Statistics ---------------------------------------------------------------------------------

export type WindowStats = {
  delivered: number;
  failed_attempts: number;
  dead: number;
  superseded: number;
  success_rate: number | null;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
};

export type OutboxStats = {
  pending: number;
  oldest_pending_age_s: number | null;
  last_hour: WindowStats;
  last_day: WindowStats;
};

/**
 * Delivered, failed attempts, dead, superseded, success rate (2xx among attempts) and the latency
 * from commit to 2xx (p50, p99), over the last hour and day; what waits now and for how long. For
 * one subscription, or the whole service when `id` is undefined.
 */
export async function outboxStats(sql: Sql, id?: string): Promise<OutboxStats> {
  const sub = id ?? null;
  const windows = await sql<(WindowStats & { name: string })[]>`
    select w.name,
           (select count(*)::int from deliveries d where d.status = 'DELIVERED' and d.finished_at >= now() - w.span
              and (${sub}::text is null or d.subscription_id = ${sub})) as delivered,
           (select count(*)::int from deliveries d where d.status = 'DEAD' and d.finished_at >= now() - w.span
              and (${sub}::text is null or d.subscription_id = ${sub})) as dead,
           (select count(*)::int from deliveries d where d.status = 'SUPERSEDED' and d.finished_at >= now() - w.span
              and (${sub}::text is null or d.subscription_id = ${sub})) as superseded,
           a.failed_attempts, a.success_rate,
           l.p50 as latency_p50_ms, l.p99 as latency_p99_ms
      from (values ('last_hour', interval '1 hour'), ('last_day', interval '1 day')) w(name, span)
      cross join lateral (
        select count(*) filter (where a.outcome <> 'success')::int as failed_attempts,
               (count(*) filter (where a.outcome = 'success'))::float8 / nullif(count(*), 0) as success_rate
          from delivery_attempts a join deliveries d on d.id = a.delivery_id
         where a.attempted_at >= now() - w.span and (${sub}::text is null or d.subscription_id = ${sub})) a
      cross join lateral (
        select percentile_cont(0.5) within group (order by ms)::float8 as p50,
               percentile_cont(0.99) within group (order by ms)::float8 as p99
          from (select extract(epoch from (a.attempted_at + make_interval(secs => a.duration_ms / 1000.0)) - d.created_at) * 1000 as ms
                  from deliveries d join delivery_attempts a on a.delivery_id = d.id and a.outcome = 'success'
                 where d.status = 'DELIVERED' and d.finished_at >= now() - w.span
                   and (${sub}::text is null or d.subscription_id = ${sub})) x) l`;
  const [waiting] = await sql<{ pending: number; oldest: number | null }[]>`
    select count(*)::int as pending, extract(epoch from now() - min(created_at))::float8 as oldest
      from deliveries where status in ('PENDING', 'FAILED') and (${sub}::text is null or subscription_id = ${sub})`;
  const pick = (name: string): WindowStats => {
    const { name: _, ...w } = windows.find((x) => x.name === name)!;
    return w;
  };
  return {
    pending: waiting!.pending,
    oldest_pending_age_s: waiting!.oldest,
    last_hour: pick('last_hour'),
    last_day: pick('last_day'),
  };
}
