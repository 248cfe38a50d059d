"""What arrives on the campaigns queue (docs/architecture.md, "Flow"; issue 8): our own step messages, and S3's
notices of a manifest dropped at `campaigns/<tenant>/<name>.jsonl`.

Apart from router.models.campaign because it reads a transport's envelope (S3 event notifications, their
URL-encoded keys, their test event), not a campaign: only the campaigns Lambda parses these and the store sends them.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from router.models.campaign import NAME_PATTERN

TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
MANIFEST_PREFIX = "campaigns/"


def manifest_key_parts(key: str) -> tuple[str, str] | None:
    """`campaigns/<tenant>/<name>.jsonl` → (tenant, name); None for any other key."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != MANIFEST_PREFIX or not parts[2].endswith(".jsonl"):
        return None
    tenant, name = parts[1], parts[2].removesuffix(".jsonl")
    if not TENANT_PATTERN.match(tenant) or not re.match(NAME_PATTERN, name):
        return None
    return tenant, name


class CampaignMessage(BaseModel):
    """A campaigns-queue message of our own: "do step N of this campaign" (what step N is, the record says)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["step"] = "step"
    tenant: str
    campaign_id: str
    step: int


class ManifestDrop(BaseModel):
    """One S3 `ObjectCreated` record of a manifest (the key already URL-decoded)."""

    model_config = ConfigDict(frozen=True)
    bucket: str
    key: str
    etag: str | None = None


def parse_queue_body(body: str) -> CampaignMessage | list[ManifestDrop]:
    """A campaigns-queue body: our own step message, or S3's notification (its test event gives no drops).

    S3 URL-encodes object keys in events (moto even encodes "/"), so keys are unquoted here."""
    from urllib.parse import unquote_plus

    data = json.loads(body)
    if isinstance(data, dict) and data.get("kind") == "step":
        return CampaignMessage.model_validate(data)
    if isinstance(data, dict) and data.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(data, dict) or not isinstance(data.get("Records"), list):
        raise ValueError("neither a campaign step nor an S3 event notification")
    drops = []
    for record in data["Records"]:
        if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        obj = record["s3"]["object"]
        etag = str(obj["eTag"]).strip('"') if obj.get("eTag") else None
        drops.append(ManifestDrop(bucket=record["s3"]["bucket"]["name"], key=unquote_plus(obj["key"]), etag=etag))
    return drops
