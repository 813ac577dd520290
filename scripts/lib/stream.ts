// A realistic Stripe webhook stream for the fold tests and the bench: per customer, the events
// Stripe sends from sign-up (a saved card, a quote, a promotion code, an onboarding fee, VAT)
// through payment, refunds, fraud warnings, disputes, schedules and cancellation, in the order
// Stripe produced them; and the account's own: its catalog, coupons, tax rates, payouts, and for a
// Connect account its onboarding and the platform's transfers. Pure and deterministic per seed: it
// reads only its fixtures, never a database, a clock or the network.
import fixtures from './fixtures/stripe-objects.json' with { type: 'json' };

export type StripeEvent = {
  id: string;
  object: 'event';
  api_version: string;
  created: number;
  type: string;
  livemode: boolean;
  account?: string;
  pending_webhooks: number;
  request: { id: string | null; idempotency_key: string | null };
  data: { object: Record<string, any>; previous_attributes?: Record<string, unknown> };
};

/** The first API version with the new billing shapes (invoice.parent, invoice_payment, item periods). */
export const BASIL = '2025-03-31.basil';
/** The last version before them: invoice.subscription/payment_intent/charge, periods on the subscription. */
export const LEGACY = '2024-06-20';
/** The first version naming a coupon by id (promotion_code.promotion.coupon, discount.source.coupon). */
export const CLOVER = '2025-09-30.clover';

export type StreamOptions = {
  /** A 32-bit signed integer (fast-check's fc.integer()); every id carries it, so streams of different seeds never share one. */
  seed: number;
  /** How many customers go through the lifecycle; 10 if unset. */
  customers?: number;
  /**
   * BASIL if unset. Any version dated 2025-03-31 or later gets the new billing shapes, 2025-09-30
   * or later the new coupon references; before 2025-03-31 the account also sends plan.* events.
   */
  apiVersion?: string;
  /** Unix seconds of the first event; 2025-07-01T00:00:00Z if unset. */
  start?: number;
  /**
   * A Connect account id: every event then carries `account`, as events from a connected account
   * do, and the stream adds the account's onboarding (account.updated) and the platform's
   * transfers to it, which are the platform's own events (no `account`).
   */
  account?: string;
};

type Obj = Record<string, any>;
type FixtureName = keyof typeof fixtures;

const DAY = 86_400;
const DEFAULT_START = 1_751_328_000; // 2025-07-01T00:00:00Z

// ---------------------------------------------------------------------------------------------
// The stream

export function buildStream(options: StreamOptions): StripeEvent[] {
  const { seed, customers = 10, apiVersion = BASIL, start = DEFAULT_START, account } = options;
  if (!Number.isInteger(seed) || seed < -(2 ** 31) || seed >= 2 ** 31) throw new RangeError('seed must be a 32-bit signed integer');
  if (!Number.isInteger(customers) || customers < 0 || customers >= MAX_OWNER) throw new RangeError('customers out of range');
  const basil = apiVersion.slice(0, 10) >= '2025-03-31';
  const clover = apiVersion.slice(0, 10) >= '2025-09-30';

  // The catalog belongs to the stream (owner 0); each customer draws from its own generator, so a
  // customer's events do not change when the stream has more or fewer customers.
  const streamRandom = createRandom(mix(seed, 0));
  const streamCtx: Ctx = { basil, clover, random: streamRandom, id: createIds(seed, 0, streamRandom) };
  const drafts: Draft[] = account ? connectedAccountEvents(streamCtx, account, start) : [];
  const { catalog, drafts: catalogDrafts } = catalogEvents(streamCtx, start);
  drafts.push(...catalogDrafts);

  let arrival = start;
  for (let index = 0; index < customers; index++) {
    // Sign-ups arrive minutes apart, and sometimes in the same second as the one before.
    arrival += streamRandom.chance(0.15) ? 0 : streamRandom.int(1, 900);
    const random = createRandom(mix(seed, index + 1));
    const ctx: Ctx = { basil, clover, random, id: createIds(seed, index + 1, random) };
    drafts.push(...customerEvents(ctx, catalog, arrival));
  }

  // Some time into the stream, someone edits a product in the Dashboard; the account is paid out
  // every few days; the platform of a connected account sends it transfers; and once every
  // customer has signed up, the welcome coupon is deleted.
  const last = drafts.reduce((max, d) => Math.max(max, d.created), start);
  const sometime = () => streamRandom.int(start + 1, Math.max(start + 1, last));
  drafts.push(...productUpdatedEvents(streamCtx, catalog.pro.product, sometime()));
  for (let n = 0; n < Math.ceil(customers / 5); n++) drafts.push(...payoutEvents(streamCtx, sometime()));
  if (account) for (let n = 0; n < Math.ceil(customers / 5); n++) drafts.push(...transferEvents(streamCtx, account, sometime()));
  if (customers > 0) drafts.push(...couponDeletedEvents(streamCtx, catalog.welcome.coupon, last + streamRandom.int(60, 3600)));

  // Each customer's drafts are already in causal order with non-decreasing `created`, so a stable
  // sort by `created` merges the customers without reordering anyone's own events.
  drafts.sort((a, b) => a.created - b.created);
  return drafts.map((draft, n) => toEvent(draft, eventId(seed, n, streamRandom), apiVersion, account));
}

/** The newest snapshot of every object in the stream, by stream order: what a correct fold ends with. */
export function objectsOf(stream: StripeEvent[]): Map<string, { object: string; last: Record<string, any>; lastEvent: string }> {
  const objects = new Map<string, { object: string; last: Record<string, any>; lastEvent: string }>();
  for (const event of stream) {
    const object = event.data.object;
    objects.set(object.id, { object: object.object, last: object, lastEvent: event.type });
    // Subscription items and invoice lines have no events of their own: they live only inside
    // their subscription or invoice.
    const embedded = object.object === 'subscription' ? object.items.data : object.object === 'invoice' ? object.lines.data : [];
    for (const item of embedded) objects.set(item.id, { object: item.object, last: item, lastEvent: event.type });
  }
  return objects;
}

// An event before it has its id, which it gets once the stream is in its final order. A platform
// draft is an event of the Connect platform itself, which carries no `account`.
type Draft = { created: number; type: string; object: Obj; previous?: Obj; request: StripeEvent['request']; platform?: boolean };

type Ctx = { basil: boolean; clover: boolean; random: Random; id: (prefix: string) => string };

function toEvent(draft: Draft, id: string, apiVersion: string, account?: string): StripeEvent {
  const data: StripeEvent['data'] = { object: draft.object };
  if (draft.previous) data.previous_attributes = draft.previous;
  return {
    id,
    object: 'event',
    ...(account && !draft.platform ? { account } : {}),
    api_version: apiVersion,
    created: draft.created,
    data,
    livemode: false,
    pending_webhooks: 1,
    request: draft.request,
    type: draft.type,
  };
}

/** Collects one actor's drafts; every draft holds a deep copy, so later changes never leak back. */
function createRecorder(ctx: Ctx) {
  const drafts: Draft[] = [];
  return {
    drafts,
    /** The request that caused a group of events (one API call often causes several). */
    request(): StripeEvent['request'] {
      return { id: ctx.id('req'), idempotency_key: `stripe-node-retry-${ctx.random.uuid()}` };
    },
    emit(type: string, object: Obj, created: number, options: { request?: StripeEvent['request']; before?: Obj; platform?: boolean } = {}) {
      const request = options.request ? { ...options.request } : { id: null, idempotency_key: null };
      const draft: Draft = { created, type, object: structuredClone(object), request };
      if (options.before) draft.previous = previousAttributes(options.before, object);
      if (options.platform) draft.platform = true;
      drafts.push(draft);
    },
  };
}

/**
 * What `*.updated` events (and only those) carry: the changed fields with their old values, nested
 * like the object; a changed array is given whole.
 */
function previousAttributes(before: Obj, after: Obj): Obj {
  const previous: Obj = {};
  for (const key of Object.keys(before)) {
    const was = before[key];
    const now = after[key];
    if (isPlainObject(was) && isPlainObject(now)) {
      const inner = previousAttributes(was, now);
      if (Object.keys(inner).length > 0) previous[key] = inner;
    } else if (JSON.stringify(was) !== JSON.stringify(now)) {
      previous[key] = was;
    }
  }
  return previous;
}

function isPlainObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// The catalog: created once at the start, shared by every customer

type Product = { product: Obj; monthly: Obj; yearly: Obj };
type Catalog = {
  starter: Product;
  pro: Product;
  seats: Product;
  onboarding: { product: Obj; price: Obj };
  /** German and Austrian VAT, set by hand on subscription items (Stripe Tax not in use). */
  vat: { de: Obj; at: Obj };
  /** A coupon every new customer may redeem with the promotion code WELCOME. */
  welcome: { coupon: Obj; code: Obj };
  /** A coupon support offers one customer at a time, each with a promotion code of their own. */
  loyalty: Obj;
};

