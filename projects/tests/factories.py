import factory

from accounts.tests.factories import UserFactory
from projects.models import Project, ProjectDataset, ProjectMember, ProjectUpload


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


class ProjectDatasetFactory(factory.django.DjangoModelFactory):
    """A data-set row without a stored file behind it: for listing and query-count tests."""

    class Meta:
        model = ProjectDataset

    project = factory.SubFactory(ProjectFactory)
    uploaded_by = factory.LazyAttribute(lambda o: o.project.owner)
    name = factory.Sequence(lambda n: f"cohort {n}")
    file = factory.Sequence(lambda n: f"projects/none/datasets/{n}.csv")
    original_name = factory.Sequence(lambda n: f"cohort{n}.csv")
    size = 1000
    sha256 = "0" * 64
    rows = 100
    columns = factory.LazyFunction(lambda: ["a", "b", "y"])
    column_types = factory.LazyFunction(lambda: {"a": "numeric", "b": "numeric", "y": "categorical"})
    column_stats = factory.LazyFunction(lambda: {"a": {"min": 0.0, "max": 1.0, "mean": 0.5, "std": 0.5},
                                                 "b": {"min": 0.0, "max": 1.0, "mean": 0.5, "std": 0.5}})
    target_column = "y"
    task = "classification"
    num_classes = 2
    class_counts = factory.LazyFunction(lambda: {"0": 50, "1": 50})
