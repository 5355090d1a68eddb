"""Writes for projects: create, change, delete, members, Flower-app uploads and CSV data sets."""

import json
import logging
import posixpath

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from accounts.models import User
from core.exceptions import Conflict, ValidationFailed
from core.realtime import broadcast_on_commit, user_group
from projects.archive import validate_flower_archive
from projects.choices import MemberAccess
from projects.datasets import validate_csv_dataset
from projects.models import Project, ProjectDataset, ProjectMember, ProjectUpload

logger = logging.getLogger("pollen.projects")


def _audience(project: Project) -> list[str]:
    user_ids = [project.owner_id, *project.memberships.values_list("user_id", flat=True)]
    return [user_group(uid) for uid in user_ids]


def _project_event_data(project: Project) -> dict:
    return {"project_id": str(project.pk), "name": project.name, "status": project.status}


def _name_taken(owner: User, name: str, exclude=None) -> bool:
    qs = Project.objects.filter(owner=owner, name__iexact=name)
    if exclude is not None:
        qs = qs.exclude(pk=exclude.pk)
    return qs.exists()


@transaction.atomic
def project_create(*, owner: User, name: str, description: str = "", configuration: dict | None = None) -> Project:
    if _name_taken(owner, name):
        raise Conflict(f"You already have a project named {name!r}", details={"field": "name"})
    try:
        with transaction.atomic():
            project = Project.objects.create(owner=owner, name=name, description=description,
                                             configuration=configuration or {})
    except IntegrityError:
        raise Conflict(f"You already have a project named {name!r}", details={"field": "name"})
    broadcast_on_commit("project.created", _project_event_data(project), _audience(project))
    return project


