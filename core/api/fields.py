"""Serializer fields the apps' APIs share."""

import json

from rest_framework import serializers

MAX_JSON_BYTES = 16 * 1024


class TextChoiceField(serializers.CharField):
    """A choice documented as text: a second enum named ``status``, ``type`` or ``kind`` would
    collide in the schema. ``choices`` are the allowed values."""

    def __init__(self, *, choices, **kwargs):
        self.allowed = [str(c) for c in choices]
        kwargs.setdefault("help_text", "One of: " + ", ".join(self.allowed))
        super().__init__(max_length=50, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value not in self.allowed:
            raise serializers.ValidationError(f"{value!r} is not one of {self.allowed}")
        return value


class BoundedJSONField(serializers.DictField):
    """A JSON object of bounded size: free-form, but not a way to store megabytes."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(json.dumps(value, default=str)) > MAX_JSON_BYTES:
            raise serializers.ValidationError(f"At most {MAX_JSON_BYTES} bytes of JSON")
        return value