function catalogEvents(ctx: Ctx, at: number): { catalog: Catalog; drafts: Draft[] } {
  const recorder = createRecorder(ctx);
  const plan = (name: string, description: string, monthly: number, lookupKey: string): Product => {
    const product = buildProduct(ctx, { name, description, created: at });
    const monthlyPrice = buildPrice(ctx, { product, unitAmount: monthly, interval: 'month', lookupKey: `${lookupKey}_monthly`, created: at });
    const yearlyPrice = buildPrice(ctx, { product, unitAmount: monthly * 10, interval: 'year', lookupKey: `${lookupKey}_yearly`, created: at });
    product.default_price = monthlyPrice.id;
    // Creating a product with default_price_data sends product.created already naming its default
    // price, before price.created: a reference to an object the receiver has not seen yet. An
    // account on an API version before basil created its recurring prices as plans (the Plans
    // API, older than prices): each sends plan.created too, the plan with its price's id.
    const request = recorder.request();
    recorder.emit('product.created', product, at, { request });
    if (!ctx.basil) recorder.emit('plan.created', planOf(monthlyPrice, fixture('plan')), at, { request });
    recorder.emit('price.created', monthlyPrice, at, { request });
    const yearlyRequest = recorder.request();
    if (!ctx.basil) recorder.emit('plan.created', planOf(yearlyPrice, fixture('plan')), at, { request: yearlyRequest });
    recorder.emit('price.created', yearlyPrice, at, { request: yearlyRequest });
    return { product, monthly: monthlyPrice, yearly: yearlyPrice };
  };
  const starter = plan('Starter', 'For individuals getting started.', 900, 'starter');
  const pro = plan('Pro', 'For growing teams that need more projects.', 2900, 'pro');
  const seats = plan('Extra seat', 'One more member on any plan.', 1200, 'seat');
  const setup = buildProduct(ctx, { name: 'Onboarding session', description: 'A one-hour call with our team.', created: at });
  const setupPrice = buildPrice(ctx, { product: setup, unitAmount: 4900, interval: null, lookupKey: 'onboarding', created: at });
  setup.default_price = setupPrice.id;
  const request = recorder.request();
  recorder.emit('product.created', setup, at, { request });
  recorder.emit('price.created', setupPrice, at, { request });

  const vat = {
    de: buildTaxRate(ctx, { country: 'DE', percentage: 19, created: at }),
    at: buildTaxRate(ctx, { country: 'AT', percentage: 20, created: at }),
  };
  for (const rate of [vat.de, vat.at]) recorder.emit('tax_rate.created', rate, at, { request: recorder.request() });

  const welcomeCoupon = buildCoupon(ctx, { name: 'Welcome: 10% off for 3 months', code: 'WELCOME10', percentOff: 10, months: 3, created: at });
  const loyalty = buildCoupon(ctx, { name: 'Thank you: 20% off', code: 'LOYAL20', percentOff: 20, months: null, created: at });
  recorder.emit('coupon.created', welcomeCoupon, at, { request: recorder.request() });
  recorder.emit('coupon.created', loyalty, at, { request: recorder.request() });
  const welcomeCode = buildPromotionCode(ctx, { coupon: welcomeCoupon, code: 'WELCOME', customer: null, created: at });
  recorder.emit('promotion_code.created', welcomeCode, at, { request: recorder.request() });

  return {
    catalog: { starter, pro, seats, onboarding: { product: setup, price: setupPrice }, vat, welcome: { coupon: welcomeCoupon, code: welcomeCode }, loyalty },
    drafts: recorder.drafts,
  };
}

function productUpdatedEvents(ctx: Ctx, product: Obj, at: number): Draft[] {
  const recorder = createRecorder(ctx);
  const before = structuredClone(product);
  product.description = 'For growing teams: unlimited projects and priority support.';
  product.marketing_features = [...product.marketing_features, { name: 'Priority support' }];
  product.updated = at;
  recorder.emit('product.updated', product, at, { request: recorder.request(), before });
  return recorder.drafts;
}

/** An automatic payout: created pending, in transit the next day, paid on its arrival date. */
function payoutEvents(ctx: Ctx, at: number): Draft[] {
  const recorder = createRecorder(ctx);
  const payout = buildPayout(ctx, { amount: ctx.random.int(20, 400) * 100, created: at });
  recorder.emit('payout.created', payout, at);
  const before = structuredClone(payout);
  payout.status = 'in_transit';
  recorder.emit('payout.updated', payout, at + DAY, { before });
  payout.status = 'paid';
  recorder.emit('payout.paid', payout, payout.arrival_date);
  return recorder.drafts;
}

/** Deleting a coupon leaves the discounts made from it; new redemptions stop. */
function couponDeletedEvents(ctx: Ctx, coupon: Obj, at: number): Draft[] {
  const recorder = createRecorder(ctx);
  recorder.emit('coupon.deleted', { ...coupon, valid: false }, at, { request: recorder.request() });
  return recorder.drafts;
}

/** A connected account finishing onboarding: Stripe enables charges and payouts. */
function connectedAccountEvents(ctx: Ctx, id: string, at: number): Draft[] {
  const recorder = createRecorder(ctx);
  const account = buildAccount(ctx, { id, created: at - 30 * DAY });
  const before = structuredClone(account);
  Object.assign(account, { charges_enabled: true, payouts_enabled: true, details_submitted: true });
  Object.assign(account.requirements, { currently_due: [], eventually_due: [], disabled_reason: null });
  recorder.emit('account.updated', account, at, { before });
  return recorder.drafts;
}

/** The platform pays the connected account its share; now and then it takes a transfer back. */
function transferEvents(ctx: Ctx, account: string, at: number): Draft[] {
  const recorder = createRecorder(ctx);
  const transfer = buildTransfer(ctx, { destination: account, amount: ctx.random.int(5, 200) * 100, created: at });
  const request = recorder.request();
  recorder.emit('transfer.created', transfer, at, { request, platform: true });
  if (ctx.random.chance(0.2)) {
    const reversedAt = at + ctx.random.int(3600, 3 * DAY);
    const reversal = {
      id: ctx.id('trr'), object: 'transfer_reversal', amount: transfer.amount, balance_transaction: ctx.id('txn'), created: reversedAt,
      currency: transfer.currency, destination_payment_refund: ctx.id('pyr'), metadata: {}, source_refund: null, transfer: transfer.id,
    };
    Object.assign(transfer, { amount_reversed: transfer.amount, reversed: true });
    Object.assign(transfer.reversals, { data: [reversal], total_count: 1 });
    recorder.emit('transfer.reversed', transfer, reversedAt, { request: recorder.request(), platform: true });
  }
  return recorder.drafts;
}

// ---------------------------------------------------------------------------------------------
// One customer's life

const FIRST_NAMES = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Tim', 'Margaret', 'Dennis'];
const LAST_NAMES = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Perlman', 'Lee', 'Hamilton', 'Ritchie'];

