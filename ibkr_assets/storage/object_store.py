"""The object store: a local folder by default, S3/MinIO through ``endpoint_url``; same interface.

Every write keeps two objects: the seed-layout key (``trading-data/AAPL/raw/2025-01-02_sample.json``,
always the latest bytes, for people browsing) and an immutable version next to it named by the
content hash (``.../2025-01-02_sample.<sha256[:16]>.json``). Lineage rows point at the version,
so re-materializing a partition never destroys the bytes an earlier decision was based on.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class ObjectStoreError(Exception):
    """An object could not be written or read; the message names the key and the store."""


@dataclass(frozen=True)
class StoredObject:
    """Where one write went: ``version_key`` is immutable, ``key`` is the latest copy."""

    key: str
    version_key: str
    uri: str
    version_uri: str
    sha256: str
    size: int

    def to_json(self) -> dict:
        return {
            "uri": self.version_uri,
            "latest_uri": self.uri,
            "sha256": self.sha256,
            "bytes": self.size,
        }


def version_key(key: str, sha256: str) -> str:
    """``a/b/name.json`` -> ``a/b/name.<sha256[:16]>.json`` (URI-safe, sorts next to the latest)."""
    stem, dot, ext = key.rpartition(".")
    if not dot:
        return f"{key}.{sha256[:16]}"
    return f"{stem}.{sha256[:16]}.{ext}"


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def uri(self, key: str) -> str: ...


def put_versioned(store: ObjectStore, key: str, data: bytes, content_type: str) -> StoredObject:
    """Write ``data`` as a new immutable version and as the latest copy at ``key``."""
    digest = hashlib.sha256(data).hexdigest()
    vkey = version_key(key, digest)
    if not store.exists(vkey):
        store.put(vkey, data, content_type)
    store.put(key, data, content_type)
    return StoredObject(key, vkey, store.uri(key), store.uri(vkey), digest, len(data))


def get_verified(store: ObjectStore, key: str, sha256: str) -> bytes:
    """Read ``key`` and check its bytes still hash to ``sha256`` (what the lineage recorded)."""
    data = store.get(key)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ObjectStoreError(
            f"{store.uri(key)} has sha256 {actual[:16]}..., expected {sha256[:16]}... "
            "(the object was changed after it was recorded)"
        )
    return data


class LocalObjectStore:
    """Objects as files under ``root`` (the embedded default)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        # Lexically: resolve() would stat every folder of the path, for every object read or
        # written. The root itself is resolved once, above.
        path = Path(os.path.normpath(os.path.join(self.root, key)))
        if self.root not in path.parents:
            raise ObjectStoreError(f"object key {key!r} escapes the store root")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)  # atomic: readers never see half an object

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectStoreError(f"no object at {self.uri(key)}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def list_keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix`` (a folder such as ``trading-data/momentum/``)."""
        top = self._path(prefix) if prefix.strip("/") else self.root
        found = []
        for folder, _dirs, files in os.walk(top):
            rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
            rel = "" if rel == "." else f"{rel}/"
            found += [f"{rel}{name}" for name in files if not name.startswith(".tmp-")]
        return sorted(found)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3ObjectStore:
    """Objects in one S3 bucket (AWS, MinIO or any S3 API at ``endpoint_url``).

    Credentials come from the environment through boto3's usual chain
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), never from configuration.
    """

    def __init__(
        self, bucket: str, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}
            ),
        )
        self._checked_bucket = False

    def _ensure_bucket(self) -> None:
        if self._checked_bucket:
            return
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in {"404", "NoSuchBucket", "NotFound"}:
                raise ObjectStoreError(
                    f"cannot use bucket {self.bucket!r} at {self._where()}: {code}"
                ) from exc
            self._client.create_bucket(Bucket=self.bucket)
        self._checked_bucket = True

    def _where(self) -> str:
        return self.endpoint_url or "AWS S3"

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._ensure_bucket()
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise ObjectStoreError(
                f"cannot read {self.uri(key)} from {self._where()}: {exc}"
            ) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        self._ensure_bucket()
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def list_keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix``."""
        self._ensure_bucket()
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def delete(self, key: str) -> None:
        self._ensure_bucket()
        self._client.delete_object(Bucket=self.bucket, Key=key)
