"""The S3-backed stores and their twins, one set of tests: artifacts (outputs and uploads) and the ledger export."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from hvr.memory import MemoryArtifacts, MemoryExports
from router.store.artifacts import ArtifactStore
from router.store.errors import StoreUnavailable
from router.store.exports import LedgerExport
from router.store.protocols import Artifacts, LedgerExports
from tests.contract.conftest import moto_client
from tests.contract.test_stores import NOW, entry


@dataclass(frozen=True)
class Objects:
    artifacts: Artifacts
    exports: LedgerExports


@pytest.fixture(params=["s3", "memory"])
def objects(request: pytest.FixtureRequest) -> Objects:
    bucket = f"hvr-{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        return Objects(MemoryArtifacts(bucket), MemoryExports())
    s3 = moto_client("s3", request.getfixturevalue("moto_url"))
    s3.create_bucket(Bucket=bucket)
    return Objects(ArtifactStore(s3, bucket), LedgerExport(s3, bucket))


def test_an_uploaded_object_has_its_size_and_downloads_whole(objects: Objects, tmp_path: Path) -> None:
    body = bytes(range(256)) * 4099  # over a megabyte: the download copies in chunks
    objects.artifacts.upload_stream("outputs/acme/job_1/att_1.mp4", io.BytesIO(body))
    assert objects.artifacts.size("outputs/acme/job_1/att_1.mp4") == len(body)
    path = objects.artifacts.download("outputs/acme/job_1/att_1.mp4", directory=str(tmp_path))
    assert path.parent == tmp_path and path.suffix == ".mp4" and path.read_bytes() == body


def test_a_missing_object_has_no_size_and_cannot_be_downloaded(objects: Objects) -> None:
    assert objects.artifacts.size("outputs/acme/job_1/none.mp4") is None
    with pytest.raises(StoreUnavailable):  # never asked for by the services: finalize checks the size first
        objects.artifacts.download("outputs/acme/job_1/none.mp4")


def test_presigned_urls_name_the_bucket_and_the_key(objects: Objects) -> None:
    key = "uploads/acme/in_1.png"
    for url in (objects.artifacts.presign_put(key, content_type="image/png"), objects.artifacts.presign_get(key)):
        assert objects.artifacts.bucket in url and key in url


def test_the_export_keeps_one_row_per_attempt_by_day(objects: Objects) -> None:
    objects.exports.write(entry("att_1"))
    objects.exports.write(entry("att_1", actual="0.2000"))  # written again: the same object, rewritten
    objects.exports.write(entry("att_2", tenant="beta"))
    objects.exports.write(entry("att_3", ended_at=NOW + timedelta(days=1)))
    day = NOW.date().isoformat()
    rows = objects.exports.read_day(day)
    assert sorted((r.tenant, r.attempt_id, str(r.actual_usd)) for r in rows) == [
        ("acme", "att_1", "0.2000"), ("beta", "att_2", "0.1000")]
    assert [r.attempt_id for r in objects.exports.read_day((NOW + timedelta(days=1)).date().isoformat())] == ["att_3"]
