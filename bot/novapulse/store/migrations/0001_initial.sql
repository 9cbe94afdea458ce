-- NovaPulse initial schema. Times are timestamptz; the Python models use epoch seconds.

CREATE TABLE trades (
    trade_id      text PRIMARY KEY,
    pair          text NOT NULL,
    side          text NOT NULL,
    status        text NOT NULL,
    strategy      text NOT NULL,
    mode          text NOT NULL,
    entry_price   double precision NOT NULL,
    exit_price    double precision,
    quantity      double precision NOT NULL,
    stop_loss     double precision NOT NULL,
    take_profit   double precision NOT NULL,
    trailing_stop double precision,
    highest_price double precision NOT NULL DEFAULT 0,
    lowest_price  double precision NOT NULL DEFAULT 0,
    entry_fee     double precision NOT NULL DEFAULT 0,
    exit_fee      double precision NOT NULL DEFAULT 0,
    pnl           double precision,
    notes         text NOT NULL DEFAULT '',
    extra         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- the trade's entry time (Trade.entry_time): runbook queries order by created_at
    created_at    timestamptz NOT NULL,
    exit_time     timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trades_status_created_idx ON trades (status, created_at DESC);
CREATE INDEX trades_created_idx ON trades (created_at DESC);
CREATE INDEX trades_pair_created_idx ON trades (pair, created_at DESC);

CREATE TABLE orders (
    client_order_id   text PRIMARY KEY,
    trade_id          text NOT NULL REFERENCES trades (trade_id) ON DELETE CASCADE,
    pair              text NOT NULL,
    side              text NOT NULL,
    kind              text NOT NULL,
    quantity          double precision NOT NULL,
    price             double precision NOT NULL,
    fee               double precision NOT NULL DEFAULT 0,
    status            text NOT NULL,
    exchange_order_id text,
    error             text,
    created_at        timestamptz NOT NULL
);
CREATE INDEX orders_trade_idx ON orders (trade_id, created_at);
CREATE INDEX orders_status_idx ON orders (status) WHERE status = 'open';

CREATE TABLE thoughts (
    id      bigserial PRIMARY KEY,
    ts      timestamptz NOT NULL,
    kind    text NOT NULL,
    pair    text,
    message text NOT NULL,
    data    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX thoughts_ts_idx ON thoughts (ts DESC);

CREATE TABLE ml_features (
    trade_id   text PRIMARY KEY,
    features   jsonb NOT NULL,
    label      double precision,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ml_features_labelled_idx ON ml_features (created_at) WHERE label IS NOT NULL;

CREATE TABLE metrics (
    ts     timestamptz NOT NULL,
    name   text NOT NULL,
    value  double precision NOT NULL,
    labels jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX metrics_name_ts_idx ON metrics (name, ts DESC);
CREATE INDEX metrics_ts_idx ON metrics (ts);

-- engine state besides trades (risk counters, pause, last candle), so a restart resumes exactly
CREATE TABLE checkpoints (
    name       text PRIMARY KEY,
    data       jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
