from core.api.routers import OptionalSlashRouter
from training.api.views import ExecutionLogViewSet, ExecutionViewSet, TrainingJobViewSet

router = OptionalSlashRouter()
router.register("fl/executions", ExecutionViewSet, basename="fl-execution")
router.register("fl/logs", ExecutionLogViewSet, basename="fl-log")
router.register("training", TrainingJobViewSet, basename="training-job")

urlpatterns = router.urls
