from django.urls import re_path

from core.api.routers import OptionalSlashRouter
from training.api.aggregation_views import AggregationViewSet
from training.api.callback_views import ExecutionCallbackView
from training.api.registry_views import FlModelViewSet, RegisteredModelViewSet
from training.api.views import ExecutionLogViewSet, ExecutionViewSet, MetricsViewSet, TrainingJobViewSet

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

router = OptionalSlashRouter()
router.register("fl/executions", ExecutionViewSet, basename="fl-execution")
router.register("fl/logs", ExecutionLogViewSet, basename="fl-log")
router.register("fl/metrics", MetricsViewSet, basename="fl-metrics")
router.register("fl/aggregation", AggregationViewSet, basename="fl-aggregation")
router.register("training", TrainingJobViewSet, basename="training-job")
router.register("fl/models", FlModelViewSet, basename="fl-model")
router.register("models", RegisteredModelViewSet, basename="model")

urlpatterns = [
    re_path(rf"^fl/executions/(?P<pk>{UUID})/callback/?$", ExecutionCallbackView.as_view(),
            name="fl-execution-callback"),
    *router.urls,
]
