"""Event payloads for executions (seed 001 names, seed 000's training_update)."""

from core.realtime import user_group
from training.models import Execution


def audience(execution: Execution) -> list[str]:
    project = execution.project
    ids = [project.owner_id, *project.memberships.values_list("user_id", flat=True)]
    return [user_group(i) for i in ids]


def execution_data(execution: Execution) -> dict:
    return {
        "execution_id": str(execution.pk),
        "job_id": str(execution.pk),
        "project_id": str(execution.project_id),
        "status": execution.status,
        "current_round": execution.current_round,
        "total_rounds": execution.total_rounds,
        "metrics": execution.metrics,
        "error": execution.error_message or None,
    }


def round_data(execution: Execution, round_number: int) -> dict:
    return {
        "execution_id": str(execution.pk),
        "project_id": str(execution.project_id),
        "round": round_number,
        "total_rounds": execution.total_rounds,
    }


def training_update(execution: Execution) -> dict:
    """seed 000's WebSocket ``training_update`` data."""
    return {
        "job_id": str(execution.pk),
        "execution_id": str(execution.pk),
        "project_id": str(execution.project_id),
        "status": execution.status,
        "progress": execution.completion_percentage,
        "metrics": {k: execution.metrics.get(k) for k in ("accuracy", "loss") if k in execution.metrics},
    }