function customerEvents(ctx: Ctx, catalog: Catalog, arrival: number): Draft[] {
  const { random } = ctx;
  const recorder = createRecorder(ctx);
  const { emit } = recorder;

  const name = `${random.pick(FIRST_NAMES)} ${random.pick(LAST_NAMES)}`;
  const viaCheckout = random.chance(0.35);
  // Sales-led customers accept a quote; the others subscribe themselves, some saving their card
  // first with a setup intent.
  const viaQuote = !viaCheckout && random.chance(0.2);
  const setsUpCard = !viaCheckout && random.chance(0.5);
  const business = random.chance(0.3);
  const customer = buildCustomer(ctx, { name, created: arrival });
  const signup = viaCheckout ? undefined : recorder.request();
  emit('customer.created', customer, arrival, { request: signup });
  if (business) {
    // A company gives its VAT id at sign-up (tax_id_data): same request, same second.
    emit('customer.tax_id.created', buildTaxId(ctx, { customer, created: arrival }), arrival, { request: signup });
  }

  const tAttach = arrival + random.int(5, 120);
  const paymentMethod = buildPaymentMethod(ctx, { customer, created: tAttach - random.int(1, 4) });
  if (setsUpCard) {
    // The setup intent exists before its card does; confirming it attaches the card and succeeds.
    const tSetup = random.int(arrival, tAttach - 1);
    const setupIntent = buildSetupIntent(ctx, { customer, created: tSetup });
    emit('setup_intent.created', setupIntent, tSetup, { request: recorder.request() });
    const confirm = recorder.request();
    emit('payment_method.attached', paymentMethod, tAttach, { request: confirm });
    Object.assign(setupIntent, { status: 'succeeded', payment_method: paymentMethod.id });
    emit('setup_intent.succeeded', setupIntent, tAttach, { request: confirm });
  } else {
    emit('payment_method.attached', paymentMethod, tAttach, { request: recorder.request() });
  }
  if (random.chance(0.5)) {
    const before = structuredClone(customer);
    customer.invoice_settings.default_payment_method = paymentMethod.id;
    emit('customer.updated', customer, tAttach, { request: recorder.request(), before });
  }

  const yearly = random.chance(0.25);
  const base = random.chance(0.6) ? catalog.starter : catalog.pro;
  const taxRates = random.chance(0.7) ? [catalog.vat.de] : [];
  const lines = [{ price: yearly ? base.yearly : base.monthly, quantity: 1, taxRates }];
  if (random.chance(0.4)) lines.push({ price: yearly ? catalog.seats.yearly : catalog.seats.monthly, quantity: random.int(2, 9), taxRates });
  const redeemsWelcome = random.chance(0.3);
  const paysOnboarding = random.chance(0.3);

  // A quote is drafted and sent minutes after sign-up and accepted a day or so later: accepting it
  // is what creates the subscription below.
  let quote: Obj | undefined;
  let tSubscribe = tAttach + random.int(1, 60);
  if (viaQuote) {
    const tQuote = tSubscribe;
    quote = buildQuote(ctx, { customer, created: tQuote });
    emit('quote.created', quote, tQuote, { request: recorder.request() });
    const tSent = tQuote + random.int(60, 1800);
    finalizeQuote(quote, { customer, at: tSent });
    emit('quote.finalized', quote, tSent, { request: recorder.request() });
    tSubscribe = tSent + random.int(3600, 2 * DAY);
  }

  // One API call (POST /v1/subscriptions, or accepting the quote) creates the subscription, the
  // discount of a promotion code, the invoice item of a one-off fee (add_invoice_items) and the
  // first invoice, finalizes it and creates its payment intent: the events share a request id
  // and, mostly, a second. The subscription already names its latest_invoice, and the invoice
  // item its invoice, which the invoice.created after them creates.
  const subscription = buildSubscription(ctx, { customer, paymentMethod, lines, created: tSubscribe });
  const invoiceId = ctx.id('in');
  const discount = redeemsWelcome
    ? buildDiscount(ctx, { customer, subscription, coupon: catalog.welcome.coupon, promotionCode: catalog.welcome.code, created: tSubscribe })
    : undefined;
  if (discount) subscription.discounts = [discount.id];
  const fee = paysOnboarding
    ? buildInvoiceItem(ctx, { customer, subscription, price: catalog.onboarding.price, invoice: invoiceId, taxRates, created: tSubscribe })
    : undefined;
  const invoice = buildInvoice(ctx, {
    id: invoiceId,
    customer,
    subscription,
    invoiceItems: fee ? [{ invoiceItem: fee, price: catalog.onboarding.price }] : [],
    applied: discount ? { discount, coupon: catalog.welcome.coupon } : undefined,
    created: tSubscribe,
  });
  subscription.latest_invoice = invoice.id;
  const subscribe = recorder.request();
  emit('customer.subscription.created', subscription, tSubscribe, { request: subscribe });
  if (discount) emit('customer.discount.created', discount, tSubscribe, { request: subscribe });
  if (fee) emit('invoiceitem.created', fee, tSubscribe, { request: subscribe });
  emit('invoice.created', invoice, tSubscribe, { request: subscribe });
  if (quote) {
    acceptQuote(quote, { subscription, invoice, at: tSubscribe });
    emit('quote.accepted', quote, tSubscribe, { request: subscribe });
  }

  const tFinalize = tSubscribe + random.int(0, 1);
  const paymentIntent = buildPaymentIntent(ctx, { customer, amount: invoice.amount_due, invoice, description: 'Subscription creation', created: tFinalize });
  const invoicePayment = buildInvoicePayment(ctx, { invoice, paymentIntent, created: tFinalize });
  finalizeInvoice(ctx, invoice, { customer, paymentIntent, at: tFinalize });
  emit('invoice.finalized', invoice, tFinalize, { request: subscribe });
  emit('payment_intent.created', paymentIntent, tFinalize, { request: subscribe });

  // Why ties matter: `created` has one-second resolution and the card is charged at once, so for
  // many customers invoice.finalized (open) and invoice.paid (paid) carry the same `created`. A fold
  // that orders by `created` alone cannot tell which snapshot is newer.
  const tPaid = random.chance(0.35) ? tFinalize : tFinalize + random.int(1, 4);
  const charge = buildCharge(ctx, { customer, paymentIntent, paymentMethod, invoice, description: 'Subscription creation', created: tPaid });
  succeedPaymentIntent(paymentIntent, { charge, paymentMethod });
  // Stripe does not promise an order between the events of one moment; both orders happen.
  for (const type of random.shuffle(['payment_intent.succeeded', 'charge.succeeded'])) {
    emit(type, type === 'charge.succeeded' ? charge : paymentIntent, tPaid);
  }
  const openInvoice = structuredClone(invoice);
  payInvoice(ctx, invoice, { charge, at: tPaid });
  if (ctx.basil) {
    payInvoicePayment(invoicePayment, { at: tPaid });
    emit('invoice_payment.paid', invoicePayment, tPaid);
  }
  // invoice.updated and invoice.paid describe the same change and carry the same snapshot.
  for (const type of random.shuffle(['invoice.updated', 'invoice.paid'])) {
    emit(type, invoice, tPaid, type === 'invoice.updated' ? { before: openInvoice } : {});
  }
  emit('invoice.payment_succeeded', invoice, tPaid);
  const incomplete = structuredClone(subscription);
  subscription.status = 'active';
  emit('customer.subscription.updated', subscription, tPaid, { before: incomplete });

  if (viaCheckout) {
    const session = buildCheckoutSession(ctx, { mode: 'subscription', customer, subscription, invoice, amount: invoice.total, created: arrival - random.int(30, 600) });
    emit('checkout.session.completed', session, tPaid + random.int(0, 2));
  }

  // The rest of the customer's life: each episode happens or not, hours to days after the last.
  let t = tPaid + 2;
  const later = () => (t += random.int(3600, 5 * DAY));

  if (random.chance(0.25)) {
    const at = later();
    const before = structuredClone(customer);
    customer.email = emailOf(`${name} work`, random);
    emit('customer.updated', customer, at, { request: recorder.request(), before });
  }
  if (taxRates.length > 0 && random.chance(0.1)) {
    // The customer moves to Vienna: the same request changes their address and, by hand, the tax
    // rate on every item of the subscription.
    const at = later();
    const request = recorder.request();
    const before = structuredClone(customer);
    customer.address = { city: 'Wien', country: 'AT', line1: `Mariahilfer Straße ${random.int(1, 120)}`, line2: null, postal_code: '1070', state: null };
    emit('customer.updated', customer, at, { request, before });
    const beforeSubscription = structuredClone(subscription);
    for (const item of subscription.items.data) item.tax_rates = [structuredClone(catalog.vat.at)];
    emit('customer.subscription.updated', subscription, at, { request, before: beforeSubscription });
  }
  if (random.chance(0.1)) {
    // Support offers a customer thinking of leaving a code of their own; they redeem it on their
    // subscription at once.
    const at = later();
    const code = buildPromotionCode(ctx, { coupon: catalog.loyalty, code: `THANKS${random.chars(6, HEX_UPPER)}`, customer, created: at });
    emit('promotion_code.created', code, at, { request: recorder.request() });
    const tRedeem = at + random.int(60, 3 * 3600);
    const loyal = buildDiscount(ctx, { customer, subscription, coupon: catalog.loyalty, promotionCode: code, created: tRedeem });
    const request = recorder.request();
    const before = structuredClone(subscription);
    subscription.discounts = [...subscription.discounts, loyal.id];
    emit('customer.discount.created', loyal, tRedeem, { request });
    emit('customer.subscription.updated', subscription, tRedeem, { request, before });
    t = tRedeem;
  }
  if (random.chance(0.15)) {
    // A pending invoice item, for the next invoice.
    const at = later();
    const invoiceItem = buildInvoiceItem(ctx, { customer, subscription, price: catalog.onboarding.price, invoice: null, taxRates, created: at });
    emit('invoiceitem.created', invoiceItem, at, { request: recorder.request() });
  }
  if (random.chance(0.2)) {
    // A one-off purchase through Checkout in payment mode: a payment intent with no invoice.
    const at = later();
    const price = catalog.onboarding.price;
    const oneOff = buildPaymentIntent(ctx, { customer, amount: price.unit_amount, invoice: null, description: null, created: at });
    emit('payment_intent.created', oneOff, at);
    const tDone = at + random.int(5, 90);
    const oneOffCharge = buildCharge(ctx, { customer, paymentIntent: oneOff, paymentMethod, invoice: null, description: null, created: tDone });
    succeedPaymentIntent(oneOff, { charge: oneOffCharge, paymentMethod });
    emit('charge.succeeded', oneOffCharge, tDone);
    emit('payment_intent.succeeded', oneOff, tDone);
    const session = buildCheckoutSession(ctx, { mode: 'payment', customer, paymentIntent: oneOff, amount: oneOff.amount, created: at });
    emit('checkout.session.completed', session, tDone);
  }
  let fullyRefunded = false;
  if (random.chance(0.06)) {
    // The card issuer reports the first payment as likely fraud; often the merchant refunds it in
    // full at once, which makes the warning no longer actionable.
    const at = later();
    const warning = buildEarlyFraudWarning(ctx, { charge, created: at });
    emit('radar.early_fraud_warning.created', warning, at);
    if (random.chance(0.6)) {
      const tRefund = at + random.int(600, 6 * 3600);
      const refund = buildRefund(ctx, { charge, amount: charge.amount, created: tRefund });
      Object.assign(charge, { amount_refunded: charge.amount, refunded: true });
      fullyRefunded = true;
      const request = recorder.request();
      emit('charge.refunded', charge, tRefund, { request });
      emit('refund.created', refund, tRefund, { request });
      const before = structuredClone(warning);
      warning.actionable = false;
      emit('radar.early_fraud_warning.updated', warning, tRefund, { before });
      t = tRefund;
    }
  }
  if (!fullyRefunded && random.chance(0.15)) {
    const at = later();
    const amount = random.chance(0.5) ? charge.amount : Math.floor(charge.amount / 2);
    const refund = buildRefund(ctx, { charge, amount, created: at });
    charge.amount_refunded += amount;
    charge.refunded = charge.amount_refunded === charge.amount;
    fullyRefunded = charge.refunded;
    const request = recorder.request();
    emit('charge.refunded', charge, at, { request });
    emit('refund.created', refund, at, { request });
  }
  if (!fullyRefunded && random.chance(0.08)) {
    // The cardholder's bank opens a dispute. Only the dispute event is generated; the charge's
    // `disputed` flag changes too, but no charge event follows here to carry it.
    const at = later();
    const dispute = buildDispute(ctx, { charge, created: at });
    charge.disputed = true;
    emit('charge.dispute.created', dispute, at);
  }
  if (random.chance(0.15)) {
    // A credit note on a paid invoice changes the invoice too: both events in one request and second.
    const at = later();
    const creditNote = buildCreditNote(ctx, { invoice, amount: Math.min(500, invoice.amount_paid), created: at });
    const before = structuredClone(invoice);
    invoice.post_payment_credit_notes_amount += creditNote.amount;
    const request = recorder.request();
    emit('credit_note.created', creditNote, at, { request });
    emit('invoice.updated', invoice, at, { request, before });
  }
  let schedule: Obj | undefined;
  if (random.chance(0.12)) {
    // The customer plans a change at renewal: a schedule made from the subscription manages it
    // from now on (same request: the subscription names its schedule). Some are released again,
    // which hands the subscription back and leaves the schedule naming none.
    const at = later();
    schedule = buildSubscriptionSchedule(ctx, { subscription, created: at });
    const request = recorder.request();
    emit('subscription_schedule.created', schedule, at, { request });
    let before = structuredClone(subscription);
    subscription.schedule = schedule.id;
    emit('customer.subscription.updated', subscription, at, { request, before });
    if (random.chance(0.4)) {
      const releasedAt = later();
      const release = recorder.request();
      Object.assign(schedule, { status: 'released', released_at: releasedAt, released_subscription: subscription.id, subscription: null, current_phase: null });
      emit('subscription_schedule.released', schedule, releasedAt, { request: release });
      before = structuredClone(subscription);
      subscription.schedule = null;
      emit('customer.subscription.updated', subscription, releasedAt, { request: release, before });
      schedule = undefined;
    }
  }
  const cancels = random.chance(0.25);
  const deletes = random.chance(cancels ? 0.35 : 0.04);
  const cancel = (at: number, request: StripeEvent['request'], feedback: string | null) => {
    cancelSubscription(subscription, { at, reason: 'cancellation_requested', feedback });
    emit('customer.subscription.deleted', subscription, at, { request });
    if (schedule) {
      // Canceling a subscription cancels the schedule managing it, in the same request.
      Object.assign(schedule, { status: 'canceled', canceled_at: at, current_phase: null });
      emit('subscription_schedule.canceled', schedule, at, { request });
      schedule = undefined;
    }
  };
  if (cancels) cancel(later(), recorder.request(), random.pick(['too_expensive', 'unused', 'switched_service', null]));
  if (deletes) {
    // Deleting a customer cancels what is still active in the same request and second.
    const at = later();
    const request = recorder.request();
    if (subscription.status !== 'canceled') cancel(at, request, null);
    emit('customer.deleted', customer, at, { request });
  }
  return recorder.drafts;
}

