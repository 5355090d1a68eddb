"""The budgets API: seed 004's Budget & Financial Management and Cost Tracking blocks.

Permissions (seed 004's roles: ``financial_controller`` holds ``budget:*``, ``approval:*`` and
``report:*``, ``service_owner`` ``budget:read``, ``analyst`` ``report:read``):

- ``budget:read``: budgets, categories, approvers, approvals and their history, notification
  rules, the cost ledger and its groupings; the spending summary, trends and forecast also answer
  ``report:read``.
- ``budget:write``: create, change and delete budgets, categories and notification rules, change a
  budget's status, record and allocate costs. ``budget:override``: book past what is available.
- ``approval:request`` (or ``budget:write``), ``approval:approve``, ``approval:reject``: the
  approval workflow; the service also requires an active approver with a limit that covers the
  amount. ``approval:manage``: add, change and remove approvers.
- ``report:read`` lists and reads reports; ``report:generate`` generates one.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action

from accounts.models import User
from budgets import analytics, selectors, services
from budgets.api import serializers as s
from budgets.choices import BudgetStatus, CostKind, ReportStatus
from budgets.filters import (ApproverFilterSet, BudgetFilterSet, CostEntryFilterSet, NotificationRuleFilterSet,
                             ReportFilterSet, has_filter_parameters)
from budgets.models import Approver, Budget, Category, CostEntry, NotificationRule, Report
from budgets.money import to_money
from core.api.envelope import respond
from core.api.permissions import RequiresPermission, request_permissions
from core.exceptions import Conflict, Forbidden, ValidationFailed
from core.permissions import has_permission

READ = "budget:read"
WRITE = "budget:write"
OVERRIDE = "budget:override"
SPENDING = (READ, "report:read")
REQUEST = (WRITE, "approval:request")
APPROVE = "approval:approve"
REJECT = "approval:reject"
MANAGE_APPROVERS = "approval:manage"
REPORT_READ = "report:read"
REPORT_GENERATE = "report:generate"

UUID_RE = "[0-9a-fA-F-]{36}"
_ERROR = {"$ref": "#/components/schemas/ErrorEnvelope"}
BUDGET_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Budget id")
INT_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH)
REPORT_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Report id")
CONFLICT = OpenApiResponse(_ERROR, description="Not possible in the budget's status (RESOURCE_CONFLICT)")
MONEY_ERRORS = {
    409: OpenApiResponse(_ERROR, description="BUDGET_002 (budget not approved) or RESOURCE_CONFLICT (closed)"),
    422: OpenApiResponse(_ERROR, description="BUDGET_004 (more than available), BUDGET_001 (more than the "
                                             "category's budget), BUDGET_003 (unknown or inactive category)"),
}


class _BudgetsViewSet(viewsets.GenericViewSet):
    permission_classes = [RequiresPermission]
    queryset_model = Budget

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset_model.objects.none()
        return self.visible()

    def filter_queryset(self, queryset):
        filterset_class = getattr(self, "filterset_class", None)
        if filterset_class is None or not has_filter_parameters(filterset_class, self.request.query_params):
            return queryset
        return super().filter_queryset(queryset)

    def _page(self, queryset, serializer_class, *, prepare=None, context=None):
        page = self.paginate_queryset(queryset)
        if prepare is not None:
            page = prepare(page)
        return self.get_paginated_response(serializer_class(page, many=True,
                                                            context={"request": self.request, **(context or {})}).data)

    def _override(self, requested: bool) -> bool:
        if requested and not has_permission(request_permissions(self.request), OVERRIDE):
            raise Forbidden(f"Booking past the available amount needs the permission {OVERRIDE!r}",
                            details={"field": "override"})
        return requested


def _valid(serializer_class, data, *, partial: bool = False, **kwargs) -> dict:
    serializer = serializer_class(data=data, partial=partial, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _project(project_id):
    from projects.models import Project

    if project_id is None:
        return None
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise ValidationFailed(f"metadata.project: there is no project {project_id}", field="metadata.project")
    return project


def _budget_fields(data: dict) -> dict:
    """Validated budget input as ``budget_create`` / ``budget_update`` take it."""
    fields = {}
    for key in ("name", "description", "total"):
        if key in data:
            fields[key] = data[key]
    if "period" in data:
        fields["period_start"], fields["period_end"] = data["period"]["start"], data["period"]["end"]
    if "categories" in data:
        fields["lines"] = [(selectors.category_for_input(line["value"], field=f"categories[{i}].value"),
                            line["budget"]) for i, line in enumerate(data["categories"])]
    if "metadata" in data:
        metadata = data["metadata"]
        if "department" in metadata:
            fields["department"] = metadata["department"]
        if "cost_center" in metadata:
            fields["cost_centre"] = metadata["cost_center"]
        if "project" in metadata:
            fields["project"] = _project(metadata["project"])
        fields["metadata"] = metadata["extra"]
    return fields


# ---- /budgets ----------------------------------------------------------------------------------------

class BudgetViewSet(_BudgetsViewSet):
    """seed 004 Budget Planning and Budget Approval Workflow."""

    serializer_class = s.BudgetSerializer
    filterset_class = BudgetFilterSet
    lookup_value_regex = UUID_RE
    required_permissions = {
        "list": READ, "retrieve": READ, "approvals": READ, "approval_history": READ,
        "create": WRITE, "update": WRITE, "partial_update": WRITE, "destroy": WRITE, "change_status": WRITE,
        "request_approval": REQUEST, "approve": APPROVE, "reject": REJECT,
    }

    def visible(self):
        return selectors.budget_list()

    def _budget(self, pk) -> Budget:
        return selectors.budget_get(budget_id=pk)

    def _answer(self, budget: Budget, message: str, status_code: int = 200):
        return respond(s.BudgetSerializer(self._budget(budget.pk)).data, message=message, status_code=status_code)

    @extend_schema(responses={200: s.BudgetSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.BudgetSerializer,
                          prepare=selectors.attach_figures, context={"categories": Category.objects.in_bulk()})

    @extend_schema(request=s.BudgetInputSerializer, responses={201: s.BudgetSerializer})
    def create(self, request):
        data = _valid(s.BudgetInputSerializer, request.data)
        fields = _budget_fields(data)
        # A rule given with its budget is on the budget being created, whatever id it names.
        notifications = [{k: v for k, v in rule.items() if k != "budget"} for rule in data.get("notifications", [])]
        budget = services.budget_create(user=request.user, notifications=notifications, **fields)
        return self._answer(budget, "Budget created", status.HTTP_201_CREATED)

    @extend_schema(parameters=[BUDGET_ID], responses={200: s.BudgetSerializer})
    def retrieve(self, request, pk=None):
        return respond(s.BudgetSerializer(self._budget(pk)).data, message="Budget")

    @extend_schema(parameters=[BUDGET_ID], request=s.BudgetInputSerializer,
                   responses={200: s.BudgetSerializer, 409: CONFLICT})
    def update(self, request, pk=None):
        return self._update(request, pk, partial=False)

    @extend_schema(parameters=[BUDGET_ID], request=s.BudgetInputSerializer,
                   responses={200: s.BudgetSerializer, 409: CONFLICT})
    def partial_update(self, request, pk=None):
        return self._update(request, pk, partial=True)

    def _update(self, request, pk, *, partial: bool):
        budget = self._budget(pk)
        data = _valid(s.BudgetInputSerializer, request.data, partial=partial)
        data.pop("notifications", None)
        budget = services.budget_update(budget=budget, user=request.user, **_budget_fields(data))
        return self._answer(budget, "Budget updated")

    @extend_schema(parameters=[BUDGET_ID], responses={204: None, 409: CONFLICT})
    def destroy(self, request, pk=None):
        services.budget_delete(budget=self._budget(pk))
        return respond(None, message="Budget deleted", status_code=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[BUDGET_ID], request=s.BudgetStatusInputSerializer, responses={
        200: s.BudgetSerializer, 409: OpenApiResponse(_ERROR, description="Not allowed by the lifecycle "
                                                                          "(RESOURCE_CONFLICT) or needs an approver "
                                                                          "(BUDGET_002)")},
        description="The lifecycle planning -> submitted -> approved -> active -> monitoring -> closed. "
                    "``submitted`` requests approval; ``approved`` is the approvers' (POST .../approve).")
    @action(detail=True, methods=["patch", "put"], url_path="status")
    def change_status(self, request, pk=None):
        data = _valid(s.BudgetStatusInputSerializer, request.data)
        budget = services.budget_status_set(budget=self._budget(pk), user=request.user, status=data["status"],
                                            reason=data.get("reason", ""))
        return self._answer(budget, f"Budget is {budget.status}")

    @extend_schema(parameters=[BUDGET_ID], responses={200: s.ApprovalsSerializer})
    @action(detail=True, methods=["get"])
    def approvals(self, request, pk=None):
        budget = self._budget(pk)
        eligible = selectors.eligible_approvers(budget=budget) if budget.status == BudgetStatus.SUBMITTED else []
        return respond({
            "budget_id": str(budget.pk), "status": budget.status, "total": str(budget.total),
            "required_level": budget.required_approval_level,
            "requested_by": s._user(budget.requested_by), "requested_at": s._iso(budget.requested_at),
            "decisions": s.ApprovalEventSerializer(budget.decisions, many=True).data,
            "eligible_approvers": s.ApproverSerializer(eligible, many=True).data,
        }, message="Approvals")

    @extend_schema(parameters=[BUDGET_ID], request=s.ReasonInputSerializer,
                   responses={200: s.BudgetSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], url_path="request-approval")
    def request_approval(self, request, pk=None):
        data = _valid(s.ReasonInputSerializer, request.data)
        budget = services.budget_request_approval(budget=self._budget(pk), user=request.user,
                                                  reason=data.get("reason", ""))
        return self._answer(budget, "Approval requested")

    @extend_schema(parameters=[BUDGET_ID], request=s.ReasonInputSerializer, responses={
        200: s.BudgetSerializer, 409: OpenApiResponse(_ERROR, description="Not submitted (RESOURCE_CONFLICT)"),
        403: OpenApiResponse(_ERROR, description="Not an approver, own request (AUTHORIZATION_FAILED) or over "
                                                 "the approver's limit (BUDGET_005)")})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        data = _valid(s.ReasonInputSerializer, request.data)
        budget = services.budget_approve(budget=self._budget(pk), user=request.user, reason=data.get("reason", ""))
        return self._answer(budget, "Budget approved")

    @extend_schema(parameters=[BUDGET_ID], request=s.RejectInputSerializer,
                   responses={200: s.BudgetSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        data = _valid(s.RejectInputSerializer, request.data)
        budget = services.budget_reject(budget=self._budget(pk), user=request.user, reason=data["reason"])
        return self._answer(budget, "Budget rejected")

    @extend_schema(parameters=[BUDGET_ID], responses={200: s.ApprovalEventSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="approval-history")
    def approval_history(self, request, pk=None):
        budget = self._budget(pk)
        return respond(s.ApprovalEventSerializer(selectors.approval_history(budget=budget), many=True).data,
                       message="Approval history")


# ---- /budgets/categories -------------------------------------------------------------------------

class CategoryViewSet(_BudgetsViewSet):
    """seed 004 Budget Categories (its list is installed as initial data)."""

    serializer_class = s.CategorySerializer
    queryset_model = Category
    lookup_value_regex = "[A-Za-z0-9_-]{1,50}"
    required_permissions = {"list": READ, "retrieve": READ, "spending": READ, "*": WRITE}

    def visible(self):
        return selectors.category_list()

    @extend_schema(responses={200: s.CategorySerializer(many=True)})
    def list(self, request):
        return self._page(self.get_queryset(), s.CategorySerializer)

    @extend_schema(parameters=[OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH,
                                                description="The category's value")])
    def retrieve(self, request, pk=None):
        return respond(s.CategorySerializer(selectors.category_get(value=pk)).data, message="Category")

    @extend_schema(request=s.CategoryInputSerializer, responses={201: s.CategorySerializer})
    def create(self, request):
        category = services.category_create(**_valid(s.CategoryInputSerializer, request.data))
        return respond(s.CategorySerializer(category).data, message="Category created",
                       status_code=status.HTTP_201_CREATED)

    @extend_schema(request=s.CategoryInputSerializer, responses={200: s.CategorySerializer})
    def update(self, request, pk=None):
        return self._save(request, pk, partial=False)

    @extend_schema(request=s.CategoryInputSerializer, responses={200: s.CategorySerializer})
    def partial_update(self, request, pk=None):
        return self._save(request, pk, partial=True)

    def _save(self, request, pk, *, partial):
        category = selectors.category_get(value=pk)
        data = dict(_valid(s.CategoryInputSerializer, request.data, partial=partial))
        if "value" in data and data["value"] != category.value:
            raise ValidationFailed("value: a category's value does not change (it names it in URLs and costs)",
                                   field="value")
        data.pop("value", None)
        category = services.category_update(category=category, **data)
        return respond(s.CategorySerializer(category).data, message="Category updated")

    @extend_schema(responses={200: s.CategorySpendingSerializer},
                   parameters=[OpenApiParameter("budget", OpenApiTypes.UUID),
                               OpenApiParameter("date_from", OpenApiTypes.DATE),
                               OpenApiParameter("date_to", OpenApiTypes.DATE)])
    @action(detail=True, methods=["get"])
    def spending(self, request, pk=None):
        category = selectors.category_get(value=pk)
        filterset = CostEntryFilterSet(request.query_params, queryset=CostEntry.objects.all(), request=request)
        if not filterset.is_valid():
            raise ValidationFailed("Invalid filter", details=filterset.errors)
        data = selectors.category_spending(category=category, entries=filterset.qs)
        data["category"] = s.CategorySerializer(category).data
        return respond(analytics.as_json(data), message="Category spending")


# ---- /budgets/approvers --------------------------------------------------------------------------

class ApproverViewSet(_BudgetsViewSet):
    """seed 004 Budget Approvers with their personal limits."""

    serializer_class = s.ApproverSerializer
    filterset_class = ApproverFilterSet
    queryset_model = Approver
    lookup_value_regex = "[0-9]{1,18}"
    required_permissions = {"list": READ, "retrieve": READ, "limit": READ, "*": MANAGE_APPROVERS}

    def visible(self):
        return selectors.approver_list()

    @extend_schema(responses={200: s.ApproverSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.ApproverSerializer)

    @extend_schema(parameters=[INT_ID])
    def retrieve(self, request, pk=None):
        return respond(s.ApproverSerializer(selectors.approver_get(approver_id=pk)).data, message="Approver")

    @extend_schema(request=s.ApproverInputSerializer, responses={201: s.ApproverSerializer})
    def create(self, request):
        data = dict(_valid(s.ApproverInputSerializer, request.data))
        user = User.objects.filter(pk=data.pop("user_id"), is_active=True).first()
        if user is None:
            raise ValidationFailed("user_id: there is no such active user", field="user_id")
        approver = services.approver_create(user=user, **data)
        return respond(s.ApproverSerializer(selectors.approver_get(approver_id=approver.pk)).data,
                       message="Approver added", status_code=status.HTTP_201_CREATED)

    @extend_schema(parameters=[INT_ID], request=s.ApproverUpdateInputSerializer, responses={200: s.ApproverSerializer})
    def update(self, request, pk=None):
        return self._save(request, pk)

    @extend_schema(parameters=[INT_ID], request=s.ApproverUpdateInputSerializer, responses={200: s.ApproverSerializer})
    def partial_update(self, request, pk=None):
        return self._save(request, pk)

    def _save(self, request, pk):
        approver = selectors.approver_get(approver_id=pk)
        approver = services.approver_update(approver=approver, **_valid(s.ApproverUpdateInputSerializer,
                                                                        request.data))
        return respond(s.ApproverSerializer(selectors.approver_get(approver_id=approver.pk)).data,
                       message="Approver updated")

    @extend_schema(parameters=[INT_ID], responses={204: None})
    def destroy(self, request, pk=None):
        services.approver_delete(approver=selectors.approver_get(approver_id=pk))
        return respond(None, message="Approver removed", status_code=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[INT_ID, OpenApiParameter("amount", OpenApiTypes.STR,
                                                        description="Say whether the approver may approve it")],
                   responses={200: s.ApproverLimitSerializer})
    @action(detail=True, methods=["get"])
    def limit(self, request, pk=None):
        approver = selectors.approver_get(approver_id=pk)
        raw = request.query_params.get("amount")
        amount = to_money(raw, field="amount", allow_zero=True) if raw not in (None, "") else None
        return respond(s.approver_limit(approver, amount), message="Approval limit")


# ---- /budgets/notifications ----------------------------------------------------------------------

class NotificationRuleViewSet(_BudgetsViewSet):
    """seed 004 Budget Notifications: the rules; each lists the thresholds it has notified."""

    serializer_class = s.RuleSerializer
    filterset_class = NotificationRuleFilterSet
    queryset_model = NotificationRule
    lookup_value_regex = "[0-9]{1,18}"
    required_permissions = {"list": READ, "retrieve": READ, "recipients": READ, "*": WRITE}

    def visible(self):
        return selectors.rule_list()

    @extend_schema(responses={200: s.RuleSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.RuleSerializer)

    @extend_schema(parameters=[INT_ID])
    def retrieve(self, request, pk=None):
        return respond(s.RuleSerializer(selectors.rule_get(rule_id=pk)).data, message="Notification rule")

    @extend_schema(request=s.RuleInputSerializer, responses={201: s.RuleSerializer})
    def create(self, request):
        data = dict(_valid(s.RuleInputSerializer, request.data))
        if "budget" not in data:
            raise ValidationFailed("budget: which budget the rule watches", field="budget")
        budget = selectors.budget_by_id(data.pop("budget"))
        rule = services.rule_create(budget=budget, user=request.user, **data)
        return respond(s.RuleSerializer(selectors.rule_get(rule_id=rule.pk)).data, message="Notification rule created",
                       status_code=status.HTTP_201_CREATED)

    @extend_schema(parameters=[INT_ID], request=s.RuleInputSerializer, responses={200: s.RuleSerializer})
    def update(self, request, pk=None):
        return self._save(request, pk, partial=False)

    @extend_schema(parameters=[INT_ID], request=s.RuleInputSerializer, responses={200: s.RuleSerializer})
    def partial_update(self, request, pk=None):
        return self._save(request, pk, partial=True)

    def _save(self, request, pk, *, partial):
        rule = selectors.rule_get(rule_id=pk)
        data = dict(_valid(s.RuleInputSerializer, request.data, partial=partial))
        if "budget" in data and str(data.pop("budget")) != str(rule.budget_id):
            raise ValidationFailed("budget: a rule stays on its budget", field="budget")
        rule = services.rule_update(rule=rule, **data)
        return respond(s.RuleSerializer(selectors.rule_get(rule_id=rule.pk)).data, message="Notification rule updated")

    @extend_schema(parameters=[INT_ID], responses={204: None})
    def destroy(self, request, pk=None):
        services.rule_delete(rule=selectors.rule_get(rule_id=pk))
        return respond(None, message="Notification rule deleted", status_code=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: s.RecipientSerializer(many=True)})
    @action(detail=False, methods=["get"], pagination_class=None)
    def recipients(self, request):
        return respond(selectors.recipients(), message="Recipients")


# ---- /budgets/reports and /budgets/spending -------------------------------------------------------

class ReportViewSet(_BudgetsViewSet):
    """seed 004 Financial Reporting: stored reports, generated on demand or by Celery beat."""

    serializer_class = s.ReportSerializer
    filterset_class = ReportFilterSet
    queryset_model = Report
    lookup_value_regex = UUID_RE
    required_permissions = {"generate": REPORT_GENERATE, "*": REPORT_READ}

    def visible(self):
        return selectors.report_list()

    @extend_schema(responses={200: s.ReportSerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.ReportSerializer)

    @extend_schema(parameters=[REPORT_ID], responses={200: s.ReportSerializer})
    def retrieve(self, request, pk=None):
        report = selectors.report_get(report_id=pk)
        return respond(s.ReportSerializer(report, context={"request": request, "with_content": True}).data,
                       message="Report")

    @extend_schema(request=s.ReportGenerateInputSerializer, responses={202: s.ReportSerializer},
                   description="Saves the report and builds it in a worker: poll GET /budgets/reports/{id} "
                               "until its status is completed, then read it as JSON, CSV or a printable page.")
    @action(detail=False, methods=["post"])
    def generate(self, request):
        data = dict(_valid(s.ReportGenerateInputSerializer, request.data))
        parameters = {key: str(data[key]) for key in ("budget", "date_from", "date_to", "as_of") if data.get(key)}
        if "budget" in parameters:
            selectors.budget_by_id(parameters["budget"])
        report = services.report_generate(user=request.user, kind=data["kind"], fmt=data["format"],
                                          parameters=parameters, title=data.get("title", ""))
        return respond(s.ReportSerializer(report, context={"request": request}).data,
                       message="Report generation started", status_code=status.HTTP_202_ACCEPTED)

    def _completed(self, pk) -> Report:
        report = selectors.report_get(report_id=pk)
        if report.status != ReportStatus.COMPLETED:
            raise Conflict(f"The report is {report.status}; it can be downloaded once completed",
                           details={"status": report.status, "error": report.error})
        return report

    @extend_schema(parameters=[REPORT_ID], responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def csv(self, request, pk=None):
        from budgets.exports import report_csv

        report = self._completed(pk)
        response = HttpResponse(report_csv(report.content), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="budget-report-{report.pk}.csv"'
        return response

    @extend_schema(parameters=[REPORT_ID], responses={(200, "application/json"): OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path="json")
    def json_file(self, request, pk=None):
        import json

        report = self._completed(pk)
        response = HttpResponse(json.dumps(report.content, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="budget-report-{report.pk}.json"'
        return response


class SpendingViewSet(_BudgetsViewSet):
    """seed 004 spending summary, forecast and trends."""

    serializer_class = s.SpendingSerializer
    required_permissions = {"*": SPENDING}

    def visible(self):
        return Budget.objects.all()

    @extend_schema(responses={200: OpenApiTypes.OBJECT},
                   description="Totals, per status and per budget (filtered like /budgets); money as strings.")
    @action(detail=False, methods=["get"])
    def summary(self, request):
        filtered = has_filter_parameters(BudgetFilterSet, request.query_params)
        budgets = Budget.objects.all()
        if filtered:
            filterset = BudgetFilterSet(request.query_params, queryset=budgets, request=request)
            if not filterset.is_valid():
                raise ValidationFailed("Invalid filter", details=filterset.errors)
            budgets = filterset.qs
        data = analytics.spending_summary(budgets=budgets, everything=not filtered)
        return respond(analytics.as_json(data), message="Spending summary")

    @extend_schema(responses={200: OpenApiTypes.OBJECT},
                   description="Spending per month, overall and per category (filtered like /costs).")
    @action(detail=False, methods=["get"])
    def trends(self, request):
        entries = _entries(request)
        return respond(analytics.as_json(analytics.spending_trends(entries=entries)), message="Spending trends")

    @extend_schema(parameters=[s.ForecastQuerySerializer], responses={200: OpenApiTypes.OBJECT},
                   description=analytics.__doc__.split("\n\n")[1].replace("\n", " "))
    @action(detail=False, methods=["get"])
    def forecast(self, request):
        query = _valid(s.ForecastQuerySerializer, request.query_params.dict())
        if "budget" in query:
            budgets = Budget.objects.filter(pk=selectors.budget_get(budget_id=query["budget"]).pk)
        else:
            budgets = Budget.objects.filter(status__in=[BudgetStatus.APPROVED, BudgetStatus.ACTIVE,
                                                        BudgetStatus.MONITORING]).order_by("period_end", "name")
        forecasts = analytics.spending_forecasts(budgets=budgets.prefetch_related("lines"), as_of=query.get("as_of"))
        data = forecasts[0] if "budget" in query else {"as_of": query.get("as_of") or timezone.localdate(),
                                                       "forecasts": forecasts}
        return respond(analytics.as_json(data), message="Spending forecast")


def _entries(request):
    entries = CostEntry.objects.all()
    if has_filter_parameters(CostEntryFilterSet, request.query_params):
        filterset = CostEntryFilterSet(request.query_params, queryset=entries, request=request)
        if not filterset.is_valid():
            raise ValidationFailed("Invalid filter", details=filterset.errors)
        entries = filterset.qs
    return entries


# ---- /costs ----------------------------------------------------------------------------------------

class CostViewSet(_BudgetsViewSet):
    """seed 004 Cost Tracking: the ledger, its groupings, and allocation."""

    serializer_class = s.CostEntrySerializer
    filterset_class = CostEntryFilterSet
    queryset_model = CostEntry
    required_permissions = {"list": READ, "by_service": READ, "by_category": READ, "by_period": READ,
                            "create": WRITE, "allocate": WRITE}

    def visible(self):
        return selectors.cost_list()

    @extend_schema(responses={200: s.CostEntrySerializer(many=True)})
    def list(self, request):
        return self._page(self.filter_queryset(self.get_queryset()), s.CostEntrySerializer)

    @extend_schema(request=s.CostInputSerializer, responses={201: s.CostEntrySerializer, **MONEY_ERRORS},
                   description="Record one cost (an addition to seed 004's list: allocation with one target).")
    def create(self, request):
        data = dict(_valid(s.CostInputSerializer, request.data))
        entry = services.cost_record(
            user=request.user, category=selectors.category_for_input(data["category"]), amount=data["amount"],
            incurred_on=data.get("incurred_on") or timezone.localdate(),
            budget=selectors.budget_by_id(data["budget"]) if data.get("budget") else None,
            service=data.get("service", ""), kind=data.get("kind") or CostKind.ACTUAL,
            description=data.get("description", ""), override=self._override(data["override"]),
            metadata=data.get("metadata"))
        return respond(s.CostEntrySerializer(selectors.cost_list().get(pk=entry.pk)).data, message="Cost recorded",
                       status_code=status.HTTP_201_CREATED)

    @extend_schema(request=s.AllocateInputSerializer, responses={201: s.AllocationSerializer, **MONEY_ERRORS})
    @action(detail=False, methods=["post"])
    def allocate(self, request):
        data = dict(_valid(s.AllocateInputSerializer, request.data))
        targets = [{"budget": selectors.budget_by_id(t["budget"], field=f"targets[{i}].budget") if t.get("budget")
                    else None, "service": t.get("service", ""), "share": t["share"]}
                   for i, t in enumerate(data["targets"])]
        allocation = services.cost_allocate(
            user=request.user, amount=data["amount"], category=selectors.category_for_input(data["category"]),
            targets=targets, incurred_on=data.get("incurred_on") or timezone.localdate(),
            kind=data.get("kind") or CostKind.ACTUAL, description=data.get("description", ""),
            budget=selectors.budget_by_id(data["budget"]) if data.get("budget") else None,
            service=data.get("service", ""), override=self._override(data["override"]))
        entries = selectors.cost_list().filter(allocation=allocation).order_by("id")
        return respond({"id": allocation.pk, "amount": str(allocation.amount), "category": allocation.category.value,
                        "kind": allocation.kind, "incurred_on": allocation.incurred_on.isoformat(),
                        "description": allocation.description, "shares": allocation.shares,
                        "entries": s.CostEntrySerializer(entries, many=True).data,
                        "created_at": s._iso(allocation.created_at)},
                       message="Cost allocated", status_code=status.HTTP_201_CREATED)

    def _grouped(self):
        return _entries(self.request)

    @extend_schema(responses={200: s.CostGroupSerializer(many=True)})
    @action(detail=False, methods=["get"], url_path="by-service", pagination_class=None)
    def by_service(self, request):
        rows = [{"key": r["service"] or None, "service": r["service"] or None, "spent": r["spent"],
                 "committed": r["committed"], "entries": r["entries"]}
                for r in selectors.costs_by_service(self._grouped())]
        return respond(analytics.as_json(rows), message="Costs by service")

    @extend_schema(responses={200: s.CostGroupSerializer(many=True)})
    @action(detail=False, methods=["get"], url_path="by-category", pagination_class=None)
    def by_category(self, request):
        rows = [{"key": r["category"].value, "category": s.CategorySerializer(r["category"]).data,
                 "spent": r["spent"], "committed": r["committed"], "entries": r["entries"]}
                for r in selectors.costs_by_category(self._grouped())]
        return respond(analytics.as_json(rows), message="Costs by category")

    @extend_schema(parameters=[s.PeriodQuerySerializer],
                   responses={200: s.CostGroupSerializer(many=True)})
    @action(detail=False, methods=["get"], url_path="by-period", pagination_class=None)
    def by_period(self, request):
        granularity = _valid(s.PeriodQuerySerializer, {"granularity": request.query_params.get("granularity")
                                                       or "month"})["granularity"]
        rows = [{"key": r["period"], "period": r["period"], "spent": r["spent"], "committed": r["committed"],
                 "entries": r["entries"], "cumulative_spent": r["cumulative_spent"]}
                for r in selectors.costs_by_period(self._grouped(), granularity=granularity)]
        return respond(analytics.as_json({"granularity": granularity, "periods": rows}), message="Costs by period")
