import factory

from accounts.tests.factories import UserFactory
from projects.models import Project, ProjectMember


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
