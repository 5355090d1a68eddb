"""Event payloads and their audience: ``budget.*`` goes to everyone who may read budgets."""

from __future__ import annotations

from django.db.models import Q

from accounts.models import Role, User
from budgets.money import fmt
from core.permissions import has_permission
from core.realtime import broadcast_on_commit, user_group

READ_PERMISSION = "budget:read"


def audience() -> list[str]:
    """The groups of every active user whose roles grant ``budget:read`` (staff join on their own)."""
    roles = [role.pk for role in Role.objects.only("pk", "permissions")
             if has_permission(role.permissions or [], READ_PERMISSION)]
    users = User.objects.filter(Q(roles__in=roles) | Q(is_superuser=True), is_active=True)
    return sorted({user_group(pk) for pk in users.values_list("pk", flat=True)})


def budget_data(budget, **extra) -> dict:
    return {"budget_id": str(budget.pk), "name": budget.name, "status": budget.status,
            "total": fmt(budget.total), **extra}


def broadcast(event: str, budget, **extra) -> None:
    broadcast_on_commit(event, budget_data(budget, **extra), audience())
