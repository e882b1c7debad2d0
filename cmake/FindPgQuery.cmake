# Finds libpg_query, the PostgreSQL parser as a library (Debian: libpg-query-dev,
# which also ships the parse tree's protobuf schema, pg_query/pg_query.proto).
#
# Defines the imported target PgQuery::PgQuery and
#   PgQuery_FOUND, PgQuery_INCLUDE_DIR, PgQuery_LIBRARY, PgQuery_PROTO
# (PgQuery_PROTO is only needed to build pgshift itself, not to link it).
find_path(PgQuery_INCLUDE_DIR pg_query.h)
find_library(PgQuery_LIBRARY NAMES pg_query)
if(PgQuery_INCLUDE_DIR)
  find_file(PgQuery_PROTO pg_query/pg_query.proto
            PATHS ${PgQuery_INCLUDE_DIR} NO_DEFAULT_PATH)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(PgQuery
  REQUIRED_VARS PgQuery_LIBRARY PgQuery_INCLUDE_DIR
  FAIL_MESSAGE "libpg_query not found: install Debian's libpg-query-dev (scripts/deps.sh does)")
mark_as_advanced(PgQuery_INCLUDE_DIR PgQuery_LIBRARY PgQuery_PROTO)

if(PgQuery_FOUND AND NOT TARGET PgQuery::PgQuery)
  add_library(PgQuery::PgQuery UNKNOWN IMPORTED)
  set_target_properties(PgQuery::PgQuery PROPERTIES
    IMPORTED_LOCATION "${PgQuery_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${PgQuery_INCLUDE_DIR}")
endif()
