"""The project services and selectors, called directly."""

import pytest
from django.db import IntegrityError, transaction
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tests.factories import UserFactory
from core.exceptions import ApplicationError, Conflict, Forbidden, NotFound, ValidationFailed
from core.models import Event
from projects import selectors, services
from projects.models import Project, ProjectMember, ProjectUpload
from projects.tests.archives import flower_zip
from projects.tests.conftest import media_files
from projects.tests.factories import ProjectFactory, ProjectMemberFactory


def _zip_file(data=None, name="app.zip"):
    return SimpleUploadedFile(name, flower_zip() if data is None else data, content_type="application/zip")


# ---- create / update / delete -----------------------------------------------------------------------

def test_project_create(owner):
    project = services.project_create(owner=owner, name="Created", description="d",
                                      configuration={"model_type": "cnn"})
    project.refresh_from_db()
    assert (project.name, project.description, project.configuration) == ("Created", "d", {"model_type": "cnn"})
    assert project.status == "active" and project.owner == owner
    assert Event.objects.filter(event="project.created", data__project_id=str(project.pk)).exists()


def test_project_create_conflict(owner):
    services.project_create(owner=owner, name="Once")
    with pytest.raises(Conflict) as exc:
        services.project_create(owner=owner, name="ONCE")
    assert exc.value.http_status == 409 and exc.value.details == {"field": "name"}
    assert Project.objects.count() == 1


def test_the_database_enforces_case_insensitive_unique_names(owner):
    ProjectFactory(owner=owner, name="Twice")
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.create(owner=owner, name="twice")
    Project.objects.create(owner=UserFactory(), name="twice")


def test_project_update(owner):
    project = ProjectFactory(owner=owner, name="A")
    ProjectFactory(owner=owner, name="B")
    updated = services.project_update(project=project, description="new", status="archived")
    assert (updated.description, updated.status) == ("new", "archived")
    with pytest.raises(Conflict):
        services.project_update(project=project, name="b")
    project.refresh_from_db()
    assert project.name == "A" and project.description == "new"


def test_project_delete_removes_its_archives_after_commit(owner, django_capture_on_commit_callbacks):
    doomed = ProjectFactory(owner=owner)
    kept = ProjectFactory(owner=owner)
    services.project_upload(project=doomed, uploaded_by=owner, file=_zip_file())
    kept_upload = services.project_upload(project=kept, uploaded_by=owner, file=_zip_file())
    assert len(media_files()) == 2

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.project_delete(project=doomed)
    assert len(media_files()) == 2  # nothing removed before the transaction commits
    for callback in callbacks:
        callback()
    assert [str(p) for p in media_files()] == [kept_upload.archive.path]
    assert not Project.objects.filter(pk=doomed.pk).exists()


def test_project_owner_cannot_be_deleted_while_owning(owner):
    ProjectFactory(owner=owner)
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        owner.delete()


# ---- members --------------------------------------------------------------------------------------

def test_member_set_and_remove(owner):
    project = ProjectFactory(owner=owner)
    user = UserFactory()
    services.project_member_set(project=project, user=user, access="read")
    services.project_member_set(project=project, user=user, access="write")
    assert ProjectMember.objects.get().access == "write"
    assert selectors.can_write(user, project)
    services.project_member_remove(project=project, user=user)
    assert not ProjectMember.objects.exists()
    assert not selectors.can_write(user, project)


def test_member_set_refuses_owner_and_unknown_access(owner):
    project = ProjectFactory(owner=owner)
    with pytest.raises(ValidationFailed):
        services.project_member_set(project=project, user=owner, access="read")
    with pytest.raises(ValidationFailed):
        services.project_member_set(project=project, user=UserFactory(), access="admin")
    assert not ProjectMember.objects.exists()


# ---- selectors ------------------------------------------------------------------------------------

def test_project_list_shows_a_shared_project_once(owner):
    project = ProjectFactory()
    ProjectMemberFactory(project=project, user=owner)
    ProjectMemberFactory.create_batch(3, project=project)
    assert list(selectors.project_list(user=owner)) == [project]


def test_project_get(owner):
    mine, theirs = ProjectFactory(owner=owner), ProjectFactory()
    reader = UserFactory()
    ProjectMemberFactory(project=mine, user=reader, access="read")
    assert selectors.project_get(user=owner, project_id=str(mine.pk), for_write=True) == mine
    assert selectors.project_get(user=reader, project_id=mine.pk) == mine
    with pytest.raises(Forbidden):
        selectors.project_get(user=reader, project_id=mine.pk, for_write=True)
    for bad in (theirs.pk, "nope", None, 42):
        with pytest.raises(NotFound):
            selectors.project_get(user=owner, project_id=bad)


# ---- upload ----------------------------------------------------------------------------------------

def test_project_upload_stores_what_it_validated(owner):
    project = ProjectFactory(owner=owner)
    upload = services.project_upload(project=project, uploaded_by=owner, file=_zip_file(name="../../evil/app.zip"))
    assert upload.original_name == "app.zip"
    assert upload.archive.name == f"projects/{project.pk}/uploads/{upload.pk}.zip"
    with upload.archive.open("rb") as fh:
        assert fh.read() == flower_zip()


def test_project_upload_leaves_nothing_when_the_row_cannot_be_saved(owner, monkeypatch):
    """The archive is written before the row; if the row fails, the file goes again."""
    project = ProjectFactory(owner=owner)

    def broken_broadcast(*args, **kwargs):
        raise RuntimeError("channel layer exploded")

    monkeypatch.setattr(services, "broadcast_on_commit", broken_broadcast)
    with pytest.raises(RuntimeError):
        services.project_upload(project=project, uploaded_by=owner, file=_zip_file())
    assert not ProjectUpload.objects.exists()
    assert media_files() == []


def test_project_upload_refusal_is_an_application_error(owner):
    project = ProjectFactory(owner=owner)
    with pytest.raises(ApplicationError) as exc:
        services.project_upload(project=project, uploaded_by=owner, file=_zip_file(b"nope"))
    assert exc.value.code == "VALIDATION_ERROR"
    assert exc.value.details["reason"] == "not_a_zip"
    assert media_files() == []


# ---- concurrency (PostgreSQL: SQLite serialises writers) ---------------------------------------------

def _on_postgres() -> bool:
    from django.conf import settings

    return "postgresql" in settings.DATABASES["default"]["ENGINE"]


@pytest.mark.postgres
@pytest.mark.skipif(not _on_postgres(), reason="needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_the_same_name_make_one_project():
    import threading

    from django.db import connection

    owner = UserFactory()
    barrier = threading.Barrier(4)
    outcomes = []

    def create(name):
        try:
            barrier.wait(timeout=10)
            services.project_create(owner=owner, name=name)
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")
        except Exception as exc:  # anything else is a bug the assertion below will show
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in ("Race", "race", "RACE", "Race")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "created"]
    assert Project.objects.filter(owner=owner).count() == 1
