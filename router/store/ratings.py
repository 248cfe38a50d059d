"""Ratings and each offer's exact tally of them, in the ledger table (the API and the worker already hold it).

- A rating: `pk = RATINGS#<YYYY-MM>`, `sk = <YYYY-MM-DD>#T#<tenant>#J#<job id>#R#<rater>`, the month and day its
  job delivered (UTC). One item per job and rater key: rating again puts over it. A report over a window reads one
  partition per month, days by sort-key range; a job's ratings are one prefix of its day. The pairwise preference
  (`preferred_over` and the losing job's offer) is in the item, for preference shares now and experiments later.
- A tally: `pk = QUALITY`, `sk = O#<offer id>`, with `n`, `total` and `squares` (sums of scores and squared scores,
  integers). The routing context reads every tally with one query.

A rating and its tally move in one transaction, the rating conditional on the version read, so a replaced score
leaves its offer's tally and never counts twice, whatever races it. No item here has a `period`: the ledger's
`by_period` index (cost reports, budgets) never sees them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from botocore.exceptions import ClientError

from router.errors import Conflict
from router.models.rating import Rating, ScoreTally
from router.store.aws import query_all
from router.store.errors import aws_errors

PREFIX = "RATINGS#"
TALLY_PK = "QUALITY"


def months_between(first: date, last: date) -> list[str]:
    """The calendar months (`YYYY-MM`) from `first` to `last`, in order."""
    year, month, found = first.year, first.month, []
    while (year, month) <= (last.year, last.month):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def rating_key(rating: Rating) -> dict[str, Any]:
    return _key(rating.tenant, rating.job_id, rating.delivered_on, rating.rater)


def _key(tenant: str, job_id: str, day: date, rater: str) -> dict[str, Any]:
    return {"pk": {"S": f"{PREFIX}{day.isoformat()[:7]}"},
            "sk": {"S": f"{day.isoformat()}#T#{tenant}#J#{job_id}#R#{rater}"}}


@aws_errors
class RatingsRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def put(self, rating: Rating, tries: int = 5) -> Rating | None:
        """Store the rating and move its offer's tally; the rating it replaced (same job and rater), if any."""
        key = rating_key(rating)
        for _ in range(tries):
            item = self._ddb.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            before = Rating.model_validate_json(item["doc"]["S"]) if item else None
            version = int(item["version"]["N"]) if item else 0
            old = before.score if before else 0
            put: dict[str, Any] = {
                "TableName": self._table,
                "Item": {**key, "tenant": {"S": rating.tenant}, "offer": {"S": rating.offer},
                         "version": {"N": str(version + 1)}, "doc": {"S": rating.model_dump_json()}},
                "ConditionExpression": "version = :v" if item else "attribute_not_exists(pk)"}
            if item:
                put["ExpressionAttributeValues"] = {":v": {"N": str(version)}}
            tally = {"TableName": self._table, "Key": {"pk": {"S": TALLY_PK}, "sk": {"S": f"O#{rating.offer}"}},
                     "UpdateExpression": "ADD n :n, #total :t, squares :q",
                     "ExpressionAttributeNames": {"#total": "total"},
                     "ExpressionAttributeValues": {
                         ":n": {"N": "0" if before else "1"}, ":t": {"N": str(rating.score - old)},
                         ":q": {"N": str(rating.score * rating.score - old * old)}}}
            try:
                self._ddb.transact_write_items(TransactItems=[{"Put": put}, {"Update": tally}])
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "TransactionCanceledException" and _lost_race(exc):
                    continue
                raise
            return before
        raise Conflict("the job's rating changed under every try: rate it again")

    def for_job(self, tenant: str, job_id: str, delivered_on: date) -> list[Rating]:
        """Every rater's rating of the job, by rater."""
        day = delivered_on.isoformat()
        return self._query(f"{PREFIX}{day[:7]}", "begins_with(sk, :from)",
                           {":from": {"S": f"{day}#T#{tenant}#J#{job_id}#R#"}})

    def between(self, first: date, last: date, tenant: str | None = None) -> list[Rating]:
        """The ratings of jobs delivered on the days from `first` to `last` (both inclusive), one tenant's or all."""
        found: list[Rating] = []
        for month in months_between(first, last):
            found += self._query(f"{PREFIX}{month}", "sk BETWEEN :from AND :to",
                                 {":from": {"S": first.isoformat()}, ":to": {"S": f"{last.isoformat()}#~"}})
        return [r for r in found if tenant is None or r.tenant == tenant]

    def tallies(self) -> dict[str, ScoreTally]:
        """Every offer's tally, by offer id: one query, for each routing context."""
        return {item["sk"]["S"].removeprefix("O#"): ScoreTally(
                    n=int(item["n"]["N"]), total=int(item["total"]["N"]), squares=int(item["squares"]["N"]))
                for item in query_all(self._ddb, TableName=self._table, KeyConditionExpression="pk = :pk",
                                      ExpressionAttributeValues={":pk": {"S": TALLY_PK}})}

    def _query(self, pk: str, condition: str, values: dict[str, Any]) -> list[Rating]:
        return [Rating.model_validate_json(item["doc"]["S"]) for item in query_all(
            self._ddb, TableName=self._table, KeyConditionExpression=f"pk = :pk AND {condition}",
            ExpressionAttributeValues={":pk": {"S": pk}, **values})]


def _lost_race(exc: ClientError) -> bool:
    """The transaction failed on the rating's condition (someone rated in between), not on anything else."""
    reasons = exc.response.get("CancellationReasons") or []
    return any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons)
