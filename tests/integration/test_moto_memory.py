"""The embedded moto server keeps what its services hold and nothing more: moto's own tracking of every model object
it ever made (for its dashboard) once kept every DynamoDB item each call read or replaced, and the 10,000-job soak
ran out of memory at 1,600 jobs."""

from __future__ import annotations

import gc

from moto.dynamodb.models.dynamo_type import Item

from hvr.local.moto_server import LOCAL_ENV, LockedMotoServer
from router.store.aws import client


def live_items(marked: str) -> int:
    """Items alive in this process that carry the attribute `marked` (other stacks may be alive beside this one)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Item) and marked in o.attrs)


def test_items_read_and_replaced_through_the_server_are_not_kept(monkeypatch) -> None:
    for name, value in LOCAL_ENV.items():
        monkeypatch.setenv(name, value)
    with LockedMotoServer() as moto:
        dynamodb = client("dynamodb", moto.url)
        dynamodb.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
        for n in range(200):
            dynamodb.put_item(TableName="t", Item={"k": {"S": str(n % 5)}, "memory_probe": {"N": str(n)}})
            dynamodb.get_item(TableName="t", Key={"k": {"S": "0"}})
        assert dynamodb.scan(TableName="t")["Count"] == 5
        # The table's five, and a few a call in flight may still hold; before, all 200 writes' items were alive.
        assert live_items("memory_probe") <= 5 + 10, "moto kept items the table no longer holds"
