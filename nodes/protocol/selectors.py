"""Reads of the device protocol: which execution a device serves, its rounds, models and updates."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db.models import QuerySet

from accounts.models import User
from core.exceptions import NotFound
from nodes.models import DeviceModel, DeviceRound, DeviceRoundStatus, DeviceUpdate, Node
from training import selectors as training_selectors
from training.choices import ExecutionStatus, Transport
from training.models import Execution

MODELS_PATH = "/api/v1/models/"


def registrant(node: Node) -> User | None:
    """The node's registrant with their own permissions (a device's request carries only the
    device's scopes)."""
    if node.registered_by_id is None:
        return None
    return User.objects.prefetch_related("roles").filter(pk=node.registered_by_id, is_active=True).first()


def device_executions(*, user: User, node: Node) -> QuerySet[Execution]:
    """Device executions a node may serve: of projects its registrant can see, and of the node's own
    project when it has one; newest first."""
    qs = training_selectors.execution_list(user=user).filter(transport=Transport.DEVICE)
    if node.project_id:
        qs = qs.filter(project_id=node.project_id)
    return qs.order_by("-created_at")


def newest_running_execution(*, node: Node) -> Execution | None:
    user = registrant(node)
    if user is None:
        return None
    return device_executions(user=user, node=node).filter(status=ExecutionStatus.RUNNING).first()


def open_round(*, execution: Execution) -> DeviceRound | None:
    return (DeviceRound.objects.select_related("global_model").filter(execution=execution, status=DeviceRoundStatus.OPEN)
            .order_by("-number").first())


def round_for_node(*, node: Node, round_id) -> DeviceRound:
    """A round of the execution the node serves; 404 for any other (or a malformed id)."""
    try:
        round_id = uuid.UUID(str(round_id))
    except ValueError:
        raise NotFound("Round not found", details={"round_id": str(round_id)[:100]})
    device_round = None
    if node.current_execution_id is not None:
        device_round = (DeviceRound.objects.select_related("global_model", "execution__project")
                        .filter(pk=round_id, execution_id=node.current_execution_id).first())
    if device_round is None:
        raise NotFound("Round not found", details={"round_id": str(round_id)})
    return device_round


def model_for_node(*, node: Node, version: str) -> DeviceModel:
    """A model version of an execution the node serves or its registrant can see; 404 otherwise."""
    model = DeviceModel.objects.select_related("execution").filter(version=str(version)[:64]).first()
    if model is not None and model.execution_id != node.current_execution_id:
        user = registrant(node)
        if user is None or not training_selectors.execution_list(user=user).filter(pk=model.execution_id).exists():
            model = None
    if model is None:
        raise NotFound("Model version not found", details={"version": str(version)[:100]})
    return model


def model_for_user(*, user: User, version: str) -> DeviceModel:
    """A model version of an execution ``user`` can see; 404 otherwise (also for anonymous callers)."""
    model = None
    if user is not None and user.is_authenticated:
        model = (DeviceModel.objects.select_related("execution")
                 .filter(version=str(version)[:64], execution__in=training_selectors.execution_list(user=user))
                 .first())
    if model is None:
        raise NotFound("Model version not found", details={"version": str(version)[:100]})
    return model


def latest_model(*, execution: Execution) -> DeviceModel | None:
    return DeviceModel.objects.filter(execution=execution).order_by("-number").first()


def model_url(version: str) -> str:
    """Where a device downloads ``version``: absolute when DEVICE_PUBLIC_URL is set, else the path
    (the REST views make it absolute with the request's host)."""
    return f"{settings.DEVICE_PUBLIC_URL.rstrip('/')}{MODELS_PATH}{version}"


def tensor_spec(model: DeviceModel) -> dict[str, tuple[tuple[int, ...], str]]:
    """The tensors an update of a round from ``model`` must carry, as ``wire.decode_update`` takes them."""
    return {name: (tuple(int(d) for d in t["shape"]), str(t["dtype"])) for name, t in model.tensors.items()}


def round_updates(*, device_round: DeviceRound) -> QuerySet[DeviceUpdate]:
    return DeviceUpdate.objects.select_related("node").filter(round=device_round).order_by("received_at", "pk")
