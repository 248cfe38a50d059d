"""moto as a real HTTP server on loopback, behind one lock.

moto's backends are not thread-safe: two requests interleaving inside a conditional write can both "succeed".
Serializing every request keeps the emulation honest while many clients (worker, agent uploads, tests) talk to it.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

REGION = "us-east-1"
LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


PUT_ITEM = "DynamoDB_20120810.PutItem"


_sped_up: list[bool] = []  # once per process: moto's state is the process's


def speed_up_sqs() -> None:
    """Take two costs out of moto's SQS that grow with the queue's depth, giving the same answers.

    moto 5.x checks each message a receive returns against the queue's retention period by building every queue
    attribute, which counts the queue's visible, delayed and in-flight messages: three passes over the whole queue
    per message received, and a send builds them once more. Each check of a message's time calls `utcnow` twice.
    With a job's poll chain always holding a delayed message, the 60-job storm spent 45 % of its CPU there, and the
    cost grew with the square of the jobs in flight. Here the retention check reads the one attribute it needs, and
    SQS's clock is `time.time()` (the same epoch seconds moto derives from `utcnow`)."""
    import moto.sqs.models as sqs_models

    if _sped_up:
        return
    original_seconds, original_millis = sqs_models.unix_time, sqs_models.unix_time_millis

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original_seconds(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original_millis(dt)

    def within_retention(backend: Any, queue_name: str, message: Any) -> bool:
        retention_s = int(backend.get_queue(queue_name).message_retention_period)
        return bool(retention_s + message.sent_timestamp / 1000 > time.time())

    sqs_models.unix_time, sqs_models.unix_time_millis = unix_time, unix_time_millis
    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = within_retention  # type: ignore[method-assign,assignment]
    _sped_up.append(True)


def transactions_back_up_their_items() -> None:
    """Make moto's TransactWriteItems back up the items it writes, not the whole of every table it touches.

    moto 5.x deep-copies each table a transaction names before applying it, to put the copy back if any operation
    fails: a cost that grows with the table. Every reservation and settle is a transaction over the budgets table,
    which keeps every reservation ever made, so the soak's time per job grew with the jobs before it (41 % of its
    CPU in that copy at 1,500 jobs). Here the tables are left as they are and the items the transaction names are
    copied instead, then put back the same way when moto rolls back: the same outcome for every item."""
    import copy

    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    backend_class = dynamodb_models.DynamoDBBackend
    if getattr(backend_class.transact_write_items, "backs_up_items", False):
        return
    whole_tables = backend_class.transact_write_items

    class TablesNotCopied:
        """moto's module-level `copy` as its transactions see it: a table "copied" is the table itself."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def backs_up_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Table, DynamoType, DynamoType | None, Any]] = []
        for entry in transact_items:
            for operation, op in entry.items():
                table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
                key = op.get("Item") if operation == "Put" else op.get("Key")
                if table is None or not isinstance(key, dict) or table.hash_key_attr not in key:
                    continue  # moto refuses it before writing anything
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
                if table.has_range_key and range_value is None:
                    continue
                saved.append((table, hash_value, range_value,
                              copy.deepcopy(table.get_item(hash_value, range_value))))
        try:
            whole_tables(backend, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(saved):
                if item is None:
                    table.delete_item(hash_value, range_value)
                elif range_value is not None:
                    table.items[hash_value][range_value] = item
                else:
                    table.items[hash_value] = item
            raise

    backs_up_items.backs_up_items = True  # type: ignore[attr-defined]
    dynamodb_models.copy = TablesNotCopied  # type: ignore[assignment]
    backend_class.transact_write_items = backs_up_items  # type: ignore[method-assign,assignment]


def queries_read_one_partition() -> None:
    """Make moto answer a Query of a table's own key from that key's partition rather than from every item.

    moto 5.x answers it by sorting every item of the table and keeping those with the hash key asked for, a cost
    that grows with the table: 20 % of the soak's CPU at 1,500 jobs (the ledger's and the learned figures' reads
    per finalize). Here moto sees only the partition asked for, sorted as before, so it returns the same pages.
    A Query of an index still reads every item, as moto keeps no index."""
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "one_partition", False):
        return
    every_item = Table.query

    def one_partition(table: Any, hash_key: Any, range_comparison: Any, range_objs: Any, limit: Any,
                      exclusive_start_key: Any, scan_index_forward: Any, projection_expressions: Any,
                      index_name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if index_name is not None or hash_key is None:
            return every_item(table, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                              scan_index_forward, projection_expressions, index_name, *args, **kwargs)
        partition = table.items.get(hash_key)
        items = [] if partition is None else list(partition.values()) if table.range_key_attr else [partition]
        items.sort(key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)
        table.all_items = lambda: items  # the instance's, for this call only
        try:
            return every_item(table, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                              scan_index_forward, projection_expressions, index_name, *args, **kwargs)
        finally:
            del table.all_items

    one_partition.one_partition = True  # type: ignore[attr-defined]
    Table.query = one_partition  # type: ignore[method-assign,assignment]


def stop_tracking_models() -> None:
    """Stop moto keeping every model object it ever made, for its dashboard (`/moto-api/data.json`).

    moto 5.x's `BaseModel.__new__` appends each instance to a class-wide list that nothing but the dashboard and a
    full reset reads. A DynamoDB `Item` is a model, and moto makes one for every item a call reads, writes or
    replaces, scans included: a 200-job storm left 129,000 of them alive beside the 800 its tables held, and with the
    sweeper scanning tables that grow, the count grew with the square of the jobs (the 10,000-job soak passed 15 GB
    at 1,600). Nothing of ours reads the dashboard; a reset still disposes of every S3 key its buckets hold."""
    from moto.core.common_models import BaseModel
    from moto.core.model_instances import reset_model_data

    if getattr(BaseModel.__new__, "untracked", False):
        return

    def untracked(cls: type, *_args: Any, **_kwargs: Any) -> Any:
        return object.__new__(cls)

    untracked.untracked = True  # type: ignore[attr-defined]
    BaseModel.__new__ = untracked  # type: ignore[method-assign]
    reset_model_data()  # and let go of those tracked so far


def services_listed_once() -> None:
    """List moto's service folders once, not on every request.

    moto's server finds the backend for each request by asking whether its host names a service, and answers that
    by listing moto's package folder and `isdir`-ing each of its 170-odd entries: about 0.3 ms of filesystem calls
    per AWS call, made under our one lock, so every other call waits on it too (4 % of the demo's busy time in a
    `py-spy` profile). The folders don't change while the process runs."""
    import moto.backends as backends

    if getattr(backends.list_of_moto_modules, "listed_once", False):
        return
    services = tuple(backends.list_of_moto_modules())

    def listed_once() -> tuple[str, ...]:
        return services

    listed_once.listed_once = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = listed_once


