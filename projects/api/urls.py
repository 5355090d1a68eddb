from core.api.routers import OptionalSlashRouter

from projects.api.views import ProjectDatasetViewSet, ProjectViewSet

router = OptionalSlashRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register(r"projects/(?P<project_pk>[^/.]+)/datasets", ProjectDatasetViewSet, basename="project-dataset")

urlpatterns = router.urls
