from core.api.routers import OptionalSlashRouter
from training.api.views import ExecutionLogViewSet, ExecutionViewSet, MetricsViewSet, TrainingJobViewSet

router = OptionalSlashRouter()
router.register("fl/executions", ExecutionViewSet, basename="fl-execution")
router.register("fl/logs", ExecutionLogViewSet, basename="fl-log")
router.register("fl/metrics", MetricsViewSet, basename="fl-metrics")
router.register("training", TrainingJobViewSet, basename="training-job")

urlpatterns = router.urls
