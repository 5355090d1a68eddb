"""Reads behind ``/fl/metrics/*`` (seeds 001 and 004): per-round series of an execution's metrics,
summaries over rounds, exports, and the data distribution of its federation."""

from __future__ import annotations

import csv
import io
import json

from core.exceptions import ValidationFailed
from training.models import Execution, Round

SOURCES = ("server", "evaluate", "train")
AGGREGATIONS = {"mean": lambda v: sum(v) / len(v), "sum": sum, "max": max, "min": min}
# What each seed 004 metric endpoint shows, by the names the engine records.
FAMILIES = {
    "loss": ("loss", "eval_loss", "train_loss", "mse"),
    "accuracy": ("accuracy", "eval_accuracy", "train_accuracy"),
    "precision-recall": ("precision", "recall", "eval_precision", "eval_recall"),
    "f1": ("f1", "eval_f1", "train_f1"),
}
EXPORT_FORMATS = ("csv", "json")


def _round_sources(round_obj: Round) -> dict[str, dict]:
    return {"server": round_obj.server_metrics or {}, "evaluate": round_obj.evaluate_metrics or {},
            "train": round_obj.train_metrics or {}}


def series(execution: Execution, rounds, names: list[str] | None = None) -> list[dict]:
    """``[{"round": n, "server": {...}, "evaluate": {...}, "train": {...}}]`` keeping only ``names``."""
    out = []
    for round_obj in rounds:
        row = {"round": round_obj.number, "completed_at": round_obj.completed_at}
        for source, metrics in _round_sources(round_obj).items():
            row[source] = {k: v for k, v in metrics.items()
                           if isinstance(v, (int, float)) and (not names or k in names)}
        out.append(row)
    return out


def summary(rows: list[dict], aggregation: str) -> dict:
    if aggregation not in AGGREGATIONS:
        raise ValidationFailed(f"aggregation must be one of {sorted(AGGREGATIONS)}", field="aggregation",
                               http_status=422)
    values: dict[str, list[float]] = {}
    for row in rows:
        for source in SOURCES:
            for key, value in row[source].items():
                values.setdefault(f"{source}.{key}", []).append(float(value))
    return {key: AGGREGATIONS[aggregation](vals) for key, vals in sorted(values.items())}


def export(executions_rows: list[tuple[Execution, list[dict]]], fmt: str) -> tuple[bytes, str, str]:
    """(body, content type, file extension) of the rows as CSV or JSON."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed(f"format {fmt!r} is not supported; use one of {list(EXPORT_FORMATS)}",
                               field="format", http_status=422)
    flat = [
        {"execution_id": str(execution.pk), "round": row["round"], "source": source, "metric": key, "value": value}
        for execution, rows in executions_rows for row in rows for source in SOURCES
        for key, value in sorted(row[source].items())
    ]
    if fmt == "json":
        return json.dumps(flat).encode(), "application/json", "json"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["execution_id", "round", "source", "metric", "value"])
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue().encode(), "text/csv", "csv"


def data_distribution(execution: Execution) -> dict:
    """How the execution's data is spread over its nodes: sizes, label counts, heterogeneity."""
    if execution.upload_id:
        raise ValidationFailed("An uploaded Flower app loads its own data; Pollen cannot see how it is spread",
                               field="executionId", http_status=422)
    from training.engine.datasets import load_dataset, partition, partition_stats

    config = execution.config
    dataset = load_dataset(execution.dataset, seed=int(config.get("seed", 0)))
    clients = int(config.get("clients", execution.min_clients))
    parts = partition(dataset.y_train, clients, method=config.get("partition", "iid"),
                      alpha=float(config.get("alpha", 0.5)), seed=int(config.get("seed", 0)), min_size=2)
    stats = partition_stats(parts, dataset.y_train, dataset.n_classes)
    return {"dataset": execution.dataset, "partition": config.get("partition", "iid"),
            "alpha": config.get("alpha") if config.get("partition") == "dirichlet" else None,
            "nodes": clients, **stats}
