"""Veo: the official google-genai client and our adapter against the Vertex sandbox (docs/providers.md §3).

One sandbox serves the module (renders are cached by size, length and prompt, so the few distinct videos are
encoded once); each test gets a fresh fault plan. Waits are bounded poll loops; nothing asserts on elapsed time.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2.credentials import Credentials
from PIL import Image

from hvr.sandbox.base import Fault, FaultPlan, Response, SandboxServer
from hvr.sandbox.veo import RAI_REASON, VeoSandbox
from router.media.probe import probe
from router.models.common import Mode
from router.models.decision import DeliveredSpec
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.providers.base import ProviderState, ProviderStatus, Submission
from router.providers.errors import AuthFailed, OutcomeUnknown, RateLimited, Rejected
from router.providers.veo import VeoProvider, parse_job_id

PROJECT, LOCATION = "hvr-test", "us-central1"
TOKEN, KEY = "sandbox-veo-token", "sandbox-veo-key"
PROMPT = "a red fox running through snow"
POLLS = 400  # polls 0.05 s apart: room for a render on a busy 2-core box


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VeoSandbox]:
    with VeoSandbox(tokens=(TOKEN,), api_keys=(KEY,), running_polls=1, hang_s=2.0) as server:
        assert isinstance(server, VeoSandbox)
        yield server


@pytest.fixture(autouse=True)
def fresh_plan(sandbox: VeoSandbox) -> None:
    sandbox.plan = FaultPlan()


@pytest.fixture(scope="module")
def images() -> Iterator[SandboxServer]:
    """Plain-http loopback stand-in for the presigned S3 URL of an input image."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 80, 20)).save(buffer, "PNG")
    png = buffer.getvalue()
    server = SandboxServer()
    server.route("GET", r"/inputs/fox\.png", lambda request: Response(200, png, {"content-type": "image/png"}))
    server.route("GET", r"/inputs/notes\.txt", lambda request: Response(200, b"hello", {"content-type": "text/plain"}))
    with server:
        yield server


def offer(offer_id: str) -> Offer:
    found = load_catalog().get(offer_id)
    assert found is not None, offer_id
    return found


def project_provider(sandbox: VeoSandbox, **kwargs: Any) -> VeoProvider:
    return VeoProvider(PROJECT, LOCATION, base_url=sandbox.url, credentials=Credentials(token=TOKEN), **kwargs)


def express_provider(sandbox: VeoSandbox, **kwargs: Any) -> VeoProvider:
    return VeoProvider(None, api_key=KEY, base_url=sandbox.url, **kwargs)


def submission(offer_id: str = "veo/veo-3.1-fast", width: int = 1280, height: int = 720, seconds: float = 4,
               fps: float = 24, mode: Mode = Mode.T2V, inputs: dict[str, str] | None = None,
               attempt: str = "att_1") -> Submission:
    request = VideoRequest(mode=mode, prompt=PROMPT, negative_prompt="blurry", seed=42,
                           image="https://uploads.example.com/fox.png" if mode is Mode.I2V else None)
    return Submission(attempt_id=attempt, job_id="job_1", tenant="t1", offer=offer(offer_id), request=request,
                      delivered=DeliveredSpec(width, height, round(seconds * fps), fps), inputs=inputs or {})


def finish(provider: VeoProvider, status: ProviderStatus) -> ProviderStatus:
    for _ in range(POLLS):
        if status.state.ended:
            return status
        time.sleep(0.05)
        status = provider.status(status.provider_job_id)
    raise AssertionError(f"still {status.state} after {POLLS} polls")


def sdk_finish(client: genai.Client, operation: types.GenerateVideosOperation) -> types.GenerateVideosOperation:
    for _ in range(POLLS):
        if operation.done:
            return operation
        time.sleep(0.05)
        operation = client.operations.get(operation)
    raise AssertionError("operation never finished")


