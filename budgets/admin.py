"""The Django admin of budgets, where financial controllers approve money.

Approving and rejecting (the actions of the budget lists and the buttons of a budget's change page)
go through ``budgets.services``, the same services as the API, with the same rules: an active
approver, not the requester, within their limit, under the budget's row lock. The acting user also
needs the permission strings ``approval:approve`` / ``approval:reject`` of their roles. The
lifecycle status is never edited as a field, and the ledger and the history are read-only.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from budgets import services
from budgets.choices import EDITABLE_STATUSES, BudgetStatus, Channel
from budgets.forms import AdminReasonForm
from budgets.models import (ApprovalEvent, Approver, Budget, BudgetLine, BudgetNotification, Category, CostEntry,
                            NotificationRule, PendingBudget, Report)
from budgets.selectors import attach_figures
from core.exceptions import ApplicationError
from core.permissions import has_permission

DECISIONS = {"approve": ("approval:approve", "approved"), "reject": ("approval:reject", "rejected")}


def _allowed(request, decision: str) -> bool:
    return has_permission(request.user.permission_strings, DECISIONS[decision][0])


def decide(request, budgets, decision: str, reason: str) -> tuple[int, list[str]]:
    """Approve or reject each budget through the services; ``(done, errors)``."""
    done, errors = 0, []
    for budget in budgets:
        try:
            if decision == "approve":
                services.budget_approve(budget=budget, user=request.user, reason=reason, channel=Channel.ADMIN)
            else:
                services.budget_reject(budget=budget, user=request.user, reason=reason, channel=Channel.ADMIN)
        except ApplicationError as exc:
            errors.append(f"{budget.name}: {exc.message} ({exc.code})")
        else:
            done += 1
    return done, errors


class BudgetLineFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        total = self.instance.total
        allocated = sum((form.cleaned_data.get("amount") or 0 for form in self.forms
                         if form.cleaned_data and not form.cleaned_data.get("DELETE")), 0)
        if total is not None and allocated > total:
            raise ValidationError(f"The category budgets add up to {allocated}, more than the total {total}.")


class BudgetLineInline(admin.TabularInline):
    model = BudgetLine
    formset = BudgetLineFormSet
    extra = 0

    def _editable(self, obj) -> bool:
        return obj is None or obj.status in EDITABLE_STATUSES

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


class ApprovalEventInline(admin.TabularInline):
    model = ApprovalEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "action", "actor_name", "approver_level", "approver_limit", "amount", "reason", "channel"]
    readonly_fields = fields
    ordering = ["created_at", "id"]
    verbose_name_plural = "approval history"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class NotificationRuleInline(admin.TabularInline):
    model = NotificationRule
    extra = 0
    fields = ["recipients", "thresholds", "method", "is_active"]


class DecisionAdminMixin:
    """The approve / reject actions (with an intermediate page asking the reason) and the change
    page's buttons, for both budget admins."""

    actions = ["approve_selected", "reject_selected"]
    change_form_template = "admin/budgets/budget/change_form.html"

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path("<uuid:object_id>/decide/<str:decision>/", self.admin_site.admin_view(self.decide_view),
                 name="%s_%s_decide" % info),
            *super().get_urls(),
        ]

    def _decide_with_reason(self, request, queryset, decision: str):
        if not _allowed(request, decision):
            self.message_user(request, f"You need the permission {DECISIONS[decision][0]!r}.", messages.ERROR)
            return None
        form = AdminReasonForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            reason = form.cleaned_data["reason"]
            if decision == "reject" and not reason.strip():
                form.add_error("reason", "A rejection says why.")
            else:
                done, errors = decide(request, list(queryset), decision, reason)
                if done:
                    self.message_user(request, f"{done} budget(s) {DECISIONS[decision][1]}.", messages.SUCCESS)
                for error in errors:
                    self.message_user(request, error, messages.ERROR)
                return None
        return TemplateResponse(request, "admin/budgets/decide.html", {
            **self.admin_site.each_context(request), "title": f"{decision.title()} budgets", "decision": decision,
            "budgets": queryset, "form": form, "opts": self.model._meta,
            "action": f"{decision}_selected", "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    @admin.action(description="Approve selected budgets")
    def approve_selected(self, request, queryset):
        return self._decide_with_reason(request, queryset, "approve")

    @admin.action(description="Reject selected budgets (with a reason)")
    def reject_selected(self, request, queryset):
        return self._decide_with_reason(request, queryset, "reject")

    def decide_view(self, request, object_id, decision):
        """The change page's Approve / Reject buttons: ask the reason, then call the service."""
        if decision not in DECISIONS:
            raise PermissionDenied
        if not _allowed(request, decision) or not self.has_view_permission(request):
            raise PermissionDenied
        budget = get_object_or_404(Budget, pk=object_id)
        change_url = reverse(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_change",
                             args=[budget.pk])
        form = AdminReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            if decision == "reject" and not reason.strip():
                form.add_error("reason", "A rejection says why.")
            else:
                done, errors = decide(request, [budget], decision, reason)
                if done:
                    self.message_user(request, f"{budget.name} {DECISIONS[decision][1]}.", messages.SUCCESS)
                for error in errors:
                    self.message_user(request, error, messages.ERROR)
                return HttpResponseRedirect(change_url)
        return TemplateResponse(request, "admin/budgets/decide.html", {
            **self.admin_site.each_context(request), "title": f"{decision.title()} {budget.name}",
            "decision": decision, "budgets": [budget], "form": form, "opts": self.model._meta, "single": True,
            "change_url": change_url,
        })

    def change_view(self, request, object_id, form_url="", extra_context=None):
        budget = Budget.objects.filter(pk=object_id).first()
        extra_context = {**(extra_context or {})}
        if budget is not None:
            attach_figures([budget])
            extra_context["figures"] = budget.figures
            extra_context["can_decide"] = budget.status == BudgetStatus.SUBMITTED
            extra_context["may_approve"] = _allowed(request, "approve")
            extra_context["may_reject"] = _allowed(request, "reject")
            info = self.model._meta.app_label, self.model._meta.model_name
            extra_context["decide_url_name"] = "admin:%s_%s_decide" % info
        return super().change_view(request, object_id, form_url, extra_context=extra_context)


@admin.register(Budget)
class BudgetAdmin(DecisionAdminMixin, admin.ModelAdmin):
    list_display = ["name", "status", "total", "period_start", "period_end", "department", "requested_by",
                    "approved_by"]
    list_filter = ["status", "department"]
    search_fields = ["name", "description", "cost_centre"]
    list_select_related = ["requested_by", "approved_by"]
    raw_id_fields = ["project"]
    readonly_fields = ["status", "created_by", "requested_by", "requested_at", "approved_by", "approved_at",
                       "closed_at", "created_at", "updated_at"]
    inlines = [BudgetLineInline, NotificationRuleInline, ApprovalEventInline]
    date_hierarchy = "period_start"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status not in EDITABLE_STATUSES:
            fields += ["total", "period_start", "period_end"]
        return fields

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        return (obj is None or obj.status == BudgetStatus.PLANNING) and super().has_delete_permission(request, obj)


@admin.register(PendingBudget)
class PendingBudgetAdmin(DecisionAdminMixin, admin.ModelAdmin):
    """The approval queue: submitted budgets, oldest request first."""

    list_display = ["name", "total", "required_level", "requested_by", "requested_at", "period_start", "period_end",
                    "department"]
    list_select_related = ["requested_by"]
    search_fields = ["name", "department"]
    ordering = ["requested_at"]
    readonly_fields = ["name", "description", "status", "period_start", "period_end", "total", "department",
                       "project", "cost_centre", "metadata", "created_by", "requested_by", "requested_at"]
    exclude = ["approved_by", "approved_at", "closed_at"]
    inlines = [ApprovalEventInline]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=BudgetStatus.SUBMITTED)

    @admin.display(description="Needs")
    def required_level(self, obj):
        return obj.required_approval_label

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "value", "color", "position", "is_active"]
    list_editable = ["position", "is_active"]
    search_fields = ["name", "value"]


