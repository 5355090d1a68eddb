import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from core.routing import websocket_urlpatterns  # noqa: E402
from core.ws_auth import OriginPolicy, TokenAuthMiddlewareStack  # noqa: E402
from nodes.protocol.asgi import UpdateBodyLimit  # noqa: E402

application = ProtocolTypeRouter(
    {
        # /static/ is answered before Django's middleware (the dashboard's CSS and JS, the admin and
        # the API docs); behind a reverse proxy, serve STATIC_ROOT there instead.
        "http": ASGIStaticFilesHandler(UpdateBodyLimit(django_asgi_app)),
        "websocket": OriginPolicy(TokenAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
