-- case: add foreign key without not valid
-- verdict: convert
-- rules: constraint-missing-not-valid
-- lock: SHARE ROW EXCLUSIVE
-- operation: {"add_foreign_key": {"table": "orders", "name": "orders_user_id_fkey2", "columns": ["user_id"], "references_table": "users", "references_columns": ["id"]}}
ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey2 FOREIGN KEY (user_id) REFERENCES users (id);

-- case: add foreign key with on delete cascade
-- verdict: convert
-- rules: constraint-missing-not-valid
-- operation: {"add_foreign_key": {"table": "orders", "name": "orders_user_cascade", "columns": ["user_id"], "references_table": "users", "references_columns": ["id"], "on_delete": "CASCADE", "on_update": "RESTRICT"}}
ALTER TABLE orders ADD CONSTRAINT orders_user_cascade FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE ON UPDATE RESTRICT;

-- case: add foreign key without a constraint name gets the server's name
-- verdict: convert
-- rules: constraint-missing-not-valid
-- operation: {"add_foreign_key": {"table": "Order Items", "name": "Order Items_Order Id_fkey", "columns": ["Order Id"], "references_table": "orders", "references_columns": ["id"]}}
ALTER TABLE "Order Items" ADD FOREIGN KEY ("Order Id") REFERENCES orders (id);

-- case: add foreign key not valid
-- verdict: safe
-- rules: none
ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey2 FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;

-- case: add foreign key on a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE payments (id bigint PRIMARY KEY, order_id bigint);
ALTER TABLE payments ADD CONSTRAINT payments_order_fk FOREIGN KEY (order_id) REFERENCES orders (id);

-- case: add check without not valid
-- verdict: convert
-- rules: constraint-missing-not-valid
-- operation: {"add_check": {"table": "users", "name": "users_email_at", "check": "email LIKE '%@%'"}}
ALTER TABLE users ADD CONSTRAINT users_email_at CHECK (email LIKE '%@%');

-- case: add check without a constraint name gets the server's name
-- verdict: convert
-- rules: constraint-missing-not-valid
-- operation: {"add_check": {"table": "orders", "name": "orders_total_check", "check": "total >= 0"}}
ALTER TABLE orders ADD CHECK (total >= 0);

-- case: add check not valid
-- verdict: safe
-- rules: none
ALTER TABLE users ADD CONSTRAINT users_age_positive CHECK (age > 0) NOT VALID;

-- case: add check on a schema-qualified table
-- verdict: convert
-- rules: constraint-missing-not-valid
-- operation-kind: add_check
ALTER TABLE app.accounts ADD CONSTRAINT accounts_balance_nonneg CHECK (balance >= 0);

-- case: validate constraint
-- verdict: safe
-- rules: none
-- lock: SHARE UPDATE EXCLUSIVE
ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;

-- case: add not valid then validate in one script
-- verdict: safe
-- rules: none
-- verdicts: safe safe
ALTER TABLE users ADD CONSTRAINT users_age_positive CHECK (age > 0) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_age_positive;

-- case: drop constraint
-- verdict: safe
-- rules: none
ALTER TABLE orders DROP CONSTRAINT orders_total_positive;

-- case: drop constraint if exists
-- verdict: safe
-- rules: none
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_total_positive;

-- case: add unique constraint
-- verdict: convert
-- rules: unique-constraint-builds-index
-- operation: {"add_unique": {"table": "users", "name": "users_nickname_key", "columns": ["nickname"]}}
ALTER TABLE users ADD CONSTRAINT users_nickname_key UNIQUE (nickname);

-- case: add unique constraint on two quoted columns
-- verdict: convert
-- rules: unique-constraint-builds-index
-- operation: {"add_unique": {"table": "Order Items", "name": "Order Items_uq", "columns": ["Order Id", "qty"]}}
ALTER TABLE "Order Items" ADD CONSTRAINT "Order Items_uq" UNIQUE ("Order Id", qty);

-- case: add unique constraint using an index
-- verdict: safe
-- rules: none
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_uidx;

-- case: add primary key
-- verdict: refuse
-- rules: adding-primary-key-scans
ALTER TABLE events ADD PRIMARY KEY (id);

-- case: add named primary key constraint
-- verdict: refuse
-- rules: adding-primary-key-scans
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id);

-- case: add primary key using an index
-- verdict: safe
-- rules: none
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_uidx;

-- case: add primary key on a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE sessions (id bigint NOT NULL, token text);
ALTER TABLE sessions ADD PRIMARY KEY (id);

-- case: add exclusion constraint
-- verdict: refuse
-- rules: exclusion-constraint-scans
ALTER TABLE orders ADD CONSTRAINT orders_no_overlap EXCLUDE USING gist (user_id WITH =);

-- case: deferrable foreign key is refused, not converted without its deferral
-- verdict: refuse
-- rules: constraint-missing-not-valid
ALTER TABLE orders ADD CONSTRAINT orders_user_deferred FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED;

-- case: match full foreign key is refused, not converted without MATCH FULL
-- verdict: refuse
-- rules: constraint-missing-not-valid
ALTER TABLE orders ADD CONSTRAINT orders_user_full FOREIGN KEY (user_id) REFERENCES users (id) MATCH FULL;

-- case: deferrable unique constraint is refused
-- verdict: refuse
-- rules: unique-constraint-builds-index
ALTER TABLE users ADD CONSTRAINT users_email_deferred UNIQUE (email) DEFERRABLE;
