"""The spending summary and by-category endpoints over a large cost ledger, against one hand-written
SQL aggregate of the same numbers, in the same run.

    .venv/bin/python benchmarks/budget_summary.py [--entries 1000000] [--budgets 50] [--repeats 7]

Pollen: ``GET /api/v1/budgets/spending/summary`` and ``GET /api/v1/costs/by-category`` through
Django's test Client in this process, with a financial controller's JWT: authentication,
permissions, throttling, the selectors' grouped queries, serialization and the envelope. Baseline:
for each endpoint one SQL statement written by hand (the ledger grouped by budget, joined to the
budgets and their category lines; the ledger grouped by category) run on the same connection and
fetched. Both sum money the way the ledger does on that database (``budgets.money``): exact
``numeric`` sums on PostgreSQL, whole cents on SQLite. Every measured answer is checked against the
baseline's numbers to the cent before anything is timed.

With no DATABASE_URL the data lives in a fresh SQLite file in a temporary folder. With
``DATABASE_URL=postgres://user@host:port/anydb`` that URL is used as the admin connection: the script
creates the database ``pollen_bench_budgets`` next to it and drops it at the end. The ledger is
generated inside the database by one ``INSERT ... SELECT`` (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL): amounts with cents, 10 % commitments, 1 % on no budget,
eight categories, twenty services, ninety days.

Prints the machine's load, a table of medians and, last, ``RATIO endpoints/sql = x.xx`` (the two
endpoints' median times over the two SQL statements').
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

try:  # imported as benchmarks.<name> (the servers it starts), or run as a script from benchmarks/
    from benchmarks.throwaway_db import drop_database, prepare_database
except ImportError:
    from throwaway_db import drop_database, prepare_database

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_DB = "pollen_bench_budgets"
SUMMARY_PATH = "/api/v1/budgets/spending/summary"
BY_CATEGORY_PATH = "/api/v1/costs/by-category"
SERVICES = 20
DAYS = 90


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="cost entries in the ledger (1000000)")
    parser.add_argument("--budgets", type=int, default=50, help="active budgets the entries fall on (50)")
    parser.add_argument("--repeats", type=int, default=7, help="measured calls of each, medians reported (7)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured calls of each first (1)")
    return parser.parse_args(argv)


# ---- the ledger --------------------------------------------------------------------------------

def seed(entries: int, budgets: int) -> str:
    """Budgets, their lines and ``entries`` ledger rows; returns a financial controller's JWT."""
    import datetime

    from django.db import connection, transaction

    from accounts.models import Role, User
    from accounts.services import tokens_issue
    from budgets.choices import BudgetStatus
    from budgets.models import Budget, BudgetLine, Category

    user = User.objects.create_user(username="bench-controller", email="bench@example.com", password=None)
    user.roles.set(Role.objects.filter(name="financial_controller"))
    categories = list(Category.objects.order_by("position"))
    start = datetime.date(2025, 1, 1)
    with transaction.atomic():
        rows = Budget.objects.bulk_create(
            Budget(name=f"Benchmark budget {i:03d}", status=BudgetStatus.ACTIVE, period_start=start,
                   period_end=start + datetime.timedelta(days=DAYS - 1), total=Decimal("5000000.00"),
                   department="Bench", created_by=user) for i in range(budgets))
        BudgetLine.objects.bulk_create(BudgetLine(budget=b, category=c, amount=Decimal("500000.00"))
                                       for b in rows for c in categories)
    budget_ids = [b.pk.hex if connection.vendor == "sqlite" else str(b.pk) for b in rows]
    category_ids = [c.pk for c in categories]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE bench_budget (i integer PRIMARY KEY, id varchar(36))")
        cursor.execute("CREATE TEMPORARY TABLE bench_category (i integer PRIMARY KEY, id bigint)")
        cursor.executemany("INSERT INTO bench_budget VALUES (%s, %s)", list(enumerate(budget_ids)))
        cursor.executemany("INSERT INTO bench_category VALUES (%s, %s)", list(enumerate(category_ids)))
        columns = ("budget_id, category_id, service, kind, amount, incurred_on, description, source, over_budget, "
                   "metadata, created_at")
        if connection.vendor == "sqlite":
            cursor.execute(f"""
                WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < {entries})
                INSERT INTO budgets_costentry ({columns})
                SELECT CASE WHEN n % 100 = 99 THEN NULL ELSE b.id END, c.id, 'svc-' || (n % {SERVICES}),
                       CASE WHEN n % 10 = 0 THEN 'commitment' ELSE 'actual' END,
                       ((n * 7919) % 100000 + 1) / 100.0, date('2025-01-01', '+' || (n % {DAYS}) || ' days'),
                       '', 'manual', 0, '{{}}', datetime('now')
                FROM seq JOIN bench_budget b ON b.i = n % {budgets} JOIN bench_category c ON c.i = n % 8""")
        else:
            cursor.execute(f"""
                INSERT INTO budgets_costentry ({columns})
                SELECT CASE WHEN n % 100 = 99 THEN NULL ELSE b.id::uuid END, c.id, 'svc-' || (n % {SERVICES}),
                       CASE WHEN n % 10 = 0 THEN 'commitment' ELSE 'actual' END,
                       ((n * 7919) % 100000 + 1)::numeric / 100, DATE '2025-01-01' + (n % {DAYS})::int,
                       '', 'manual', false, '{{}}'::jsonb, now()
                FROM generate_series(0::bigint, {entries - 1}) AS n
                JOIN bench_budget b ON b.i = n % {budgets} JOIN bench_category c ON c.i = n % 8""")
        cursor.execute("DROP TABLE bench_budget")
        cursor.execute("DROP TABLE bench_category")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return tokens_issue(user=User.objects.get(pk=user.pk))["access_token"]


