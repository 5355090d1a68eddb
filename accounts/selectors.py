from accounts.models import ApiKey, Role, User
from core.exceptions import NotFound


def api_key_list(*, user: User):
    return ApiKey.objects.filter(user=user).order_by("-created_at")


def api_key_get(*, user: User, key_id) -> ApiKey:
    key = ApiKey.objects.filter(pk=key_id, user=user).first()
    if key is None:
        raise NotFound("API key not found")
    return key


def role_list():
    return Role.objects.order_by("name")


def user_list():
    return User.objects.prefetch_related("roles").order_by("username")
