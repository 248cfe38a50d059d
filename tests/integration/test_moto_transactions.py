"""The embedded stack's moto DynamoDB after `transactions_back_up_their_items`: a transaction that fails leaves every
item as it was, as moto's whole-table copy did, without copying the table (a cost that grew with it: the budgets
table keeps every reservation, and each reservation and settle is a transaction)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends

from hvr.local.moto_server import REGION, transactions_back_up_their_items

ACCOUNT = "123456789012"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    transactions_back_up_their_items()
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        for name, range_key in (("plain", None), ("ranged", "sk")):
            keys = [("pk", "HASH")] + ([(range_key, "RANGE")] if range_key else [])
            client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
                                AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys])
        yield client


def everything(ddb) -> dict[str, list]:
    return {name: sorted(map(str, ddb.scan(TableName=name)["Items"])) for name in ("plain", "ranged")}


def test_a_failed_transaction_leaves_every_item_as_it_was(ddb) -> None:
    ddb.put_item(TableName="plain", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    ddb.put_item(TableName="ranged", Item={"pk": {"S": "r"}, "sk": {"S": "1"}, "n": {"N": "1"}})
    before = everything(ddb)
    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": "plain", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET n = n + :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": "plain", "Item": {"pk": {"S": "new"}}}},
            {"Delete": {"TableName": "ranged", "Key": {"pk": {"S": "r"}, "sk": {"S": "1"}}}},
            {"Put": {"TableName": "ranged", "Item": {"pk": {"S": "r"}, "sk": {"S": "2"}}}},
            {"ConditionCheck": {"TableName": "plain", "Key": {"pk": {"S": "missing"}},
                                "ConditionExpression": "attribute_exists(pk)"}},
        ])
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert everything(ddb) == before


def test_a_transaction_that_succeeds_writes_everything_and_copies_no_table(ddb) -> None:
    table = dynamodb_backends[ACCOUNT][REGION].tables["plain"]
    ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "plain", "Item": {"pk": {"S": "b"}}}}])
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "plain", "Item": {"pk": {"S": "c"}},
                                                         "ConditionExpression": "attribute_exists(pk)"}}])
    # moto's own rollback put back a copy of the whole table; the table is now never copied, so it is the same one.
    assert dynamodb_backends[ACCOUNT][REGION].tables["plain"] is table
    assert [i["pk"]["S"] for i in ddb.scan(TableName="plain")["Items"]] == ["b"]