def first_video(operation: types.GenerateVideosOperation) -> types.Video:
    assert operation.error is None and operation.response is not None
    videos = operation.response.generated_videos or []
    assert videos and videos[0].video is not None
    return videos[0].video


def video_bytes(operation: types.GenerateVideosOperation) -> bytes:
    data = first_video(operation).video_bytes
    assert data is not None
    return data


def t2v(client: genai.Client, model: str = "veo-3.1-fast-generate-001", **config: Any) -> types.GenerateVideosOperation:
    settings: dict[str, Any] = {"duration_seconds": 4, "aspect_ratio": "16:9", "resolution": "720p",
                                "number_of_videos": 1, **config}
    return client.models.generate_videos(model=model, source=types.GenerateVideosSource(prompt=PROMPT),
                                         config=types.GenerateVideosConfig.model_validate(settings))


# --- the official client, unchanged, pointed only by base URL ---------------------------------------------------


def test_official_client_vertex_project_mode(sandbox: VeoSandbox) -> None:
    client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION, credentials=Credentials(token=TOKEN),
                          http_options=types.HttpOptions(base_url=sandbox.url))
    before = len(sandbox.calls)
    operation = t2v(client)
    assert (operation.name or "").startswith(f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/"
                                     "veo-3.1-fast-generate-001/operations/")
    assert not operation.done
    operation = sdk_finish(client, operation)
    video = first_video(operation)
    assert video.mime_type == "video/mp4" and video.uri is None
    result = probe(video_bytes(operation))
    assert (result.width, result.height, result.frames, result.fps) == (1280, 720, 96, 24)
    paths = {path for _, path in sandbox.calls[before:]}
    prefix = f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/veo-3.1-fast-generate-001"
    assert paths == {f"{prefix}:predictLongRunning", f"{prefix}:fetchPredictOperation"}


def test_official_client_express_mode_uses_the_short_form(sandbox: VeoSandbox) -> None:
    client = genai.Client(vertexai=True, api_key=KEY, http_options=types.HttpOptions(base_url=sandbox.url))
    before = len(sandbox.calls)
    operation = sdk_finish(client, t2v(client))
    assert (operation.name or "").startswith("publishers/google/models/veo-3.1-fast-generate-001/operations/")
    result = probe(video_bytes(operation))
    assert (result.width, result.height, result.frames) == (1280, 720, 96)
    prefix = "/v1beta1/publishers/google/models/veo-3.1-fast-generate-001"
    assert {path for _, path in sandbox.calls[before:]} == {f"{prefix}:predictLongRunning",
                                                            f"{prefix}:fetchPredictOperation"}


def test_sandbox_requires_the_credential_each_form_sends(sandbox: VeoSandbox) -> None:
    wrong_token = genai.Client(vertexai=True, project=PROJECT, location=LOCATION, credentials=Credentials(token="x"),
                               http_options=types.HttpOptions(base_url=sandbox.url))
    with pytest.raises(genai_errors.ClientError) as caught:
        t2v(wrong_token)
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")
    wrong_key = genai.Client(vertexai=True, api_key="nope", http_options=types.HttpOptions(base_url=sandbox.url))
    with pytest.raises(genai_errors.ClientError) as caught:
        t2v(wrong_key)
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    # An API key on the project form is not the credential that form takes.
    response = httpx.post(f"{sandbox.url}/v1beta1/projects/p/locations/l/publishers/google/models/"
                          "veo-3.1-fast-generate-001:predictLongRunning",
                          headers={"x-goog-api-key": KEY}, json={"instances": [{"prompt": "x"}]})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    # Google's REST samples send the key as `?key=`; the short form takes it there too.
    sandbox.plan.queue("create", Fault.STUCK)
    response = httpx.post(f"{sandbox.url}/v1/publishers/google/models/veo-3.1-fast-generate-001:predictLongRunning",
                          params={"key": KEY}, json={"instances": [{"prompt": "x"}]})
    assert response.status_code == 200 and response.json()["name"].startswith("publishers/google/models/")