// ---------------------------------------------------------------------------------------------
// One builder per object type: a deep copy of Stripe's fixture with our ids, references and
// amounts, every expandable field an id string (or null), shaped for the API version.

function fixture(name: FixtureName): Obj {
  return structuredClone(fixtures[name]) as Obj;
}

function buildProduct(ctx: Ctx, args: { name: string; description: string; created: number }): Obj {
  const product = fixture('product');
  Object.assign(product, {
    id: ctx.id('prod'),
    name: args.name,
    description: args.description,
    created: args.created,
    updated: args.created,
    default_price: null,
    marketing_features: [{ name: 'Unlimited invoices' }, { name: 'Email support' }],
    metadata: { catalog: 'saas-2025', feature_tier: args.name.toLowerCase().replace(/ /g, '_') },
    package_dimensions: null,
    shippable: null,
    type: 'service',
    unit_label: null,
  });
  return product;
}

function buildPrice(ctx: Ctx, args: { product: Obj; unitAmount: number; interval: 'month' | 'year' | null; lookupKey: string; created: number }): Obj {
  const price = fixture('price');
  Object.assign(price, {
    id: ctx.id('price'),
    created: args.created,
    product: args.product.id,
    nickname: args.interval ? `${args.product.name} (${args.interval}ly)` : args.product.name,
    lookup_key: args.lookupKey,
    metadata: { catalog: 'saas-2025' },
    custom_unit_amount: null,
    transform_quantity: null,
    type: args.interval ? 'recurring' : 'one_time',
    recurring: args.interval ? { interval: args.interval, interval_count: 1, meter: null, usage_type: 'licensed', trial_period_days: null } : null,
    unit_amount: args.unitAmount,
    unit_amount_decimal: String(args.unitAmount),
  });
  return price;
}

function buildCustomer(ctx: Ctx, args: { name: string; created: number }): Obj {
  const { random } = ctx;
  const customer = fixture('customer');
  Object.assign(customer, {
    id: ctx.id('cus'),
    created: args.created,
    name: args.name,
    email: emailOf(args.name, random),
    phone: null,
    description: null,
    discount: null,
    address: { city: 'Berlin', country: 'DE', line1: `Torstraße ${random.int(1, 200)}`, line2: null, postal_code: '10119', state: null },
    invoice_prefix: random.chars(8, HEX_UPPER),
    next_invoice_sequence: 1,
    preferred_locales: ['en'],
    shipping: null,
    metadata: { app_user_id: `user_${random.chars(10)}`, signup_source: random.pick(['web', 'ios', 'android', 'sales']) },
  });
  customer.invoice_settings.default_payment_method = null;
  return customer;
}

function buildPaymentMethod(ctx: Ctx, args: { customer: Obj; created: number }): Obj {
  const { random } = ctx;
  const paymentMethod = fixture('payment_method');
  const brand = random.pick(['visa', 'mastercard', 'amex']);
  Object.assign(paymentMethod, {
    id: ctx.id('pm'),
    created: args.created,
    customer: args.customer.id,
    allow_redisplay: 'always',
    metadata: {},
  });
  Object.assign(paymentMethod.billing_details, { email: args.customer.email, name: args.customer.name, phone: null, address: { ...args.customer.address } });
  Object.assign(paymentMethod.card, {
    brand,
    display_brand: brand,
    last4: random.pick(['4242', '4444', '0005', '1881', '5556']),
    exp_month: random.int(1, 12),
    exp_year: random.int(2026, 2032),
    fingerprint: random.chars(16),
    generated_from: null,
    networks: { available: [brand], preferred: null },
    wallet: null,
  });
  return paymentMethod;
}

function buildSubscription(
  ctx: Ctx,
  args: { customer: Obj; paymentMethod: Obj; lines: { price: Obj; quantity: number; taxRates: Obj[] }[]; created: number },
): Obj {
  const subscription = fixture('subscription');
  const id = ctx.id('sub');
  const period = { start: args.created, end: addInterval(args.created, args.lines[0]!.price.recurring.interval) };
  const items = args.lines.map((line) => buildSubscriptionItem(ctx, { subscription: id, ...line, period, created: args.created }));
  Object.assign(subscription, {
    id,
    customer: args.customer.id,
    created: args.created,
    start_date: args.created,
    billing_cycle_anchor: args.created,
    billing_cycle_anchor_config: null,
    billing_schedules: [],
    billing_thresholds: null,
    cancel_at: null,
    cancel_at_period_end: false,
    canceled_at: null,
    cancellation_details: { comment: null, feedback: null, reason: null },
    default_payment_method: args.paymentMethod.id,
    description: null,
    discounts: [],
    ended_at: null,
    items: { object: 'list', data: items, has_more: false, total_count: items.length, url: `/v1/subscription_items?subscription=${id}` },
    latest_invoice: null,
    metadata: { app_user_id: args.customer.metadata.app_user_id },
    next_pending_invoice_item_invoice: null,
    pause_collection: null,
    payment_settings: { payment_method_options: null, payment_method_types: null, save_default_payment_method: 'off' },
    pending_invoice_item_interval: null,
    pending_update: null,
    schedule: null,
    status: 'incomplete',
    transfer_data: null,
    trial_end: null,
    trial_start: null,
  });
  // Before basil the billing period lived on the subscription; since basil, on each item.
  if (!ctx.basil) Object.assign(subscription, { current_period_start: period.start, current_period_end: period.end });
  return subscription;
}

