"""The one check behind every declared lifecycle (executions, nodes, ...)."""

from core.exceptions import ApplicationError


def move(obj, transitions: dict[str, set[str]], new_status: str, *, noun: str, details: dict | None = None) -> None:
    """Set ``obj.status`` to ``new_status`` if ``transitions`` allows it, else raise 409
    ``RESOURCE_CONFLICT`` naming both states. Call holding the row lock; the caller saves."""
    if new_status not in transitions.get(obj.status, set()):
        raise ApplicationError("RESOURCE_CONFLICT", f"{noun} that is {obj.status} cannot become {new_status}",
                               details={**(details or {}), "from": obj.status, "to": new_status}, http_status=409)
    obj.status = new_status
