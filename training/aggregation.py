"""Model aggregation of an execution (seed 001 "Model Aggregation"): its state, its settings and
manual aggregation steps.

Settings live on the execution: ``algorithm`` and ``strategy_params`` (the strategy) and
``config["aggregation"]`` (``weights`` and ``validation``). The runner turns them into run config
keys the engine reads when a run starts, so a change made while the execution is pending or
suspended governs its next run. A manual step (``config["manual_step"]``) is bound to the run its
trigger queues through ``attempt``: later runs ignore it.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from core.exceptions import ApplicationError, ValidationFailed
from core.realtime import broadcast_on_commit
from training import events, services
from training.choices import FINISHED_STATUSES, ExecutionStatus, RoundStatus, Transport
from training.config import parse_training_config
from training.engine.strategies import STRATEGIES, StrategyConfigError, resolve
from training.metrics import model_task, validation_settings
from training.models import Execution, Round, RoundClient

WEIGHTINGS = ("uniform", "proportional", "performance")
DEFAULT_WEIGHTS = "proportional"
VALIDATION_METRICS = ("accuracy", "loss")
CONFIGURABLE = (ExecutionStatus.PENDING, ExecutionStatus.SUSPENDED)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, field=field, http_status=422)


def _builtin_only(execution: Execution, field: str) -> None:
    if execution.upload_id:
        raise _invalid(field, "An uploaded Flower app sets up its own strategy and rounds; Pollen's aggregation "
                              "settings apply to its built-in models only")
    if (execution.privacy or {}).get("secure_aggregation"):
        raise _invalid(field, "Under secure aggregation the server only sees the sum of the updates: weighting, "
                              "validation of single rounds and manual steps do not apply")


def weights_of(execution: Execution) -> str:
    return ((execution.config or {}).get("aggregation") or {}).get("weights", DEFAULT_WEIGHTS)


def manual_step_of(execution: Execution) -> dict | None:
    """The manual step queued (pending) or under way (running) for ``execution``, if any."""
    step = (execution.config or {}).get("manual_step") or {}
    run = {ExecutionStatus.PENDING: execution.attempt + 1, ExecutionStatus.RUNNING: execution.attempt}
    if not step or run.get(execution.status) != step.get("attempt"):
        return None
    return {k: step.get(k) for k in ("round", "clients", "wait_for_all", "requested_at")}


# ---- configure ------------------------------------------------------------------------------------

def _checked_validation(execution: Execution, validation: dict) -> dict:
    task = model_task(execution)
    metrics = list(dict.fromkeys(validation.get("metrics") or ()))
    if not metrics:
        metrics = ["accuracy"] if task == "classification" else ["loss"]
    if "accuracy" in metrics and task != "classification":
        raise _invalid("validation.metrics", f"A {task} model has no accuracy; validate on loss")
    threshold = validation.get("threshold")
    if validation.get("enabled") and threshold is None:
        raise _invalid("validation.threshold", "threshold is required when validation is enabled")
    return {"enabled": bool(validation.get("enabled")), "threshold": threshold, "metrics": metrics}


def _checked_strategy(execution: Execution, strategy: str | None, custom_strategy: str | None,
                      strategy_params: dict | None) -> tuple[str, dict]:
    """(algorithm, strategy_params) checked the way execution start checks them."""
    name, field = strategy or execution.algorithm, "strategy"
    if strategy == "custom":
        if not custom_strategy:
            raise _invalid("customStrategy", "A custom strategy must name one the engine knows (customStrategy); "
                                             f"known: {', '.join(sorted(STRATEGIES))}")
        name, field = custom_strategy, "customStrategy"
    try:
        algorithm = resolve(name)
    except StrategyConfigError as exc:
        raise _invalid(field, str(exc))
    if strategy_params is None:
        # Keep what still applies: a new strategy takes only its own parameters.
        strategy_params = {k: v for k, v in execution.strategy_params.items() if k in STRATEGIES[algorithm].params}
    checked = parse_training_config(execution.config, algorithm=algorithm, strategy_params=strategy_params)
    return checked["algorithm"], checked["strategy_params"]


@transaction.atomic
def aggregation_configure(*, execution: Execution, strategy: str | None = None, custom_strategy: str | None = None,
                          strategy_params: dict | None = None, weights: str | None = None,
                          validation: dict | None = None) -> Execution:
    """Change how a pending or suspended execution aggregates (409 otherwise); its next run uses
    it. What is not given stays as it is."""
    execution = Execution.objects.select_for_update().get(pk=execution.pk)
    if execution.status not in CONFIGURABLE:
        raise ApplicationError("RESOURCE_CONFLICT", f"Aggregation can be configured while an execution is pending or "
                               f"suspended; this one is {execution.status}",
                               details={"status": execution.status}, http_status=409)
    _builtin_only(execution, "strategy")
    if strategy is not None or custom_strategy is not None or strategy_params is not None:
        execution.algorithm, execution.strategy_params = _checked_strategy(execution, strategy, custom_strategy,
                                                                           strategy_params)
    stored = dict((execution.config or {}).get("aggregation") or {})
    if weights is not None:
        stored["weights"] = weights
    if validation is not None:
        stored["validation"] = _checked_validation(execution, validation)
    execution.config = {**execution.config, "algorithm": execution.algorithm,
                        "strategy_params": execution.strategy_params,
                        "aggregation": {"weights": stored.get("weights", DEFAULT_WEIGHTS),
                                        "validation": stored.get("validation") or validation_settings(execution)}}
    execution.save(update_fields=["algorithm", "strategy_params", "config", "updated_at"])
    broadcast_on_commit("execution.updated", events.execution_data(execution), events.audience(execution))
    return execution


# ---- manual step ----------------------------------------------------------------------------------

def federation_node_ids(execution: Execution) -> set[int]:
    """The node ids a manual step may name: the embedded federation's own, else the nodes that
    have taken part in the execution so far."""
    if execution.transport == Transport.EMBEDDED:
        from training.runner import nodes_for

        return set(nodes_for(execution))
    return set(RoundClient.objects.filter(round__execution=execution).values_list("node_id", flat=True).distinct())


@transaction.atomic
def aggregation_trigger(*, execution: Execution, round_number: int, clients: list[int] | None = None,
                        wait_for_all: bool = True) -> Execution:
    """Run one aggregation round of a suspended execution, on ``clients`` only if given, then
    suspend it again (the last round completes it instead). Queues the run (202)."""
    execution = Execution.objects.select_for_update().get(pk=execution.pk)
    if execution.status in (ExecutionStatus.RUNNING, ExecutionStatus.PENDING):
        raise ApplicationError("RESOURCE_CONFLICT", "Aggregation runs automatically while the execution is "
                               f"{execution.status}; suspend it first", details={"status": execution.status},
                               http_status=409)
    if execution.status in FINISHED_STATUSES:
        raise ApplicationError("RESOURCE_CONFLICT", f"The execution is {execution.status}: there is nothing to "
                               "aggregate", details={"status": execution.status}, http_status=409)
    _builtin_only(execution, "executionId")
    expected = execution.current_round + 1
    if round_number != expected or expected > execution.total_rounds:
        raise _invalid("round", f"The next round of this execution is {expected} of {execution.total_rounds}"
                       if expected <= execution.total_rounds else "Every round of this execution is done")
    clients = sorted(set(clients or []))
    unknown = sorted(set(clients) - federation_node_ids(execution))
    if unknown:
        raise ValidationFailed(f"Unknown node ids: {unknown[:10]}", http_status=422,
                               details={"field": "clients", "reason": "unknown node ids", "unknown": unknown[:100]})
    # Flower's sampler waits for as many nodes as these ask for: fewer would never come.
    needed = max(int(execution.strategy_params.get(k, 0))
                 for k in ("min_train_nodes", "min_evaluate_nodes", "min_available_nodes"))
    if clients and len(clients) < needed:
        raise ApplicationError("FL002", f"The strategy needs at least {needed} nodes; {len(clients)} were given",
                               details={"field": "clients", "needed": needed})
    execution.config = {**execution.config, "manual_step": {
        "round": round_number, "clients": clients, "wait_for_all": wait_for_all,
        "attempt": execution.attempt + 1, "requested_at": timezone.now().isoformat()}}
    execution.save(update_fields=["config", "updated_at"])
    return services.execution_resume(execution=execution, from_round=execution.current_round)


# ---- status ---------------------------------------------------------------------------------------

def _expected_updates(execution: Execution, step: dict | None) -> int:
    """How many training updates a round waits for, as the strategy samples nodes."""
    config, params = execution.config or {}, execution.strategy_params or {}
    nodes = len(step["clients"]) if step and step.get("clients") else int(config.get("clients", execution.min_clients))
    fraction = 1.0 if step and step.get("wait_for_all") else float(params.get("fraction_train", 1.0))
    floor = int(params.get("min_train_nodes", min(execution.min_clients, nodes)))
    return max(int(nodes * fraction), floor)


def _next_aggregation(execution: Execution, latest: Round | None, step: dict | None) -> dict:
    status, done = execution.status, execution.current_round
    if status in (ExecutionStatus.RUNNING, ExecutionStatus.PENDING):
        in_progress = latest is not None and latest.status != RoundStatus.COMPLETED
        number = latest.number if in_progress else done + 1
        if step:
            reason = f"A manual step: round {step['round']} then suspend"
        elif execution.control:
            reason = f"A {execution.control} was requested: it takes effect after round {number}"
        elif status == ExecutionStatus.PENDING:
            reason = "Queued: aggregates once a worker runs it"
        else:
            reason = "Aggregates when the round's updates are in"
        return {"expected": True, "round": number if number <= execution.total_rounds else None, "reason": reason}
    reasons = {
        ExecutionStatus.SUSPENDED: f"Suspended after round {done}: trigger round {done + 1} or resume",
        ExecutionStatus.COMPLETED: f"Completed: all {execution.total_rounds} rounds are aggregated",
        ExecutionStatus.STOPPED: f"Stopped after round {done}",
        ExecutionStatus.FAILED: f"Failed after round {done}: {execution.error_message or 'see its logs'}",
    }
    return {"expected": False, "round": None, "reason": reasons[status]}


def aggregation_status(*, execution: Execution) -> dict:
    """The execution's aggregation state: settings, the current round's progress, the last
    aggregated round and what comes next. Three queries."""
    from training.api.serializers import checkpoint_url

    rounds = Round.objects.filter(execution=execution)
    latest = rounds.order_by("-number").annotate(
        received=Count("clients", filter=Q(clients__phase="train", clients__error="")),
        failed=Count("clients", filter=Q(clients__phase="train") & ~Q(clients__error=""))).first()
    last_done = latest if latest is not None and latest.status == RoundStatus.COMPLETED else \
        rounds.filter(status=RoundStatus.COMPLETED).order_by("-number").first()
    step = manual_step_of(execution)
    stored_step = (execution.config or {}).get("manual_step") or {}
    if latest is not None:
        current = {"number": latest.number, "status": latest.status, "updates_received": latest.received,
                   "updates_failed": latest.failed,
                   "updates_expected": _expected_updates(execution, stored_step if stored_step.get("round")
                                                         == latest.number else None)}
    else:
        current = {"number": min(execution.current_round + 1, execution.total_rounds), "status": RoundStatus.PENDING,
                   "updates_received": 0, "updates_failed": 0, "updates_expected": _expected_updates(execution, step)}
    last = None
    if last_done is not None:
        passed = (last_done.server_metrics or {}).get("validation_passed")
        completed_at = last_done.completed_at.isoformat().replace("+00:00", "Z") if last_done.completed_at else None
        last = {"number": last_done.number, "completed_at": completed_at,
                "participants": last_done.participants,
                "metrics": {"train": last_done.train_metrics, "evaluate": last_done.evaluate_metrics,
                            "server": last_done.server_metrics},
                "checksum": last_done.checkpoint_checksum or None,
                "checkpoint_url": checkpoint_url(execution.pk, last_done.number) if last_done.checkpoint else None,
                "validation_passed": None if passed is None else bool(passed)}
    spec = STRATEGIES.get(execution.algorithm)
    return {
        "execution_id": str(execution.pk), "status": execution.status,
        "strategy": {"name": execution.algorithm, "params": execution.strategy_params,
                     "description": spec.description if spec else "Set up by the uploaded Flower app"},
        "weights": weights_of(execution), "validation": validation_settings(execution),
        "differential_privacy": bool(((execution.privacy or {}).get("differential_privacy") or {}).get("enabled")),
        "total_rounds": execution.total_rounds, "completed_rounds": execution.current_round,
        "current_round": current, "last_aggregated_round": last,
        "next_aggregation": _next_aggregation(execution, latest, step), "manual_step": step,
    }