@admin.register(Approver)
class ApproverAdmin(admin.ModelAdmin):
    list_display = ["user", "level", "limit", "is_active"]
    list_filter = ["level", "is_active"]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]


@admin.register(CostEntry)
class CostEntryAdmin(admin.ModelAdmin):
    """The ledger, read-only: costs are booked through the API and the services that check funds."""

    list_display = ["incurred_on", "amount", "kind", "category", "service", "budget", "source", "over_budget"]
    list_filter = ["kind", "source", "category", "over_budget"]
    list_select_related = ["category", "budget"]
    search_fields = ["description", "service"]
    raw_id_fields = ["budget", "execution", "project", "allocation", "created_by"]
    date_hierarchy = "incurred_on"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BudgetNotification)
class BudgetNotificationAdmin(admin.ModelAdmin):
    list_display = ["budget", "threshold", "utilisation", "status", "sent_at", "created_at"]
    list_filter = ["status", "threshold"]
    list_select_related = ["budget"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["title", "kind", "status", "scheduled", "requested_by", "created_at"]
    list_filter = ["kind", "status", "scheduled"]
    list_select_related = ["requested_by"]
    readonly_fields = ["title", "kind", "format", "parameters", "status", "content", "error", "scheduled",
                       "requested_by", "created_at", "completed_at"]

    def has_add_permission(self, request):
        return False
