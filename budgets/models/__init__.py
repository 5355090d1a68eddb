from budgets.models.approvals import ApprovalEvent, Approver
from budgets.models.budgets import Budget, BudgetLine, Category, PendingBudget
from budgets.models.costs import CostAllocation, CostEntry
from budgets.models.notifications import BudgetNotification, NotificationRule
from budgets.models.reports import Report

__all__ = [
    "ApprovalEvent", "Approver", "Budget", "BudgetLine", "BudgetNotification", "Category", "CostAllocation",
    "CostEntry", "NotificationRule", "PendingBudget", "Report",
]
