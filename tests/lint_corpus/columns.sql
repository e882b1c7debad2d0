-- case: add nullable column
-- verdict: safe
-- rules: none
-- lock: ACCESS EXCLUSIVE
-- notes: require-lock-timeout
ALTER TABLE users ADD COLUMN bio text;

-- case: add column if not exists
-- verdict: safe
-- rules: none
ALTER TABLE users ADD COLUMN IF NOT EXISTS bio text;

-- case: add column with a constant default and not null
-- verdict: safe
-- rules: none
ALTER TABLE users ADD COLUMN score bigint NOT NULL DEFAULT 0;

-- case: add column with a cast constant default
-- verdict: safe
-- rules: none
ALTER TABLE orders ADD COLUMN currency text DEFAULT 'EUR'::text;

-- case: add column with a stable default
-- assumed: true
-- verdict-nodb: convert
-- rules-nodb: volatile-default-rewrites
-- operation-nodb: {"add_column": {"table": "users", "column": "seen_at", "type": "timestamptz", "default": "now()"}}
-- verdict-db: safe
-- rules-db: none
ALTER TABLE users ADD COLUMN seen_at timestamptz DEFAULT now();

-- case: add column with a volatile default
-- verdict: convert
-- rules: volatile-default-rewrites
-- operation: {"add_column": {"table": "users", "column": "token", "type": "uuid", "default": "gen_random_uuid()"}}
ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();

-- case: add not null column with a volatile default
-- verdict: convert
-- rules: volatile-default-rewrites
-- operation: {"add_column": {"table": "orders", "column": "shard", "type": "float8", "default": "random()", "not_null": true}}
ALTER TABLE orders ADD COLUMN shard float8 NOT NULL DEFAULT random();

-- case: add column defaulting to clock_timestamp
-- verdict: convert
-- rules: volatile-default-rewrites
-- operation-kind: add_column
ALTER TABLE orders ADD COLUMN stamped_at timestamptz DEFAULT clock_timestamp();

-- case: add column defaulting to nextval
-- verdict: convert
-- rules: volatile-default-rewrites
-- operation: {"add_column": {"table": "orders", "column": "seq", "type": "bigint", "default": "nextval('orders_seq')"}}
ALTER TABLE orders ADD COLUMN seq bigint DEFAULT nextval('orders_seq');

-- case: add not null column without default
-- verdict: refuse
-- rules: adding-not-null-column
ALTER TABLE users ADD COLUMN tier text NOT NULL;

-- case: add not null column without default to a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE tags (id bigint PRIMARY KEY);
ALTER TABLE tags ADD COLUMN name text NOT NULL;

-- case: add bigserial column
-- verdict: refuse
-- rules: adding-serial-primary-key
ALTER TABLE events ADD COLUMN seq bigserial;

-- case: add serial primary key column
-- verdict: refuse
-- rules: adding-serial-primary-key | adding-serial-primary-key, adding-primary-key-scans
ALTER TABLE events ADD COLUMN seq serial PRIMARY KEY;

-- case: add identity column
-- verdict: refuse
-- rules: adding-serial-primary-key
ALTER TABLE events ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;

-- case: add stored generated column
-- verdict: refuse
-- rules: adding-serial-primary-key
ALTER TABLE orders ADD COLUMN total_cents bigint GENERATED ALWAYS AS ((total * 100)::bigint) STORED;

-- case: add bigserial column to a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE tags (name text);
ALTER TABLE tags ADD COLUMN id bigserial;

-- case: add int column gets a note
-- verdict: safe
-- rules: none
-- notes: prefer-bigint-over-int
ALTER TABLE orders ADD COLUMN quantity integer;

-- case: add columns in one alter table
-- verdict: safe
-- rules: none
-- statements: 1
ALTER TABLE users ADD COLUMN a text, ADD COLUMN b bigint DEFAULT 0;

-- case: add column and set not null in one alter table
-- verdict: refuse
-- rules: set-not-null-scans, split-alter-table
ALTER TABLE users ADD COLUMN c text, ALTER COLUMN email SET NOT NULL;

-- case: drop not null and set default in one alter table
-- verdict: safe
-- rules: none
ALTER TABLE users ALTER COLUMN email DROP NOT NULL, ALTER COLUMN status SET DEFAULT 'new';

-- case: add column and volatile default in one alter table
-- verdict: refuse
-- rules: volatile-default-rewrites, split-alter-table
ALTER TABLE users ADD COLUMN d text, ADD COLUMN e uuid DEFAULT gen_random_uuid();

-- case: two converted subcommands become two operations
-- verdict: convert
-- rules: set-not-null-scans, ban-drop-column-without-contract
-- operation: [{"set_not_null": {"table": "users", "column": "email"}}, {"drop_column": {"table": "users", "column": "legacy"}}]
ALTER TABLE users ALTER COLUMN email SET NOT NULL, DROP COLUMN legacy;

