from rest_framework.permissions import BasePermission

from core.permissions import has_permission


def request_permissions(request) -> frozenset[str]:
    """What the caller may do: its user's role permissions, narrowed to an API key's scopes."""
    cached = getattr(request, "_pollen_permissions", None)
    if cached is not None:
        return cached
    user = request.user
    if not (user and user.is_authenticated):
        perms = frozenset()
    else:
        perms = frozenset(user.permission_strings)
        scopes = getattr(request.auth, "scopes", None)
        if scopes is not None:
            perms = frozenset(s for s in scopes if has_permission(perms, s))
    request._pollen_permissions = perms
    return perms


class RequiresPermission(BasePermission):
    """Checks the permission string a view names for the current action.

    Views declare ``required_permissions = {"list": "read:projects", "create": "write:projects"}``
    (keys are ``action:method``, viewset actions or HTTP methods; ``"*"`` is the fallback). A value
    may be a tuple of strings, any one of which suffices: ``("read:projects", "execution:read")``.
    """

    message = "Insufficient permissions"

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        required = required_permission(request, view)
        if required is None:
            return True
        options = (required,) if isinstance(required, str) else tuple(required)
        granted = request_permissions(request)
        if any(has_permission(granted, option) for option in options):
            return True
        self.message = "This action needs the permission " + " or ".join(repr(o) for o in options)
        return False


def required_permission(request, view) -> str | tuple[str, ...] | None:
    mapping = getattr(view, "required_permissions", None) or {}
    action = getattr(view, "action", None)
    method = request.method.lower()
    for key in (f"{action}:{method}" if action else None, action, method, "*"):
        if key and key in mapping:
            return mapping[key]
    return None