function buildSubscriptionItem(
  ctx: Ctx,
  args: { subscription: string; price: Obj; quantity: number; taxRates: Obj[]; period: { start: number; end: number }; created: number },
): Obj {
  const item = fixture('subscription_item');
  Object.assign(item, {
    id: ctx.id('si'),
    created: args.created,
    subscription: args.subscription,
    // Stripe embeds the whole price (and its legacy twin, the plan) in each item.
    price: structuredClone(args.price),
    plan: planOf(args.price, item.plan),
    quantity: args.quantity,
    // Tax rates, like the price, are embedded whole.
    tax_rates: args.taxRates.map((rate) => structuredClone(rate)),
    billing_thresholds: null,
    metadata: {},
  });
  if (ctx.basil) Object.assign(item, { current_period_start: args.period.start, current_period_end: args.period.end });
  else {
    delete item.current_period_start;
    delete item.current_period_end;
  }
  return item;
}

function planOf(price: Obj, template: Obj): Obj {
  return {
    ...template,
    id: price.id,
    active: price.active,
    amount: price.unit_amount,
    amount_decimal: price.unit_amount_decimal,
    billing_scheme: 'per_unit',
    created: price.created,
    currency: price.currency,
    interval: price.recurring.interval,
    interval_count: price.recurring.interval_count,
    livemode: false,
    metadata: price.metadata,
    nickname: price.nickname,
    product: price.product,
    transform_usage: null,
  };
}

/** What an invoice line bills: a subscription item, or an invoice item of a one-off price. */
type Billed = { price: Obj; quantity: number; subscription: string; taxRates: Obj[] } & ({ item: Obj } | { invoiceItem: Obj });
/** A discount applied to an invoice, with the coupon it takes its percentage from. */
type Applied = { discount: Obj; coupon: Obj };
type LineTax = { rate: string; amount: number; taxable: number };

/**
 * A subscription's first invoice: a line per item and per invoice item, each with its share of
 * the discount (percent off, the invoice's `discounts`) and the tax of its rates, added up.
 */
function buildInvoice(
  ctx: Ctx,
  args: { id: string; customer: Obj; subscription: Obj; invoiceItems: { invoiceItem: Obj; price: Obj }[]; applied: Applied | undefined; created: number },
): Obj {
  const { customer, subscription, applied, id } = args;
  const invoice = fixture('invoice');
  const template = invoice.lines.data[0];
  const billed: Billed[] = [
    ...subscription.items.data.map((item: Obj) => ({ item, price: item.price, quantity: item.quantity, subscription: subscription.id, taxRates: item.tax_rates })),
    ...args.invoiceItems.map(({ invoiceItem, price }) => ({
      invoiceItem, price, quantity: invoiceItem.quantity, subscription: subscription.id, taxRates: invoiceItem.tax_rates,
    })),
  ];
  const built = billed.map((b) => buildInvoiceLine(ctx, { template, invoice: id, billed: b, applied }));
  const lines = built.map((b) => b.line);
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  const subtotal = sum(lines.map((line) => line.amount));
  const discounted = sum(lines.flatMap((line) => line.discount_amounts.map((d: Obj) => d.amount)));
  const taxes = [...Map.groupBy(built.flatMap((b) => b.taxes), (x) => x.rate)].map(([rate, xs]) => ({
    rate, amount: sum(xs.map((x) => x.amount)), taxable: sum(xs.map((x) => x.taxable)),
  }));
  const tax = sum(taxes.map((x) => x.amount));
  const total = subtotal - discounted + tax;
  Object.assign(invoice, {
    id,
    created: args.created,
    customer: customer.id,
    customer_address: { ...customer.address },
    customer_email: customer.email,
    customer_name: customer.name,
    customer_shipping: null,
    account_name: 'Acme SaaS GmbH',
    amount_due: total,
    amount_paid: 0,
    amount_remaining: total,
    amount_overpaid: 0,
    attempt_count: 0,
    attempted: false,
    auto_advance: true,
    automatically_finalizes_at: null,
    billing_reason: 'subscription_create',
    discounts: applied ? [applied.discount.id] : [],
    due_date: null,
    effective_at: null,
    ending_balance: null,
    from_invoice: null,
    last_finalization_error: null,
    lines: { object: 'list', data: lines, has_more: false, total_count: lines.length, url: `/v1/invoices/${id}/lines` },
    metadata: {},
    next_payment_attempt: null,
    number: null,
    payment_settings: { default_mandate: null, payment_method_options: null, payment_method_types: null },
    // A subscription's first invoice covers the instant it started; the lines carry the period.
    period_start: args.created,
    period_end: args.created,
    shipping_cost: null,
    shipping_details: null,
    status: 'draft',
    status_transitions: { finalized_at: null, marked_uncollectible_at: null, paid_at: null, voided_at: null },
    subtotal,
    subtotal_excluding_tax: subtotal,
    total,
    total_discount_amounts: applied ? [{ amount: discounted, discount: applied.discount.id }] : [],
    total_excluding_tax: subtotal - discounted,
    total_pretax_credit_amounts: applied ? [{ amount: discounted, credit_balance_transaction: null, discount: applied.discount.id, type: 'discount' }] : [],
    total_taxes: taxes.map(basilTax),
    webhooks_delivered_at: null,
  });
  if (ctx.basil) {
    // basil moved the subscription under `parent` and dropped the payment fields: payments are
    // invoice_payment objects now.
    delete invoice.subscription;
    invoice.parent = { type: 'subscription_details', subscription_details: { subscription: subscription.id, metadata: {} }, quote_details: null };
  } else {
    delete invoice.parent;
    delete invoice.amount_overpaid;
    delete invoice.total_pretax_credit_amounts;
    delete invoice.total_taxes;
    Object.assign(invoice, {
      subscription: subscription.id,
      subscription_details: { metadata: {} },
      payment_intent: null,
      charge: null,
      paid: false,
      paid_out_of_band: false,
      tax,
      total_tax_amounts: taxes.map(legacyTax),
    });
  }
  return invoice;
}

const basilTax = (x: LineTax) => ({
  amount: x.amount, tax_behavior: 'exclusive', tax_rate_details: { tax_rate: x.rate }, taxability_reason: 'standard_rated', taxable_amount: x.taxable, type: 'tax_rate_details',
});
const legacyTax = (x: LineTax) => ({ amount: x.amount, inclusive: false, tax_rate: x.rate, taxability_reason: 'standard_rated', taxable_amount: x.taxable });

/** One invoice line, and its tax per rate (for the invoice's totals). */
function buildInvoiceLine(ctx: Ctx, args: { template: Obj; invoice: string; billed: Billed; applied: Applied | undefined }): { line: Obj; taxes: LineTax[] } {
  const { billed, applied } = args;
  const { price, quantity } = billed;
  const amount = price.unit_amount * quantity;
  const discounted = applied ? Math.round((amount * applied.coupon.percent_off) / 100) : 0;
  const taxes = billed.taxRates.map((rate) => ({ rate: rate.id, amount: Math.round(((amount - discounted) * rate.percentage) / 100), taxable: amount - discounted }));
  const period =
    'invoiceItem' in billed
      ? { ...billed.invoiceItem.period }
      : ctx.basil
        ? { start: billed.item.current_period_start, end: billed.item.current_period_end }
        : { start: billed.item.created, end: addInterval(billed.item.created, price.recurring.interval) };
  const common = {
    id: ctx.id('il'),
    object: 'line_item',
    amount,
    currency: price.currency,
    description:
      'invoiceItem' in billed
        ? billed.invoiceItem.description
        : `${quantity} × ${price.nickname} (at ${formatAmount(price.unit_amount)} / ${price.recurring.interval})`,
    discount_amounts: applied ? [{ amount: discounted, discount: applied.discount.id }] : [],
    discountable: true,
    discounts: [],
    invoice: args.invoice,
    livemode: false,
    metadata: {},
    period,
    quantity,
    subscription: billed.subscription,
  };
  if (ctx.basil) {
    const parent =
      'invoiceItem' in billed
        ? {
            type: 'invoice_item_details',
            invoice_item_details: { invoice_item: billed.invoiceItem.id, proration: false, proration_details: { credited_items: null }, subscription: billed.subscription },
            subscription_item_details: null,
          }
        : {
            type: 'subscription_item_details',
            invoice_item_details: null,
            subscription_item_details: {
              invoice_item: null,
              proration: false,
              proration_details: { credited_items: null },
              subscription: billed.subscription,
              subscription_item: billed.item.id,
            },
          };
    const line = {
      ...structuredClone(args.template),
      ...common,
      parent,
      pricing: { type: 'price_details', price_details: { price: price.id, product: price.product }, unit_amount_decimal: price.unit_amount_decimal },
      pretax_credit_amounts: applied ? [{ amount: discounted, credit_balance_transaction: null, discount: applied.discount.id, type: 'discount' }] : [],
      subtotal: amount,
      taxes: taxes.map(basilTax),
    };
    return { line, taxes };
  }
  // Before basil a line embeds its whole price (and plan) and tax rates.
  const line = {
    ...common,
    amount_excluding_tax: amount,
    invoice_item: 'invoiceItem' in billed ? billed.invoiceItem.id : null,
    plan: 'item' in billed ? structuredClone(billed.item.plan) : null,
    price: structuredClone(price),
    proration: false,
    proration_details: { credited_items: null },
    subscription_item: 'item' in billed ? billed.item.id : null,
    tax_amounts: taxes.map(legacyTax),
    tax_rates: billed.taxRates.map((rate) => structuredClone(rate)),
    type: 'invoiceItem' in billed ? 'invoiceitem' : 'subscription',
    unit_amount_excluding_tax: price.unit_amount_decimal,
  };
  return { line, taxes };
}

