-- case: create table
-- verdict: safe
-- rules: none
CREATE TABLE invoices (id bigint PRIMARY KEY, order_id bigint REFERENCES orders (id), amount numeric(12,2) NOT NULL);

-- case: create table if not exists with int columns
-- verdict: safe
-- rules: none
-- notes: prefer-bigint-over-int
CREATE TABLE IF NOT EXISTS counters (id serial PRIMARY KEY, hits integer NOT NULL DEFAULT 0);

-- case: create table with quoted reserved names in a schema
-- verdict: safe
-- rules: none
CREATE TABLE app."Order" ("user" bigint, "select" text, "Total Due" numeric);

-- case: drop table
-- verdict: convert
-- rules: ban-drop-table-without-contract
-- operation: {"drop_table": {"table": "orders"}}
DROP TABLE orders;

-- case: drop table if exists
-- verdict: convert
-- rules: ban-drop-table-without-contract
-- operation: {"drop_table": {"table": "Order Items"}}
DROP TABLE IF EXISTS "Order Items";

-- case: drop table of a schema-qualified table
-- verdict: convert
-- rules: ban-drop-table-without-contract
-- operation-kind: drop_table
DROP TABLE app.accounts;

-- case: drop a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE scratch (id bigint);
DROP TABLE scratch;

-- case: rename table
-- verdict: convert
-- rules: rename-breaks-old-app
-- operation: {"rename_table": {"from": "orders", "to": "purchases"}}
ALTER TABLE orders RENAME TO purchases;

-- case: rename quoted table
-- verdict: convert
-- rules: rename-breaks-old-app
-- operation: {"rename_table": {"from": "Order Items", "to": "order_items"}}
ALTER TABLE "Order Items" RENAME TO order_items;

-- case: rename table if exists
-- verdict: convert
-- rules: rename-breaks-old-app
-- operation: {"rename_table": {"from": "user", "to": "app_user"}}
ALTER TABLE IF EXISTS "user" RENAME TO app_user;

-- case: rename a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE scratch (id bigint);
ALTER TABLE scratch RENAME TO scratch2;

-- case: comment on table
-- verdict: safe
-- rules: none
COMMENT ON TABLE users IS 'people; who sign in';

-- case: comment on column
-- verdict: safe
-- rules: none
COMMENT ON COLUMN "Order Items"."Order Id" IS 'the order';

-- case: grant
-- verdict: safe
-- rules: none
GRANT SELECT, INSERT ON users, app.accounts TO PUBLIC;

-- case: revoke
-- verdict: safe
-- rules: none
REVOKE UPDATE ON orders FROM PUBLIC;

-- case: create view
-- verdict: safe
-- rules: none
CREATE OR REPLACE VIEW active_users AS SELECT id, email FROM users WHERE status = 'active';

-- case: create schema
-- verdict: safe
-- rules: none
CREATE SCHEMA IF NOT EXISTS reporting;

-- case: create sequence
-- verdict: safe
-- rules: none
CREATE SEQUENCE invoice_numbers START 1000;

-- case: create enum type
-- verdict: safe
-- rules: none
CREATE TYPE mood AS ENUM ('happy', 'sad');

-- case: a table that does not exist
-- verdict-nodb: convert
-- rules-nodb: require-concurrent-index
-- verdict-db: safe
-- rules-db: table-not-found
CREATE INDEX ghosts_name_idx ON ghosts (name);

-- case: drop table with cascade is refused
-- verdict: refuse
-- rules: ban-drop-table-without-contract
DROP TABLE orders CASCADE;

-- case: one drop table of a created table and one in use is refused, not half converted
-- verdict: refuse
-- rules: ban-drop-table-without-contract
CREATE TABLE scratch (id bigint);
DROP TABLE scratch, orders;

-- case: drop column with cascade is refused
-- verdict: refuse
-- rules: ban-drop-column-without-contract
ALTER TABLE users DROP COLUMN email CASCADE;
