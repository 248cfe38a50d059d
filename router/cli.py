"""`hvr`: run the whole stack locally (`hvr dev`) and talk to an hvr API, local or deployed.

Client commands speak plain HTTP to the API of ARCHITECTURE §4 and read nothing else of the project, so the same
commands work against `hvr dev` and against a deployed stage. Exit codes: 0 done, 1 the job did not succeed or the
server/connection failed, 2 the request was refused (4xx) or the command line was wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8787"
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired", "rejected"})


class ApiError(Exception):
    def __init__(self, lines: list[str], status: int | None = None) -> None:
        super().__init__("\n".join(lines))
        self.lines, self.status = lines, status

    @property
    def exit_code(self) -> int:
        return 2 if self.status is not None and 400 <= self.status < 500 else 1


def _problem_lines(response: httpx.Response) -> list[str]:
    """problem+json as a person reads it: title and detail, then each field and each routing reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return [f"error {response.status_code}: {response.text[:500] or response.reason_phrase}"]
    if "title" not in body and "message" in body:  # API Gateway's own refusals (401, 403, 404, 413)
        return [f"error {response.status_code}: {body['message']}"]
    head = f"error {response.status_code}: {body.get('title') or response.reason_phrase}"
    lines = [f"{head}: {body['detail']}" if body.get("detail") else head]
    lines += [f"  {e.get('field') or '(request)'}: {e.get('message', '')}" for e in body.get("errors") or []]
    lines += [f"  - {reason}" for reason in body.get("reasons") or []]
    return lines


class ApiClient:
    def __init__(self, url: str, key: str | None, timeout_s: float = 30.0) -> None:
        self.url, self.has_key = url, bool(key)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)

    def call(self, method: str, path: str, *, body: bytes | None = None, json_body: Any = None,
             headers: dict[str, str] | None = None) -> Any:
        if json_body is not None:
            body = json.dumps(json_body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})} if body is not None else headers
        try:
            response = self._http.request(method, path, content=body, headers=sent)
        except httpx.HTTPError as exc:
            raise ApiError([f"cannot reach {self.url}: {exc}"]) from exc
        if response.status_code >= 400:
            lines = _problem_lines(response)
            if response.status_code == 401 and not self.has_key:
                lines.append("  (no API key: pass --api-key or set HVR_API_KEY)")
            raise ApiError(lines, response.status_code)
        return response.json() if response.content else None

    def download(self, url: str, path: Path) -> int:
        # A presigned URL carries its own signature; our Authorization header would make S3 refuse it.
        try:
            with httpx.stream("GET", url, timeout=120.0) as response:
                if response.status_code >= 400:
                    raise ApiError([f"download failed: HTTP {response.status_code}"], None)
                with path.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise ApiError([f"download failed: {exc}"]) from exc
        return path.stat().st_size

    def close(self) -> None:
        self._http.close()


