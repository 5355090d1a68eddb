"""Reads of the model registry.

Visibility is the projects' (``projects.selectors``), as for executions: a user sees the models of
projects they own or are a member of; holders of ``*`` see all. Someone else's model answers 404,
as if it did not exist; changing one needs write access to its project (403 otherwise).
"""

from __future__ import annotations

import re
import uuid

from django.db.models import Count, IntegerField, Max, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from accounts.models import User
from core.exceptions import Forbidden, NotFound
from projects import selectors as project_selectors
from training.models import EvaluationStatus, Execution, ModelEvaluation, ModelVersion, RegisteredModel


def _versions_of_model(aggregate):
    per_model = ModelVersion.objects.filter(model=OuterRef("pk")).order_by().values("model")
    return Subquery(per_model.annotate(value=aggregate).values("value"), output_field=IntegerField())


def model_list(*, user: User) -> QuerySet[RegisteredModel]:
    qs = (RegisteredModel.objects.select_related("project", "execution", "current_version")
          .annotate(versions_count=Coalesce(_versions_of_model(Count("pk")), 0),
                    latest_version=_versions_of_model(Max("number"))))
    if user.has_wildcard_permission():
        return qs
    return qs.filter(project__in=project_selectors.visible_projects(user).values("pk"))


def model_get(*, user: User, model_id, for_write: bool = False) -> RegisteredModel:
    """The model if ``user`` may see it (404 otherwise, also for a malformed id) and, with
    ``for_write``, may change its project (403)."""
    try:
        model_id = uuid.UUID(str(model_id))
    except ValueError:
        raise NotFound("Model not found", details={"model_id": str(model_id)})
    model = model_list(user=user).filter(pk=model_id).first()
    if model is None:
        raise NotFound("Model not found", details={"model_id": str(model_id)})
    if for_write and not project_selectors.can_write(user, model.project):
        raise Forbidden("You can see this model but not change it: that needs write access to its project")
    return model


def model_versions(*, model: RegisteredModel) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(model=model).order_by("-number")


def version_get(*, model: RegisteredModel, number) -> ModelVersion:
    """A version by its number as it came in a path (anything but a positive whole number is 404)."""
    text = str(number)
    # Longer digit strings than any version would overflow the database's integer, not find one.
    version = model_versions(model=model).filter(number=int(text)).first() if re.fullmatch(r"[0-9]{1,9}", text) \
        else None
    if version is None:
        raise NotFound(f"Model {model.pk} has no version {text[:20]}", details={"version": text[:20]})
    return version


def training_execution(*, model: RegisteredModel) -> Execution:
    """The execution a model's training endpoints act on: the latest one started from it, else its own."""
    execution_id = model.last_training_id or model.execution_id
    return Execution.objects.select_related("project").get(pk=execution_id)


def evaluation_get(*, model: RegisteredModel, evaluation_id) -> ModelEvaluation:
    try:
        evaluation_id = uuid.UUID(str(evaluation_id))
    except ValueError:
        raise NotFound("Evaluation not found")
    evaluation = (ModelEvaluation.objects.select_related("version")
                  .filter(model=model, pk=evaluation_id).first())
    if evaluation is None:
        raise NotFound("Evaluation not found")
    return evaluation


def model_evaluations(*, model: RegisteredModel, completed_only: bool = True) -> QuerySet[ModelEvaluation]:
    qs = ModelEvaluation.objects.filter(model=model).select_related("version").order_by("-created_at")
    return qs.filter(status=EvaluationStatus.COMPLETED) if completed_only else qs


def execution_model(*, execution: Execution) -> RegisteredModel | None:
    """The registered model of an execution the caller may already see, with its current version."""
    return RegisteredModel.objects.select_related("current_version").filter(execution=execution).first()