@transaction.atomic
def project_update(*, project: Project, **changes) -> Project:
    """Apply ``changes`` (name, description, status, configuration) under a row lock."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    if "name" in changes and _name_taken(project.owner, changes["name"], exclude=project):
        raise Conflict(f"You already have a project named {changes['name']!r}", details={"field": "name"})
    for field, value in changes.items():
        setattr(project, field, value)
    project.save()
    broadcast_on_commit("project.updated", _project_event_data(project), _audience(project))
    return project


@transaction.atomic
def project_delete(*, project: Project) -> None:
    audience = _audience(project)
    data = _project_event_data(project)
    files = [*project.uploads.values_list("archive", flat=True), *project.datasets.values_list("file", flat=True)]
    project.delete()
    broadcast_on_commit("project.deleted", data, audience)
    transaction.on_commit(lambda: _delete_files(files))


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("Could not delete stored file %s", name, exc_info=True)


@transaction.atomic
def project_member_set(*, project: Project, user: User, access: str) -> ProjectMember:
    if user.pk == project.owner_id:
        raise ValidationFailed("The owner is not a member; they always have full access", field="user")
    if access not in MemberAccess.values:
        raise ValidationFailed(f"access must be one of {MemberAccess.values}", field="access")
    member, _ = ProjectMember.objects.update_or_create(project=project, user=user, defaults={"access": access})
    broadcast_on_commit("project.member_changed",
                        {**_project_event_data(project), "user_id": str(user.pk), "access": access},
                        _audience(project))
    return member


@transaction.atomic
def project_member_remove(*, project: Project, user: User) -> None:
    audience = _audience(project)
    ProjectMember.objects.filter(project=project, user=user).delete()
    broadcast_on_commit("project.member_changed",
                        {**_project_event_data(project), "user_id": str(user.pk), "access": None}, audience)


def project_upload(*, project: Project, uploaded_by: User, file: UploadedFile) -> ProjectUpload:
    """Validate a Flower app archive and store it with its checksum.

    Validation happens before anything is written; if storing the row fails the stored file is
    removed again, so a failed upload leaves nothing behind.
    """
    original_name = (file.name or "app.zip").rsplit("/", 1)[-1][:255]
    report = validate_flower_archive(file, original_name)
    app_config = json.loads(json.dumps(report.app_config, default=str))
    upload = ProjectUpload(
        project=project,
        uploaded_by=uploaded_by,
        original_name=original_name,
        size=report.size,
        unpacked_size=report.unpacked_size,
        checksum=report.checksum,
        files=report.files,
        app_root=report.app_root,
        app_name=report.app_name,
        app_version=report.app_version,
        components=report.components,
        app_config=app_config,
    )
    file.seek(0)
    upload.archive.save(f"{upload.id}.zip", file, save=False)
    try:
        with transaction.atomic():
            upload.save()
            Project.objects.filter(pk=project.pk).update(updated_at=upload.created_at)
            broadcast_on_commit(
                "project.uploaded",
                {**_project_event_data(project), "upload_id": str(upload.pk), "checksum": upload.checksum,
                 "files": upload.files},
                _audience(project),
            )
    except Exception:
        upload.archive.delete(save=False)
        raise
    return upload


def _dataset_event_data(dataset: ProjectDataset) -> dict:
    return {**_project_event_data(dataset.project), "dataset_id": str(dataset.pk), "dataset": dataset.name,
            "rows": dataset.rows, "task": dataset.task}


def _dataset_name_conflict(name: str) -> Conflict:
    return Conflict(f"This project already has a data set named {name!r}", details={"field": "name"})


def project_dataset_create(*, project: Project, uploaded_by: User, file: UploadedFile, name: str = "",
                           target_column: str | None = None, task: str | None = None) -> ProjectDataset:
    """Validate a CSV data set and store it under a generated name.

    ``name`` defaults to the file's name without its extension, ``target_column`` to the last
    column and ``task`` to what the target column suggests. Validation happens before anything is
    written; if storing the row fails the stored file is removed again, so a failed upload leaves
    nothing behind.
    """
    original_name = posixpath.basename((file.name or "data.csv").replace("\\", "/"))[:255] or "data.csv"
    name = (name or "").strip() or original_name.rsplit(".", 1)[0].strip() or "data"
    name = name[:200]
    if project.datasets.filter(name__iexact=name).exists():
        raise _dataset_name_conflict(name)
    report = validate_csv_dataset(file, target_column=target_column or None, task=task or None)
    dataset = ProjectDataset(
        project=project,
        uploaded_by=uploaded_by,
        name=name,
        original_name=original_name,
        size=report.size,
        sha256=report.sha256,
        rows=report.rows,
        columns=report.columns,
        column_types=report.column_types,
        column_stats=report.column_stats,
        target_column=report.target_column,
        task=report.task,
        num_classes=report.num_classes,
        class_counts=report.class_counts,
    )
    file.seek(0)
    dataset.file.save(f"{dataset.id}.csv", file, save=False)
    try:
        with transaction.atomic():
            dataset.save()
            broadcast_on_commit("project.dataset_uploaded", _dataset_event_data(dataset), _audience(project))
    except IntegrityError:
        dataset.file.delete(save=False)
        raise _dataset_name_conflict(name)
    except Exception:
        dataset.file.delete(save=False)
        raise
    return dataset


@transaction.atomic
def project_dataset_delete(*, dataset: ProjectDataset) -> None:
    """Delete a data set and, once committed, its file. Refused (409) while an execution that is
    pending, running or suspended trains on it; the row lock orders this against
    ``parse_training_config``, which locks the data set it accepts."""
    from training.choices import ExecutionStatus
    from training.models import Execution

    dataset = ProjectDataset.objects.select_for_update().select_related("project").get(pk=dataset.pk)
    active = Execution.objects.filter(
        project_id=dataset.project_id, config__dataset_id=str(dataset.pk),
        status__in=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.SUSPENDED],
    ).values_list("pk", flat=True)
    in_use = [str(pk) for pk in active[:20]]
    if in_use:
        raise Conflict(f"Data set {dataset.name!r} is used by {len(in_use)} execution(s) that have not finished; "
                       "stop them first", details={"field": "dataset_id", "executions": in_use})
    data = _dataset_event_data(dataset)
    stored = dataset.file.name
    dataset.delete()
    broadcast_on_commit("project.dataset_deleted", data, _audience(dataset.project))
    transaction.on_commit(lambda: _delete_files([stored]))
