"""What the embedded stack's moto patches (hvr/local/moto_server.py) save a call on a 10,000-item table, moto as
shipped against moto patched, each in a fresh process (the patches are for the life of a process). These costs grew
with the tables: the 10,000-job soak's time per job doubled by 1,500 jobs before them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, os, time
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
import boto3
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends
from hvr.local import moto_server
if {patched}:
    moto_server.transactions_back_up_their_items()
    moto_server.queries_read_one_partition()
keys = [("pk", "HASH"), ("sk", "RANGE")]
with mock_aws():
    ddb = boto3.client("dynamodb", region_name=moto_server.REGION)
    ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{{"AttributeName": a, "KeyType": t}} for a, t in keys],
                     AttributeDefinitions=[{{"AttributeName": a, "AttributeType": "S"}} for a, _ in keys])
    backend = dynamodb_backends["123456789012"][moto_server.REGION]
    for p in range(2000):
        for r in range(5):
            backend.put_item("t", {{"pk": {{"S": f"p{{p}}"}}, "sk": {{"S": str(r)}}}})
    started = time.perf_counter()
    for i in range(100):
        ddb.query(TableName="t", KeyConditionExpression="pk = :p",
                  ExpressionAttributeValues={{":p": {{"S": f"p{{i}}"}}}})
    query_ms = (time.perf_counter() - started) * 10
    started = time.perf_counter()
    for i in range(100):
        ddb.transact_write_items(TransactItems=[{{"Put": {{"TableName": "t",
                                                         "Item": {{"pk": {{"S": f"x{{i}}"}}, "sk": {{"S": "0"}}}}}}}}])
    transaction_ms = (time.perf_counter() - started) * 10
print(json.dumps({{"query_ms": round(query_ms, 2), "transaction_ms": round(transaction_ms, 2)}}))
"""


def per_call_ms(patched: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(patched=patched)], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_embedded_moto_calls_cost_the_same_whatever_the_tables_size(bench_record, capsys) -> None:
    shipped, patched = per_call_ms(False), per_call_ms(True)
    figures = {"items": 10_000, "shipped_ms": shipped, "patched_ms": patched,
               "speedup": {name: round(shipped[name] / patched[name], 1) for name in shipped}}
    bench_record("embedded_moto", "dynamodb_per_call", figures)
    with capsys.disabled():
        print(f"\n  embedded moto, a call on a 10,000-item table: {figures}")
    assert all(patched[name] < shipped[name] for name in shipped), figures
