"""A stored report as CSV: one table, a ``section`` column saying which part each row belongs to."""

from __future__ import annotations

import csv
import io

COLUMNS = ["section", "budget_id", "budget", "status", "period", "category", "total", "allocated", "spent",
           "committed", "available", "utilisation_percent", "forecast_spent", "forecast_consumed",
           "projected_overrun", "method"]
# A cell a spreadsheet would run as a formula (CSV injection) is quoted with a leading apostrophe.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rows(content: dict):
    summary = content.get("summary")
    if summary:
        totals = summary["totals"]
        yield {"section": "summary", "budget": "All budgets", "total": totals["total"],
               "allocated": totals["allocated"], "spent": totals["spent"], "committed": totals["committed"],
               "available": totals["available"], "utilisation_percent": totals["utilisation"]}
        for b in summary["budgets"]:
            yield {"section": "summary", "budget_id": b["id"], "budget": b["name"], "status": b["status"],
                   "period": f"{b['period']['start']}/{b['period']['end']}", "total": b["total"],
                   "allocated": b["allocated"], "spent": b["spent"], "committed": b["committed"],
                   "available": b["available"], "utilisation_percent": b["utilisation"]}
        if summary.get("unbudgeted"):
            yield {"section": "summary", "budget": "No budget", "spent": summary["unbudgeted"]["spent"],
                   "committed": summary["unbudgeted"]["committed"]}
    trends = content.get("trends")
    if trends:
        for month in trends["months"]:
            yield {"section": "trend", "period": month["period"], "spent": month["spent"],
                   "committed": month["committed"]}
        for category in trends["categories"]:
            for month, spent in zip(trends["months"], category["spent"]):
                yield {"section": "trend_by_category", "period": month["period"], "category": category["name"],
                       "spent": spent}
    for f in content.get("forecast") or []:
        yield {"section": "forecast", "budget_id": f["budget_id"], "budget": f["name"], "status": f["status"],
               "period": f"{f['period']['start']}/{f['period']['end']}", "total": f["total"], "spent": f["spent"],
               "committed": f["committed"], "available": f["forecast_available"],
               "utilisation_percent": f["forecast_utilisation"], "forecast_spent": f["forecast_spent"],
               "forecast_consumed": f["forecast_consumed"], "projected_overrun": f["projected_overrun"],
               "method": f["method"]["name"]}


def report_csv(content: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in _rows(content):
        writer.writerow([_cell(row.get(column)) for column in COLUMNS])
    return buffer.getvalue()