# ---- the baseline ------------------------------------------------------------------------------

def baseline_sql(vendor: str) -> dict[str, str]:
    from budgets.money import sql_money_sum

    actual = sql_money_sum("amount", vendor, "kind = 'actual'")
    committed = sql_money_sum("amount", vendor, "kind = 'commitment'")
    allocated = sql_money_sum("amount", vendor)
    return {
        # Per budget (and the no-budget group): spent and committed from the ledger, with the budget's
        # total and the sum of its category lines.
        "summary": f"""
            SELECT e.budget_id, b.total, l.allocated, e.spent, e.committed
            FROM (SELECT budget_id, {actual} AS spent, {committed} AS committed
                  FROM budgets_costentry GROUP BY budget_id) e
            LEFT JOIN budgets_budget b ON b.id = e.budget_id
            LEFT JOIN (SELECT budget_id, {allocated} AS allocated FROM budgets_budgetline GROUP BY budget_id) l
                   ON l.budget_id = e.budget_id""",
        "by_category": f"""
            SELECT category_id, {actual} AS spent, {committed} AS committed, COUNT(*) AS entries
            FROM budgets_costentry GROUP BY category_id""",
    }


def _money(value, vendor: str) -> Decimal:
    """A baseline sum as the ledger reports it: whole cents on SQLite, numeric on PostgreSQL."""
    if value is None:
        return Decimal("0.00")
    if vendor == "sqlite" and isinstance(value, int):
        return Decimal(value).scaleb(-2)
    return Decimal(str(value)).quantize(Decimal("0.01"))


def run_sql(statement: str) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchall()


def check_same_numbers(vendor: str, summary: dict, by_category: list, sql: dict) -> None:
    """The endpoints' figures are the baseline's, to the cent."""
    rows = run_sql(sql["summary"])
    budget_rows = [r for r in rows if r[0] is not None]
    spent = sum((_money(r[3], vendor) for r in budget_rows), Decimal("0.00"))
    committed = sum((_money(r[4], vendor) for r in budget_rows), Decimal("0.00"))
    totals = summary["totals"]
    assert Decimal(totals["spent"]) == spent, (totals["spent"], spent)
    assert Decimal(totals["committed"]) == committed, (totals["committed"], committed)
    assert totals["budgets"] == len(budget_rows)
    unbudgeted = next((r for r in rows if r[0] is None), None)
    if unbudgeted:
        assert Decimal(summary["unbudgeted"]["spent"]) == _money(unbudgeted[3], vendor)
    per_budget = {str(b["id"]).replace("-", ""): b for b in summary["budgets"]}
    for row in budget_rows:
        b = per_budget[str(row[0]).replace("-", "")]
        assert Decimal(b["spent"]) == _money(row[3], vendor) and Decimal(b["committed"]) == _money(row[4], vendor)
        assert Decimal(b["allocated"]) == _money(row[2], vendor)
    by_id = {r[0]: r for r in run_sql(sql["by_category"])}
    from budgets.models import Category

    ids = dict(Category.objects.values_list("value", "pk"))
    for item in by_category:
        row = by_id.get(ids[item["key"]])
        assert item["entries"] == (row[3] if row else 0)
        if row:
            assert Decimal(item["spent"]) == _money(row[1], vendor), (item, row)
            assert Decimal(item["committed"]) == _money(row[2], vendor)


