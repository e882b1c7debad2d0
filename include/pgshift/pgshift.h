// pgshift: zero-downtime PostgreSQL schema changes as expand/contract state
// machines. Include this header for the whole C++ API.
#ifndef PGSHIFT_PGSHIFT_H_
#define PGSHIFT_PGSHIFT_H_

#include "pgshift/check.h"
#include "pgshift/driver.h"
#include "pgshift/errors.h"
#include "pgshift/json.h"
#include "pgshift/lint.h"
#include "pgshift/migration.h"
#include "pgshift/options.h"
#include "pgshift/phase.h"

#endif  // PGSHIFT_PGSHIFT_H_
