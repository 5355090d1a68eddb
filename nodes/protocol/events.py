"""Event payloads and audiences of device rounds (seed 002 fields on seed 001's event names).

``round.started`` and ``model.aggregated`` are broadcast by the execution's observer with these
fields merged into its own (``ExecutionObserver.event_data``); ``client.update_received`` and
``client.training_progress`` are broadcast by the services. The WebSocket renders ``round.started``
(transport "device") as seed 002's ``training_invitation`` and ``model.aggregated`` as ``model_ready``.
"""

from __future__ import annotations

from datetime import datetime

from training import events as training_events


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def audience(execution, node_ids) -> list[str]:
    """Who sees a device round's events: the execution's audience and the devices taking part."""
    return sorted({*training_events.audience(execution), *(f"node.{pk}" for pk in node_ids)})


def round_started_data(*, round_id, number: int, model, deadline: datetime, training_config: dict,
                       model_url: str) -> dict:
    return {"round_number": number, "round_id": str(round_id), "global_model_url": model_url,
            "model_version": model.version, "model_checksum": model.checksum, "deadline": _iso(deadline),
            "training_config": training_config, "transport": "device"}


def model_aggregated_data(*, device_round, model, model_url: str) -> dict:
    return {"round_number": device_round.number, "round_id": str(device_round.pk), "version": model.version,
            "download_url": model_url, "checksum": model.checksum, "transport": "device"}


def update_received_data(*, execution, device_round, node, update) -> dict:
    return {"execution_id": str(execution.pk), "project_id": str(execution.project_id),
            "round": device_round.number, "round_number": device_round.number, "round_id": str(device_round.pk),
            "client_id": str(node.pk), "node_id": str(node.pk), "update_id": str(update.pk),
            "num_examples": update.num_examples, "metrics": update.metrics,
            "updates_received": device_round.updates_received, "target_updates": device_round.target_updates}


def progress_data(*, execution, device_round, node, progress_percent: float, estimated_completion) -> dict:
    return {"execution_id": str(execution.pk), "round": device_round.number, "round_number": device_round.number,
            "round_id": str(device_round.pk), "client_id": str(node.pk), "progress_percent": float(progress_percent),
            "estimated_completion": _iso(estimated_completion) if isinstance(estimated_completion, datetime)
            else estimated_completion}
