"""router.store.aws.query_all: every page of a Query, each asked from where the last one stopped."""

from __future__ import annotations

from typing import Any

from router.store.aws import query_all


class PagedTable:
    """A Query that answers two items a page, as DynamoDB pages at 1 MB."""

    def __init__(self, items: list[int]) -> None:
        self.items = items
        self.asked: list[dict[str, Any]] = []

    def query(self, **args: Any) -> dict[str, Any]:
        self.asked.append(args)
        start = args.get("ExclusiveStartKey", {}).get("n", 0)
        page = self.items[start:start + 2]
        answer: dict[str, Any] = {"Items": [{"n": n} for n in page]}
        if start + 2 < len(self.items):
            answer["LastEvaluatedKey"] = {"n": start + 2}
        return answer


def test_every_page_is_read_from_where_the_last_stopped() -> None:
    table = PagedTable(list(range(5)))
    assert [item["n"] for item in query_all(table, TableName="t", KeyConditionExpression="pk = :pk")] == [0, 1, 2, 3, 4]
    assert [args.get("ExclusiveStartKey") for args in table.asked] == [None, {"n": 2}, {"n": 4}]
    assert all(args["TableName"] == "t" for args in table.asked)
    assert list(query_all(PagedTable([]), TableName="t")) == []
