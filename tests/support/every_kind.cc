#include "tests/support/every_kind.h"

namespace pgshift::testing {

const char kEveryKindTable[] =
    "CREATE TABLE users (id int PRIMARY KEY, name text, email text, id2 int);"
    "INSERT INTO users SELECT g, 'u' || g, NULL, g FROM generate_series(1, 20) g;"
    "CREATE INDEX users_email_idx ON users (email)";

const std::map<std::string, std::string>& BaseOperations() {
  static const auto* ops = new std::map<std::string, std::string>{
      {"rename_column", R"({"rename_column": {"table": "users", "from": "name", "to": "full_name"}})"},
      {"set_not_null", R"({"set_not_null": {"table": "users", "column": "email", "fill": "'none'"}})"},
      {"add_column",
       R"({"add_column": {"table": "users", "column": "score", "type": "int", "default": "0", "up": "id"}})"},
      {"drop_column", R"({"drop_column": {"table": "users", "column": "email", "down": "'x'"}})"},
      {"change_type", R"({"change_type": {"table": "users", "column": "id2", "new_column": "id2_big",
                          "type": "bigint", "up": "id2", "down": "id + 0"}})"},
      {"create_index", R"j({"create_index": {"table": "users", "name": "users_lower_name_idx",
                          "columns": ["lower(name)", "id"], "where": "id > 0", "include": ["id2"]}})j"},
      {"drop_index", R"({"drop_index": {"name": "users_email_idx"}})"},
      {"add_unique", R"({"add_unique": {"table": "users", "name": "users_id2_key", "columns": ["id2"]}})"},
      {"add_foreign_key", R"({"add_foreign_key": {"table": "users", "name": "users_id2_fkey", "columns": ["id2"],
                              "references_table": "users", "references_columns": ["id"],
                              "on_delete": "SET_NULL"}})"},
      {"add_check", R"({"add_check": {"table": "users", "name": "users_id2_positive", "check": "id2 > 0"}})"},
      {"rename_table", R"({"rename_table": {"from": "users", "to": "members"}})"},
      {"create_table", R"op({"create_table": {"table": "orders", "columns": [
                          {"name": "id", "type": "bigint", "not_null": true},
                          {"name": "total", "type": "numeric(12,2)", "default": "0"}],
                          "primary_key": ["id"]}})op"},
      {"drop_table", R"({"drop_table": {"table": "users"}})"},
      {"sql", R"({"sql": {"up": "CREATE TABLE audit (id bigint, note text); COMMENT ON TABLE users IS 'members'",
                          "down": "DROP TABLE IF EXISTS audit"}})"},
  };
  return *ops;
}

const char kSlowFunctionsSql[] = R"(
  CREATE FUNCTION slow_lower(t text) RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$
  BEGIN
    IF current_query() LIKE 'CREATE INDEX CONCURRENTLY %pgshift%' THEN PERFORM pg_sleep(0.002); END IF;
    RETURN lower(t);
  END $$;
  CREATE FUNCTION slow_check(t text) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$
  BEGIN
    IF current_query() LIKE '%VALIDATE CONSTRAINT "pgshift%' THEN PERFORM pg_sleep(0.002); END IF;
    RETURN length(t) < 100;
  END $$;)";

}  // namespace pgshift::testing
