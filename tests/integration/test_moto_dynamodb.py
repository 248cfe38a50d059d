"""The embedded stack's moto DynamoDB after its patches, whose costs grew with a table's size:

- `transactions_back_up_their_items`: a transaction that fails leaves every item as it was, as moto's whole-table
  copy did, without copying the table (the budgets table keeps every reservation, and each reservation and settle
  is a transaction);
- `queries_read_one_partition`: a Query of the table's key returns what it did, reading only that partition."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table

from hvr.local.moto_server import REGION, queries_read_one_partition, transactions_back_up_their_items

ACCOUNT = "123456789012"


@pytest.fixture
def ddb(in_process_aws: None) -> object:
    transactions_back_up_their_items()
    queries_read_one_partition()
    client = boto3.client("dynamodb", region_name=REGION)
    for name, range_key in (("plain", None), ("ranged", "sk")):
        keys = [("pk", "HASH")] + ([(range_key, "RANGE")] if range_key else [])
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
                            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys])
    return client


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



def fill(ddb) -> list[dict]:
    rows = [{"pk": {"S": f"p{p}"}, "sk": {"S": f"{r:03d}"}, "n": {"N": str(r % 4)}}
            for p in range(5) for r in range(12)]
    for row in rows:
        ddb.put_item(TableName="ranged", Item=row)
    for p in range(5):
        ddb.put_item(TableName="plain", Item={"pk": {"S": f"p{p}"}, "n": {"N": str(p)}})
    return rows


def pages(ddb, **query) -> list[dict]:
    items, start = [], {}
    while True:
        page = ddb.query(**query, **start)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


@pytest.mark.parametrize(("condition", "values", "wanted"), [
    ("pk = :p", {}, lambda sk: True),
    ("pk = :p AND sk BETWEEN :a AND :b", {":a": {"S": "003"}, ":b": {"S": "007"}}, lambda sk: "003" <= sk <= "007"),
    ("pk = :p AND begins_with(sk, :a)", {":a": {"S": "01"}}, lambda sk: sk.startswith("01")),
    ("pk = :p AND sk < :a", {":a": {"S": "005"}}, lambda sk: sk < "005"),
])
@pytest.mark.parametrize("forward", [True, False])
def test_a_query_of_the_tables_key_answers_as_before_page_by_page(ddb, condition, values, wanted, forward) -> None:
    rows = fill(ddb)
    expected = sorted((r for r in rows if r["pk"]["S"] == "p2" and wanted(r["sk"]["S"]) and r["n"]["N"] != "0"),
                      key=lambda r: r["sk"]["S"], reverse=not forward)
    got = pages(ddb, TableName="ranged", KeyConditionExpression=condition, FilterExpression="n <> :zero",
                ExpressionAttributeValues={":p": {"S": "p2"}, ":zero": {"N": "0"}, **values},
                ScanIndexForward=forward, Limit=3)
    assert got == expected
    assert pages(ddb, TableName="plain", KeyConditionExpression="pk = :p",
                 ExpressionAttributeValues={":p": {"S": "p3"}}) == [{"pk": {"S": "p3"}, "n": {"N": "3"}}]
    assert pages(ddb, TableName="ranged", KeyConditionExpression="pk = :p",
                 ExpressionAttributeValues={":p": {"S": "nobody"}}) == []


def test_a_query_of_the_tables_key_reads_no_other_partition(ddb, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(ddb)

    def every_item(_table: Table) -> list:
        raise AssertionError("read every item of the table")

    monkeypatch.setattr(Table, "all_items", every_item)
    assert len(pages(ddb, TableName="ranged", KeyConditionExpression="pk = :p",
                     ExpressionAttributeValues={":p": {"S": "p1"}})) == 12
