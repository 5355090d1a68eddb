from core.api.routers import OptionalSlashRouter

from accounts.api import views

router = OptionalSlashRouter()
router.register("auth/api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("auth", views.AuthViewSet, basename="auth")
router.register("roles", views.RoleViewSet, basename="role")
router.register("users", views.UserViewSet, basename="user")

urlpatterns = router.urls