function finalizeInvoice(ctx: Ctx, invoice: Obj, args: { customer: Obj; paymentIntent: Obj; at: number }): void {
  const sequence = args.customer.next_invoice_sequence++;
  const token = ctx.random.chars(40);
  Object.assign(invoice, {
    status: 'open',
    number: `${args.customer.invoice_prefix}-${String(sequence).padStart(4, '0')}`,
    effective_at: args.at,
    ending_balance: 0,
    hosted_invoice_url: `https://invoice.stripe.com/i/acct_1Acme/test_${token}`,
    invoice_pdf: `https://pay.stripe.com/invoice/acct_1Acme/test_${token}/pdf`,
    webhooks_delivered_at: args.at,
  });
  invoice.status_transitions.finalized_at = args.at;
  if (!ctx.basil) invoice.payment_intent = args.paymentIntent.id;
}

function payInvoice(ctx: Ctx, invoice: Obj, args: { charge: Obj; at: number }): void {
  Object.assign(invoice, { status: 'paid', amount_paid: invoice.amount_due, amount_remaining: 0, attempted: true, attempt_count: 1 });
  invoice.status_transitions.paid_at = args.at;
  if (!ctx.basil) Object.assign(invoice, { charge: args.charge.id, paid: true });
}

function buildInvoicePayment(ctx: Ctx, args: { invoice: Obj; paymentIntent: Obj; created: number }): Obj {
  const invoicePayment = fixture('invoice_payment');
  Object.assign(invoicePayment, {
    id: ctx.id('inpay'),
    amount_paid: null,
    amount_requested: args.invoice.amount_due,
    created: args.created,
    currency: args.invoice.currency,
    invoice: args.invoice.id,
    is_default: true,
    livemode: false,
    payment: { type: 'payment_intent', payment_intent: args.paymentIntent.id },
    status: 'open',
    status_transitions: { canceled_at: null, paid_at: null },
  });
  return invoicePayment;
}

function payInvoicePayment(invoicePayment: Obj, args: { at: number }): void {
  Object.assign(invoicePayment, { amount_paid: invoicePayment.amount_requested, status: 'paid' });
  invoicePayment.status_transitions.paid_at = args.at;
}

function buildPaymentIntent(ctx: Ctx, args: { customer: Obj; amount: number; invoice: Obj | null; description: string | null; created: number }): Obj {
  const paymentIntent = fixture('payment_intent');
  const id = ctx.id('pi');
  Object.assign(paymentIntent, {
    id,
    amount: args.amount,
    amount_received: 0,
    automatic_payment_methods: null,
    canceled_at: null,
    client_secret: `${id}_secret_${ctx.random.chars(25)}`,
    created: args.created,
    customer: args.customer.id,
    description: args.description,
    last_payment_error: null,
    latest_charge: null,
    metadata: {},
    next_action: null,
    payment_method: null,
    payment_method_configuration_details: null,
    payment_method_options: { card: { installments: null, mandate_options: null, network: null, request_three_d_secure: 'automatic' } },
    processing: null,
    setup_future_usage: args.invoice ? 'off_session' : null,
    shipping: null,
    status: 'requires_payment_method',
    transfer_data: null,
  });
  // basil dropped payment_intent.invoice; the invoice_payment object links the two instead.
  if (!ctx.basil) paymentIntent.invoice = args.invoice?.id ?? null;
  return paymentIntent;
}

function succeedPaymentIntent(paymentIntent: Obj, args: { charge: Obj; paymentMethod: Obj }): void {
  Object.assign(paymentIntent, {
    status: 'succeeded',
    amount_received: paymentIntent.amount,
    latest_charge: args.charge.id,
    payment_method: args.paymentMethod.id,
  });
}

function buildCharge(ctx: Ctx, args: { customer: Obj; paymentIntent: Obj; paymentMethod: Obj; invoice: Obj | null; description: string | null; created: number }): Obj {
  const { random } = ctx;
  const charge = fixture('charge');
  const card = args.paymentMethod.card;
  const amount = args.paymentIntent.amount;
  Object.assign(charge, {
    id: ctx.id('ch'),
    amount,
    amount_captured: amount,
    amount_refunded: 0,
    balance_transaction: ctx.id('txn'),
    billing_details: structuredClone(args.paymentMethod.billing_details),
    calculated_statement_descriptor: 'ACME SAAS',
    captured: true,
    created: args.created,
    customer: args.customer.id,
    description: args.description,
    disputed: false,
    metadata: {},
    outcome: {
      advice_code: null,
      network_advice_code: null,
      network_decline_code: null,
      network_status: 'approved_by_network',
      reason: null,
      risk_level: 'normal',
      risk_score: random.int(5, 60),
      seller_message: 'Payment complete.',
      type: 'authorized',
    },
    paid: true,
    payment_intent: args.paymentIntent.id,
    payment_method: args.paymentMethod.id,
    receipt_email: args.customer.email,
    receipt_url: `https://pay.stripe.com/receipts/payment/${random.chars(72)}`,
    refunded: false,
    review: null,
    shipping: null,
    status: 'succeeded',
    transfer_data: null,
  });
  Object.assign(charge.payment_method_details.card, {
    amount_authorized: amount,
    brand: card.brand,
    exp_month: card.exp_month,
    exp_year: card.exp_year,
    fingerprint: card.fingerprint,
    last4: card.last4,
    network: card.brand,
    network_transaction_id: random.chars(15, DIGITS),
    wallet: null,
  });
  charge.payment_method_details.card.overcapture.maximum_amount_capturable = amount;
  // Charges made through payment methods have no legacy `source`, and since 2022-11-15 `refunds`
  // is no longer included unless expanded.
  delete charge.source;
  delete charge.refunds;
  // basil dropped charge.invoice along with payment_intent.invoice.
  if (!ctx.basil) charge.invoice = args.invoice?.id ?? null;
  return charge;
}

function buildRefund(ctx: Ctx, args: { charge: Obj; amount: number; created: number }): Obj {
  const refund = fixture('refund');
  Object.assign(refund, {
    id: ctx.id('re'),
    amount: args.amount,
    balance_transaction: ctx.id('txn'),
    charge: args.charge.id,
    created: args.created,
    currency: args.charge.currency,
    destination_details: {
      card: { reference: ctx.random.chars(23, DIGITS), reference_status: 'available', reference_type: 'acquirer_reference_number', type: 'refund' },
      type: 'card',
    },
    metadata: { support_ticket: `T-${ctx.random.int(10_000, 99_999)}`, refunded_by: 'support@acme.example' },
    payment_intent: args.charge.payment_intent,
    payment_method: args.charge.payment_method,
    reason: 'requested_by_customer',
    status: 'succeeded',
  });
  return refund;
}

function buildDispute(ctx: Ctx, args: { charge: Obj; created: number }): Obj {
  const dispute = fixture('dispute');
  Object.assign(dispute, {
    id: ctx.id('dp'),
    amount: args.charge.amount - args.charge.amount_refunded,
    charge: args.charge.id,
    created: args.created,
    currency: args.charge.currency,
    is_charge_refundable: false,
    payment_intent: args.charge.payment_intent,
    reason: ctx.random.pick(['fraudulent', 'product_not_received', 'subscription_canceled', 'unrecognized']),
    status: 'needs_response',
  });
  Object.assign(dispute.evidence_details, { due_by: args.created + 14 * DAY });
  Object.assign(dispute.payment_method_details.card, { brand: args.charge.payment_method_details.card.brand, case_type: 'chargeback' });
  return dispute;
}

function buildCheckoutSession(
  ctx: Ctx,
  args: { mode: 'subscription' | 'payment'; customer: Obj; amount: number; created: number; subscription?: Obj; invoice?: Obj; paymentIntent?: Obj },
): Obj {
  const session = fixture('checkout.session');
  Object.assign(session, {
    id: `cs_test_a1${ctx.id('cs').slice(3)}`,
    after_expiration: null,
    amount_subtotal: args.amount,
    amount_total: args.amount,
    client_reference_id: args.customer.metadata.app_user_id,
    collected_information: null,
    consent_collection: null,
    created: args.created,
    currency: 'usd',
    currency_conversion: null,
    custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
    customer: args.customer.id,
    customer_creation: args.mode === 'subscription' ? 'always' : null,
    expires_at: args.created + DAY,
    invoice: args.invoice?.id ?? null,
    invoice_creation: args.mode === 'payment' ? { enabled: false, invoice_data: session.invoice_creation.invoice_data } : null,
    metadata: {},
    mode: args.mode,
    payment_intent: args.paymentIntent?.id ?? null,
    payment_method_collection: 'always',
    payment_method_configuration_details: null,
    payment_status: 'paid',
    shipping_address_collection: null,
    shipping_cost: null,
    status: 'complete',
    subscription: args.subscription?.id ?? null,
    success_url: 'https://app.acme.example/welcome?session_id={CHECKOUT_SESSION_ID}',
    cancel_url: 'https://app.acme.example/pricing',
    total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
    url: null,
  });
  Object.assign(session.customer_details, { email: args.customer.email, name: args.customer.name, address: { ...args.customer.address } });
  return session;
}

