-- Every row belongs to one bot (its `instance.identity`): bots sharing a database read and
-- write only their own rows. Rows written before this migration belong to 'default', the
-- identity a bot has unless configured otherwise.

ALTER TABLE trades      ADD COLUMN bot_identity text NOT NULL DEFAULT 'default';
ALTER TABLE orders      ADD COLUMN bot_identity text NOT NULL DEFAULT 'default';
ALTER TABLE thoughts    ADD COLUMN bot_identity text NOT NULL DEFAULT 'default';
ALTER TABLE metrics     ADD COLUMN bot_identity text NOT NULL DEFAULT 'default';
ALTER TABLE ml_features ADD COLUMN bot_identity text NOT NULL DEFAULT 'default';
ALTER TABLE checkpoints ADD COLUMN bot_identity text NOT NULL DEFAULT 'default';

-- From now on every writer names its bot: a row without one is refused, not filed as 'default'.
ALTER TABLE trades      ALTER COLUMN bot_identity DROP DEFAULT;
ALTER TABLE orders      ALTER COLUMN bot_identity DROP DEFAULT;
ALTER TABLE thoughts    ALTER COLUMN bot_identity DROP DEFAULT;
ALTER TABLE metrics     ALTER COLUMN bot_identity DROP DEFAULT;
ALTER TABLE ml_features ALTER COLUMN bot_identity DROP DEFAULT;
ALTER TABLE checkpoints ALTER COLUMN bot_identity DROP DEFAULT;

-- One checkpoint per bot.
ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_pkey;
ALTER TABLE checkpoints ADD PRIMARY KEY (bot_identity, name);

-- An order belongs to a trade of the same bot.
ALTER TABLE trades ADD CONSTRAINT trades_identity_trade_key UNIQUE (bot_identity, trade_id);
ALTER TABLE orders DROP CONSTRAINT orders_trade_id_fkey;
ALTER TABLE orders ADD CONSTRAINT orders_trade_fkey FOREIGN KEY (bot_identity, trade_id)
    REFERENCES trades (bot_identity, trade_id) ON DELETE CASCADE;

-- Retention (monitoring.metrics_retention_hours) counts from when a row was written: a
-- thought's `ts` is market time, years old when the bot replays recorded candles.
ALTER TABLE thoughts ADD COLUMN recorded_at timestamptz;
ALTER TABLE metrics  ADD COLUMN recorded_at timestamptz;
UPDATE thoughts SET recorded_at = ts;
UPDATE metrics  SET recorded_at = ts;
ALTER TABLE thoughts ALTER COLUMN recorded_at SET DEFAULT now(),
                     ALTER COLUMN recorded_at SET NOT NULL;
ALTER TABLE metrics  ALTER COLUMN recorded_at SET DEFAULT now(),
                     ALTER COLUMN recorded_at SET NOT NULL;

-- Every read filters by bot first.
DROP INDEX trades_status_created_idx;
DROP INDEX trades_created_idx;
DROP INDEX trades_pair_created_idx;
CREATE INDEX trades_identity_status_created_idx ON trades (bot_identity, status, created_at DESC);
CREATE INDEX trades_identity_created_idx ON trades (bot_identity, created_at DESC);
CREATE INDEX trades_identity_pair_created_idx ON trades (bot_identity, pair, created_at DESC);
DROP INDEX thoughts_ts_idx;
CREATE INDEX thoughts_identity_ts_idx ON thoughts (bot_identity, ts DESC);
CREATE INDEX thoughts_identity_recorded_idx ON thoughts (bot_identity, recorded_at);
DROP INDEX metrics_name_ts_idx;
DROP INDEX metrics_ts_idx;
CREATE INDEX metrics_identity_name_ts_idx ON metrics (bot_identity, name, ts DESC);
CREATE INDEX metrics_identity_recorded_idx ON metrics (bot_identity, recorded_at);
DROP INDEX ml_features_labelled_idx;
CREATE INDEX ml_features_identity_labelled_idx ON ml_features (bot_identity, created_at)
    WHERE label IS NOT NULL;
