#include "tests/support/every_kind.h"

namespace pgshift::testing {

const char kEveryKindTable[] =
    "CREATE TABLE users (id int PRIMARY KEY, name text, email text, id2 int);"
    "INSERT INTO users SELECT g, 'u' || g, NULL, g FROM generate_series(1, 20) g";

const std::map<std::string, std::string>& BaseOperations() {
  static const auto* ops = new std::map<std::string, std::string>{
      {"rename_column", R"({"rename_column": {"table": "users", "from": "name", "to": "full_name"}})"},
      {"set_not_null", R"({"set_not_null": {"table": "users", "column": "email", "fill": "'none'"}})"},
      {"add_column",
       R"({"add_column": {"table": "users", "column": "score", "type": "int", "default": "0", "up": "id"}})"},
      {"drop_column", R"({"drop_column": {"table": "users", "column": "email", "down": "'x'"}})"},
      {"change_type", R"({"change_type": {"table": "users", "column": "id2", "new_column": "id2_big",
                          "type": "bigint", "up": "id2", "down": "id + 0"}})"},
      {"rename_table", R"({"rename_table": {"from": "users", "to": "members"}})"},
      {"create_table", R"op({"create_table": {"table": "orders", "columns": [
                          {"name": "id", "type": "bigint", "not_null": true},
                          {"name": "total", "type": "numeric(12,2)", "default": "0"}],
                          "primary_key": ["id"]}})op"},
      {"drop_table", R"({"drop_table": {"table": "users"}})"},
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
