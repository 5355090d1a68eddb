"""Routes of seed 002's device protocol under /api/v1/.

``/models/{version}`` takes any version that is not a UUID: ``/models/{uuid}`` is the model registry's
(``training.api.urls``), whichever of the two is included first."""

from django.urls import re_path

from nodes.protocol.views import (ClientRegisterView, ClientTokenRevokeView, CurrentRoundView, ModelDownloadView,
                                  UpdateSubmitView)

UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

urlpatterns = [
    re_path(r"^clients/register/?$", ClientRegisterView.as_view(), name="device-register"),
    re_path(r"^fl/clients/(?P<pk>[^/]+)/revoke-token/?$", ClientTokenRevokeView.as_view(),
            name="device-revoke-token"),
    re_path(r"^rounds/current/?$", CurrentRoundView.as_view(), name="device-round-current"),
    re_path(r"^rounds/(?P<round_id>[^/]+)/updates/?$", UpdateSubmitView.as_view(), name="device-update-submit"),
    re_path(rf"^models/(?P<version>(?!{UUID}/?$)[A-Za-z0-9][A-Za-z0-9._+-]{{0,63}})/?$", ModelDownloadView.as_view(),
            name="device-model-download"),
]