function buildCreditNote(ctx: Ctx, args: { invoice: Obj; amount: number; created: number }): Obj {
  const creditNote = fixture('credit_note');
  const id = ctx.id('cn');
  const invoiceLine = args.invoice.lines.data[0];
  const line = {
    ...structuredClone(creditNote.lines.data[0]),
    id: ctx.id('cnli'),
    amount: args.amount,
    description: invoiceLine.description,
    invoice_line_item: invoiceLine.id,
    pretax_credit_amounts: [],
    tax_rates: [],
    taxes: [],
  };
  Object.assign(creditNote, {
    id,
    amount: args.amount,
    created: args.created,
    currency: args.invoice.currency,
    customer: args.invoice.customer,
    effective_at: args.created,
    invoice: args.invoice.id,
    lines: { object: 'list', data: [line], has_more: false, total_count: 1, url: `/v1/credit_notes/${id}/lines` },
    memo: 'Goodwill credit for the outage on our side.',
    number: `${args.invoice.number}-CN-01`,
    // Settled outside Stripe, so it references no refund or balance transaction we never send.
    out_of_band_amount: args.amount,
    pdf: `https://pay.stripe.com/credit_notes/acct_1Acme/test_${ctx.random.chars(40)}/pdf`,
    reason: 'product_unsatisfactory',
    shipping_cost: null,
    subtotal: args.amount,
    subtotal_excluding_tax: args.amount,
    total: args.amount,
    total_excluding_tax: args.amount,
    type: 'post_payment',
    voided_at: null,
  });
  if (ctx.basil) Object.assign(creditNote, { refunds: [], pretax_credit_amounts: [], total_taxes: [], post_payment_amount: args.amount, pre_payment_amount: 0 });
  else {
    for (const key of ['refunds', 'pretax_credit_amounts', 'total_taxes', 'post_payment_amount', 'pre_payment_amount']) delete creditNote[key];
    Object.assign(creditNote, { refund: null, tax_amounts: [] });
  }
  return creditNote;
}

function cancelSubscription(subscription: Obj, args: { at: number; reason: string; feedback: string | null }): void {
  Object.assign(subscription, { status: 'canceled', canceled_at: args.at, ended_at: args.at });
  Object.assign(subscription.cancellation_details, { reason: args.reason, feedback: args.feedback });
}

function buildInvoiceItem(
  ctx: Ctx,
  args: { customer: Obj; subscription: Obj; price: Obj; invoice: string | null; taxRates: Obj[]; created: number },
): Obj {
  const invoiceItem = fixture('invoiceitem');
  Object.assign(invoiceItem, {
    id: ctx.id('ii'),
    amount: args.price.unit_amount,
    customer: args.customer.id,
    date: args.created,
    description: args.price.nickname,
    discountable: true,
    invoice: args.invoice,
    net_amount: args.price.unit_amount,
    period: { start: args.created, end: args.created },
    quantity: 1,
    quantity_decimal: '1',
    tax_rates: args.taxRates.map((rate) => structuredClone(rate)),
  });
  if (ctx.basil) {
    invoiceItem.parent = { type: 'subscription_details', subscription_details: { subscription: args.subscription.id } };
    invoiceItem.pricing = { type: 'price_details', price_details: { price: args.price.id, product: args.price.product }, unit_amount_decimal: args.price.unit_amount_decimal };
  } else {
    for (const key of ['parent', 'pricing', 'net_amount', 'quantity_decimal']) delete invoiceItem[key];
    Object.assign(invoiceItem, {
      subscription: args.subscription.id,
      subscription_item: null,
      price: structuredClone(args.price),
      unit_amount: args.price.unit_amount,
      unit_amount_decimal: args.price.unit_amount_decimal,
    });
  }
  return invoiceItem;
}

/** A coupon redeemed on a subscription through a promotion code. */
function buildDiscount(ctx: Ctx, args: { customer: Obj; subscription: Obj; coupon: Obj; promotionCode: Obj; created: number }): Obj {
  const discount = fixture('discount');
  const months = args.coupon.duration_in_months;
  Object.assign(discount, {
    id: ctx.id('di'),
    customer: args.customer.id,
    subscription: args.subscription.id,
    promotion_code: args.promotionCode.id,
    start: args.created,
    end: months ? addMonths(args.created, months) : null,
  });
  // Since clover the coupon is named by id under `source`; before, the whole coupon was embedded.
  if (ctx.clover) discount.source = { coupon: args.coupon.id, type: 'coupon' };
  else {
    delete discount.source;
    discount.coupon = structuredClone(args.coupon);
  }
  return discount;
}

function buildCoupon(ctx: Ctx, args: { name: string; code: string; percentOff: number; months: number | null; created: number }): Obj {
  const coupon = fixture('coupon');
  Object.assign(coupon, {
    // Coupon ids are chosen by whoever creates them; the seed and a counter keep ours unique.
    id: `${args.code}_${ctx.id('coupon')}`,
    amount_off: null,
    created: args.created,
    currency: null,
    duration: args.months ? 'repeating' : 'forever',
    duration_in_months: args.months,
    max_redemptions: null,
    metadata: { campaign: args.code.toLowerCase() },
    name: args.name,
    percent_off: args.percentOff,
    redeem_by: null,
    times_redeemed: 0,
    valid: true,
  });
  return coupon;
}

function buildPromotionCode(ctx: Ctx, args: { coupon: Obj; code: string; customer: Obj | null; created: number }): Obj {
  const code = fixture('promotion_code');
  Object.assign(code, {
    id: ctx.id('promo'),
    active: true,
    code: args.code,
    created: args.created,
    customer: args.customer?.id ?? null,
    expires_at: null,
    max_redemptions: args.customer ? 1 : null,
    metadata: {},
    restrictions: { first_time_transaction: !args.customer, minimum_amount: null, minimum_amount_currency: null },
  });
  // Since clover the coupon is named by id under `promotion`; before, the whole coupon was embedded.
  if (ctx.clover) code.promotion = { coupon: args.coupon.id, type: 'coupon' };
  else {
    delete code.promotion;
    code.coupon = structuredClone(args.coupon);
  }
  return code;
}

function buildTaxRate(ctx: Ctx, args: { country: 'DE' | 'AT'; percentage: number; created: number }): Obj {
  const rate = fixture('tax_rate');
  Object.assign(rate, {
    id: ctx.id('txr'),
    active: true,
    country: args.country,
    created: args.created,
    description: `VAT ${args.country === 'DE' ? 'Germany' : 'Austria'}`,
    display_name: args.country === 'DE' ? 'MwSt.' : 'USt.',
    effective_percentage: args.percentage,
    flat_amount: null,
    inclusive: false,
    jurisdiction: args.country,
    jurisdiction_level: 'country',
    metadata: {},
    percentage: args.percentage,
    rate_type: 'percentage',
    state: null,
    tax_type: 'vat',
  });
  return rate;
}

function buildTaxId(ctx: Ctx, args: { customer: Obj; created: number }): Obj {
  const taxId = fixture('tax_id');
  Object.assign(taxId, {
    id: ctx.id('txi'),
    country: 'DE',
    created: args.created,
    customer: args.customer.id,
    type: 'eu_vat',
    value: `DE${ctx.random.chars(9, DIGITS)}`,
    verification: { status: 'pending', verified_address: null, verified_name: null },
  });
  // owner came with tax ids of accounts (2024); older snapshots name only the customer.
  if (ctx.basil) taxId.owner = { type: 'customer', customer: args.customer.id, customer_account: null };
  else delete taxId.owner;
  return taxId;
}

function buildSetupIntent(ctx: Ctx, args: { customer: Obj; created: number }): Obj {
  const setupIntent = fixture('setup_intent');
  const id = ctx.id('seti');
  Object.assign(setupIntent, {
    id,
    automatic_payment_methods: null,
    client_secret: `${id}_secret_${ctx.random.chars(32)}`,
    created: args.created,
    customer: args.customer.id,
    last_setup_error: null,
    next_action: null,
    payment_method: null,
    payment_method_configuration_details: null,
    payment_method_options: { card: { mandate_options: null, network: null, request_three_d_secure: 'automatic' } },
    status: 'requires_payment_method',
  });
  return setupIntent;
}

function buildQuote(ctx: Ctx, args: { customer: Obj; created: number }): Obj {
  const quote = fixture('quote');
  const totals = { amount_discount: 0, amount_shipping: 0, amount_tax: 0 };
  Object.assign(quote, {
    id: ctx.id('qt'),
    amount_subtotal: 0,
    amount_total: 0,
    computed: { recurring: null, upfront: { amount_subtotal: 0, amount_total: 0, total_details: { ...totals } } },
    created: args.created,
    currency: 'eur',
    customer: args.customer.id,
    description: 'Annual plan as discussed on our call.',
    expires_at: args.created + 30 * DAY,
    from_quote: null,
    invoice: null,
    status: 'draft',
    subscription: null,
    subscription_schedule: null,
    total_details: { ...totals },
    transfer_data: null,
  });
  return quote;
}

