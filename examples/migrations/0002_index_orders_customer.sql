-- Plain SQL, as a team writes it. A plain CREATE INDEX would block every write
-- to orders for the whole build: pgshift runs it as create_index, built
-- CONCURRENTLY (`pgshift convert` prints the migration it runs).
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
