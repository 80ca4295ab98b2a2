"""The object-store resource: which store (local folder or S3/MinIO) every asset writes to."""

from __future__ import annotations

from typing import Any, Literal

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.partitions import split_any
from ibkr_assets.storage import layout
from ibkr_assets.storage.object_store import (
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    version_key,
)


class ObjectStoreResource(dg.ConfigurableResource):
    """``kind="local"`` writes under ``local_root``; ``kind="s3"`` writes to ``s3_bucket`` at
    ``s3_endpoint_url`` (MinIO) or AWS. S3 credentials come from the AWS_* environment variables."""

    kind: Literal["local", "s3"] = "local"
    local_root: str = ".ibkr_assets/objects"
    s3_bucket: str = "ibkr-assets"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    _store: ObjectStore | None = PrivateAttr(default=None)

    def get_store(self) -> ObjectStore:
        if self._store is None:
            if self.kind == "s3":
                self._store = S3ObjectStore(self.s3_bucket, self.s3_endpoint_url, self.s3_region)
            else:
                self._store = LocalObjectStore(self.local_root)
        return self._store


def object_ref(
    resource: ObjectStoreResource, strategy_id: str, asset: str, partition_key: str, value: Any
) -> dict[str, str]:
    """Where the IO manager will store ``value``: the immutable version's URI and its sha256.

    Computed from the same canonical bytes the IO manager writes, so the lineage row written by
    the asset points at exactly the object that lands in the store.
    """
    day, symbol = split_any(partition_key)
    planned = layout.plan(strategy_id, asset, symbol, day, value)
    store = resource.get_store()
    vkey = version_key(planned.key, planned.sha256)
    return {"uri": store.uri(vkey), "latest_uri": store.uri(planned.key), "sha256": planned.sha256}
