from django.urls import path

from projects import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("projects/", views.project_list, name="project-list"),
    path("projects/new/", views.project_create, name="project-create"),
    path("projects/<uuid:pk>/", views.project_detail, name="project-detail"),
    path("projects/<uuid:pk>/edit/", views.project_edit, name="project-edit"),
    path("projects/<uuid:pk>/upload/", views.project_upload, name="project-upload"),
    path("projects/<uuid:pk>/delete/", views.project_delete, name="project-delete"),
    path("projects/<uuid:pk>/members/", views.project_member_add, name="project-member-add"),
    path("projects/<uuid:pk>/datasets/", views.project_dataset_upload, name="project-dataset-upload"),
    path("projects/<uuid:pk>/datasets/<uuid:dataset_id>/", views.project_dataset_detail,
         name="project-dataset-detail"),
    path("projects/<uuid:pk>/datasets/<uuid:dataset_id>/delete/", views.project_dataset_delete,
         name="project-dataset-delete"),
]
