"""boto3 clients, one per (service, endpoint) per process. boto3 is built lazily so imports stay cheap."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

# Standard retry mode retries throttles and 5xx with backoff; conditional-check failures are never retried.
_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)
# SigV4 presigned URLs: boto3 was seen signing us-east-1 S3 URLs the legacy way (`Expires=`, SigV2 style).
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))


@cache
def client(service: str, endpoint_url: str | None = None, region: str | None = None) -> Any:
    import boto3

    session = boto3.session.Session()
    made = session.client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint_url, region_name=region, config=_S3_CONFIG if service == "s3" else _CONFIG
    )
    MADE.append(made)
    for hook in CLIENT_HOOKS:
        hook(made)
    return made


# Every client made, and hooks called with each one as it is made: how the embedded stack's AWS chaos
# (hvr/local/chaos.py) reaches every client, those made before it starts and after. No hook in a deployment.
MADE: list[Any] = []
CLIENT_HOOKS: list[Callable[[Any], None]] = []


def put_new(dynamodb: Any, table: str, item: dict[str, Any], key: str) -> bool:
    """Write the item unless one with its key is there already (False then): the write-once of ledger rows,
    findings, nonces, campaigns and keys."""
    try:
        dynamodb.put_item(TableName=table, Item=item, ConditionExpression=f"attribute_not_exists({key})")
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def query_all(dynamodb: Any, **query: Any) -> Iterator[dict[str, Any]]:
    """Every item a DynamoDB Query finds, page after page."""
    while True:
        page = dynamodb.query(**query)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        query = {**query, "ExclusiveStartKey": page["LastEvaluatedKey"]}