-- case: set default
-- verdict: safe
-- rules: none
ALTER TABLE users ALTER COLUMN status SET DEFAULT 'active';

-- case: set a volatile default does not rewrite
-- verdict: safe
-- rules: none
ALTER TABLE users ALTER COLUMN created_at SET DEFAULT clock_timestamp();

-- case: drop default
-- verdict: safe
-- rules: none
ALTER TABLE users ALTER COLUMN nickname DROP DEFAULT;

-- case: drop not null
-- verdict: safe
-- rules: none
ALTER TABLE users ALTER COLUMN nickname DROP NOT NULL;

-- case: set not null
-- verdict: convert
-- rules: set-not-null-scans
-- operation: {"set_not_null": {"table": "users", "column": "email"}}
ALTER TABLE users ALTER COLUMN email SET NOT NULL;

-- case: set not null on a quoted column of a quoted table
-- verdict: convert
-- rules: set-not-null-scans
-- operation: {"set_not_null": {"table": "Order Items", "column": "Order Id"}}
ALTER TABLE "Order Items" ALTER COLUMN "Order Id" SET NOT NULL;

-- case: set not null on a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE tags (id bigint, name text);
ALTER TABLE tags ALTER COLUMN name SET NOT NULL;

-- case: rename column
-- verdict: convert
-- rules: rename-breaks-old-app
-- operation: {"rename_column": {"table": "users", "from": "name", "to": "full_name"}}
ALTER TABLE users RENAME COLUMN name TO full_name;

-- case: rename column without the column keyword
-- verdict: convert
-- rules: rename-breaks-old-app
-- operation: {"rename_column": {"table": "users", "from": "legacy", "to": "old_legacy"}}
ALTER TABLE users RENAME legacy TO old_legacy;

-- case: rename reserved-word column of a reserved-word table
-- verdict: convert
-- rules: rename-breaks-old-app
-- operation: {"rename_column": {"table": "user", "from": "select", "to": "from"}}
ALTER TABLE "user" RENAME COLUMN "select" TO "from";

-- case: rename column of a schema-qualified table
-- verdict: convert
-- rules: rename-breaks-old-app
-- operation-kind: rename_column
ALTER TABLE app.accounts RENAME COLUMN label TO title;

-- case: drop column
-- verdict: convert
-- rules: ban-drop-column-without-contract
-- operation: {"drop_column": {"table": "users", "column": "legacy"}}
ALTER TABLE users DROP COLUMN legacy;

-- case: drop two columns in one alter table
-- verdict: convert
-- rules: ban-drop-column-without-contract
-- operation: [{"drop_column": {"table": "users", "column": "legacy"}}, {"drop_column": {"table": "users", "column": "nickname"}}]
ALTER TABLE users DROP COLUMN legacy, DROP COLUMN nickname;

-- case: drop column if exists
-- verdict: convert
-- rules: ban-drop-column-without-contract
-- operation: {"drop_column": {"table": "Order Items", "column": "qty"}}
ALTER TABLE "Order Items" DROP COLUMN IF EXISTS qty;

-- case: drop column of a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE tags (id bigint, name text);
ALTER TABLE tags DROP COLUMN name;

-- case: change type that rewrites
-- verdict: refuse
-- rules: type-change-rewrites
-- operation-kind: change_type
ALTER TABLE orders ALTER COLUMN code TYPE bigint;

-- case: change type with using
-- verdict: refuse
-- rules: type-change-rewrites
-- operation-kind: change_type
ALTER TABLE users ALTER COLUMN status TYPE integer USING status::integer;

-- case: varchar to text does not rewrite
-- assumed: true
-- verdict-nodb: refuse
-- rules-nodb: type-change-rewrites
-- verdict-db: safe
-- rules-db: none
ALTER TABLE users ALTER COLUMN name TYPE text;

-- case: longer varchar does not rewrite
-- assumed: true
-- verdict-nodb: refuse
-- rules-nodb: type-change-rewrites
-- verdict-db: safe
-- rules-db: none
ALTER TABLE users ALTER COLUMN name SET DATA TYPE varchar(100);

-- case: shorter varchar rewrites
-- verdict: refuse
-- rules: type-change-rewrites
ALTER TABLE users ALTER COLUMN name TYPE varchar(20);

-- case: varchar to text on a schema-qualified table
-- assumed: true
-- verdict-nodb: refuse
-- rules-nodb: type-change-rewrites
-- verdict-db: safe
-- rules-db: none
ALTER TABLE app.accounts ALTER COLUMN label TYPE text;

-- case: numeric with more precision does not rewrite
-- assumed: true
-- verdict-nodb: refuse
-- rules-nodb: type-change-rewrites
-- verdict-db: safe
-- rules-db: none
ALTER TABLE orders ALTER COLUMN total TYPE numeric(14,2);

-- case: change type of a column of a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE tags (id int, name text);
ALTER TABLE tags ALTER COLUMN id TYPE bigint;