# ---- the run -----------------------------------------------------------------------------------

def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    admin_url = os.environ.get("DATABASE_URL") or None
    tmp = Path(tempfile.mkdtemp(prefix="pollen-bench-budgets-"))
    created = False
    try:
        database_url = prepare_database(admin_url, BENCH_DB)
        created = database_url is not None
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "POLLEN_VAR_DIR": str(tmp),
               "THROTTLE_GENERAL": "1000000/min", "LOG_LEVEL": "WARNING", "ACCESS_TOKEN_MINUTES": "240",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH")]))}
        env.pop("DEBUG", None)
        if database_url:
            env["DATABASE_URL"] = database_url
        else:
            env.pop("DATABASE_URL", None)
        database = f"PostgreSQL ({BENCH_DB})" if database_url else f"SQLite ({tmp / 'pollen.sqlite3'})"
        print(f"database: {database}; {args.entries} cost entries on {args.budgets} budgets; "
              f"{args.repeats} measured calls each", flush=True)
        load = os.getloadavg()[0]
        if load > 0.5:
            print(f"note: load average {load:.2f} before the run; other work on this machine skews both figures",
                  flush=True)

        started = time.monotonic()
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=BASE_DIR, env=env,
                       check=True)
        os.environ.clear()
        os.environ.update(env)
        sys.path.insert(0, str(BASE_DIR))
        import django

        django.setup()
        from django.db import connection
        from django.test import Client

        migrated = time.monotonic()
        token = seed(args.entries, args.budgets)
        print(f"migrated in {migrated - started:.1f} s; generated the ledger in {time.monotonic() - migrated:.1f} s",
              flush=True)

        vendor = connection.vendor
        sql = baseline_sql(vendor)
        client = Client(headers={"Authorization": f"Bearer {token}"})

        def get(path):
            response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"{path} answered {response.status_code}: {response.content[:300]!r}")
            return response.json()["data"]

        check_same_numbers(vendor, get(SUMMARY_PATH), get(BY_CATEGORY_PATH), sql)
        print("checked: both endpoints give the baseline's numbers to the cent", flush=True)

        cases = [("summary", lambda: get(SUMMARY_PATH), lambda: run_sql(sql["summary"])),
                 ("by-category", lambda: get(BY_CATEGORY_PATH), lambda: run_sql(sql["by_category"]))]
        times: dict[tuple[str, str], list[float]] = {}
        for name, endpoint, baseline in cases:
            for _ in range(args.warmup):
                endpoint()
                baseline()
            for i in range(args.repeats):
                # Alternate which goes first, so neither always finds the other's warm cache.
                pair = [("endpoint", endpoint), ("sql", baseline)]
                for kind, call in (pair if i % 2 == 0 else pair[::-1]):
                    times.setdefault((name, kind), []).append(_timed(call))

        print()
        print(f"{'endpoint':<12} {'path':<34} {'endpoint ms':>12} {'sql ms':>9} {'ratio':>6}")
        paths = {"summary": SUMMARY_PATH, "by-category": BY_CATEGORY_PATH}
        total_endpoint = total_sql = 0.0
        for name, _, _ in cases:
            e = statistics.median(times[(name, "endpoint")]) * 1000
            s = statistics.median(times[(name, "sql")]) * 1000
            total_endpoint += e
            total_sql += s
            print(f"{name:<12} {paths[name]:<34} {e:>12.1f} {s:>9.1f} {e / s:>6.2f}")
        print()
        print(f"RATIO endpoints/sql = {total_endpoint / total_sql:.2f}")
        return 0
    finally:
        if created:
            drop_database(admin_url, BENCH_DB)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
