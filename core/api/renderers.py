from rest_framework.renderers import JSONRenderer

from core.api.envelope import DEFAULT_MESSAGE, error_envelope, success_envelope


class EnvelopeJSONRenderer(JSONRenderer):
    """Wraps every API body in seed 000's envelope.

    Bodies already shaped as an envelope (errors from the exception handler, paginated lists)
    pass through. A view may set ``response.message`` to say what it did.
    """

    def render(self, data, accepted_media_type=None, renderer_context=None):
        renderer_context = renderer_context or {}
        response = renderer_context.get("response")
        if response is not None and response.status_code == 204:
            return b""
        if not (isinstance(data, dict) and "success" in data):
            if response is not None and response.status_code >= 400:
                data = error_envelope("INTERNAL_ERROR", "Unexpected server error", data)
            else:
                data = success_envelope(data, getattr(response, "message", None) or DEFAULT_MESSAGE)
        return super().render(data, accepted_media_type, renderer_context)


class VendorEnvelopeJSONRenderer(EnvelopeJSONRenderer):
    """Answers ``Accept: application/vnd.pollen.v1+json`` (SPEC section 2, versioning)."""

    media_type = "application/vnd.pollen.v1+json"