def test_official_client_sees_limits_as_google_errors(sandbox: VeoSandbox) -> None:
    client = genai.Client(vertexai=True, api_key=KEY, http_options=types.HttpOptions(base_url=sandbox.url))
    created = len(sandbox.operations)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("veo-3.1-fast-generate-001", {"duration_seconds": 5}, "durationSeconds"),
        ("veo-2.0-generate-001", {"duration_seconds": 4, "resolution": None}, "durationSeconds"),
        ("veo-2.0-generate-001", {"duration_seconds": 6, "resolution": "1080p"}, "resolution"),
        ("veo-3.0-generate-001", {"aspect_ratio": "1:1"}, "aspectRatio"),
        ("veo-3.0-generate-001", {"resolution": "480p"}, "resolution"),
    ]
    for model, config, field in cases:
        with pytest.raises(genai_errors.ClientError) as caught:
            t2v(client, model, **config)
        assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT"), (model, config)
        assert field in (caught.value.message or "")
    with pytest.raises(genai_errors.ClientError) as caught:
        t2v(client, "veo-9-imaginary")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert len(sandbox.operations) == created


def test_official_client_gets_a_gcs_uri_when_it_names_a_bucket(sandbox: VeoSandbox) -> None:
    client = genai.Client(vertexai=True, api_key=KEY, http_options=types.HttpOptions(base_url=sandbox.url))
    operation = sdk_finish(client, t2v(client, output_gcs_uri="gs://studio-out/veo/"))
    video = first_video(operation)
    op_id = (operation.name or "").rpartition("/")[2]
    assert video.uri == f"gs://studio-out/veo/{op_id}/sample_0.mp4" and video.video_bytes is None
    assert sandbox.requests[-1]["parameters"]["storageUri"] == "gs://studio-out/veo/"
    fetched = httpx.get(f"{sandbox.url}/gcs/studio-out/veo/{op_id}/sample_0.mp4")
    assert fetched.status_code == 200 and probe(fetched.content).frames == 96


# --- the adapter ---------------------------------------------------------------------------------------------


def test_adapter_t2v_end_to_end_in_project_mode(sandbox: VeoSandbox) -> None:
    provider = project_provider(sandbox)
    status = provider.submit(submission())
    assert status.state is ProviderState.RUNNING
    name, seconds = parse_job_id(status.provider_job_id)
    assert name in sandbox.operations and seconds == 4
    body = sandbox.requests[-1]
    assert body["instances"] == [{"prompt": PROMPT}]
    assert body["parameters"] == {"sampleCount": 1, "durationSeconds": 4, "aspectRatio": "16:9",
                                  "resolution": "720p", "negativePrompt": "blurry", "seed": 42}
    final = finish(provider, status)
    assert final.state is ProviderState.SUCCEEDED and final.output_url is None
    assert final.billed.as_dict() == {"output_seconds": 4.0}
    assert final.output_bytes is not None
    result = probe(final.output_bytes)
    assert (result.width, result.height, result.fps, result.frames) == (1280, 720, 24, 24 * 4)


def test_adapter_i2v_in_express_mode_sends_the_fetched_image(sandbox: VeoSandbox, images: SandboxServer) -> None:
    provider = express_provider(sandbox, allow_http_inputs=True)
    url = f"{images.url}/inputs/fox.png"
    status = provider.submit(submission(width=720, height=1280, mode=Mode.I2V, inputs={"image": url}))
    assert parse_job_id(status.provider_job_id)[0].startswith("publishers/google/models/veo-3.1-fast-generate-001/")
    instance = sandbox.requests[-1]["instances"][0]
    assert instance["image"]["mimeType"] == "image/png"
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == httpx.get(url).content
    assert sandbox.requests[-1]["parameters"]["aspectRatio"] == "9:16"
    final = finish(provider, status)
    assert final.state is ProviderState.SUCCEEDED and final.output_bytes is not None
    result = probe(final.output_bytes)
    assert (result.width, result.height, result.fps, result.frames) == (720, 1280, 24, 96)


