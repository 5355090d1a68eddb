import factory

from accounts.tests.factories import UserFactory
from projects.models import Project, ProjectMember, ProjectUpload


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    description = "A federated project"
    owner = factory.SubFactory(UserFactory)
    configuration = factory.LazyFunction(lambda: {"model_type": "cnn", "dataset": "digits"})


class ProjectMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProjectMember

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    access = "read"


class ProjectUploadFactory(factory.django.DjangoModelFactory):
    """An upload row without a stored file behind it: for listing and query-count tests."""

    class Meta:
        model = ProjectUpload

    project = factory.SubFactory(ProjectFactory)
    uploaded_by = factory.LazyAttribute(lambda o: o.project.owner)
    archive = factory.Sequence(lambda n: f"projects/none/uploads/{n}.zip")
    original_name = factory.Sequence(lambda n: f"app{n}.zip")
    size = 1000
    unpacked_size = 4000
    checksum = "0" * 64
    files = factory.LazyFunction(lambda: ["pyproject.toml", "mypkg/server_app.py"])
    components = factory.LazyFunction(lambda: {"serverapp": "mypkg.server_app:app"})
