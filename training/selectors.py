"""Reads for executions, their rounds and logs.

Visibility is the projects' (``projects.selectors``): a user sees the executions of projects they own
or are a member of; holders of ``*`` see all. Someone else's execution answers 404 ``FL001``, as if
it did not exist; changing one needs write access to its project (403 otherwise).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db.models import Avg, QuerySet

from accounts.models import User
from core.exceptions import ApplicationError, Forbidden, NotFound
from projects import selectors as project_selectors
from training.choices import ExecutionStatus
from training.models import Execution, ExecutionLog, Round, RoundClient


def _visible_project_ids(user: User) -> QuerySet | None:
    """A subquery of the project ids ``user`` may see, or None when they see every project."""
    if user.has_wildcard_permission():
        return None
    return project_selectors.visible_projects(user).values("pk")


def execution_list(*, user: User) -> QuerySet[Execution]:
    qs = Execution.objects.select_related("project")
    visible = _visible_project_ids(user)
    return qs if visible is None else qs.filter(project__in=visible)


def execution_get(*, user: User, execution_id, for_write: bool = False) -> Execution:
    """The execution if ``user`` may see it (404 ``FL001`` otherwise, also for a malformed id) and,
    with ``for_write``, may change its project (403)."""
    try:
        execution_id = uuid.UUID(str(execution_id))
    except ValueError:
        raise ApplicationError("FL001", "Execution not found", details={"execution_id": str(execution_id)})
    execution = execution_list(user=user).filter(pk=execution_id).first()
    if execution is None:
        raise ApplicationError("FL001", "Execution not found", details={"execution_id": str(execution_id)})
    if for_write and not project_selectors.can_write(user, execution.project):
        raise Forbidden("You can see this execution but not change it: that needs write access to its project")
    return execution


def execution_rounds(*, execution: Execution) -> QuerySet[Round]:
    return Round.objects.filter(execution=execution).order_by("number")


def execution_round_get(*, execution: Execution, number) -> Round:
    round_obj = execution_rounds(execution=execution).filter(number=int(number)).first()
    if round_obj is None:
        raise NotFound(f"Execution {execution.pk} has no round {number}")
    return round_obj


def round_get_by_id(*, user: User, round_id) -> Round:
    """seed 004 ``/fl/executions/rounds/{roundId}``: a round by its own id, if its execution is visible."""
    qs = Round.objects.select_related("execution", "execution__project")
    visible = _visible_project_ids(user)
    if visible is not None:
        qs = qs.filter(execution__project__in=visible)
    round_obj = qs.filter(pk=int(round_id)).first()
    if round_obj is None:
        raise NotFound("Round not found")
    return round_obj


def round_clients(*, round_obj: Round) -> QuerySet[RoundClient]:
    return RoundClient.objects.filter(round=round_obj).order_by("phase", "node_id")


def execution_logs(*, execution: Execution) -> QuerySet[ExecutionLog]:
    return ExecutionLog.objects.filter(execution=execution).order_by("timestamp", "id")


def log_list(*, user: User) -> QuerySet[ExecutionLog]:
    """Log entries of every execution ``user`` can see, newest first."""
    qs = ExecutionLog.objects.all()
    visible = _visible_project_ids(user)
    if visible is not None:
        qs = qs.filter(execution__project__in=visible)
    return qs.order_by("-timestamp", "-id")


def execution_estimated_completion(*, execution: Execution) -> datetime | None:
    """When a running execution should finish: its start plus the mean round duration times its
    rounds. None unless it runs and has finished a round."""
    if execution.status != ExecutionStatus.RUNNING or not execution.started_at:
        return None
    mean = (Round.objects.filter(execution=execution, duration_seconds__isnull=False)
            .aggregate(mean=Avg("duration_seconds"))["mean"])
    if mean is None:
        return None
    return execution.started_at + timedelta(seconds=mean * execution.total_rounds)

