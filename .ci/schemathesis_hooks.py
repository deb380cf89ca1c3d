"""Schemathesis hooks for Custodian's API (loaded by .ci/schemathesis).

The streamed campaign check (POST /v1/marketing/check) reads NDJSON: the
document describes its body as an array (a header object, then one entry
per line), and this writes such an array as one JSON value per line.
Anything else (a negative test's non-array) is written as one JSON value.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if value is None:
        return None
    if isinstance(value, list):
        return "".join(json.dumps(item) + "\n" for item in value).encode("utf-8")
    return (json.dumps(value) + "\n").encode("utf-8")
