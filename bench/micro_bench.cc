// Micro-benchmarks of pgshift's in-process work (no database): parsing
// migration specs, rendering statuses and plans as JSON, parsing user
// expressions and moving index definitions with the PostgreSQL parser,
// generating the sync-trigger SQL and the backfill statements, and the
// backfill's batch sizer.
//
//   build/bench/micro_bench                       # full run
//   build/bench/micro_bench --benchmark_min_time=0.01   # smoke
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/backfill/backfill.h"
#include "lib/backfill/statements.h"
#include "lib/catalog/catalog.h"
#include "lib/ops/operation.h"
#include "lib/ops/triggers.h"
#include "lib/pg/quote.h"
#include "lib/sql/sql.h"
#include "pgshift/pgshift.h"

namespace pgshift {
namespace {

std::string RenameSpec(int operations) {
  std::string ops;
  for (int i = 0; i < operations; ++i) {
    absl::StrAppend(&ops, i ? ", " : "", R"({"rename_column": {"table": "users", "from": "col)", i,
                    R"(", "to": "column_)", i, R"("}})");
  }
  return absl::StrCat(R"({"name": "0042_rename_users_columns", "schema": "public", "operations": [)",
                      ops, "]}");
}

void BM_ParseMigrationJson(benchmark::State& state) {
  const std::string json = RenameSpec(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto m = ParseMigrationJson(json);
    benchmark::DoNotOptimize(m);
    if (!m.ok()) state.SkipWithError(std::string(m.status().message()).c_str());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(json.size()));
}
BENCHMARK(BM_ParseMigrationJson)->Arg(1)->Arg(20);

