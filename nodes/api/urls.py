from core.api.routers import OptionalSlashRouter
from nodes.api.views import ClientViewSet, ClusterViewSet, DatasetViewSet, NodeViewSet, ZoneViewSet

router = OptionalSlashRouter()
router.register("nodes", NodeViewSet, basename="node")
router.register("fl/clients", ClientViewSet, basename="fl-client")
router.register("fl/zones", ZoneViewSet, basename="fl-zone")
router.register("fl/clusters", ClusterViewSet, basename="fl-cluster")
router.register("fl/datasets", DatasetViewSet, basename="fl-dataset")

urlpatterns = router.urls
