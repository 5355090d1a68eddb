"""wia_fl: Pollen's device SDK (standalone: numpy, httpx, websockets and cryptography; no Django).

``FederatedLearningClient`` is seed 002 section 9.1's client: register, take training invitations
(WebSocket with a polling fallback), download global models, submit signed updates.
``wia_fl.wire`` is the "pollen-tensors/1" binary format shared by the devices and the server.

The names below are imported on first use, so the server can ``from wia_fl import wire`` (numpy
only) without the client's HTTP, WebSocket and crypto libraries.
"""

from importlib import import_module

_EXPORTS = {
    "FederatedLearningClient": "wia_fl.client",
    "AuthenticationError": "wia_fl.errors",
    "ChecksumMismatchError": "wia_fl.errors",
    "ConflictError": "wia_fl.errors",
    "FederatedLearningError": "wia_fl.errors",
    "InvalidModelFormatError": "wia_fl.errors",
    "NotFoundError": "wia_fl.errors",
    "NotRegisteredError": "wia_fl.errors",
    "PermissionDeniedError": "wia_fl.errors",
    "RateLimitError": "wia_fl.errors",
    "ModelReady": "wia_fl.types",
    "Registration": "wia_fl.types",
    "RoundInfo": "wia_fl.types",
    "UpdateReceipt": "wia_fl.types",
    "FORMAT": "wia_fl.wire",
    "WireFormatError": "wia_fl.wire",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wia_fl' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