@dataclass(frozen=True)
class QueuedMessage:
    """A message as SQS holds it, visible or not: what a restart must put back."""

    body: str
    attributes: dict[str, Any]
    visible_at: float  # epoch seconds: when a receive can next return it (after a delay or a visibility timeout)


class LockedMotoServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 on_put_item: Callable[[dict[str, Any]], None] | None = None) -> None:
        """`on_put_item`: called with the request of every PutItem that succeeded (`hvr dev`'s job transitions)."""
        self._host, self._port = host, port
        self.on_put_item = on_put_item
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> LockedMotoServer:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        speed_up_sqs()
        transactions_back_up_their_items()
        queries_read_one_partition()
        stop_tracking_models()
        services_listed_once()
        app = DomainDispatcherApplication(create_backend_app)

        def locked(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            put_item = self.on_put_item is not None and environ.get("HTTP_X_AMZ_TARGET") == PUT_ITEM
            if put_item:
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                environ["wsgi.input"] = io.BytesIO(body)
            status: list[str] = []

            def starting(code: str, headers: Any, *exc: Any) -> Any:
                status.append(code)
                return start_response(code, headers, *exc)

            with self._lock:
                # Drain the response inside the lock: moto builds some bodies lazily from live state.
                response = list(app(environ, starting))
            if put_item and status and status[0].startswith("200") and self.on_put_item is not None:
                try:
                    self.on_put_item(json.loads(body))
                except Exception:  # a watcher's fault must not fail the write it watched
                    logging.getLogger(__name__).exception("on_put_item failed")
            return response

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                """One line per AWS call drowns the demo's output; errors are still logged."""

        self._server = make_server(self._host, self._port, locked, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self._host}:{self._server.server_port}"

    def queue_messages(self, account: str, region: str, queue_name: str) -> list[QueuedMessage]:
        """Every message the queue holds, in flight and delayed ones too, which no SQS call lists: read from
        moto's own queue (moto 5.x's `Queue._messages`), under the lock so no call changes it meanwhile."""
        from moto.sqs.models import sqs_backends

        with self._lock:
            queue = sqs_backends[account][region].queues[queue_name]
            return [QueuedMessage(body=m.body, attributes=dict(m.message_attributes),
                                  visible_at=max(m.visible_at, m.delayed_until) / 1000) for m in queue._messages]

    def stop(self) -> None:
        if self._server is None or self._thread is None:  # not running: the process's moto state isn't its to wipe
            return
        # moto keeps one state per process, shared by every server in it: wipe it so the next stack starts empty.
        from moto.moto_api._internal.models import moto_api_backend

        with self._lock:
            moto_api_backend.reset()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> LockedMotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
