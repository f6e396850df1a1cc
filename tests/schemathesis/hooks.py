"""Schemathesis hooks (loaded by scripts/schemathesis through SCHEMATHESIS_HOOKS).

tus chunks (PATCH /api/v1/tus/{id}, and a creation-with-upload body) are sent as
`application/offset+octet-stream`, the media type tus 1.0.0 prescribes: raw bytes, serialized as
Schemathesis serializes `application/octet-stream`.
"""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