class Progress:
    """A bar redrawn in place on a terminal; one line per change elsewhere, so logs stay readable."""

    WIDTH = 24

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last: tuple[str, int] | None = None

    def update(self, job: dict[str, Any]) -> None:
        status = str(job.get("status"))
        fraction = min(max(float(job.get("progress") or 0.0), 0.0), 1.0)
        state = (status, round(fraction * 100))
        if state == self._last and not self._tty:
            return
        self._last = state
        filled = round(fraction * self.WIDTH)
        line = f"{job.get('id')} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {state[1]:3d}% {status}"
        self._stream.write(f"\r{line}\x1b[K" if self._tty else f"{line}\n")
        self._stream.flush()

    def finish(self) -> None:
        if self._tty and self._last is not None:
            self._stream.write("\n")
            self._stream.flush()


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _read_request(path: str) -> bytes:
    """The file is sent as it is: the API validates it and names the offending field."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ApiError([f"cannot read {path}: {exc.strerror}"], 400) from exc


def _money(value: Any) -> str:
    return "-" if value is None else f"${value}"


def _when(value: Any, now: datetime) -> str:
    if not value:
        return "-"
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = max(0, round((at - now).total_seconds()))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    rel = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    return f"{at.astimezone(UTC):%H:%M:%S}Z (+{rel})"


def format_quote(quote: dict[str, Any], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    header = ("offer", "feasible", "score", "est. cost", "ready at", "reasons")
    rows = [(str(c.get("offer")), "yes" if c.get("feasible") else "no",
             f"{c['score']:.3f}" if isinstance(c.get("score"), int | float) else "-",
             _money(c.get("estimated_cost_usd")), _when(c.get("estimated_ready_at"), now),
             "; ".join(c.get("reasons") or []))
            for c in quote.get("candidates") or []]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)), row[5]]).rstrip()
             for row in [header, *rows]]
    chosen = quote.get("chosen")
    lines.append("")
    if chosen:
        lines.append(f"chosen: {chosen.get('offer')} on {chosen.get('target')}, "
                     f"{_money(chosen.get('estimated_cost_usd'))}, ready {_when(chosen.get('estimated_ready_at'), now)}"
                     + (f", score {chosen['score']:.3f}" if isinstance(chosen.get("score"), int | float) else ""))
        if chosen.get("reason"):
            lines.append(f"  why: {chosen['reason']}")
        if quote.get("fallbacks"):
            lines.append(f"  fallbacks: {', '.join(quote['fallbacks'])}")
    else:
        lines.append("chosen: none, no offer can take this request")
        lines += [f"  - {reason}" for reason in quote.get("reasons") or []]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- commands

def _wait(client: ApiClient, job: dict[str, Any], interval_s: float, progress: Progress) -> dict[str, Any]:
    # Nothing server-side pushes to the CLI; the job's progress field is refreshed by the worker's own polls.
    progress.update(job)
    try:
        while job.get("status") not in TERMINAL:
            time.sleep(interval_s)
            job = client.call("GET", f"/v1/jobs/{job['id']}")
            progress.update(job)
    finally:
        progress.finish()
    return job


def cmd_submit(client: ApiClient, args: argparse.Namespace) -> int:
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    job = client.call("POST", "/v1/jobs", body=_read_request(args.file), headers=headers)
    if args.no_wait:
        _print_json(job)
        return 0
    job = _wait(client, job, args.poll_interval, Progress(sys.stderr))
    succeeded = job.get("status") == "succeeded"
    if not succeeded and job.get("error"):
        print(f"{job['id']} {job['status']}: {job['error'].get('code')}: {job['error'].get('message')}",
              file=sys.stderr)
    if succeeded and args.download:
        url = (job.get("output") or {}).get("url")
        if not url:
            raise ApiError([f"{job['id']} has no output URL to download"])
        size = client.download(url, Path(args.download))
        print(f"saved {args.download} ({size} bytes)", file=sys.stderr)
    _print_json(job)
    return 0 if succeeded else 1


def cmd_status(client: ApiClient, args: argparse.Namespace) -> int:
    _print_json(client.call("GET", f"/v1/jobs/{args.id}"))
    return 0


def cmd_quote(client: ApiClient, args: argparse.Namespace) -> int:
    quote = client.call("POST", "/v1/quotes", body=_read_request(args.file))
    print(format_quote(quote))
    return 0 if quote.get("chosen") else 1


def cmd_keys_create(client: ApiClient, args: argparse.Namespace) -> int:
    role = "admin" if args.admin else "member"
    created = client.call("POST", "/v1/keys", json_body={"tenant": args.tenant, "role": role})
    # The key alone on stdout, so `KEY=$(hvr keys create …)` works; it is stored hashed and never shown again.
    print(created["key"])
    print(f"{created.get('role', role)} key for tenant {created.get('tenant', args.tenant)} created "
          f"{created.get('created_at', '')}; it is shown only once", file=sys.stderr)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from router.sandbox.all import serve

    return serve()


def cmd_dev(args: argparse.Namespace) -> int:
    from router.local.embedded import run_dev  # the whole embedded stack: imported only when asked for

    return int(run_dev(port=args.port, time_scale=args.time_scale, api_keys=os.environ.get("HVR_DEV_API_KEYS")))


# ------------------------------------------------------------------------------------------------------------ parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hvr", description="Hybrid Video Router")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run the whole stack locally (moto, agent on sim, sandboxes, HTTP API)")
    dev.add_argument("--port", type=int, default=8787)
    dev.add_argument("--time-scale", type=float, default=None,
                     help="modelled seconds per wall second (default: the largest sample renders in ~10 s)")
    dev.set_defaults(run=cmd_dev, client=False)

    sandbox = commands.add_parser("sandbox", help="serve the RunPod, Replicate and Veo sandboxes alone, on loopback")
    sandbox.set_defaults(run=cmd_sandbox, client=False)

    api = argparse.ArgumentParser(add_help=False)
    api.add_argument("--api-url", default=os.environ.get("HVR_API_URL") or DEFAULT_API_URL,
                     help="API base URL (env HVR_API_URL; default %(default)s)")
    api.add_argument("--api-key", default=os.environ.get("HVR_API_KEY"), help="API key (env HVR_API_KEY)")

    submit = commands.add_parser("submit", parents=[api], help="submit a VideoRequest and wait for the result")
    submit.add_argument("file", help="VideoRequest JSON file, or - for stdin")
    submit.add_argument("--idempotency-key", help="same key + same body returns the same job")
    submit.add_argument("--no-wait", action="store_true", help="print the accepted job and return")
    submit.add_argument("--download", metavar="PATH", help="save the output video here once it succeeds")
    submit.add_argument("--poll-interval", type=float, default=1.0, metavar="SECONDS")
    submit.set_defaults(run=cmd_submit, client=True)

    status = commands.add_parser("status", parents=[api], help="print a job")
    status.add_argument("id")
    status.set_defaults(run=cmd_status, client=True)

    quote = commands.add_parser("quote", parents=[api], help="show where a request would go, and why")
    quote.add_argument("file", help="VideoRequest JSON file, or - for stdin")
    quote.set_defaults(run=cmd_quote, client=True)

    keys = commands.add_parser("keys", help="API keys (admin)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = key_commands.add_parser("create", parents=[api], help="create a key for a tenant; printed once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--admin", action="store_true", help="the admin role (budgets, keys)")
    create.set_defaults(run=cmd_keys_create, client=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.client:
        return int(args.run(args))
    run: Callable[[ApiClient, argparse.Namespace], int] = args.run
    client = ApiClient(args.api_url, args.api_key)
    try:
        return run(client, args)
    except ApiError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()
