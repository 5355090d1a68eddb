"""Writes for projects: create, change, delete, members and Flower-app uploads."""

import json
import logging

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from accounts.models import User
from core.exceptions import Conflict, ValidationFailed
from core.realtime import broadcast_on_commit, user_group
from projects.archive import validate_flower_archive
from projects.choices import MemberAccess
from projects.models import Project, ProjectMember, ProjectUpload

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
    files = list(project.uploads.values_list("archive", flat=True))
    project.delete()
    broadcast_on_commit("project.deleted", data, audience)
    transaction.on_commit(lambda: _delete_files(files))


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("Could not delete stored archive %s", name, exc_info=True)


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
