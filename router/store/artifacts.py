"""Videos in S3: presigned PUT for the agent, streamed copies for provider outputs, presigned GET for clients."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from router.store.errors import aws_errors

OUTPUT_TTL_S = 3600 * 6
VIDEO_TYPE = "video/mp4"


def output_key(tenant: str, job_id: str, attempt_id: str) -> str:
    return f"outputs/{tenant}/{job_id}/{attempt_id}.mp4"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def key_of(uri: str) -> str:
    """The key an `s3_uri` names (one of ours: the bucket is the deployment's)."""
    return uri.split("/", 3)[3]


@aws_errors
class ArtifactStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def presign_put(self, key: str, content_type: str = VIDEO_TYPE, expires_s: int = OUTPUT_TTL_S) -> str:
        # The bucket's default encryption (SSE-S3) applies to presigned PUTs, so no SSE header is signed in.
        return str(
            self._s3.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=expires_s,
            )
        )

    def presign_get(self, key: str, expires_s: int = 3600) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
            )
        )

    def upload_stream(self, key: str, stream: BinaryIO, content_type: str = VIDEO_TYPE) -> None:
        """Multipart, streamed upload (never the whole video in memory), encrypted at rest."""
        self._s3.upload_fileobj(
            stream, self.bucket, key, ExtraArgs={"ContentType": content_type, "ServerSideEncryption": "AES256"}
        )

    def size(self, key: str) -> int | None:
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return int(head["ContentLength"])

    def download(self, key: str, directory: str | None = None) -> Path:
        """Stream an object to a temporary file (Lambda's /tmp) and return its path."""
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        with tempfile.NamedTemporaryFile(suffix=Path(key).suffix, dir=directory, delete=False) as handle:
            shutil.copyfileobj(body, handle, length=1 << 20)
        return Path(handle.name)
