from core.api.routers import OptionalSlashRouter
from budgets.api.views import (ApproverViewSet, BudgetViewSet, CategoryViewSet, CostViewSet, NotificationRuleViewSet,
                               ReportViewSet, SpendingViewSet)

# The /budgets/<name> collections come before /budgets/<id> (whose ids are UUIDs anyway).
router = OptionalSlashRouter()
router.register("budgets/categories", CategoryViewSet, basename="budget-category")
router.register("budgets/approvers", ApproverViewSet, basename="budget-approver")
router.register("budgets/notifications", NotificationRuleViewSet, basename="budget-notification")
router.register("budgets/reports", ReportViewSet, basename="budget-report")
router.register("budgets/spending", SpendingViewSet, basename="budget-spending")
router.register("budgets", BudgetViewSet, basename="budget")
router.register("costs", CostViewSet, basename="cost")

urlpatterns = router.urls
