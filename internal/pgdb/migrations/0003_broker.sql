-- Message broker (internal/broker/pgbroker): durable topics with
-- at-least-once delivery. Publish inserts one broker_messages row and, in
-- the same statement, one broker_deliveries row per subscription of the
-- topic (fan-out at publish time), then NOTIFYs the topic's channel.
-- Receivers claim visible deliveries with FOR UPDATE SKIP LOCKED, holding a
-- lease (visible_at in the future); ack deletes the delivery, nack moves
-- visible_at past the retry backoff, and a delivery that failed too often
-- is copied to broker_dead_letters. Messages no delivery references are
-- deleted by Cleanup.

CREATE TABLE broker_subscriptions (
    name         text PRIMARY KEY,
    topic        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),  -- last CreateSubscription or Receive heartbeat
    expire_after interval,                            -- deleted when idle this long; NULL: never
    ack_deadline interval NOT NULL,                   -- settings of the last subscriber, for operators
    max_attempts integer NOT NULL,
    min_backoff  interval NOT NULL,
    max_backoff  interval NOT NULL
);

CREATE INDEX broker_subscriptions_topic ON broker_subscriptions (topic);

CREATE TABLE broker_messages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text NOT NULL,
    data         bytea NOT NULL,
    attributes   jsonb NOT NULL DEFAULT '{}',
    published_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (subscription, message) not yet acked. visible_at is when
-- the delivery may next be claimed: now for a new message, the lease end
-- while a subscriber holds it (leased_by set), the end of the backoff after
-- a nack. attempt counts claims.
CREATE TABLE broker_deliveries (
    subscription text NOT NULL REFERENCES broker_subscriptions (name) ON DELETE CASCADE,
    message_id   bigint NOT NULL REFERENCES broker_messages (id),
    attempt      integer NOT NULL DEFAULT 0,
    visible_at   timestamptz NOT NULL DEFAULT now(),
    leased_by    text,
    last_error   text NOT NULL DEFAULT '',
    PRIMARY KEY (subscription, message_id)
);

CREATE INDEX broker_deliveries_claim ON broker_deliveries (subscription, visible_at);
CREATE INDEX broker_deliveries_message ON broker_deliveries (message_id);

-- Messages a subscription gave up on, with a copy of the message so that
-- the original can be cleaned up independently.
CREATE TABLE broker_dead_letters (
    subscription text NOT NULL,
    message_id   bigint NOT NULL,
    topic        text NOT NULL,
    data         bytea NOT NULL,
    attributes   jsonb NOT NULL DEFAULT '{}',
    published_at timestamptz NOT NULL,
    attempts     integer NOT NULL,
    last_error   text NOT NULL DEFAULT '',
    dead_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription, message_id)
);

CREATE INDEX broker_dead_letters_list ON broker_dead_letters (subscription, dead_at, message_id);
CREATE INDEX broker_dead_letters_age ON broker_dead_letters (dead_at);
