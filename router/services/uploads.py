"""Client uploads (input images, audio, masks, videos): presigned PUTs into the tenant's own prefix, checked on use."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from pydantic import BaseModel

from router.models.common import iso
from router.models.request import VideoRequest
from router.services.deps import Deps

UPLOAD_TTL_S = 3600
MB = 1024 * 1024
# content type → (file extension, size cap)
UPLOAD_TYPES: dict[str, tuple[str, int]] = {
    "image/png": (".png", 20 * MB),
    "image/jpeg": (".jpg", 20 * MB),
    "image/webp": (".webp", 20 * MB),
    "audio/wav": (".wav", 50 * MB),
    "audio/mpeg": (".mp3", 50 * MB),
    "video/mp4": (".mp4", 200 * MB),
}
# The single-ref input fields; `reference_images` is a list of up to 4 more (VideoRequest.input_refs lists them all).
INPUT_FIELDS = ("image", "audio", "mask", "last_image", "video")


def upload_prefix(tenant: str) -> str:
    """Where a tenant's uploads are written, and the only place its jobs may read `s3://` inputs from."""
    return f"uploads/{tenant}/"


def own_upload_key(ref: str, tenant: str, bucket: str) -> str | None:
    """The key an `s3://` ref names when it is one of the tenant's uploads in our bucket; None for anything else.

    Uploads are one flat name under the prefix, so a ref with more path (`uploads/t2/../t1/x.png`) is not one."""
    parts = urlsplit(ref)
    key = parts.path.lstrip("/")
    name = key.removeprefix(upload_prefix(tenant))
    if parts.scheme != "s3" or parts.netloc != bucket or name == key or not name or "/" in name:
        return None
    return key


def foreign_refs(request: VideoRequest, tenant: str, bucket: str) -> list[str]:
    """The input fields whose `s3://` ref is not one of the tenant's own uploads (https URLs are the client's)."""
    return [field for field, _key, ref in request.input_refs() if ref.startswith("s3://")
            and own_upload_key(ref, tenant, bucket) is None]


class UploadTicket(BaseModel):
    upload_url: str
    ref: str
    expires_at: str
    max_bytes: int


def presign_upload(tenant: str, content_type: str, deps: Deps, now: datetime) -> UploadTicket:
    extension, cap = UPLOAD_TYPES[content_type]
    key = f"{upload_prefix(tenant)}{uuid.uuid4().hex}{extension}"
    return UploadTicket(
        upload_url=deps.artifacts.presign_put(key, content_type=content_type, expires_s=UPLOAD_TTL_S),
        ref=f"s3://{deps.artifacts.bucket}/{key}",
        expires_at=iso(now + timedelta(seconds=UPLOAD_TTL_S)),
        max_bytes=cap,
    )


def check_input_refs(request: VideoRequest, tenant: str, deps: Deps) -> list[dict[str, str]]:
    """Field errors for `s3://` inputs that aren't this tenant's finished uploads within their size cap.

    A presigned PUT can't bound its size, so the cap is enforced here, before any job exists.
    """
    errors = []
    for field, _key, ref in request.input_refs():
        if not ref.startswith("s3://"):
            continue
        key = own_upload_key(ref, tenant, deps.artifacts.bucket)
        if key is None:
            errors.append({"field": field, "message": "must be a ref returned by POST /v1/uploads"})
            continue
        size = deps.artifacts.size(key)
        cap = next((c for ext, c in UPLOAD_TYPES.values() if key.endswith(ext)), 0)
        if size is None:
            errors.append({"field": field, "message": "nothing was uploaded to this ref"})
        elif size > cap:
            errors.append({"field": field, "message": f"upload is {size} bytes; the cap is {cap}"})
    return errors
