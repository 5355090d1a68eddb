from django.urls import path

from core.consumers import EventConsumer

websocket_urlpatterns = [
    path("api/v1/ws/", EventConsumer.as_asgi()),
    path("api/v1/ws", EventConsumer.as_asgi()),
]
