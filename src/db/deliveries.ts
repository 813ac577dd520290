// The API's queries on deliveries: a filtered listing (newest first, keyset cursor) with each
// delivery's attempts, one delivery with its message, and the dead-letter queue's replay.
import type { Sql } from './client.ts';
import { OUTBOX_CHANNEL } from './outbox.ts';

export const DELIVERY_STATUSES = ['PENDING', 'FAILED', 'DELIVERED', 'DEAD', 'SUPERSEDED'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export type DeliveryFilter = {
  subscription?: string | undefined;
  status?: DeliveryStatus[] | undefined;
  object_id?: string | undefined;
  /** created_at >= from, < to (ISO-8601). */
  from?: string | undefined;
  to?: string | undefined;
};

export type Attempt = {
  attempt: number;
  attempted_at: Date;
  duration_ms: number;
  status_code: number | null;
  outcome: string;
  error: string | null;
  response_body: string | null;
};

export type DeliveryItem = {
  id: string;
  message_id: string;
  subscription_id: string;
  type: string;
  object: string;
  object_id: string;
  version: number;
  previous_version: number | null;
  status: DeliveryStatus;
  attempt_count: number;
  next_attempt_at: Date | null;
  created_at: Date;
  last_attempt_at: Date | null;
  finished_at: Date | null;
  last_status: number | null;
  last_error: string | null;
  superseded_by: string | null;
  attempts: Attempt[];
};

const ITEM = (sql: Sql) => sql`
  d.id::text as id, d.message_id, d.subscription_id, m.type, m.object, d.object_id, d.version::float8 as version,
  d.previous_version::float8 as previous_version, d.status, d.attempts as attempt_count,
  case when d.status in ('PENDING', 'FAILED') then d.next_attempt_at end as next_attempt_at,
  d.created_at, d.last_attempt_at, d.finished_at, d.last_status, d.last_error, d.superseded_by::text as superseded_by`;

function where(sql: Sql, f: DeliveryFilter, before?: string) {
  return sql`
    where true
      ${f.subscription ? sql`and d.subscription_id = ${f.subscription}` : sql``}
      ${f.status ? sql`and d.status = any(${f.status}::text[])` : sql``}
      ${f.object_id ? sql`and d.object_id = ${f.object_id}` : sql``}
      ${f.from ? sql`and d.created_at >= ${f.from}::timestamptz` : sql``}
      ${f.to ? sql`and d.created_at < ${f.to}::timestamptz` : sql``}
      ${before ? sql`and d.id < ${before}::bigint` : sql``}`;
}

async function withAttempts(sql: Sql, items: Omit<DeliveryItem, 'attempts'>[]): Promise<DeliveryItem[]> {
  if (items.length === 0) return [];
  const rows = await sql<(Attempt & { delivery_id: string })[]>`
    select delivery_id::text as delivery_id, attempt, attempted_at, duration_ms, status_code, outcome, error, response_body
      from delivery_attempts where delivery_id = any(${items.map((i) => i.id)}::bigint[]) order by delivery_id, id`;
  const by = new Map<string, Attempt[]>();
  for (const { delivery_id, ...a } of rows) by.set(delivery_id, [...(by.get(delivery_id) ?? []), a]);
  return items.map((i) => ({ ...i, attempts: by.get(i.id) ?? [] }));
}

export const encodeDeliveryCursor = (id: string) => Buffer.from(`d:${id}`).toString('base64url');

export function decodeDeliveryCursor(cursor: string): string | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^d:([1-9]\d{0,17})$/.exec(text);
  return m?.[1];
}

/** One page, newest first (by id); next_cursor is null on the last page. */
export async function listDeliveries(
  sql: Sql,
  filter: DeliveryFilter,
  page: { limit: number; cursor?: string | undefined },
): Promise<{ items: DeliveryItem[]; next_cursor: string | null }> {
  const rows = await sql<Omit<DeliveryItem, 'attempts'>[]>`
    select ${ITEM(sql)} from deliveries d join outbox_messages m on m.id = d.message_id
    ${where(sql, filter, page.cursor)}
    order by d.id desc limit ${page.limit + 1}`;
  const more = rows.length > page.limit;
  const items = await withAttempts(sql, rows.slice(0, page.limit));
  return { items, next_cursor: more && items.length > 0 ? encodeDeliveryCursor(items.at(-1)!.id) : null };
}

