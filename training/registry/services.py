"""Writes of the model registry: publishing rounds as versions, registering, rollback, retraining
and evaluation.

Every completed round with a checkpoint becomes a version of its execution's registered model
(version number = round number). The model's current version follows the newest one unless a
user rolled back: then it stays pinned where they put it until they roll forward to the newest.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from core.exceptions import ApplicationError, Conflict, NotFound, ValidationFailed
from core.realtime import broadcast_on_commit
from training import events
from training.choices import RoundStatus
from training.models import (EvaluationStatus, Execution, ExecutionLog, ModelEvaluation, ModelVersion,
                             ModelVersionStatus, RegisteredModel, Round)

logger = logging.getLogger("pollen.training")

UPLOADED_APP = "flower_app"


# ---- publishing --------------------------------------------------------------------------------

def _default_name(execution: Execution) -> str:
    if execution.name:
        return execution.name
    if execution.upload_id:
        return execution.upload.app_name or execution.upload.original_name or "Uploaded Flower app"
    return f"{execution.model_type} on {execution.dataset}" if execution.dataset else execution.model_type


def _snapshot(round_obj: Round) -> dict:
    return {"server": round_obj.server_metrics or {}, "evaluate": round_obj.evaluate_metrics or {},
            "train": round_obj.train_metrics or {}}


def _publishable_rounds(execution: Execution):
    return (Round.objects.filter(execution=execution, status=RoundStatus.COMPLETED).exclude(checkpoint="")
            .order_by("number"))


def _upsert(model: RegisteredModel, round_obj: Round) -> tuple[ModelVersion, bool]:
    """The version of ``round_obj``, created or refreshed from the round (its status, description
    and tags are the user's and stay)."""
    try:
        size = round_obj.checkpoint.size
    except OSError:
        size = 0
    values = {"round_id": round_obj.pk, "file": round_obj.checkpoint.name, "checksum": round_obj.checkpoint_checksum,
              "size": size, "metrics": _snapshot(round_obj)}
    version, created = ModelVersion.objects.get_or_create(model=model, number=round_obj.number, defaults=values)
    if not created and any(getattr(version, key) != value for key, value in values.items()):
        for key, value in values.items():
            setattr(version, key, value)
        version.save()
    return version, created


def _follow_newest(model: RegisteredModel) -> None:
    """Point an unpinned model at its newest version. Call holding the model's row lock."""
    if model.pinned:
        return
    newest = ModelVersion.objects.filter(model=model).order_by("-number").only("pk").first()
    if newest is not None and model.current_version_id != newest.pk:
        model.current_version = newest
        model.save(update_fields=["current_version", "updated_at"])


def _locked_model_for(execution: Execution, *, user: User | None = None, name: str = "",
                      description: str = "") -> tuple[RegisteredModel, bool]:
    model, created = RegisteredModel.objects.get_or_create(execution=execution, defaults={
        "project_id": execution.project_id, "name": (name or _default_name(execution))[:200],
        "description": description, "model_type": execution.model_type, "algorithm": execution.algorithm,
        "dataset": execution.dataset, "created_by_id": user.pk if user else execution.created_by_id,
    })
    return RegisteredModel.objects.select_for_update().get(pk=model.pk), created


@transaction.atomic
def version_publish(round_obj: Round) -> ModelVersion | None:
    """Publish the aggregated model of a completed round as a version of its execution's registered
    model, which is created on first use. Idempotent: publishing again refreshes the version from
    the round. Earlier completed rounds that are still unpublished are published too: an uploaded
    app's global arrays can reach Pollen only with the next round. Returns the round's version, or
    None while the round has no checkpoint."""
    model, _ = _locked_model_for(round_obj.execution)
    published = ModelVersion.objects.filter(model=model).values("number")
    pending = _publishable_rounds(round_obj.execution).filter(
        Q(number=round_obj.number) | (Q(number__lt=round_obj.number) & ~Q(number__in=published)))
    result = None
    for candidate in pending:
        version, _ = _upsert(model, candidate)
        if candidate.number == round_obj.number:
            result = version
    _follow_newest(model)
    return result


def publish_round(execution: Execution, round_number: int) -> ModelVersion | None:
    """The engine's hook at the end of a round. A registry failure is logged and never fails the
    run: ``POST /fl/models/{id}/aggregate`` publishes what was missed."""
    try:
        round_obj = Round.objects.select_related("execution", "execution__upload").filter(
            execution_id=execution.pk, number=round_number).first()
        return version_publish(round_obj) if round_obj is not None else None
    except Exception:  # the run goes on; the versions can be published again later
        logger.exception("Could not publish round %s of execution %s", round_number, execution.pk)
        return None


@transaction.atomic
def model_register(*, execution: Execution, user: User, name: str = "", description: str = "") -> RegisteredModel:
    """Register an execution's model (one per execution) and publish its completed rounds."""
    existing = RegisteredModel.objects.filter(execution=execution).first()
    if existing is not None:
        raise Conflict("This execution's model is registered already",
                       details={"model_id": str(existing.pk), "execution_id": str(execution.pk)})
    model, _ = _locked_model_for(execution, user=user, name=name, description=description)
    for round_obj in _publishable_rounds(execution):
        _upsert(model, round_obj)
    _follow_newest(model)
    return model


@transaction.atomic
def model_aggregate(*, model: RegisteredModel) -> tuple[list[ModelVersion], int]:
    """seed 004 "aggregate model": publish (again) every completed round of the model's execution.
    Returns the versions and how many of them are new."""
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    created = 0
    for round_obj in _publishable_rounds(model.execution):
        created += _upsert(model, round_obj)[1]
    _follow_newest(model)
    return list(ModelVersion.objects.filter(model=model).order_by("-number")), created


@transaction.atomic
def version_create(*, model: RegisteredModel, round_number: int) -> tuple[ModelVersion, bool]:
    """A version from a chosen round of the model's execution; (version, created)."""
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    round_obj = Round.objects.filter(execution_id=model.execution_id, number=round_number).first()
    if round_obj is None:
        raise ValidationFailed(f"The execution of this model has no round {round_number}", field="round",
                               http_status=422)
    if round_obj.status != RoundStatus.COMPLETED or not round_obj.checkpoint:
        raise ApplicationError("FL006", f"Round {round_number} has no aggregated model to publish "
                               f"(it is {round_obj.status}{'' if round_obj.checkpoint else ', without a checkpoint'})",
                               details={"field": "round"})
    version, created = _upsert(model, round_obj)
    _follow_newest(model)
    return version, created


# ---- editing -----------------------------------------------------------------------------------

@transaction.atomic
def model_update(*, model: RegisteredModel, name: str | None = None, description: str | None = None) -> RegisteredModel:
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    if name is not None:
        model.name = name.strip()[:200] or model.name
    if description is not None:
        model.description = description
    model.save(update_fields=["name", "description", "updated_at"])
    return model


def model_delete(*, model: RegisteredModel) -> None:
    """Remove the registry entry and its versions; the execution, its rounds and checkpoints stay."""
    model.delete()


@transaction.atomic
def version_update(*, version: ModelVersion, description: str | None = None, tags: list[str] | None = None,
                   status: str | None = None) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if description is not None:
        version.description = description
    if tags is not None:
        version.tags = tags
    if status is not None:
        version.status = status
    version.save(update_fields=["description", "tags", "status", "updated_at"])
    return version


@transaction.atomic
def model_rollback(*, model: RegisteredModel, number: int, user: User, reason: str = "") -> RegisteredModel:
    """Make version ``number`` current. Newer versions are marked rolled back and the model stays
    pinned there (new rounds publish without moving it) until a roll forward to the newest."""
    model = (RegisteredModel.objects.select_for_update(of=("self",)).select_related("execution__project")
             .get(pk=model.pk))
    target = ModelVersion.objects.filter(model=model, number=number).first()
    if target is None:
        raise ValidationFailed(f"This model has no version {number}", field="version", http_status=422)
    previous = model.current_version.number if model.current_version else None
    newest = ModelVersion.objects.filter(model=model).order_by("-number").values_list("number", flat=True).first()
    ModelVersion.objects.filter(model=model, number__gt=number, status=ModelVersionStatus.PUBLISHED).update(
        status=ModelVersionStatus.ROLLED_BACK, updated_at=timezone.now())
    if target.status == ModelVersionStatus.ROLLED_BACK:
        target.status = ModelVersionStatus.PUBLISHED
        target.save(update_fields=["status", "updated_at"])
    model.current_version = target
    model.pinned = number < newest
    model.rolled_back_at = timezone.now()
    model.rolled_back_by = user
    model.save(update_fields=["current_version", "pinned", "rolled_back_at", "rolled_back_by", "updated_at"])
    data = {"model_id": str(model.pk), "execution_id": str(model.execution_id), "project_id": str(model.project_id),
            "from_version": previous, "to_version": number, "pinned": model.pinned, "reason": reason,
            "user_id": str(user.pk)}
    ExecutionLog.objects.create(execution=model.execution, timestamp=timezone.now(), source="registry",
                                message=f"Model {model.name!r} rolled back from version {previous} to {number}"
                                        + (f": {reason}" if reason else ""), data=data)
    broadcast_on_commit("model.rolled_back", data, events.audience(model.execution))
    return model


# ---- training ----------------------------------------------------------------------------------

def _privacy_input(privacy: dict) -> dict | None:
    """An execution's stored privacy settings as ``parse_privacy`` takes them."""
    from training.config import DP_DEFAULTS

    privacy = privacy or {}
    if privacy.get("secure_aggregation"):
        settings = {k: v for k, v in (privacy.get("secagg") or {}).items() if k != "enabled"}
        return {"secure_aggregation": settings or True}
    dp = privacy.get("differential_privacy") or {}
    if not dp.get("enabled"):
        return None
    raw = {"differential_privacy": True, **{k: dp[k] for k in DP_DEFAULTS if k in dp}}
    if dp.get("max_epsilon") is not None:
        raw["epsilon"] = dp["max_epsilon"]
    return raw


@transaction.atomic
def model_train(*, model: RegisteredModel, user: User, name: str = "", config: dict | None = None) -> Execution:
    """Start a new execution with the configuration of the model's own, changed by ``config``
    (rounds, learning rate, ...; not the model or data set). Queued for a worker (202)."""
    from training.config import ALIASES
    from training.services import execution_start

    source = model.execution
    overrides = {ALIASES.get(k, k): v for k, v in (config or {}).items()}
    for fixed in ("model_type", "dataset"):
        if fixed in overrides and overrides[fixed] != source.config.get(fixed):
            raise ApplicationError("FL006", f"{fixed} cannot change when training a registered model again",
                                   details={"field": f"config.{fixed}"})
    merged = {**{k: v for k, v in source.config.items() if k != "substitutions"}, **overrides}
    execution = execution_start(
        project=model.project, user=user, config=merged, name=name or f"{model.name} (retraining)"[:200],
        algorithm=overrides.get("algorithm") or source.algorithm,
        strategy_params=overrides.get("strategy_params", source.strategy_params),
        privacy=_privacy_input(source.privacy),
    )
    RegisteredModel.objects.filter(pk=model.pk).update(last_training=execution, updated_at=timezone.now())
    return execution


# ---- evaluation --------------------------------------------------------------------------------

def version_weights(version: ModelVersion) -> bytes:
    """The stored .npz of a version (404 if the file is gone)."""
    if not version.file or not version.file.storage.exists(version.file.name):
        raise NotFound(f"The weights of version {version.number} are no longer stored")
    with version.file.open("rb") as fh:
        return fh.read()


def evaluation_model(execution: Execution, version: ModelVersion, dataset_name: str):
    """(model holding the version's weights, data set): 422 ``FL006`` when they do not fit together."""
    from training.engine.datasets import load_dataset
    from training.engine.models import build_model
    from training.export import read_npz

    config = execution.config or {}
    seed = int(config.get("seed", 0))
    arrays = read_npz(version_weights(version))
    params = dict(config.get("model_params") or {})
    if execution.model_type == "kmeans" and arrays and arrays[0].ndim == 2:
        params["n_clusters"] = int(arrays[0].shape[0])
    # The execution's own seed: on its own data set this is the held-out split the server evaluated.
    dataset = load_dataset(dataset_name, seed=seed)
    try:
        model = build_model(execution.model_type, dataset, seed=seed, **params)
        model.set_weights(arrays)
    except ValueError as exc:
        raise ApplicationError("FL006", f"Version {version.number} of this {execution.model_type} model cannot be "
                                        f"evaluated on {dataset_name!r}: {exc}",
                               details={"field": "dataset", "dataset": dataset_name,
                                        "model_type": execution.model_type})
    return model, dataset


@transaction.atomic
def evaluation_request(*, model: RegisteredModel, user: User, version_number: int | None = None,
                       dataset: str | None = None) -> ModelEvaluation:
    """Check that the version fits the data set, save a pending evaluation and queue it (202)."""
    from training.engine.datasets import BUILTIN_DATASETS

    execution = model.execution
    if execution.upload_id or model.model_type == UPLOADED_APP:
        raise ApplicationError("FL006", "Evaluation needs a built-in model: this one comes from an uploaded Flower "
                                        "app whose architecture Pollen does not know",
                               details={"model_type": model.model_type})
    if version_number is None:
        version = model.current_version
        if version is None:
            raise ValidationFailed("This model has no published version yet", field="version", http_status=422)
    else:
        version = ModelVersion.objects.filter(model=model, number=version_number).first()
        if version is None:
            raise ValidationFailed(f"This model has no version {version_number}", field="version", http_status=422)
    dataset = dataset or execution.dataset
    if dataset not in BUILTIN_DATASETS:
        raise ValidationFailed(f"dataset must be one of {sorted(BUILTIN_DATASETS)}", field="dataset",
                               http_status=422, details={"field": "dataset", "supported": sorted(BUILTIN_DATASETS)})
    evaluation_model(execution, version, dataset)
    evaluation = ModelEvaluation.objects.create(model=model, version=version, dataset=dataset, requested_by=user)
    from training.tasks import model_evaluate

    transaction.on_commit(lambda: model_evaluate.delay(str(evaluation.pk)))
    return evaluation


def evaluation_run(*, evaluation_id) -> str | None:
    """Run a pending evaluation to its end; the final status, or None if it was not pending."""
    with transaction.atomic():
        evaluation = (ModelEvaluation.objects.select_for_update().filter(pk=evaluation_id).first())
        if evaluation is None or evaluation.status != EvaluationStatus.PENDING:
            return None
        evaluation.status = EvaluationStatus.RUNNING
        evaluation.started_at = timezone.now()
        evaluation.save(update_fields=["status", "started_at", "updated_at"])
    evaluation = ModelEvaluation.objects.select_related("model__execution__project", "version").get(pk=evaluation_id)
    try:
        model, dataset = evaluation_model(evaluation.model.execution, evaluation.version, evaluation.dataset)
        raw = model.evaluate(dataset.x_test, dataset.y_test)
        evaluation.metrics = {k: float(v) for k, v in raw.items() if isinstance(v, (int, float))}
        evaluation.status = EvaluationStatus.COMPLETED
    except Exception as exc:  # the reason is kept for the user, the trace for us
        logger.exception("Evaluation %s failed", evaluation_id)
        evaluation.status = EvaluationStatus.FAILED
        evaluation.error = (exc.message if isinstance(exc, ApplicationError) else
                            f"{exc.__class__.__name__}: {exc}")[:5000]
    evaluation.finished_at = timezone.now()
    with transaction.atomic():
        evaluation.save(update_fields=["status", "metrics", "error", "finished_at", "updated_at"])
        broadcast_on_commit("model.evaluated", {
            "model_id": str(evaluation.model_id), "evaluation_id": str(evaluation.pk),
            "version": evaluation.version.number, "dataset": evaluation.dataset, "status": evaluation.status,
            "metrics": evaluation.metrics, "project_id": str(evaluation.model.project_id),
        }, events.audience(evaluation.model.execution))
    return evaluation.status
