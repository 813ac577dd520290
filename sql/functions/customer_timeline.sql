create view customer_timeline as
select object_id as customer_id,
       payload #>> '{data,object,object}' as object_type,
       object_id,
       id,
       event_id,
       type,
       created,
       received_at,
       status,
       last_error
  from events
 where payload #>> '{data,object,object}' = 'customer'
union all
select object_customer,
       payload #>> '{data,object,object}',
       object_id,
       id,
       event_id,
       type,
       created,
       received_at,
       status,
       last_error
  from events
 where object_customer is not null
   and payload #>> '{data,object,object}' is distinct from 'customer';

comment on view customer_timeline is
  'Everything that happened to a customer: events about the customer itself and about any object that names it (invoices, subscriptions, payment intents, charges, ...). select * from customer_timeline where customer_id = ''cus_9Xyz'' order by created, id.';
comment on column customer_timeline.customer_id is 'The customer (cus_...).';
comment on column customer_timeline.object_type is 'What the event is about: customer, invoice, subscription, charge, ...';
comment on column customer_timeline.object_id is 'Its id.';
comment on column customer_timeline.id is 'Surrogate id of the event.';
comment on column customer_timeline.event_id is 'The Stripe event id (evt_...).';
comment on column customer_timeline.type is 'Event type.';
comment on column customer_timeline.created is 'When Stripe says it happened.';
comment on column customer_timeline.received_at is 'When it arrived here.';
comment on column customer_timeline.status is 'PROCESSED, RECEIVED, FAILED or IGNORED.';
comment on column customer_timeline.last_error is 'Error of its last failed attempt, if any.';
