"""The approval workflow (seed 004's hierarchy by amount) and the approvers themselves.

A budget is approved when an active approver whose personal limit covers its total approves it.
Every step holds the budget's row lock, so of two approvers acting at the same moment one waits and
then finds the budget already decided (409). The same services serve the API, the pages and the
Django admin; each request, approval and rejection is an ``ApprovalEvent``.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from budgets import events
from budgets.choices import LEVEL_CEILINGS, ApprovalAction, ApproverLevel, BudgetStatus, Channel, required_level
from budgets.models import ApprovalEvent, Approver, Budget
from budgets.money import fmt, to_money
from budgets.services.budgets import budget_transition, locked
from core.exceptions import ApplicationError, Conflict, Forbidden, ValidationFailed

MAX_REASON = 2000


def _reason(reason: str | None, *, required: bool) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise ValidationFailed("reason: a rejection says why", field="reason")
    if len(reason) > MAX_REASON:
        raise ValidationFailed(f"reason: at most {MAX_REASON} characters", field="reason")
    return reason


def _record(budget: Budget, *, action: str, user: User, previous: str, reason: str, channel: str,
            approver: Approver | None = None) -> ApprovalEvent:
    return ApprovalEvent.objects.create(
        budget=budget, action=action, actor=user, actor_name=user.get_full_name() or user.get_username(),
        actor_email=user.email or "", approver=approver, approver_level=approver.level if approver else "",
        approver_limit=approver.limit if approver else None, amount=budget.total, reason=reason,
        from_status=previous, to_status=budget.status, channel=channel)


def _deciding_approver(budget: Budget, user: User) -> Approver:
    """The approver ``user`` acts as: active (403 otherwise) and not the one who asked (403)."""
    approver = Approver.objects.filter(user=user, is_active=True).first()
    if approver is None:
        raise Forbidden("Only an active budget approver decides on a budget", details={"budget_id": str(budget.pk)})
    if budget.requested_by_id == user.pk:
        raise Forbidden("Nobody decides on their own approval request", details={"budget_id": str(budget.pk),
                                                                                "reason": "self_approval"})
    return approver


@transaction.atomic
def budget_request_approval(*, budget: Budget, user: User, reason: str = "", channel: str = Channel.API) -> Budget:
    """Submit a planned budget for approval (409 from any other status)."""
    reason = _reason(reason, required=False)
    budget = locked(budget)
    previous = budget.status
    budget_transition(budget, BudgetStatus.SUBMITTED)
    budget.requested_by, budget.requested_at = user, timezone.now()
    budget.approved_by, budget.approved_at = None, None
    budget.save(update_fields=["status", "requested_by", "requested_at", "approved_by", "approved_at", "updated_at"])
    _record(budget, action=ApprovalAction.REQUESTED, user=user, previous=previous, reason=reason, channel=channel)
    events.broadcast("budget.approval_requested", budget, required_level=required_level(budget.total),
                     requested_by=user.get_username())
    return budget


@transaction.atomic
def budget_approve(*, budget: Budget, user: User, reason: str = "", channel: str = Channel.API) -> Budget:
    """Approve a submitted budget. Checked in this order, under the row lock: it is still submitted
    (409: someone decided first), ``user`` is an active approver (403) other than the requester
    (403), and their limit covers the total (``BUDGET_005``)."""
    reason = _reason(reason, required=False)
    budget = locked(budget)
    if budget.status != BudgetStatus.SUBMITTED:
        budget_transition(budget, BudgetStatus.APPROVED)  # raises the lifecycle's 409
    approver = _deciding_approver(budget, user)
    if not approver.covers(budget.total):
        level = required_level(budget.total)
        raise ApplicationError(
            "BUDGET_005", f"{budget.total} is over your approval limit of {approver.limit}: it needs a "
                          f"{ApproverLevel(level).label} or above",
            details={"budget_id": str(budget.pk), "amount": fmt(budget.total), "approver_limit": fmt(approver.limit),
                     "required_level": level})
    previous = budget.status
    budget_transition(budget, BudgetStatus.APPROVED)
    budget.approved_by, budget.approved_at = user, timezone.now()
    budget.save(update_fields=["status", "approved_by", "approved_at", "updated_at"])
    _record(budget, action=ApprovalAction.APPROVED, user=user, previous=previous, reason=reason, channel=channel,
            approver=approver)
    events.broadcast("budget.approved", budget, approved_by=user.get_username(), approver_level=approver.level)
    return budget


@transaction.atomic
def budget_reject(*, budget: Budget, user: User, reason: str, channel: str = Channel.API) -> Budget:
    """Send a submitted budget back to planning with a reason. Any active approver but the requester
    may reject, whatever their limit."""
    reason = _reason(reason, required=True)
    budget = locked(budget)
    if budget.status != BudgetStatus.SUBMITTED:
        budget_transition(budget, BudgetStatus.PLANNING)  # raises the lifecycle's 409
    approver = _deciding_approver(budget, user)
    previous = budget.status
    budget_transition(budget, BudgetStatus.PLANNING)
    budget.requested_by, budget.requested_at = None, None
    budget.save(update_fields=["status", "requested_by", "requested_at", "updated_at"])
    _record(budget, action=ApprovalAction.REJECTED, user=user, previous=previous, reason=reason, channel=channel,
            approver=approver)
    events.broadcast("budget.rejected", budget, rejected_by=user.get_username(), reason=reason)
    return budget


# ---- approvers -------------------------------------------------------------------------------------

def _limit(level: str, limit) -> Decimal | None:
    """A personal limit within the level's ceiling; by default the ceiling itself."""
    ceiling = LEVEL_CEILINGS[level]
    if limit is None:
        if ceiling is None:
            return None
        return ceiling
    limit = to_money(limit, field="limit")
    if ceiling is not None and limit > ceiling:
        raise ValidationFailed(f"limit: a {ApproverLevel(level).label} approves at most {ceiling}",
                               details={"field": "limit", "ceiling": fmt(ceiling)})
    return limit


def approver_create(*, user: User, level: str, limit=None, is_active: bool = True) -> Approver:
    if level not in ApproverLevel.values:
        raise ValidationFailed(f"level must be one of {ApproverLevel.values}", field="level")
    if Approver.objects.filter(user=user).exists():
        raise Conflict("This user is already an approver", details={"field": "user_id"})
    return Approver.objects.create(user=user, level=level, limit=_limit(level, limit), is_active=is_active)


@transaction.atomic
def approver_update(*, approver: Approver, **fields) -> Approver:
    """Change an approver's level, limit or activity. A new level without a limit takes the level's
    ceiling; a limit above the level's ceiling is refused."""
    approver = Approver.objects.select_for_update().get(pk=approver.pk)
    level = fields.get("level", approver.level)
    if level not in ApproverLevel.values:
        raise ValidationFailed(f"level must be one of {ApproverLevel.values}", field="level")
    if "limit" in fields or "level" in fields:
        approver.limit = _limit(level, fields.get("limit", approver.limit if "level" not in fields else None))
    approver.level = level
    if "is_active" in fields:
        approver.is_active = bool(fields["is_active"])
    approver.save()
    return approver


def approver_delete(*, approver: Approver) -> None:
    """Remove an approver; their past decisions stay in the history (by name)."""
    approver.delete()