def test_adapter_refuses_inputs_it_cannot_send(sandbox: VeoSandbox, images: SandboxServer) -> None:
    created = len(sandbox.operations)
    strict = express_provider(sandbox)
    with pytest.raises(Rejected, match="https"):  # plain http inputs only where the embedded stack allows them
        strict.submit(submission(mode=Mode.I2V, inputs={"image": f"{images.url}/inputs/fox.png"}))
    lenient = express_provider(sandbox, allow_http_inputs=True)
    with pytest.raises(Rejected, match="PNG or JPEG"):
        lenient.submit(submission(mode=Mode.I2V, inputs={"image": f"{images.url}/inputs/notes.txt"}))
    with pytest.raises(Rejected, match="HTTP 404"):
        lenient.submit(submission(mode=Mode.I2V, inputs={"image": f"{images.url}/inputs/gone.png"}))
    with pytest.raises(Rejected, match="input image"):
        lenient.submit(submission(mode=Mode.I2V))
    with pytest.raises(Rejected, match="24 fps"):
        lenient.submit(submission(fps=16))
    with pytest.raises(Rejected, match="16:9 or 9:16"):
        lenient.submit(submission(width=720, height=720))
    assert len(sandbox.operations) == created


def test_adapter_veo2_leaves_out_resolution(sandbox: VeoSandbox) -> None:
    sandbox.plan.queue("create", Fault.STUCK)  # nothing to render: only the request matters here
    provider = express_provider(sandbox)
    status = provider.submit(submission("veo/veo-2.0", seconds=5))
    assert parse_job_id(status.provider_job_id)[1] == 5
    assert sandbox.requests[-1]["parameters"] == {"sampleCount": 1, "durationSeconds": 5, "aspectRatio": "16:9",
                                                  "negativePrompt": "blurry", "seed": 42}


def test_unsupported_duration_is_rejected_and_creates_nothing(sandbox: VeoSandbox) -> None:
    created = len(sandbox.operations)
    with pytest.raises(Rejected, match="durationSeconds"):
        project_provider(sandbox).submit(submission(seconds=5))  # Veo 3.x renders 4, 6 or 8 s
    assert len(sandbox.operations) == created


def test_content_filter_fails_the_attempt_as_filtered(sandbox: VeoSandbox) -> None:
    sandbox.plan.queue("create", Fault.CONTENT_FILTER)
    provider = express_provider(sandbox)
    final = finish(provider, provider.submit(submission()))
    assert final.state is ProviderState.FAILED and final.content_filtered
    assert final.error == RAI_REASON
    assert final.billed.as_dict() == {} and final.output_bytes is None


def test_failed_operation_reports_googles_error(sandbox: VeoSandbox) -> None:
    sandbox.plan.queue("create", Fault.FAILED)
    provider = project_provider(sandbox)
    final = finish(provider, provider.submit(submission()))
    assert final.state is ProviderState.FAILED and not final.content_filtered
    assert final.error is not None and final.error.startswith("INTERNAL: ")
    assert final.billed.as_dict() == {}


def test_rate_limits_are_rate_limited_with_googles_retry_delay(sandbox: VeoSandbox) -> None:
    provider = express_provider(sandbox)
    created = len(sandbox.operations)
    sandbox.plan.queue("create", Fault.RATE_LIMIT)
    with pytest.raises(RateLimited) as caught:
        provider.submit(submission())
    assert caught.value.retry_after_s == sandbox.retry_delay_s
    assert len(sandbox.operations) == created
    sandbox.plan.queue("create", Fault.STUCK)
    status = provider.submit(submission())
    sandbox.plan.queue("get", Fault.RATE_LIMIT)
    with pytest.raises(RateLimited):
        provider.status(status.provider_job_id)
    assert provider.status(status.provider_job_id).state is ProviderState.RUNNING


