"""How a device's registration token appears in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "nodes.protocol.auth.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A device's registration_token from POST /api/v1/clients/register"}


class DeviceUploadTokenScheme(DeviceTokenScheme):
    """The same token on update uploads (the upload is not counted as a heartbeat)."""

    target_class = "nodes.protocol.auth.DeviceUploadAuthentication"
    name = "deviceUploadToken"
