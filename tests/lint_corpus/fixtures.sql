-- The tables the cases refer to, created in the scratch database before
-- Driver::Lint runs (not a case file).
CREATE SCHEMA app;
CREATE TABLE users (id bigint PRIMARY KEY, email text, name varchar(50), age int, status text,
                    created_at timestamptz, legacy text, nickname text NOT NULL DEFAULT '');
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric(12,2), note varchar(20),
                     placed_at timestamp, code int, status text);
CREATE TABLE "Order Items" ("Id" bigint PRIMARY KEY, "Order Id" bigint, qty int);
CREATE TABLE app.accounts (id bigint PRIMARY KEY, owner_id bigint, balance numeric, label varchar(10));
CREATE TABLE "user" (id bigint PRIMARY KEY, "select" text);
CREATE TABLE events (id bigint NOT NULL, kind text);
CREATE UNIQUE INDEX events_id_uidx ON events (id);
CREATE INDEX users_email_idx ON users (email);
CREATE UNIQUE INDEX users_email_uidx ON users (email);
CREATE INDEX orders_user_idx ON orders (user_id);
CREATE INDEX accounts_owner_idx ON app.accounts (owner_id);
CREATE SEQUENCE orders_seq;
ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total > 0);
INSERT INTO users (id, email, name) SELECT g, 'u' || g || '@example.com', 'user ' || g FROM generate_series(1, 100) g;
INSERT INTO orders (id, user_id, total) SELECT g, g, 10 FROM generate_series(1, 100) g;
