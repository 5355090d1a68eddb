from django.urls import path

from training import views

urlpatterns = [
    path("training/", views.execution_list, name="execution-list"),
    path("training/new/", views.execution_start, name="execution-start"),
    path("projects/<uuid:pk>/train/", views.execution_start, name="execution-start-for"),
    path("training/<uuid:pk>/", views.execution_detail, name="execution-detail"),
    path("training/<uuid:pk>/stop/", views.execution_stop, name="execution-stop"),
    path("training/<uuid:pk>/suspend/", views.execution_suspend, name="execution-suspend"),
    path("training/<uuid:pk>/resume/", views.execution_resume, name="execution-resume"),
]