function finalizeQuote(quote: Obj, args: { customer: Obj; at: number }): void {
  Object.assign(quote, { status: 'open', number: `QT-${args.customer.invoice_prefix}-0001` });
  quote.status_transitions.finalized_at = args.at;
}

/** Accepting a quote creates the subscription and its first invoice. */
function acceptQuote(quote: Obj, args: { subscription: Obj; invoice: Obj; at: number }): void {
  const { invoice } = args;
  const interval = args.subscription.items.data[0].price.recurring.interval;
  const totals = { amount_discount: 0, amount_shipping: 0, amount_tax: invoice.total - invoice.total_excluding_tax };
  Object.assign(quote, {
    status: 'accepted',
    amount_subtotal: invoice.subtotal,
    amount_total: invoice.total,
    computed: {
      recurring: { amount_subtotal: invoice.subtotal, amount_total: invoice.total, interval, interval_count: 1, total_details: { ...totals } },
      upfront: { amount_subtotal: invoice.subtotal, amount_total: invoice.total, total_details: { ...totals } },
    },
    invoice: invoice.id,
    subscription: args.subscription.id,
    total_details: { ...totals },
  });
  quote.status_transitions.accepted_at = args.at;
}

/** A schedule made from a subscription: one phase, the current one, until the period ends. */
function buildSubscriptionSchedule(ctx: Ctx, args: { subscription: Obj; created: number }): Obj {
  const schedule = fixture('subscription_schedule');
  const { subscription } = args;
  const items = subscription.items.data;
  const start = subscription.start_date;
  const end = ctx.basil ? items[0].current_period_end : subscription.current_period_end;
  const phase = {
    ...structuredClone(schedule.phases[0]),
    billing_thresholds: null,
    currency: items[0].price.currency,
    default_payment_method: null,
    end_date: end,
    items: items.map((item: Obj) => ({
      billing_thresholds: null,
      discounts: [],
      metadata: {},
      plan: item.price.id,
      price: item.price.id,
      quantity: item.quantity,
      tax_rates: item.tax_rates.map((rate: Obj) => structuredClone(rate)),
    })),
    start_date: start,
    transfer_data: null,
  };
  Object.assign(schedule, {
    id: ctx.id('sub_sched'),
    application: null,
    canceled_at: null,
    completed_at: null,
    created: args.created,
    current_phase: { start_date: start, end_date: end },
    customer: subscription.customer,
    end_behavior: 'release',
    metadata: {},
    phases: [phase],
    released_at: null,
    released_subscription: null,
    status: 'active',
    subscription: subscription.id,
  });
  schedule.default_settings.transfer_data = null;
  return schedule;
}

function buildEarlyFraudWarning(ctx: Ctx, args: { charge: Obj; created: number }): Obj {
  const warning = fixture('radar.early_fraud_warning');
  Object.assign(warning, {
    id: ctx.id('issfr'),
    actionable: true,
    charge: args.charge.id,
    created: args.created,
    fraud_type: ctx.random.pick(['made_with_stolen_card', 'unauthorized_use_of_card', 'misc']),
    payment_intent: args.charge.payment_intent,
  });
  return warning;
}

function buildPayout(ctx: Ctx, args: { amount: number; created: number }): Obj {
  const payout = fixture('payout');
  Object.assign(payout, {
    id: ctx.id('po'),
    amount: args.amount,
    arrival_date: args.created + 2 * DAY,
    balance_transaction: ctx.id('txn'),
    created: args.created,
    currency: 'eur',
    description: 'STRIPE PAYOUT',
    destination: ctx.id('ba'),
    reconciliation_status: 'not_applicable',
    status: 'pending',
    trace_id: { status: 'pending', value: null },
  });
  return payout;
}

function buildAccount(ctx: Ctx, args: { id: string; created: number }): Obj {
  const account = fixture('account');
  Object.assign(account, {
    id: args.id,
    business_type: 'company',
    charges_enabled: false,
    country: 'DE',
    created: args.created,
    default_currency: 'eur',
    details_submitted: false,
    email: `owner.${ctx.random.int(1, 999)}@studio.example`,
    external_accounts: { data: [], has_more: false, object: 'list', url: `/v1/accounts/${args.id}/external_accounts` },
    metadata: {},
    payouts_enabled: false,
    type: 'standard',
  });
  Object.assign(account.business_profile, { name: 'Studio Example GmbH', url: 'https://studio.example', mcc: '5734' });
  return account;
}

function buildTransfer(ctx: Ctx, args: { destination: string; amount: number; created: number }): Obj {
  const transfer = fixture('transfer');
  const id = ctx.id('tr');
  Object.assign(transfer, {
    id,
    amount: args.amount,
    amount_reversed: 0,
    balance_transaction: ctx.id('txn'),
    created: args.created,
    currency: 'eur',
    description: 'Revenue share',
    destination: args.destination,
    destination_payment: ctx.id('py'),
    metadata: {},
    reversals: { data: [], has_more: false, object: 'list', total_count: 0, url: `/v1/transfers/${id}/reversals` },
    reversed: false,
    source_transaction: null,
    transfer_group: null,
  });
  return transfer;
}

// ---------------------------------------------------------------------------------------------
// Small pieces: seeded randomness, ids, dates, amounts

type Random = {
  next(): number;
  int(min: number, max: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  shuffle<T>(items: T[]): T[];
  chars(length: number, alphabet?: string): string;
  uuid(): string;
};

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const HEX_UPPER = '0123456789ABCDEF';
const DIGITS = '0123456789';

// mulberry32: tiny, fast, and good enough to vary test data; never Math.random, so a seed replays.
function createRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const chars = (length: number, alphabet = BASE62) => Array.from({ length }, () => alphabet[int(0, alphabet.length - 1)]).join('');
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => items[int(0, items.length - 1)]!,
    shuffle: (items) => {
      for (let i = items.length - 1; i > 0; i--) {
        const j = int(0, i);
        [items[i], items[j]] = [items[j]!, items[i]!];
      }
      return items;
    },
    chars,
    uuid: () => [8, 4, 4, 4, 12].map((n) => chars(n, '0123456789abcdef')).join('-'),
  };
}

/** Combines the seed and an index into one 32-bit generator seed. */
function mix(seed: number, index: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  return Math.imul(h, 0x27d4eb2d) >>> 0;
}

const MAX_OWNER = 62 ** 3;

/**
 * Ids look like Stripe's (prefix, then base62) but are unique by construction, not by luck: their
 * first twelve characters encode the seed, the owner (0 for the catalog, i + 1 for customer i) and
 * a counter, each at a fixed width. The rest is seeded noise to reach Stripe's usual lengths.
 */
function createIds(seed: number, owner: number, random: Random): (prefix: string) => string {
  let counter = 0;
  return (prefix) => {
    if (counter >= MAX_OWNER) throw new RangeError('too many ids for one owner');
    const core = base62(seed >>> 0, 6) + base62(owner, 3) + base62(counter++, 3);
    if (prefix === 'coupon') return core;
    if (prefix === 'cus' || prefix === 'prod' || prefix === 'si' || prefix === 'req') return `${prefix}_${core}${random.chars(2)}`;
    if (prefix === 'cs') return `cs_${core}${random.chars(46)}`;
    // Charges and refunds made through payment intents start with 3 at Stripe, most others with 1.
    const lead = prefix === 'pi' || prefix === 'ch' || prefix === 're' || prefix === 'txn' ? '3' : '1';
    return `${prefix}_${lead}${core}${random.chars(11)}`;
  };
}

/**
 * Event ids encode the seed and the event's place in the stream, with room for big bench streams.
 * The place is scrambled (one-to-one) so that sorting by event id does not replay the stream:
 * Stripe's event ids promise no order, and a fold must not lean on one.
 */
function eventId(seed: number, n: number, random: Random): string {
  return `evt_1${base62(seed >>> 0, 6)}${base62(scramble32(n), 6)}${random.chars(11)}`;
}

/** A one-to-one shuffle of 32-bit integers (each xor-shift and odd multiply can be undone). */
function scramble32(n: number): number {
  let x = n >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

function base62(n: number, width: number): string {
  let out = '';
  for (let rest = n; rest > 0; rest = Math.floor(rest / 62)) out = BASE62[rest % 62] + out;
  if (out.length > width) throw new RangeError(`${n} does not fit ${width} base62 digits`);
  return out.padStart(width, '0');
}

function addInterval(at: number, interval: 'month' | 'year'): number {
  return interval === 'month' ? addMonths(at, 1) : addMonths(at, 12);
}

function addMonths(at: number, months: number): number {
  const date = new Date(at * 1000);
  date.setUTCMonth(date.getUTCMonth() + months);
  return Math.floor(date.getTime() / 1000);
}

function formatAmount(cents: number): string {
  return `$${(cents / 100).toFixed(2)}`;
}

function emailOf(name: string, random: Random): string {
  return `${name.toLowerCase().replace(/[^a-z]+/g, '.')}.${random.int(1, 999)}@example.com`;
}
