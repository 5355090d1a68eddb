"""Budget statuses and their lifecycle, approval levels, and the ledger's kinds (seed 004)."""

from decimal import Decimal

from django.db import models


class BudgetStatus(models.TextChoices):
    PLANNING = "planning", "Planning"
    SUBMITTED = "submitted", "Submitted for approval"
    APPROVED = "approved", "Approved"
    ACTIVE = "active", "Active"
    MONITORING = "monitoring", "Monitoring"
    CLOSED = "closed", "Closed"


S = BudgetStatus

# The one declaration of the budget lifecycle, seed 004's Planning -> Submission -> Approval ->
# Active -> Monitoring -> Close. A rejection sends a submitted budget back to planning (with its
# reason in the approval history); a monitored budget may go back to active.
TRANSITIONS: dict[str, set[str]] = {
    S.PLANNING: {S.SUBMITTED},
    S.SUBMITTED: {S.APPROVED, S.PLANNING},
    S.APPROVED: {S.ACTIVE, S.CLOSED},
    S.ACTIVE: {S.MONITORING, S.CLOSED},
    S.MONITORING: {S.ACTIVE, S.CLOSED},
    S.CLOSED: set(),
}
# Moves only the approval workflow makes (request, approve, reject), never a plain status change.
WORKFLOW_TARGETS = {S.SUBMITTED: "request-approval", S.APPROVED: "approve"}
# Costs are booked only against budgets that have been approved and are not closed.
SPENDABLE_STATUSES = {S.APPROVED, S.ACTIVE, S.MONITORING}
# Money and period change only while a budget is planned: after that they are what was approved.
EDITABLE_STATUSES = {S.PLANNING}


class ApproverLevel(models.TextChoices):
    BUDGET_ANALYST = "budget_analyst", "Budget Analyst"
    FINANCE_DIRECTOR = "finance_director", "Finance Director"
    VP_FINANCE = "vp_finance", "VP Finance"
    CFO = "cfo", "CFO"


# Seed 004's approval hierarchy: the most each level may approve (inclusive); None is no ceiling.
LEVEL_CEILINGS: dict[str, Decimal | None] = {
    ApproverLevel.BUDGET_ANALYST: Decimal("100000.00"),
    ApproverLevel.FINANCE_DIRECTOR: Decimal("250000.00"),
    ApproverLevel.VP_FINANCE: Decimal("500000.00"),
    ApproverLevel.CFO: None,
}


def required_level(amount: Decimal) -> str:
    """The lowest level whose ceiling covers ``amount``: 100,000.00 is an analyst's, 100,000.01 a
    director's, anything above 500,000.00 the CFO's."""
    for level, ceiling in LEVEL_CEILINGS.items():
        if ceiling is None or amount <= ceiling:
            return level
    return ApproverLevel.CFO  # pragma: no cover - the CFO has no ceiling


class ApprovalAction(models.TextChoices):
    REQUESTED = "requested", "Approval requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class Channel(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Django admin"
    PAGE = "page", "Dashboard page"


class CostKind(models.TextChoices):
    ACTUAL = "actual", "Actual spend"
    COMMITMENT = "commitment", "Commitment"


class CostSource(models.TextChoices):
    MANUAL = "manual", "Recorded by hand"
    ALLOCATION = "allocation", "Allocated"
    EXECUTION = "execution", "Training execution compute"


class NotificationMethod(models.TextChoices):
    EMAIL = "email", "E-mail"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class ReportKind(models.TextChoices):
    FULL = "full", "Summary, monthly trends and forecast"
    SUMMARY = "summary", "Spending summary"
    TRENDS = "trends", "Monthly trends"
    FORECAST = "forecast", "End-of-period forecast"


class ReportFormat(models.TextChoices):
    JSON = "json", "JSON"
    CSV = "csv", "CSV"
    HTML = "html", "Printable HTML"


class ReportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class Granularity(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    QUARTER = "quarter", "Quarter"
    YEAR = "year", "Year"


# Seed 004's budget categories, in its order; seed 004 gives the colours of the first three. The data
# migration installs a frozen copy; compute booking recreates its category from here if it is gone.
SEED_CATEGORIES = [
    {"value": "personnel", "name": "Personnel", "color": "#3B82F6", "description": "Salaries, benefits"},
    {"value": "infrastructure", "name": "Infrastructure", "color": "#10B981", "description": "Cloud, hardware"},
    {"value": "software", "name": "Software & Licenses", "color": "#8B5CF6", "description": "Software and licences"},
    {"value": "consulting", "name": "Consulting", "color": "#F59E0B", "description": "External consultants"},
    {"value": "training", "name": "Training", "color": "#EC4899", "description": "Courses and certification"},
    {"value": "operations", "name": "Operations", "color": "#06B6D4", "description": "Running costs"},
    {"value": "marketing", "name": "Marketing", "color": "#EF4444", "description": "Campaigns and events"},
    {"value": "contingency", "name": "Contingency", "color": "#6B7280", "description": "Reserve for the unforeseen"},
]
