"""The object store keeps every version, on a local folder and over HTTP against an S3 API."""

from __future__ import annotations

import hashlib

import boto3
import pytest

from ibkr_assets.storage.object_store import (
    LocalObjectStore,
    ObjectStoreError,
    S3ObjectStore,
    get_verified,
    put_versioned,
    version_key,
)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3ObjectStore(
        f"bucket-{tmp_path.name.lower().replace('_', '-')[:40]}", endpoint_url=endpoint
    )


KEY = "trading-data/AAPL/raw/2025-01-02_sample.json"


def test_write_keeps_the_latest_copy_at_the_seed_key_and_an_immutable_version(store):
    stored = put_versioned(store, KEY, b'{"v":1}', "application/json")
    assert stored.sha256 == hashlib.sha256(b'{"v":1}').hexdigest()
    assert stored.version_key == version_key(KEY, stored.sha256)
    assert stored.version_key.startswith("trading-data/AAPL/raw/2025-01-02_sample.")
    assert store.get(KEY) == b'{"v":1}'
    assert store.get(stored.version_key) == b'{"v":1}'


def test_rewriting_a_key_never_destroys_the_bytes_an_earlier_record_points_to(store):
    first = put_versioned(store, KEY, b'{"v":1}', "application/json")
    second = put_versioned(store, KEY, b'{"v":2}', "application/json")
    assert first.version_key != second.version_key
    assert store.get(KEY) == b'{"v":2}'
    assert get_verified(store, first.version_key, first.sha256) == b'{"v":1}'


def test_verified_read_detects_changed_bytes(store):
    stored = put_versioned(store, KEY, b'{"v":1}', "application/json")
    store.put(stored.version_key, b"tampered", "application/json")
    with pytest.raises(ObjectStoreError, match="changed after it was recorded"):
        get_verified(store, stored.version_key, stored.sha256)


def test_missing_object_is_a_clear_error(store):
    with pytest.raises(ObjectStoreError, match="no-such-key.json"):
        store.get("trading-data/AAPL/raw/no-such-key.json")


@pytest.mark.parametrize("key", ["../outside.json", "a/../../outside.json", "/tmp/outside.json"])
def test_local_store_refuses_keys_that_escape_its_root(tmp_path, key):
    with pytest.raises(ObjectStoreError, match="escapes the store root"):
        LocalObjectStore(tmp_path / "objects").put(key, b"x", "application/json")
    assert not (tmp_path / "outside.json").exists()


def test_local_store_keys_with_dot_segments_stay_inside(tmp_path):
    store = LocalObjectStore(tmp_path / "objects")
    store.put("a/./b/../c.json", b"x", "application/json")
    assert (tmp_path / "objects" / "a" / "c.json").read_bytes() == b"x"
    assert store.get("a/c.json") == b"x"


def test_s3_objects_are_reachable_with_a_plain_client_at_the_endpoint(s3_endpoint):
    store = S3ObjectStore("plain-client-check", endpoint_url=s3_endpoint)
    stored = put_versioned(store, KEY, b"hello", "application/json")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="plain-client-check")["Contents"]}
    assert keys == {KEY, stored.version_key}
    assert store.uri(KEY) == f"s3://plain-client-check/{KEY}"


def test_a_value_is_encoded_once_for_its_lineage_row_and_its_write(monkeypatch):
    import datetime as dt

    from ibkr_assets.domain.skipped import Skipped
    from ibkr_assets.storage import layout

    def closed() -> Skipped:
        return Skipped("AAPL", dt.date(2025, 3, 14), "market_closed", "holiday")

    encodes = []
    real = layout.encode
    monkeypatch.setattr(layout, "encode", lambda value: encodes.append(value) or real(value))
    value = closed()
    first = layout.plan("momentum", "trading_signal", "AAPL", "2025-03-14", value)
    again = layout.plan("momentum", "trading_signal", "AAPL", "2025-03-14", value)
    assert again is first and len(encodes) == 1
    equal = layout.plan("momentum", "trading_signal", "AAPL", "2025-03-14", closed())
    assert equal == first and len(encodes) == 2  # another object: encoded again
    elsewhere = layout.plan("other", "trading_signal", "AAPL", "2025-03-14", value)
    assert elsewhere.key != first.key and len(encodes) == 3
