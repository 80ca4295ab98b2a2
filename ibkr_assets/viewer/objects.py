"""The bytes of a stored object, for a URI that a lineage or artifact row references.

Callers pass the row's URI and sha256, never a user's path: the API finds the row by its id, so
no arbitrary key can be read. The URI must lie in the configured store (local folder or S3
bucket), its key must be a plain relative path, and the bytes must hash to the recorded sha256
or nothing is returned.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ibkr_assets.settings import Settings
from ibkr_assets.storage.object_store import ObjectStore, ObjectStoreError

_SHA256 = re.compile(r"[0-9a-f]{64}")
CONTENT_TYPES = {
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
}


class ObjectUnavailable(Exception):
    """No bytes for this reference; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ObjectBytes:
    key: str
    data: bytes
    sha256: str
    content_type: str


def content_type_for(key: str) -> str:
    """The type to serve a key as; anything unexpected is a download, never HTML."""
    name = key.rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return CONTENT_TYPES.get(suffix, "application/octet-stream")


def safe_key(key: str) -> bool:
    """A plain relative key: no absolute path, no ``..`` or empty segment, no odd characters."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key or len(key) > 1024:
        return False
    return all(part not in ("", ".", "..") for part in key.split("/"))


class ObjectReader:
    """Reads referenced objects from the configured store and verifies them."""

    def __init__(self, settings: Settings, store: ObjectStore | None = None) -> None:
        if store is None:
            from ibkr_assets.verification.run import object_store_for

            store = object_store_for(settings)
        self.store = store
        self.base_uri = store.uri("x")[:-1]  # file:///root/ or s3://bucket/

    def key_for(self, uri: str) -> str:
        if not isinstance(uri, str) or not uri.startswith(self.base_uri):
            raise ObjectUnavailable(
                404, "the recorded object is not in the configured object store"
            )
        key = uri[len(self.base_uri) :]
        if not safe_key(key):
            raise ObjectUnavailable(404, "the recorded object key is not a plain relative path")
        return key

    def read(self, uri: str | None, sha256: str | None) -> ObjectBytes:
        """The verified bytes of a recorded ``uri``; ObjectUnavailable otherwise."""
        if not uri:
            raise ObjectUnavailable(404, "this record references no stored object")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ObjectUnavailable(404, "this record has no sha256 to verify its object against")
        key = self.key_for(uri)
        try:
            data = self.store.get(key)
        except ObjectStoreError:
            raise ObjectUnavailable(404, f"object missing from the store: {key}") from None
        except Exception as exc:  # the store is down or refuses: say so, without its details
            raise ObjectUnavailable(
                503, f"the object store could not be read ({type(exc).__name__})"
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ObjectUnavailable(
                502,
                f"object {key} does not match its record: sha256 {actual[:16]}..., recorded "
                f"{sha256[:16]}... (changed after it was recorded); not served",
            )
        return ObjectBytes(key, data, sha256, content_type_for(key))
