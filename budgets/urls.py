from django.urls import path

from budgets import views

urlpatterns = [
    path("budgets/", views.budget_list, name="budget-list"),
    path("budgets/approvals/", views.approval_queue, name="budget-approvals"),
    path("budgets/reports/", views.report_list, name="budget-reports"),
    path("budgets/reports/<uuid:pk>/print/", views.report_print, name="budget-report-print"),
    path("budgets/<uuid:pk>/", views.budget_detail, name="budget-detail"),
    path("budgets/<uuid:pk>/decide/", views.budget_decide, name="budget-decide"),
    path("budgets/<uuid:pk>/status/", views.budget_status, name="budget-status"),
]
