"""The embedded moto server finds each request's service without listing moto's package folder every time
(`services_listed_once`): the listing ran under the server's one lock on every AWS call."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import moto
import pytest

from hvr.local.moto_server import LOCAL_ENV, REGION

MOTO_DIR = os.path.dirname(moto.__file__)


def test_requests_are_routed_without_listing_motos_folder(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[str] = []
    real_listdir = os.listdir

    def counting_listdir(path: str | os.PathLike[str] = ".") -> list[str]:
        if Path(path) == Path(MOTO_DIR):
            listed.append(str(path))
        return real_listdir(path)

    credentials = {"aws_access_key_id": LOCAL_ENV["AWS_ACCESS_KEY_ID"],
                   "aws_secret_access_key": LOCAL_ENV["AWS_SECRET_ACCESS_KEY"]}
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION, **credentials)
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name=REGION, **credentials)
    # The first call of each service loads its model, listing moto's folder once (cached by botocore's loader).
    dynamodb.create_table(TableName="routed", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    url = sqs.create_queue(QueueName="routed")["QueueUrl"]

    monkeypatch.setattr(os, "listdir", counting_listdir)
    for n in range(5):
        dynamodb.put_item(TableName="routed", Item={"k": {"S": str(n)}})
    sqs.send_message(QueueUrl=url, MessageBody="hello")

    assert dynamodb.scan(TableName="routed")["Count"] == 5
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["hello"]
    assert listed == []


def test_the_services_listed_are_motos_folders(moto_url: str) -> None:
    import moto.backends

    folders = sorted(entry for entry in os.listdir(MOTO_DIR)
                     if os.path.isdir(os.path.join(MOTO_DIR, entry)) and not entry.startswith("__"))
    assert list(moto.backends.list_of_moto_modules()) == folders
    assert {"dynamodb", "sqs", "s3", "sns"} <= set(folders)
