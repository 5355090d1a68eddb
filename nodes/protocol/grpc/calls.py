"""What every gRPC call goes through before and after its service: request id, database connection,
credentials, permissions, rate limits, and the error mapping.

The rules are the REST views' own: a call is admitted by the authentication, permission and
throttle classes of the view that serves the same operation (``nodes.protocol.views``), run on a
stand-in request built from the call's metadata, the way DRF's ``APIView.initial`` runs them. A
rule changed on the view is changed for gRPC too.

Each call runs in one thread of the server's pool, which keeps a Django database connection per
thread: the connection is released (``close_old_connections``) when the call starts and ends, so a
thread never carries a stale or broken connection from one call to the next.
"""

from __future__ import annotations

import functools
import inspect
import threading
import uuid
from collections.abc import Callable

import grpc
from django.contrib.auth.models import AnonymousUser
from django.db import close_old_connections
from rest_framework import exceptions as drf
from rest_framework.authentication import SessionAuthentication

from core.context import request_id_var
from core.middleware import _SAFE_REQUEST_ID
from nodes.protocol.grpc.errors import REQUEST_ID_KEY, abort, failure_for


def peer_address(peer: str) -> str:
    """The client's IP from a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``, ``unix:...``)."""
    kind, _, rest = (peer or "").partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return "127.0.0.1"


class CallRequest:
    """A stand-in for a DRF request, built from a call's metadata: what the authenticators
    (``META``), the permission checks (``method``, ``user``, ``auth``) and the throttles read."""

    def __init__(self, context: grpc.ServicerContext, *, http_method: str, path: str):
        self.metadata: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            if isinstance(value, str):
                self.metadata.setdefault(key.lower(), value)
        self.META = {"REMOTE_ADDR": peer_address(context.peer())}
        if "authorization" in self.metadata:
            self.META["HTTP_AUTHORIZATION"] = self.metadata["authorization"]
        if "x-api-key" in self.metadata:
            self.META["HTTP_X_API_KEY"] = self.metadata["x-api-key"]
        self.method = http_method
        self.path = path
        self.user = AnonymousUser()
        self.auth = None
        self.successful_authenticator = None
        self._ratelimit_state = None  # (limit, remaining, reset) of the tightest throttle

    @property
    def _request(self):
        return self

    def header(self, key: str, default: str = "") -> str:
        return self.metadata.get(key, default).strip()


def admit(request: CallRequest, view_class) -> None:
    """Authenticate, check permissions and throttle ``request`` exactly as ``view_class`` would for
    its HTTP twin (DRF's ``APIView.initial``). Raises what the view would (401, 403, 429)."""
    view = view_class()
    view.request = request
    view.args, view.kwargs = (), {}
    for authenticator in view.get_authenticators():
        if isinstance(authenticator, SessionAuthentication):  # no cookies on gRPC
            continue
        result = authenticator.authenticate(request)
        if result is not None:
            request.user, request.auth = result
            request.successful_authenticator = authenticator
            break
    for permission in view.get_permissions():
        if not permission.has_permission(request, view):
            if request.successful_authenticator is None:
                raise drf.NotAuthenticated()
            raise drf.PermissionDenied(getattr(permission, "message", None))
    waits = []
    for throttle in view.get_throttles():
        if not throttle.allow_request(request, view):
            waits.append(throttle.wait())
    if waits:
        raise drf.Throttled(max((w for w in waits if w is not None), default=None))


def _ratelimit_metadata(request: CallRequest | None) -> list[tuple[str, str]]:
    state = getattr(request, "_ratelimit_state", None)
    if not state:
        return []
    limit, remaining, reset = state
    return [("x-ratelimit-limit", str(limit)), ("x-ratelimit-remaining", str(max(0, remaining))),
            ("x-ratelimit-reset", str(int(reset)))]


class Call:
    """One RPC in progress: its request id, its stand-in request and its thread."""

    def __init__(self, context: grpc.ServicerContext, *, name: str, http_method: str):
        self.context = context
        self.name = name
        self.request = CallRequest(context, http_method=http_method, path=name)
        incoming = self.request.metadata.get(REQUEST_ID_KEY, "")
        self.request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else str(uuid.uuid4())
        self.thread = threading.get_ident()
        self.trailers: list[tuple[str, str]] = []  # a handler's own trailing metadata, sent on success
        self._token = None

    def begin(self) -> None:
        self._token = request_id_var.set(self.request_id)
        close_old_connections()

    def succeed(self) -> None:
        self.context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id), *_ratelimit_metadata(self.request),
                                            *self.trailers))

    def fail(self, exc: Exception):
        """End the call with the error the REST API would answer for ``exc`` (raises)."""
        failure = failure_for(exc, method=self.name)
        abort(self.context, failure, _ratelimit_metadata(self.request))

    def end(self) -> None:
        # A streaming call abandoned by its client may be finalised by the garbage collector in
        # another thread: that thread's connection is not ours to close.
        if threading.get_ident() != self.thread:
            return
        close_old_connections()
        if self._token is not None:
            try:
                request_id_var.reset(self._token)
            except ValueError:
                pass
            self._token = None


def rpc(name: str, *, http_method: str) -> Callable:
    """Wrap a servicer method ``fn(self, request_or_iterator, context, call)``: the call's plumbing
    around it, every exception turned into the REST API's error as a gRPC status. Works for unary
    and for streaming responses (generator functions)."""

    def decorate(fn):
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def streaming(self, request, context):
                call = Call(context, name=name, http_method=http_method)
                call.begin()
                try:
                    yield from fn(self, request, context, call)
                    call.succeed()
                except Exception as exc:
                    call.fail(exc)
                finally:
                    call.end()

            return streaming

        @functools.wraps(fn)
        def unary(self, request, context):
            call = Call(context, name=name, http_method=http_method)
            call.begin()
            try:
                response = fn(self, request, context, call)
                call.succeed()
                return response
            except Exception as exc:
                call.fail(exc)
            finally:
                call.end()

        return unary

    return decorate
