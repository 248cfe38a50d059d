"""A client of the hvr API (docs/architecture.md, "API contract"), local or deployed: requests, problem+json as
readable lines, downloads. Each answer is read into the API's own model where it arrives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ValidationError

from router.services.uploads import UploadTicket

DEFAULT_API_URL = "http://127.0.0.1:8787"


class ApiError(Exception):
    def __init__(self, lines: list[str], status: int | None = None) -> None:
        super().__init__("\n".join(lines))
        self.lines, self.status = lines, status

    @property
    def exit_code(self) -> int:
        return 2 if self.status is not None and 400 <= self.status < 500 else 1


class UnreadableAnswer(ApiError):
    """A 2xx body its API model refuses (a server of another version, say): the server's failure, so exit 1, with
    one line naming the first field at fault rather than a traceback."""

    def __init__(self, route: str, model: type[BaseModel], error: ValidationError) -> None:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(body)"
        more = error.error_count() - 1
        super().__init__([f"{route} answered a body that is not a {model.__name__}: {field}: {first['msg']}"
                          + (f" (and {more} more)" if more else "")])


M = TypeVar("M", bound=BaseModel)
# What `POST /v1/uploads` takes, by file suffix.
UPLOAD_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
                ".wav": "audio/wav", ".mp3": "audio/mpeg", ".mp4": "video/mp4"}


def _local(value: Any) -> bool:
    """`@path`: a local file to upload in place of an input ref."""
    return isinstance(value, str) and value.startswith("@")


@dataclass(frozen=True, slots=True)
class Answer(Generic[M]):
    """A response body as its API model, beside the JSON as the server sent it: commands act on the model and print
    the JSON, so what they print is the server's text, whatever the model would write back."""

    model: M
    json: Any
    status: int = 200  # 200 beside 201/202 tells "already there" from "created" (a campaign's name, say)


def problem_lines(response: httpx.Response) -> list[str]:
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


def _gateways_own(response: httpx.Response) -> bool:
    """API Gateway's own refusals are `{"message": …}`; the API's are problem+json."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "message" in body and "title" not in body


class ApiClient:
    def __init__(self, url: str, key: str | None, timeout_s: float = 30.0) -> None:
        self.url, self.has_key = url, bool(key)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)

    def answer(self, model: type[M], method: str, path: str, *, body: bytes | None = None, json_body: Any = None,
               headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> Answer[M]:
        status, sent = self._json(method, path, body=body, json_body=json_body, headers=headers, params=params)
        try:
            # Fields this CLI doesn't know are a newer server's additions (the API only ever adds): read past them.
            return Answer(model.model_validate(sent, extra="ignore"), sent, status)
        except ValidationError as exc:
            raise UnreadableAnswer(f"{method} {path}", model, exc) from None

    def call(self, model: type[M], method: str, path: str, *, body: bytes | None = None, json_body: Any = None,
             headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> M:
        return self.answer(model, method, path, body=body, json_body=json_body, headers=headers, params=params).model

    def _json(self, method: str, path: str, *, body: bytes | None, json_body: Any, headers: dict[str, str] | None,
              params: dict[str, str] | None) -> tuple[int, Any]:
        if params:
            path = f"{path}?{urlencode(params)}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})} if body is not None else headers
        try:
            response = self._http.request(method, path, content=body, headers=sent)
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__ or exc.__context__, ConnectionRefusedError) or "refused" in str(exc).lower():
                raise ApiError([f"connection refused at {self.url} — is `hvr dev` running? "
                                "(or pass --api-url / set HVR_API_URL)"]) from exc
            raise ApiError([f"cannot reach {self.url}: {exc}"]) from exc
        except httpx.HTTPError as exc:
            raise ApiError([f"cannot reach {self.url}: {exc}"]) from exc
        if response.status_code >= 400:
            raise ApiError(self._refusal(response), response.status_code)
        return response.status_code, response.json() if response.content else None

    def _refusal(self, response: httpx.Response) -> list[str]:
        """The problem as lines, led by the fix where the status alone says it: the gateway's own 401 and 403
        are about the key, not the request (a 403 of the API itself, a member key on an admin route, is a
        problem+json with a title and says so)."""
        lines = problem_lines(response)
        gateways = _gateways_own(response)
        if response.status_code == 401 and not self.has_key:
            lines.append("  (no API key: pass --api-key or set HVR_API_KEY)")
        elif response.status_code in (401, 403) and gateways:
            lines = [f"{response.status_code}: this key is not valid for {self.url} — check HVR_API_KEY "
                     "(or --api-key)"]
        return lines

    def upload(self, path: Path) -> str:
        """A local file as an input the API takes: a presigned PUT of the tenant's own (`POST /v1/uploads`), and the
        `s3://` ref that names it."""
        content_type = UPLOAD_TYPES.get(path.suffix.lower())
        if content_type is None:
            raise ApiError([f"{path}: not a file type the API takes ({', '.join(sorted(UPLOAD_TYPES))})"], 400)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ApiError([f"cannot read {path}: {exc.strerror}"], 400) from exc
        ticket = self.call(UploadTicket, "POST", "/v1/uploads", json_body={"content_type": content_type})
        try:  # the URL is presigned: our Authorization header would make S3 refuse it
            response = httpx.put(ticket.upload_url, content=data, headers={"Content-Type": content_type}, timeout=120)
        except httpx.HTTPError as exc:
            raise ApiError([f"cannot upload {path}: {exc}"]) from exc
        if response.status_code >= 300:
            raise ApiError([f"uploading {path}: HTTP {response.status_code}"])
        return ticket.ref

    def with_uploads(self, body: bytes, base: Path) -> bytes:
        """A request whose inputs may name local files (`"image": "@kite.png"`, relative to `base`): each uploaded
        and replaced by its ref. Anything else, JSON or not, is sent as it is, for the API to judge."""
        try:
            request = json.loads(body)
        except ValueError:
            return body
        if not isinstance(request, dict) or not any(_local(v) or (isinstance(v, list) and any(map(_local, v)))
                                                    for v in request.values()):
            return body
        for field, value in request.items():
            if _local(value):
                request[field] = self.upload(base / value[1:])
            elif isinstance(value, list):
                request[field] = [self.upload(base / v[1:]) if _local(v) else v for v in value]
        return json.dumps(request).encode()

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
        except OSError as exc:  # a folder that isn't there, a full disk: the job is fine, asking again will do
            raise ApiError([f"cannot write {path}: {exc.strerror}"]) from None
        return path.stat().st_size

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
