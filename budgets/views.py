"""The budget pages: the list, a budget's page (utilisation per category, spending trend, forecast,
approval history, and the lifecycle moves the user may make now), the approval queue and the
reports. Same selectors, services, FilterSets and permissions as the API; the spending chart is
drawn by Chart.js served from ``static/vendor``."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from budgets import analytics, selectors, services
from budgets.choices import TRANSITIONS, BudgetStatus, Channel, ReportFormat, ReportKind, ReportStatus
from budgets.filters import BudgetFilterSet, ReportFilterSet
from budgets.forms import DecisionForm, ReportForm
from budgets.models import Approver, Budget, Category, CostEntry
from budgets.money import ZERO, percent
from core.exceptions import ApplicationError
from core.permissions import has_permission

PAGE_SIZE = 20
READ, APPROVE, REJECT, REPORT_READ, REPORT_GENERATE = (
    "budget:read", "approval:approve", "approval:reject", "report:read", "report:generate")
# As budgets.api.views: requesting approval takes either permission, a plain status change budget:write.
WRITE = "budget:write"
REQUEST = (WRITE, "approval:request")

# The lifecycle moves a budget's page offers: (target status, button, permission, confirmation).
# Which of them a budget may make now is the lifecycle's (``budgets.choices.TRANSITIONS``); approval
# and rejection are the approvers' (``budget_decide``), never a plain move.
S = BudgetStatus
PAGE_MOVES = {
    S.SUBMITTED: ("Request approval", REQUEST, ""),
    S.ACTIVE: ("Activate", WRITE, ""),
    S.MONITORING: ("Monitor", WRITE, ""),
    S.CLOSED: ("Close", WRITE, "Close this budget? A closed budget takes no more costs and never reopens."),
}
MOVE_DONE = {S.SUBMITTED: "approval requested.", S.ACTIVE: "active.", S.MONITORING: "in monitoring.",
             S.CLOSED: "closed."}


def _may(request, permission: str | tuple[str, ...]) -> bool:
    """Whether the user holds ``permission``, or one of them when it is a tuple (as the API reads it)."""
    options = (permission,) if isinstance(permission, str) else permission
    granted = request.user.permission_strings
    return any(has_permission(granted, option) for option in options)


def _require(request, permission: str | tuple[str, ...]) -> None:
    if not _may(request, permission):
        options = (permission,) if isinstance(permission, str) else permission
        raise PermissionDenied("You need the permission " + " or ".join(repr(o) for o in options))


class StatusForm(forms.Form):
    """A lifecycle move from a budget's page: one of ``PAGE_MOVES``, with an optional reason."""

    status = forms.ChoiceField(choices=[(value, label) for value, (label, _, _) in PAGE_MOVES.items()])
    reason = forms.CharField(max_length=2000, required=False)


def _page_moves(request, budget: Budget) -> list[dict]:
    """The moves ``budget`` may make now that the user may make, in the lifecycle's order."""
    allowed = TRANSITIONS.get(budget.status, set())
    return [{"status": value, "label": label, "confirm": confirm}
            for value, (label, permission, confirm) in PAGE_MOVES.items()
            if value in allowed and _may(request, permission)]


def _budget_or_404(pk) -> Budget:
    try:
        return selectors.budget_get(budget_id=pk)
    except ApplicationError:
        raise Http404("Budget not found")


def _paged(request, queryset):
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return page, query.urlencode()


@login_required
def budget_list(request):
    _require(request, READ)
    filterset = BudgetFilterSet(request.GET, queryset=selectors.budget_list())
    queryset = filterset.qs if filterset.is_valid() else Budget.objects.none()
    page, query = _paged(request, queryset)
    budgets = selectors.attach_figures(page.object_list)
    return render(request, "budgets/list.html", {"filterset": filterset, "page": page, "budgets": budgets,
                                                  "query": query, "statuses": BudgetStatus.choices})


@login_required
def budget_detail(request, pk):
    _require(request, READ)
    budget = _budget_or_404(pk)
    categories = Category.objects.in_bulk()
    lines = {line.category_id: line for line in budget.lines.all()}
    rows = []
    for category_id in list(lines) + [c for c in budget.figures.by_category if c not in lines]:
        category = categories[category_id]
        spent, committed = budget.figures.by_category.get(category_id, (ZERO, ZERO))
        line = lines.get(category_id)
        planned = line.amount if line else None
        rows.append({"category": category, "budget": planned, "spent": spent, "committed": committed,
                     "consumed": spent + committed,
                     "utilisation": percent(spent + committed, planned) if planned else None})
    entries = CostEntry.objects.filter(budget=budget)
    trends = analytics.spending_trends(entries=entries)
    forecast = None
    if budget.status in (BudgetStatus.APPROVED, BudgetStatus.ACTIVE, BudgetStatus.MONITORING):
        forecast = analytics.spending_forecasts(budgets=Budget.objects.filter(pk=budget.pk)
                                                .prefetch_related("lines"))[0]
    chart = {"labels": [m["period"] for m in trends["months"]],
             "spent": [str(m["spent"]) for m in trends["months"]],
             "cumulative": [str(m["cumulative_spent"]) for m in trends["months"]],
             "total": str(budget.total),
             "categories": [{"name": c["name"], "color": c["color"], "spent": [str(v) for v in c["spent"]]}
                            for c in trends["categories"]]}
    return render(request, "budgets/detail.html", {
        "budget": budget, "figures": budget.figures, "rows": rows, "chart": chart, "forecast": forecast,
        "history": selectors.approval_history(budget=budget),
        "recent_costs": selectors.cost_list().filter(budget=budget)[:10],
        "rules": budget.notification_rules.all(),
        "can_decide": budget.status == BudgetStatus.SUBMITTED and _may(request, APPROVE)
        and Approver.objects.filter(user=request.user, is_active=True).exists(),
        "decision_form": DecisionForm(),
        "moves": _page_moves(request, budget),
    })