/** The dead-letter queue as our users' own API names it: DEAD deliveries, newest first, by offset. */
export async function listDead(sql: Sql, skip: number, limit: number): Promise<DeliveryItem[]> {
  const rows = await sql<Omit<DeliveryItem, 'attempts'>[]>`
    select ${ITEM(sql)} from deliveries d join outbox_messages m on m.id = d.message_id
     where d.status = 'DEAD' order by d.id desc offset ${skip} limit ${limit}`;
  return withAttempts(sql, [...rows]);
}

export type DeliveryDetail = DeliveryItem & { body: { data: unknown; links: unknown; source_event: string | null; created: number } };

export async function getDelivery(sql: Sql, id: string): Promise<DeliveryDetail | undefined> {
  const [row] = await sql<(Omit<DeliveryItem, 'attempts'> & { data: unknown; links: unknown; source_event: string | null; created: number })[]>`
    select ${ITEM(sql)}, m.data, m.links, m.source_event, extract(epoch from m.created_at)::bigint::float8 as created
      from deliveries d join outbox_messages m on m.id = d.message_id where d.id = ${id}::bigint`;
  if (!row) return undefined;
  const { data, links, source_event, created, ...item } = row;
  const [full] = await withAttempts(sql, [item]);
  return { ...full!, body: { data, links, source_event, created } };
}

export type ReplayTarget = { ids: string[] } | { filter: DeliveryFilter; limit?: number | undefined };

// Only what waits or died is sent again: a DELIVERED or SUPERSEDED version would go backwards.
const REPLAYABLE = ['DEAD', 'FAILED'];

function targetWhere(sql: Sql, target: ReplayTarget) {
  if ('ids' in target) return sql`where d.id = any(${target.ids}::bigint[]) and d.status = any(${REPLAYABLE}::text[])`;
  const f = target.filter;
  return sql`${where(sql, { ...f, status: f.status?.filter((s) => REPLAYABLE.includes(s)) ?? (REPLAYABLE as DeliveryStatus[]) })}
    and exists (select 1 from outbox_subscriptions s where s.id = d.subscription_id and s.deleted_at is null)`;
}

/** How many a replay would send again, and the first few. */
export async function replayDryRun(sql: Sql, target: ReplayTarget, sample = 10): Promise<{ matched: number; sample: DeliveryItem[] }> {
  const limit = 'limit' in target && target.limit !== undefined ? target.limit : null;
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from (select 1 from deliveries d ${targetWhere(sql, target)} ${limit === null ? sql`` : sql`limit ${limit}`}) x`;
  const rows = await sql<Omit<DeliveryItem, 'attempts'>[]>`
    select ${ITEM(sql)} from deliveries d join outbox_messages m on m.id = d.message_id
    ${targetWhere(sql, target)} order by d.id limit ${Math.min(sample, limit ?? sample)}`;
  return { matched: row!.n, sample: await withAttempts(sql, [...rows]) };
}

/**
 * Sends DEAD and FAILED deliveries again: PENDING, due now, attempts counted afresh, and wakes the
 * relays. The claim still supersedes one older than what the subscriber has received. Returns the
 * ids it re-queued.
 */
export async function replayDeliveries(sql: Sql, target: ReplayTarget): Promise<string[]> {
  const limit = 'limit' in target && target.limit !== undefined ? target.limit : null;
  const rows = await sql<{ id: string }[]>`
    with picked as (
      select d.id from deliveries d ${targetWhere(sql, target)} order by d.id ${limit === null ? sql`` : sql`limit ${limit}`}
    )
    update deliveries d set status = 'PENDING', attempts = 0, next_attempt_at = now(), finished_at = null, locked_until = null
      from picked where d.id = picked.id
    returning d.id::text as id`;
  if (rows.length > 0) await sql`select pg_notify(${OUTBOX_CHANNEL}, '')`;
  return rows.map((r) => r.id);
}