void BM_CanonicalJson(benchmark::State& state) {
  auto m = ParseMigrationJson(RenameSpec(static_cast<int>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(CanonicalJson(*m));
}
BENCHMARK(BM_CanonicalJson)->Arg(1)->Arg(20);

catalog::Table WideTable(int columns) {
  catalog::Table t;
  t.schema = "Sales Data";
  t.name = "Order Lines";
  for (int i = 0; i < columns; ++i) {
    catalog::Column c;
    c.attnum = i + 1;
    c.name = i == 0 ? "id" : absl::StrCat("col", i);
    c.type = i % 3 == 0 ? "bigint" : i % 3 == 1 ? "text" : "numeric(12,2)";
    t.columns.push_back(c);
  }
  t.primary_key = {"id"};
  return t;
}

ops::Context Ctx() {
  ops::Context ctx;
  ctx.migration = "0042_change_amount";
  ctx.names = ops::Names(ctx.migration, 0);
  ctx.server_version = 150000;
  return ctx;
}

sql::Expression Expr(const std::string& text) { return *sql::Expression::Parse(text, "bench"); }

void BM_ParseExpression(benchmark::State& state) {
  const std::string text = "CASE WHEN amount IS NULL THEN 0 ELSE round(amount * 100)::bigint END";
  for (auto _ : state) benchmark::DoNotOptimize(sql::Expression::Parse(text, "up"));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_ParseExpression);

void BM_CopyIndexDefinition(benchmark::State& state) {
  const std::string def =
      "CREATE INDEX orders_amount_idx ON public.orders USING btree (amount, lower((note)::text)) "
      "WHERE ((amount > (0)::numeric) AND (\"Amount\" IS NOT NULL) AND note <> 'amount')";
  for (auto _ : state) {
    benchmark::DoNotOptimize(sql::CopyIndexDefinition(def, "pgshift_copy", "amount", "amount_v2"));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(def.size()));
}
BENCHMARK(BM_CopyIndexDefinition);

void BM_SyncFunctionSql(benchmark::State& state) {
  const catalog::Table t = WideTable(static_cast<int>(state.range(0)));
  const catalog::TypeInfo text{"text", "pg_catalog.text", true};
  const catalog::TypeInfo numeric{"numeric(12,2)", "pg_catalog.\"numeric\"", false};
  const catalog::TypeInfo bigint{"bigint", "pg_catalog.int8", true};
  ops::SyncSpec rename{"col1", "col1_new", text, text, std::nullopt, std::nullopt};
  ops::SyncSpec convert{"col2", "col2_new", numeric, bigint, Expr("round(col2)::bigint"),
                        Expr("col2_new::numeric(12,2)")};
  const ops::SyncSpec& s = state.range(1) ? convert : rename;
  const ops::Context ctx = Ctx();
  for (auto _ : state) benchmark::DoNotOptimize(ops::SwitchSyncTrigger(t, ctx, s));
}
BENCHMARK(BM_SyncFunctionSql)
    ->ArgNames({"columns", "convert"})
    ->Args({5, 0})
    ->Args({5, 1})
    ->Args({50, 1});

void BM_InstallSyncTrigger(benchmark::State& state) {
  const catalog::Table t = WideTable(20);
  ops::SyncSpec convert{"col2", "col2_new", {"numeric(12,2)", "pg_catalog.\"numeric\"", false},
                        {"bigint", "pg_catalog.int8", true}, Expr("round(col2)::bigint"),
                        Expr("col2_new::numeric(12,2)")};
  const ops::Context ctx = Ctx();
  for (auto _ : state) benchmark::DoNotOptimize(ops::InstallSyncTrigger(t, ctx, convert));
}
BENCHMARK(BM_InstallSyncTrigger);

void BM_BackfillStatements(benchmark::State& state) {
  ops::BackfillSpec b;
  b.table = pg::QuoteQualified("Sales Data", "Order Lines");
  if (state.range(0) > 0) {
    for (int i = 0; i < state.range(0); ++i) {
      b.key.push_back(absl::StrCat("key part ", i));
      b.key_types.push_back(i % 2 ? "text" : "bigint");
    }
  }
  b.set_clause = "\"amount_v2\" = \"amount\"";
  b.needs_work = "\"amount_v2\" IS DISTINCT FROM \"amount\"";
  for (auto _ : state) benchmark::DoNotOptimize(backfill::BuildStatements(b, b.key.empty()));
}
BENCHMARK(BM_BackfillStatements)->ArgName("key_columns")->Arg(0)->Arg(1)->Arg(3);

void BM_StatusJson(benchmark::State& state) {
  MigrationStatus m;
  m.name = "0042_rename_users_name";
  m.phase = Phase::kBackfilled;
  m.checksum = std::string(64, 'a');
  m.created_at = m.updated_at = "2026-01-01T00:00:00Z";
  for (int i = 0; i < 3; ++i) m.backfill.push_back({i, 123456, 1000000, false});
  for (auto _ : state) benchmark::DoNotOptimize(ToJson(m));
}
BENCHMARK(BM_StatusJson);

void BM_PlanJson(benchmark::State& state) {
  Plan plan;
  plan.migration = "0042_change_amount";
  plan.server_version = 150004;
  for (Phase to : PhaseLadder()) {
    PlannedStep step;
    step.to = to;
    step.operation = "change_type public.orders.amount -> amount_v2 bigint";
    for (int i = 0; i < 5; ++i) {
      PlannedStatement st;
      st.sql = absl::StrCat("ALTER TABLE \"public\".\"orders\" ADD CONSTRAINT \"pgshift_x_", i,
                            "\" CHECK (\"amount_v2\" IS NOT NULL) NOT VALID");
      st.lock = "ACCESS EXCLUSIVE";
      st.note = "add the copy of a constraint";
      step.statements.push_back(st);
    }
    plan.steps.push_back(step);
  }
  for (auto _ : state) benchmark::DoNotOptimize(ToJson(plan));
}
BENCHMARK(BM_PlanJson);

void BM_QuoteIdent(benchmark::State& state) {
  const std::string name = "Order \"Lines\" 2024";
  for (auto _ : state) benchmark::DoNotOptimize(pg::QuoteIdent(name));
}
BENCHMARK(BM_QuoteIdent);

void BM_BatchSizerObserve(benchmark::State& state) {
  backfill::BatchSizer sizer(1000, 100, 100000, absl::Milliseconds(100));
  int64_t i = 0;
  for (auto _ : state) {
    sizer.Observe(sizer.rows(), absl::Microseconds(5000 + (++i % 7) * 1000));
    benchmark::DoNotOptimize(sizer.rows());
  }
}
BENCHMARK(BM_BatchSizerObserve);

}  // namespace
}  // namespace pgshift

BENCHMARK_MAIN();
