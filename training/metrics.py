"""Reads behind ``/fl/metrics/*`` (seeds 001 and 004): per-round series of an execution's metrics,
summaries over rounds, exports, the data distribution of its federation, validation scores and the
bias assessment. ``validation_scores`` and ``bias_report`` also serve the model registry."""

from __future__ import annotations

import csv
import io
import json
import math

from django.db.models import Prefetch

from core.exceptions import NotFound, ValidationFailed
from training.choices import RoundStatus
from training.models import Execution, Round, RoundClient

SOURCES = ("server", "evaluate", "train")
AGGREGATIONS = {"mean": lambda v: sum(v) / len(v), "sum": sum, "max": max, "min": min}
# What each seed 004 metric endpoint shows, by the names the engine records.
FAMILIES = {
    "loss": ("loss", "eval_loss", "train_loss", "mse"),
    "accuracy": ("accuracy", "eval_accuracy", "train_accuracy"),
    "precision-recall": ("precision", "recall", "eval_precision", "eval_recall"),
    "f1": ("f1", "eval_f1", "train_f1"),
}
EXPORT_FORMATS = ("csv", "json", "parquet")
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


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
    if fmt == "parquet":
        return _parquet(flat), PARQUET_CONTENT_TYPE, "parquet"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["execution_id", "round", "source", "metric", "value"])
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue().encode(), "text/csv", "csv"


def _parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("execution_id", pa.string()), ("round", pa.int64()), ("source", pa.string()),
                        ("metric", pa.string()), ("value", pa.float64())])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{**row, "value": float(row["value"])} for row in rows], schema=schema),
                   buffer)
    return buffer.getvalue()


def data_distribution(execution: Execution) -> dict:
    """How the execution's data is spread over its nodes: sizes, label counts, heterogeneity."""
    if execution.upload_id:
        raise ValidationFailed("An uploaded Flower app loads its own data; Pollen cannot see how it is spread",
                               field="executionId", http_status=422)
    from training.engine.datasets import load_dataset, partition, partition_stats

    from training.runner import run_config_for

    config = execution.config
    # A CSV data set is read from where the run reads it (the same path and target column).
    run_config = run_config_for(execution) if config.get("dataset_id") else {}
    dataset = load_dataset(execution.dataset, seed=int(config.get("seed", 0)), csv_path=run_config.get("pollen.csv-path"),
                           target_column=run_config.get("pollen.target-column"))
    clients = int(config.get("clients", execution.min_clients))
    parts = partition(dataset.y_train, clients, method=config.get("partition", "iid"),
                      alpha=float(config.get("alpha", 0.5)), seed=int(config.get("seed", 0)), min_size=2)
    stats = partition_stats(parts, dataset.y_train, dataset.n_classes)
    return {"dataset": execution.dataset, "partition": config.get("partition", "iid"),
            "alpha": config.get("alpha") if config.get("partition") == "dirichlet" else None,
            "nodes": clients, **stats}


# ---- validation scores and bias (seed 004 /fl/metrics/validation and /bias) -----------------------

# Metrics where more is better; for the others (loss, mse, ...) less is.
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "r2"}
DEFAULT_BIAS_THRESHOLD = 0.1
MODEL_TASKS = {"logistic": "classification", "mlp": "classification", "cnn": "classification",
               "linear": "regression", "kmeans": "clustering"}


def model_task(execution: Execution) -> str:
    """classification, regression, clustering, or ``app`` for an uploaded Flower app."""
    return MODEL_TASKS.get(execution.model_type, "app")


def _rounds_with_evaluations(execution: Execution, round_number: int | None, *, completed_only: bool = False):
    """The execution's rounds (or just ``round_number``, 404 if it has none such), each with its
    nodes' successful evaluations in ``evaluations``: two queries whatever the size."""
    from training import selectors

    rounds = selectors.execution_rounds(execution=execution)
    if round_number is not None:
        rounds = rounds.filter(number=round_number)
    elif completed_only:
        rounds = rounds.filter(status=RoundStatus.COMPLETED)
    rounds = list(rounds.prefetch_related(Prefetch(
        "clients", queryset=RoundClient.objects.filter(phase="evaluate", error="").order_by("node_id"),
        to_attr="evaluations")))
    if round_number is not None and not rounds:
        raise NotFound(f"Execution {execution.pk} has no round {round_number}")
    return rounds