@login_required
@require_POST
def budget_status(request, pk):
    """A lifecycle move from a budget's page, through the API's services and its permissions:
    requesting approval as ``POST /budgets/{id}/request-approval``, the others as ``PATCH
    /budgets/{id}/status``. A move the budget can no longer make (a stale page) answers the
    service's coded error as a message and changes nothing."""
    _require(request, REQUEST if request.POST.get("status") == S.SUBMITTED else WRITE)
    budget = _budget_or_404(pk)
    form = StatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"{budget.name}: " + "; ".join(
            f"{field}: {error}" for field, errors in form.errors.items() for error in errors))
        return redirect("budget-detail", pk=budget.pk)
    target, reason = form.cleaned_data["status"], form.cleaned_data["reason"]
    try:
        if target == S.SUBMITTED:
            budget = services.budget_request_approval(budget=budget, user=request.user, reason=reason,
                                                      channel=Channel.PAGE)
        else:
            budget = services.budget_status_set(budget=budget, user=request.user, status=target, reason=reason,
                                                channel=Channel.PAGE)
    except ApplicationError as exc:
        messages.error(request, f"{budget.name}: {exc.message} ({exc.code})")
    else:
        messages.success(request, f"{budget.name}: {MOVE_DONE[target]}")
    return redirect("budget-detail", pk=budget.pk)


@login_required
def approval_queue(request):
    _require(request, READ)
    page, query = _paged(request, selectors.pending_budgets())
    approver = Approver.objects.filter(user=request.user, is_active=True).first()
    budgets = selectors.attach_figures(page.object_list)
    for budget in budgets:
        budget.own_request = budget.requested_by_id == request.user.pk
        budget.within_limit = approver is not None and approver.covers(budget.total)
    return render(request, "budgets/approvals.html", {
        "page": page, "budgets": budgets, "query": query, "approver": approver,
        "can_approve": approver is not None and _may(request, APPROVE),
        "can_reject": approver is not None and _may(request, REJECT), "decision_form": DecisionForm(),
    })


@login_required
@require_POST
def budget_decide(request, pk):
    """Approve or reject from the queue or a budget's page, through the API's services."""
    budget = _budget_or_404(pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
        return redirect(request.POST.get("next") or "budget-approvals")
    decision = form.cleaned_data["decision"]
    _require(request, APPROVE if decision == "approve" else REJECT)
    try:
        if decision == "approve":
            services.budget_approve(budget=budget, user=request.user, reason=form.cleaned_data["reason"],
                                    channel=Channel.PAGE)
        else:
            services.budget_reject(budget=budget, user=request.user, reason=form.cleaned_data["reason"],
                                   channel=Channel.PAGE)
    except ApplicationError as exc:
        messages.error(request, f"{budget.name}: {exc.message} ({exc.code})")
    else:
        messages.success(request, f"{budget.name}: {'approved' if decision == 'approve' else 'rejected'}.")
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/budgets/") else "budget-approvals")


@login_required
@require_http_methods(["GET", "POST"])
def report_list(request):
    _require(request, REPORT_READ)
    form = ReportForm(request.POST or None)
    if request.method == "POST":
        _require(request, REPORT_GENERATE)
        if form.is_valid():
            data = form.cleaned_data
            parameters = {key: str(data[key]) for key in ("date_from", "date_to", "as_of") if data.get(key)}
            if data.get("budget"):
                parameters["budget"] = str(data["budget"].pk)
            report = services.report_generate(user=request.user, kind=data["kind"], fmt=data["format"],
                                              parameters=parameters, title=data.get("title") or "")
            messages.success(request, f"“{report.title}” is being generated.")
            return redirect("budget-reports")
    filterset = ReportFilterSet(request.GET, queryset=selectors.report_list())
    queryset = filterset.qs if filterset.is_valid() else selectors.report_list().none()
    page, query = _paged(request, queryset)
    return render(request, "budgets/reports.html", {
        "page": page, "query": query, "filterset": filterset, "form": form,
        "can_generate": _may(request, REPORT_GENERATE), "kinds": ReportKind.choices, "formats": ReportFormat.choices,
    })


@login_required
def report_print(request, pk):
    _require(request, REPORT_READ)
    try:
        report = selectors.report_get(report_id=pk)
    except ApplicationError:
        raise Http404("Report not found")
    return render(request, "budgets/report_print.html", {"report": report, "content": report.content,
                                                          "ready": report.status == ReportStatus.COMPLETED})
