-- case: create index on an existing table
-- verdict: convert
-- rules: require-concurrent-index
-- lock: SHARE
-- operation: {"create_index": {"table": "users", "name": "users_status_idx", "columns": ["status"]}}
CREATE INDEX users_status_idx ON users (status);

-- case: create unique index
-- verdict: convert
-- rules: require-concurrent-index
-- operation: {"create_index": {"table": "users", "name": "users_nickname_key", "columns": ["nickname"], "unique": true}}
CREATE UNIQUE INDEX users_nickname_key ON users (nickname);

-- case: create index without a name gets the server's name
-- verdict: convert
-- rules: require-concurrent-index
-- operation: {"create_index": {"table": "orders", "name": "orders_placed_at_idx", "columns": ["placed_at"]}}
CREATE INDEX ON orders (placed_at);

-- case: create partial index
-- verdict: convert
-- rules: require-concurrent-index
-- operation: {"create_index": {"table": "orders", "name": "orders_open_idx", "columns": ["user_id"], "where": "status = 'open'"}}
CREATE INDEX orders_open_idx ON orders (user_id) WHERE status = 'open';

-- case: create expression index with mixed-case unquoted names
-- verdict: convert
-- rules: require-concurrent-index
-- operation: {"create_index": {"table": "users", "name": "users_email_lower", "columns": ["lower(email)"]}}
CREATE INDEX Users_Email_Lower ON Users (LOWER(Email));

-- case: create index with the default method and include columns
-- verdict: convert
-- rules: require-concurrent-index
-- operation: {"create_index": {"table": "orders", "name": "orders_user_cover", "columns": ["user_id"], "include": ["total"]}}
CREATE INDEX orders_user_cover ON orders USING btree (user_id) INCLUDE (total);

-- case: create index with another method
-- verdict: convert
-- rules: require-concurrent-index
-- operation: {"create_index": {"table": "orders", "name": "orders_code_hash", "columns": ["code"], "method": "hash"}}
CREATE INDEX orders_code_hash ON orders USING hash (code);

-- case: create index on a quoted table with spaces
-- verdict: convert
-- rules: require-concurrent-index
-- operation: {"create_index": {"table": "Order Items", "name": "Order Items_order_idx", "columns": ["Order Id"]}}
CREATE INDEX "Order Items_order_idx" ON "Order Items" ("Order Id");

-- case: create index on a schema-qualified table
-- verdict: convert
-- rules: require-concurrent-index
-- operation-kind: create_index
CREATE INDEX accounts_label_idx ON app.accounts (label);

-- case: create index if not exists
-- verdict: convert
-- rules: require-concurrent-index
-- operation: {"create_index": {"table": "users", "name": "users_age_idx", "columns": ["age"]}}
CREATE INDEX IF NOT EXISTS users_age_idx ON users (age);

-- case: create index concurrently
-- verdict: safe
-- rules: none
-- lock: SHARE UPDATE EXCLUSIVE
CREATE INDEX CONCURRENTLY users_status_idx ON users (status);

-- case: create unique index concurrently if not exists
-- verdict: safe
-- rules: none
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_nickname_key ON users (nickname);

-- case: create index concurrently on a reserved-word table
-- verdict: safe
-- rules: none
CREATE INDEX CONCURRENTLY user_select_idx ON "user" ("select");

-- case: create index on a table the script created
-- verdict: safe
-- rules: none
-- verdicts: safe safe
CREATE TABLE tags (id bigint PRIMARY KEY, name text NOT NULL);
CREATE INDEX tags_name_idx ON tags (name);

-- case: create index on a table created in another schema by the script
-- verdict: safe
-- rules: none
CREATE TABLE app.audit (id bigint PRIMARY KEY, at timestamptz);
CREATE INDEX audit_at_idx ON app.audit (at);

-- case: create index on a table the script renamed is not on a new table
-- verdict: convert
-- rules: require-concurrent-index
-- verdicts: convert convert
ALTER TABLE orders RENAME TO purchases;
CREATE INDEX purchases_placed_idx ON purchases (placed_at);

-- case: drop index
-- verdict: convert
-- rules: require-concurrent-index-drop
-- lock: ACCESS EXCLUSIVE
-- operation: {"drop_index": {"name": "users_email_idx"}}
DROP INDEX users_email_idx;

-- case: drop index if exists
-- verdict: convert
-- rules: require-concurrent-index-drop
-- operation: {"drop_index": {"name": "orders_user_idx"}}
DROP INDEX IF EXISTS orders_user_idx;

-- case: drop index schema-qualified
-- verdict: convert
-- rules: require-concurrent-index-drop
-- operation-kind: drop_index
DROP INDEX app.accounts_owner_idx;

-- case: drop index concurrently
-- verdict: safe
-- rules: none
DROP INDEX CONCURRENTLY users_email_idx;

-- case: drop index concurrently if exists
-- verdict: safe
-- rules: none
DROP INDEX CONCURRENTLY IF EXISTS orders_user_idx;

-- case: create index concurrently inside a transaction
-- verdict: safe
-- rules: none
-- notes: concurrently-in-transaction
-- statement: 2
-- verdicts: control safe control
BEGIN;
CREATE INDEX CONCURRENTLY users_created_idx ON users (created_at);
COMMIT;

-- case: create index concurrently inside a transaction for another runner
-- options: other-runner
-- verdict: safe
-- rules: concurrently-in-transaction
-- statement: 3
BEGIN;
SET lock_timeout = '2s';
CREATE INDEX CONCURRENTLY users_created_idx ON users (created_at);
COMMIT;

-- case: create index concurrently after the transaction is committed
-- options: other-runner
-- verdict: safe
-- rules: none
BEGIN;
ALTER TABLE users ALTER COLUMN status SET DEFAULT 'new';
COMMIT;
CREATE INDEX CONCURRENTLY users_created_idx ON users (created_at);

-- case: create index for another runner without lock_timeout
-- options: other-runner
-- verdict: convert
-- rules: require-concurrent-index, require-lock-timeout
CREATE INDEX users_status_idx ON users (status);

-- case: index in a tablespace is refused, not converted without it
-- verdict: refuse
-- rules: require-concurrent-index
CREATE INDEX users_email_ts ON users (email) TABLESPACE pg_default;

-- case: dropping an index the script built on a table it created is safe
-- verdict: safe
-- rules: none
-- statements: 3
CREATE TABLE scratch (id bigint);
CREATE INDEX scratch_id_idx ON scratch (id);
DROP INDEX scratch_id_idx;