def test_server_error_on_submit_is_outcome_unknown(sandbox: VeoSandbox) -> None:
    provider = project_provider(sandbox)
    created = len(sandbox.operations)
    sandbox.plan.queue("create", Fault.SERVER_ERROR)
    with pytest.raises(OutcomeUnknown):
        provider.submit(submission())
    assert len(sandbox.operations) == created  # this 503 created nothing, but the adapter can't know that
    with pytest.raises(OutcomeUnknown):
        provider.lookup("att_1")  # and Veo can't be asked: the attempt is never re-sent blindly


def test_lost_answers_are_outcome_unknown_even_when_the_job_exists(sandbox: VeoSandbox) -> None:
    created = len(sandbox.operations)
    sandbox.plan.queue("create", Fault.ACCEPT_THEN_DROP)
    with pytest.raises(OutcomeUnknown) as dropped:
        express_provider(sandbox).submit(submission())
    assert isinstance(dropped.value.__cause__, httpx2.RemoteProtocolError)
    assert len(sandbox.operations) == created + 1  # paid, unanswered
    sandbox.plan.queue("create", Fault.TIMEOUT)
    with pytest.raises(OutcomeUnknown) as timed_out:
        express_provider(sandbox, timeout_s=0.5).submit(submission())
    assert isinstance(timed_out.value.__cause__, httpx2.TimeoutException)
    assert len(sandbox.operations) == created + 1


def test_stuck_operation_keeps_running_and_cannot_be_cancelled(sandbox: VeoSandbox) -> None:
    sandbox.plan.queue("create", Fault.STUCK)
    provider = express_provider(sandbox)
    status = provider.submit(submission())
    for _ in range(5):
        assert provider.status(status.provider_job_id).state is ProviderState.RUNNING
    with pytest.raises(Rejected, match="can't be cancelled"):
        provider.cancel(status.provider_job_id)


def test_gcs_output_comes_back_as_a_url(sandbox: VeoSandbox) -> None:
    provider = express_provider(sandbox, output_gcs_uri="gs://hvr-out/veo", storage_base_url=f"{sandbox.url}/gcs")
    final = finish(provider, provider.submit(submission(attempt="att_gcs")))
    assert sandbox.requests[-1]["parameters"]["storageUri"] == "gs://hvr-out/veo/att_gcs/"
    assert final.state is ProviderState.SUCCEEDED and final.output_bytes is None
    assert final.output_url is not None and final.output_url.startswith(f"{sandbox.url}/gcs/hvr-out/veo/att_gcs/")
    assert probe(httpx.get(final.output_url).content).frames == 96
    sandbox.plan.queue("download", Fault.OUTPUT_EXPIRED)
    assert httpx.get(final.output_url).status_code == 404


def test_health_is_up_unless_credentials_fail(sandbox: VeoSandbox) -> None:
    assert project_provider(sandbox).health().up
    assert express_provider(sandbox).health().up
    bad_token = VeoProvider(PROJECT, LOCATION, base_url=sandbox.url, credentials=Credentials(token="expired"))
    health = bad_token.health()
    assert not health.up and "401" in health.detail
    bad_key = VeoProvider(None, api_key="nope", base_url=sandbox.url)
    assert not bad_key.health().up
    with pytest.raises(AuthFailed):
        bad_key.submit(submission())


def test_job_id_round_trip() -> None:
    name = "projects/p/locations/l/publishers/google/models/veo-3.1-generate-001/operations/abc"
    assert parse_job_id(f"{name}#8s") == (name, 8)
    assert parse_job_id(name) == (name, None)


def test_constructor_wants_one_credential() -> None:
    with pytest.raises(ValueError):
        VeoProvider(None)
    with pytest.raises(ValueError):
        VeoProvider("p", api_key="k")


def test_importing_the_adapter_leaves_google_genai_unloaded() -> None:
    code = "import sys, router.providers.veo; print('google.genai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
