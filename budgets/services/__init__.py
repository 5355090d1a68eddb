"""Writes for budgets: each service owns its transaction and takes the budget's row lock before it
changes the budget or books money against it."""

from budgets.services.approvals import (approver_create, approver_delete, approver_update, budget_approve,
                                        budget_reject, budget_request_approval)
from budgets.services.budgets import (budget_create, budget_delete, budget_status_set, budget_transition,
                                      budget_update, category_create, category_update)
from budgets.services.costs import (cost_allocate, cost_record, execution_cost_book,
                                    execution_cost_book_on_commit)
from budgets.services.notifications import (notification_send, rule_create, rule_delete, rule_update,
                                            thresholds_check, thresholds_sweep)
from budgets.services.reports import report_generate, report_run, reports_generate_scheduled

__all__ = [
    "approver_create", "approver_delete", "approver_update", "budget_approve", "budget_create", "budget_delete",
    "budget_reject", "budget_request_approval", "budget_status_set", "budget_transition", "budget_update",
    "category_create", "category_update", "cost_allocate", "cost_record", "execution_cost_book",
    "execution_cost_book_on_commit", "notification_send", "report_generate", "report_run",
    "reports_generate_scheduled", "rule_create", "rule_delete", "rule_update", "thresholds_check",
    "thresholds_sweep",
]
