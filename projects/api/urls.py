from core.api.routers import OptionalSlashRouter

from projects.api.views import ProjectViewSet

router = OptionalSlashRouter()
router.register("projects", ProjectViewSet, basename="project")

urlpatterns = router.urls
