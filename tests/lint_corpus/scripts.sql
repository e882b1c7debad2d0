-- case: begin
-- verdict: control
-- rules: none
-- notes: transaction-control
BEGIN;

-- case: start transaction
-- verdict: control
-- rules: none
START TRANSACTION ISOLATION LEVEL READ COMMITTED;

-- case: commit
-- verdict: control
-- rules: none
COMMIT;

-- case: rollback
-- verdict: control
-- rules: none
BEGIN;
ROLLBACK;

-- case: set lock_timeout
-- verdict: control
-- rules: none
-- notes: session-setting
SET lock_timeout = '2s';

-- case: set statement_timeout
-- verdict: control
-- rules: none
SET statement_timeout TO 60000;

-- case: statements in a transaction are judged one by one
-- verdict: convert
-- rules: set-not-null-scans
-- statement: 3
-- verdicts: control safe convert control
BEGIN;
ALTER TABLE users ADD COLUMN bio text;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
COMMIT;

-- case: several statements on one line
-- verdict: convert
-- rules: require-concurrent-index
-- statements: 3
-- verdicts: safe convert safe
-- statement: 2
-- line: 1
ALTER TABLE users ADD COLUMN a text; CREATE INDEX users_a_idx ON users (a); COMMENT ON COLUMN users.a IS 'a';

-- case: comments with semicolons
-- verdict: safe
-- rules: none
-- statements: 1
-- line: 4
-- a comment; with a semicolon
/* a block comment; with ; semicolons
   CREATE INDEX not_an_index ON users (email); */
CREATE INDEX CONCURRENTLY users_created_idx ON users (created_at); -- trailing; comment

-- case: the line of a statement after comments and blank lines
-- verdict: convert
-- rules: require-concurrent-index
-- statements: 2
-- line: 5
ALTER TABLE users ADD COLUMN bio text;

-- the index; built the slow way
/* nested /* comments */ are fine; */
CREATE INDEX users_bio_idx
  ON users (bio);

-- case: a trailing comment belongs to the statement before
-- verdict: convert
-- rules: require-concurrent-index
-- statements: 2
-- line: 2
ALTER TABLE users ADD COLUMN a text; -- the new column; nullable
CREATE INDEX users_a_idx ON users (a);

-- case: dollar-quoted function body
-- verdict: convert
-- rules: require-concurrent-index
-- statements: 3
-- verdicts: safe safe convert
-- line: 9
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.created_at := now();  -- ; inside the body
  RETURN NEW;
END;
$fn$;
CREATE TRIGGER users_touch BEFORE UPDATE ON users
  FOR EACH ROW EXECUTE FUNCTION touch();
CREATE INDEX users_status_idx ON users (status);

-- case: create function with a $$ body
-- verdict: safe
-- rules: none
-- statements: 1
CREATE OR REPLACE FUNCTION add_one(x bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT x + 1; $$;

-- case: string literal with a semicolon
-- verdict: safe
-- rules: none
-- statements: 2
COMMENT ON TABLE orders IS 'a; b';
ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'x;y';

-- case: do block
-- verdict: safe
-- rules: none
-- notes: unknown-statement
DO $$ BEGIN RAISE NOTICE 'hello; world'; END $$;

-- case: vacuum full
-- verdict: refuse
-- rules: ban-vacuum-full
VACUUM FULL users;

-- case: vacuum full with options
-- verdict: refuse
-- rules: ban-vacuum-full
VACUUM (FULL, ANALYZE) orders;

-- case: analyze
-- verdict: safe
-- rules: none
ANALYZE users;

-- case: cluster
-- verdict: refuse
-- rules: ban-cluster
CLUSTER users USING users_pkey;

-- case: lock table
-- verdict: refuse
-- rules: ban-lock-table
LOCK TABLE users IN ACCESS EXCLUSIVE MODE;

-- case: lock table inside a transaction
-- verdict: refuse
-- rules: ban-lock-table
-- statement: 2
BEGIN;
LOCK orders;
COMMIT;

-- case: update without where
-- verdict: safe
-- rules: unbatched-update
UPDATE users SET status = 'active';

-- case: delete without where
-- verdict: safe
-- rules: unbatched-update
DELETE FROM orders;

-- case: update with where
-- verdict: safe
-- rules: none
UPDATE users SET status = 'active' WHERE id = 1;

-- case: update without where on a table the script created
-- verdict: safe
-- rules: none
CREATE TABLE tags (id bigint, name text);
UPDATE tags SET name = 'x';

-- case: insert
-- verdict: safe
-- rules: none
INSERT INTO "Order Items" ("Id", "Order Id", qty) VALUES (1, 1, 2);

-- case: create extension
-- verdict: safe
-- rules: none
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- case: require-lock-timeout is a note for pgshift
-- verdict: safe
-- rules: none
-- notes: require-lock-timeout
ALTER TABLE users ADD COLUMN bio text;

-- case: require-lock-timeout is a warning for another runner
-- options: other-runner
-- verdict: safe
-- rules: require-lock-timeout
ALTER TABLE users ADD COLUMN bio text;

-- case: lock_timeout set before for another runner
-- options: other-runner
-- verdict: safe
-- rules: none
-- verdicts: control safe
SET lock_timeout = '1s';
ALTER TABLE users ADD COLUMN bio text;

-- case: lock_timeout set to zero does not count
-- options: other-runner
-- verdict: safe
-- rules: require-lock-timeout
SET lock_timeout = 0;
ALTER TABLE users ADD COLUMN bio text;

-- case: statement_timeout is not a lock_timeout
-- options: other-runner
-- verdict: safe
-- rules: require-lock-timeout
SET statement_timeout = '5s';
ALTER TABLE users ADD COLUMN bio text;

-- case: no lock_timeout needed on a table the script created
-- options: other-runner
-- verdict: safe
-- rules: none
CREATE TABLE tags (id bigint);
ALTER TABLE tags ADD COLUMN name text;

-- case: no lock_timeout needed for a concurrent index
-- options: other-runner
-- verdict: safe
-- rules: none
CREATE INDEX CONCURRENTLY users_created_idx ON users (created_at);

-- case: set search_path is refused: pgshift cannot carry it to the statements after it
-- verdict: refuse
-- rules: session-setting-not-kept
-- statement: 1
SET search_path TO app;
CREATE TABLE widgets (id bigint);

-- case: set search_path for another runner is only noted
-- verdict: control
-- rules: none
-- options: other-runner
-- statement: 1
SET search_path TO app;
CREATE TABLE widgets (id bigint);
