"""drf-spectacular hook: the schema shows the envelopes clients really receive."""

ERROR_ENVELOPE = {
    "type": "object",
    "required": ["success", "error", "timestamp", "request_id"],
    "properties": {
        "success": {"type": "boolean", "example": False},
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "example": "VALIDATION_ERROR"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
            },
        },
        "timestamp": {"type": "string", "format": "date-time"},
        "request_id": {"type": "string"},
    },
}

ERROR_STATUSES = {
    "400": "Invalid input (VALIDATION_ERROR)",
    "401": "Missing or invalid authentication (AUTHENTICATION_FAILED)",
    "403": "Insufficient permissions (AUTHORIZATION_FAILED)",
    "404": "Resource not found (RESOURCE_NOT_FOUND)",
    "429": "Rate limit exceeded (RATE_LIMIT_EXCEEDED)",
}


def _wrap_success(schema: dict) -> dict:
    return {
        "type": "object",
        "required": ["success", "data", "timestamp", "request_id"],
        "properties": {
            "success": {"type": "boolean", "example": True},
            "data": schema,
            "message": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "request_id": {"type": "string"},
        },
    }


def envelope_postprocessing_hook(result, generator, request, public):
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorEnvelope"] = ERROR_ENVELOPE
    error_ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, response in list(responses.items()):
                if not str(status).startswith("2"):
                    continue
                for media_type, media in (response.get("content") or {}).items():
                    if "json" not in media_type:
                        continue  # files (checkpoints, archives) are sent as they are
                    schema = media.get("schema")
                    if schema is None:
                        continue
                    if "success" in (schema.get("properties") or {}):
                        continue
                    media["schema"] = _wrap_success(schema)
            for status, description in ERROR_STATUSES.items():
                responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": error_ref}}}
                )
    return result