def _numbers(metrics: dict, prefix: str = "") -> dict[str, float]:
    return {key[len(prefix):]: float(value) for key, value in (metrics or {}).items()
            if key.startswith(prefix) and isinstance(value, (int, float)) and not isinstance(value, bool)}


def _local_scores(evaluations) -> dict[str, dict]:
    """Each metric the nodes report on their local validation split: weighted mean (by examples),
    min, max and how many nodes reported it."""
    values: dict[str, list[tuple[float, int]]] = {}
    for client in evaluations:
        for name, value in _numbers(client.metrics, "eval_").items():
            values.setdefault(name, []).append((value, max(client.num_examples, 1)))
    return {name: {"weighted_mean": sum(v * n for v, n in pairs) / sum(n for _, n in pairs),
                   "min": min(v for v, _ in pairs), "max": max(v for v, _ in pairs), "nodes": len(pairs)}
            for name, pairs in sorted(values.items())}


def validation_settings(execution: Execution) -> dict:
    """The aggregation validation configured on ``execution`` (disabled when none is)."""
    stored = ((execution.config or {}).get("aggregation") or {}).get("validation") or {}
    return {"enabled": bool(stored.get("enabled")), "threshold": stored.get("threshold"),
            "metrics": list(stored.get("metrics") or [])}


def validation_scores(execution: Execution, round_number: int | None = None) -> dict:
    """Per round: the server's metrics on the held-out test split against the nodes' local
    validation metrics (weighted mean, min, max over nodes), the generalisation gap, and whether
    the round passed the aggregation validation threshold when one is configured.

    ``generalisation_gap[m]`` is positive when the global model does worse on the held-out split
    than on the nodes' own data: local - held-out for accuracy-like metrics, held-out - local for
    losses. ``validation_passed`` is what the engine recorded, else the threshold applied to the
    held-out metrics, else None (no validation configured)."""
    from training.engine.builtin_app import passes_validation

    settings = validation_settings(execution)
    rows = []
    for round_obj in _rounds_with_evaluations(execution, round_number):
        held_out = _numbers(round_obj.server_metrics)
        local = _local_scores(round_obj.evaluations)
        gap = {name: (scores["weighted_mean"] - held_out[name]) if name in HIGHER_IS_BETTER
               else (held_out[name] - scores["weighted_mean"])
               for name, scores in local.items() if name in held_out}
        passed = held_out.pop("validation_passed", None)
        if passed is None and settings["enabled"] and settings["threshold"] is not None and held_out:
            passed = passes_validation(held_out, settings)
        rows.append({"round": round_obj.number, "status": round_obj.status, "held_out": held_out, "local": local,
                     "generalisation_gap": gap, "validation_passed": None if passed is None else bool(passed)})
    verdicts = [r["validation_passed"] for r in rows if r["validation_passed"] is not None]
    return {"execution_id": str(execution.pk), "task": model_task(execution), "validation": settings,
            "rounds": rows, "latest": rows[-1] if rows else None,
            "summary": {"rounds": len(rows), "passed": sum(verdicts), "failed": len(verdicts) - sum(verdicts)}}


def _check_threshold(threshold) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or threshold < 0:
        raise ValidationFailed("threshold must be a number of at least 0", field="threshold", http_status=422)
    return float(threshold)


