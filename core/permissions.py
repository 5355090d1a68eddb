"""Permission strings with wildcards (seeds 000 and 004).

A granted string matches a required one when they are equal, when it is ``*``, or when it ends in
``*`` and the required string starts with what comes before: ``budget:*`` covers
``budget:read``; ``fl:*`` covers ``fl:training:execute``.
"""

import re
from collections.abc import Iterable

# A wildcard is only ever the last segment: matching treats nothing else as one.
PERMISSION_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_-]*(:[a-z][a-z0-9_-]*)*(:\*)?)$")


def permission_matches(granted: str, required: str) -> bool:
    if granted == "*" or granted == required:
        return True
    return granted.endswith(":*") and required.startswith(granted[:-1])


def has_permission(granted: Iterable[str], required: str) -> bool:
    return any(permission_matches(g, required) for g in granted)


def is_valid_permission(value: str) -> bool:
    return bool(PERMISSION_PATTERN.match(value))


def covers(granted: Iterable[str], wanted: str) -> bool:
    """True when ``granted`` allows everything ``wanted`` (itself possibly a wildcard) allows."""
    granted = list(granted)
    if wanted == "*":
        return "*" in granted
    if wanted.endswith(":*"):
        prefix = wanted[:-1]
        return any(g == "*" or (g.endswith(":*") and prefix.startswith(g[:-1])) for g in granted)
    return has_permission(granted, wanted)
