"""Reads for projects. Visibility: a user sees projects they own or are a member of; holders of
the ``*`` permission (platform administrators) see every project."""

import uuid

from django.db.models import Q, QuerySet, Value
from django.db.models import IntegerField

from accounts.models import User
from core.exceptions import Forbidden, NotFound
from projects.choices import MemberAccess
from projects.models import Project, ProjectDataset, ProjectMember, ProjectUpload


def visible_projects(user: User) -> QuerySet[Project]:
    qs = Project.objects.all()
    if user.has_wildcard_permission():
        return qs
    # Membership ids first: a user belongs to few projects, and "owner = me" alone lets the
    # (owner, -created_at) index serve both the page and the count of a large list.
    member_of = list(ProjectMember.objects.filter(user=user).values_list("project_id", flat=True))
    if not member_of:
        return qs.filter(owner=user)
    return qs.filter(Q(owner=user) | Q(pk__in=member_of))


def project_list(*, user: User) -> QuerySet[Project]:
    # Training jobs arrive with the training app; until then every project has none.
    return (
        visible_projects(user)
        .select_related("owner")
        .defer(*(f"owner__{f}" for f in _OWNER_DEFERRED))
        .annotate(training_jobs_count=Value(0, IntegerField()))
    )


# A project's owner is shown by id and name only; the rest of the user row stays in the database.
_OWNER_DEFERRED = ("password", "last_login", "is_superuser", "first_name", "last_name", "is_staff",
                   "date_joined", "failed_login_count", "locked_until", "tokens_valid_after")


def can_write(user: User, project: Project) -> bool:
    if user.has_wildcard_permission() or project.owner_id == user.pk:
        return True
    return ProjectMember.objects.filter(project=project, user=user, access=MemberAccess.WRITE).exists()


def project_get(*, user: User, project_id, for_write: bool = False) -> Project:
    """The project if ``user`` may see it (404 otherwise: its existence is not revealed) and, with
    ``for_write``, may change it (403)."""
    try:
        project_id = uuid.UUID(str(project_id))
    except ValueError:
        raise NotFound("Project not found")
    project = project_list(user=user).filter(pk=project_id).first()
    if project is None:
        raise NotFound("Project not found")
    if for_write and not can_write(user, project):
        raise Forbidden("You can read this project but not change it")
    return project


def project_members(*, project: Project) -> QuerySet[ProjectMember]:
    return project.memberships.select_related("user").order_by("created_at")


def project_uploads(*, project: Project) -> QuerySet[ProjectUpload]:
    return project.uploads.select_related("uploaded_by").order_by("-created_at")


def _get_by_uuid(queryset: QuerySet, pk, message: str):
    """The row of ``queryset`` with this id, or 404 (a malformed id is just as unknown)."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        raise NotFound(message)
    row = queryset.filter(pk=pk).first()
    if row is None:
        raise NotFound(message)
    return row


def project_upload_get(*, project: Project, upload_id) -> ProjectUpload:
    return _get_by_uuid(project_uploads(project=project), upload_id, "Upload not found")


def recent_uploads(*, user: User) -> QuerySet[ProjectUpload]:
    return ProjectUpload.objects.filter(project__in=visible_projects(user)).select_related("project").order_by("-created_at")


def project_datasets(*, project: Project) -> QuerySet[ProjectDataset]:
    return project.datasets.select_related("uploaded_by").order_by("-created_at")


def project_dataset_get(*, project: Project, dataset_id) -> ProjectDataset:
    return _get_by_uuid(project_datasets(project=project), dataset_id, "Data set not found")


def datasets_for_projects(projects: QuerySet[Project]) -> QuerySet[ProjectDataset]:
    """The data sets of ``projects`` (a training form's choices), with their project's name."""
    return (ProjectDataset.objects.filter(project__in=projects).select_related("project")
            .only("id", "name", "task", "rows", "project__id", "project__name").order_by("project__name", "name"))


def dataset_for_run(*, project_id, dataset_id) -> ProjectDataset:
    """The data set an execution of ``project_id`` trains on; FL006 if it has been deleted since."""
    dataset = ProjectDataset.objects.filter(project_id=project_id, pk=dataset_id).only(
        "id", "file", "target_column").first()
    if dataset is None:
        from core.exceptions import ApplicationError

        raise ApplicationError("FL006", f"The CSV data set {dataset_id} this execution trains on has been deleted",
                               details={"field": "dataset"})
    return dataset


def dataset_preview(*, dataset: ProjectDataset) -> dict:
    """The first rows of a stored data set and a summary of each column."""
    from projects.datasets import preview_rows

    with dataset.file.open("rb") as fh:
        rows = preview_rows(fh, dataset.column_types)
    summary = {}
    for column in dataset.columns:
        kind = dataset.column_types.get(column)
        summary[column] = {"type": kind, **dataset.column_stats.get(column, {})}
        if column == dataset.target_column and dataset.class_counts:
            summary[column]["class_counts"] = dataset.class_counts
    return {"dataset_id": str(dataset.pk), "columns": dataset.columns, "target_column": dataset.target_column,
            "task": dataset.task, "rows": rows, "total_rows": dataset.rows, "summary": summary}