def _class_gaps(server: dict, threshold: float) -> tuple[list[dict], dict | None]:
    accuracy, support, overall = server.get("class_accuracy"), server.get("class_support"), server.get("accuracy")
    if not isinstance(accuracy, list) or not isinstance(support, list) or overall is None:
        return [], None
    classes = [{"label": label, "accuracy": float(a), "support": int(n), "gap": float(a) - overall,
                "flagged": abs(float(a) - overall) > threshold}
               for label, (a, n) in enumerate(zip(accuracy, support)) if n]
    if not classes:
        return [], None
    worst = min(classes, key=lambda c: c["accuracy"])
    return classes, {"overall_accuracy": overall, "worst": {k: worst[k] for k in ("label", "accuracy", "gap")},
                     "max_gap": max(abs(c["gap"]) for c in classes),
                     "flagged": [c["label"] for c in classes if c["flagged"]]}


def _node_gaps(evaluations, metric: str, threshold: float) -> tuple[list[dict], dict | None]:
    """Each node's ``metric`` against the federation's mean weighted by examples. Accuracy gaps
    are absolute; loss gaps are flagged relative to the mean, since a loss has no fixed scale."""
    nodes = []
    for client in evaluations:
        local = _numbers(client.metrics, "eval_")
        if metric in local:
            nodes.append({"node_id": client.node_id, "partition_id": client.partition_id,
                          "num_examples": client.num_examples, "value": local[metric], "metrics": local})
    if not nodes:
        return [], None
    weights = [max(n["num_examples"], 1) for n in nodes]
    values = [n["value"] for n in nodes]
    mean = sum(v * w for v, w in zip(values, weights)) / sum(weights)
    relative = metric not in HIGHER_IS_BETTER
    for node in nodes:
        node["gap"] = node["value"] - mean
        node["relative_gap"] = node["gap"] / abs(mean) if mean else None
        basis = node["relative_gap"] if relative else node["gap"]
        node["flagged"] = basis is not None and abs(basis) > threshold
    worst = (max if relative else min)(nodes, key=lambda n: n["value"])
    spread = max(values) - min(values)
    std = math.sqrt(sum((v - sum(values) / len(values)) ** 2 for v in values) / len(values))
    return nodes, {"metric": metric, "higher_is_better": not relative, "weighted_mean": mean, "std": std,
                   "min": min(values), "max": max(values), "max_min_gap": spread,
                   "relative_max_min_gap": spread / abs(mean) if mean else None,
                   "flag_basis": "relative" if relative else "absolute",
                   "worst": {k: worst[k] for k in ("node_id", "value", "gap")},
                   "flagged": [n["node_id"] for n in nodes if n["flagged"]]}


def bias_report(execution: Execution, round_number: int | None = None, *,
                threshold: float = DEFAULT_BIAS_THRESHOLD) -> dict:
    """Bias of the global model of a round (default: the last completed one).

    Per class (classification): each class's accuracy on the held-out split against the overall
    accuracy, the worst class and the largest gap. Per node: each node's local validation accuracy
    (loss for regression and clustering) against the federation's weighted mean, the worst node and
    the spread. A gap larger than ``threshold`` is flagged; ``fairness`` states the max-min gap and
    whether anything was flagged."""
    threshold = _check_threshold(threshold)
    task = model_task(execution)
    rounds = _rounds_with_evaluations(execution, round_number, completed_only=True)
    round_obj = rounds[-1] if rounds else None
    classes, class_summary = _class_gaps(round_obj.server_metrics or {}, threshold) if round_obj else ([], None)
    metric = "accuracy" if task == "classification" else "loss"
    nodes, node_summary = _node_gaps(round_obj.evaluations, metric, threshold) if round_obj else ([], None)
    flagged = bool((class_summary and class_summary["flagged"]) or (node_summary and node_summary["flagged"]))
    return {
        "execution_id": str(execution.pk), "task": task, "round": round_obj.number if round_obj else None,
        "threshold": threshold, "classes": classes, "class_summary": class_summary, "nodes": nodes,
        "node_summary": node_summary,
        "fairness": {"metric": metric,
                     "max_min_gap": node_summary["max_min_gap"] if node_summary else None,
                     "class_max_gap": class_summary["max_gap"] if class_summary else None,
                     "std": node_summary["std"] if node_summary else None,
                     "flagged": flagged, "fair": None if round_obj is None else not flagged},
    }
