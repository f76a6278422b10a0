"""A session serializer other than Django's JSON one, as projects bring from older Django."""

from __future__ import annotations

import pickle
from typing import Any


class PickleSerializer:
    """Django's removed ``django.contrib.sessions.serializers.PickleSerializer``, re-created."""

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)
