"""The embedded stack (docs/architecture.md, "The embedded stack and the simulator"): the whole system in one
process, no AWS account, no provider keys.

moto on loopback behind one lock, with the tables, queues, bucket and topics of infra/template.yaml; an API
Gateway stand-in turning HTTP into v2 events for the functions the template routes to (authorizer included);
SQS pollers feeding the template's queue consumers real batches; the sweeper on its schedule; the GPU agent on
its `sim` engine. `--time-scale` shrinks render times, visibility timeouts, poll delays and the sweeper period;
every render (agent, sandboxes) still reports and bills modelled seconds.
"""

from __future__ import annotations

import base64
import copy
import errno
import importlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hvr.local.esm import EventSourceMapping, LambdaContextStub
from hvr.local.moto_server import LOCAL_ENV, LockedMotoServer
from hvr.local.provision import Stack, load_template, provision

DEV_TENANT = "dev"
# Failed keys from one IP per window before the authorizer refuses it (HVR_AUTH_FAILURE_LIMIT). Every local client is
# 127.0.0.1, so a test stack allows far more than a deployment's 20: the e2e modules' deliberate bad keys and
# schemathesis's invalid-auth probes (one per operation) stay well below it; a guessing loop still reaches it.
LOCAL_AUTH_FAILURE_LIMIT = 1000
AGENT_CHECK_S = 0.5  # how often the supervisor looks for a dead agent process (wall seconds)
SAVE_EVERY_S = 30.0  # how often a stack that keeps its state saves it while running (wall seconds)
DEV_FILE = "dev.json"  # in a kept data dir: the dev key and the secrets the agent and callbacks are signed with
LOCK_FILE = "lock"
# What a kept data dir holds; `--fresh` removes these and nothing else, whatever folder it was given.
STATE_ENTRIES = ("state", DEV_FILE, "agent*.sqlite*", "models-*.yaml")


def default_data_dir() -> Path:
    """Where `hvr dev` keeps its state unless told: the user's state directory (XDG), as other tools keep theirs."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hvr" / "dev"


def clear_state(data_dir: Path) -> None:
    """Forget what `hvr dev` kept in `data_dir` (the entries it writes; anything else there stays)."""
    import shutil

    for pattern in STATE_ENTRIES:
        for entry in Path(data_dir).glob(pattern):
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


class DataDirInUse(RuntimeError):
    """Another `hvr dev` keeps its state in this folder."""


def parse_api_keys(spec: str | None) -> list[tuple[str, str, str]]:
    """`tenant:key[:admin],…` → [(tenant, key, role)]; unset → one random admin key for tenant `dev`."""
    if not spec:
        return [(DEV_TENANT, "hvr_dev_" + secrets.token_urlsafe(24), "admin")]
    keys = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        fields = item.split(":")
        if len(fields) not in (2, 3) or not all(fields[:2]) or (len(fields) == 3 and fields[2] != "admin"):
            raise ValueError(f"HVR_DEV_API_KEYS: {item!r} is not tenant:key or tenant:key:admin")
        keys.append((fields[0], fields[1], "admin" if len(fields) == 3 else "member"))
    return keys


@dataclass(frozen=True)
class Card:
    """A GPU box's card for the embedded stack's fleet: the memory its driver would report and how much longer it
    takes than the studio's card, whose figures the sim models file holds."""

    vram_mb: int
    slower: float
    source: str


# ESTIMATES except the VRAM (the cards' specifications; the studio's document calls its 5090 "24 GB", its driver
# says 32): render time relative to the studio's 5090, from the cards' relative FP16 throughput, not measured here.
CARDS = {
    "5090": Card(32768, 1.0, "RTX 5090, 32 GB: the studio's card, its figures as they are"),
    "4090": Card(24576, 1.3, "RTX 4090, 24 GB: estimate, ~1.3x the 5090's render time"),
    "3090": Card(24576, 2.0, "RTX 3090, 24 GB: estimate, ~2x the 5090's render time"),
    "3080": Card(10240, 2.5, "RTX 3080, 10 GB: estimate, ~2.5x the 5090's render time"),
}
BOX_RAM_MB = 65536  # every box: the RAM offloading WAN 14B needs (router/catalog/default.yaml `vram`)


def parse_agents(text: str) -> list[tuple[str, Card]]:
    """`5090,4090,3090` → one box per card, named after it (`3090-2` for a second 3090)."""
    boxes: list[tuple[str, Card]] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if item not in CARDS:
            raise ValueError(f"--agents: {item!r} is not one of {', '.join(CARDS)}")
        same = sum(1 for name, _ in boxes if name.split("-")[0] == item)
        boxes.append((item if not same else f"{item}-{same + 1}", CARDS[item]))
    if not boxes:
        raise ValueError("--agents: name at least one card")
    return boxes


def _identity_context(template: dict[str, Any]) -> list[str]:
    """The `$context.` identity sources of the HTTP API's default authorizer (the template's `Identity.Context`)."""
    auth = template["Resources"]["HttpApi"]["Properties"]["Auth"]
    return list(auth["Authorizers"][auth["DefaultAuthorizer"]].get("Identity", {}).get("Context", []))


def _handler(template: dict[str, Any], logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
    module_name, _, attr = template["Resources"][logical_id]["Properties"]["Handler"].rpartition(".")
    handler: Callable[[dict[str, Any], Any], Any] = getattr(importlib.import_module(module_name), attr)
    return handler


class EmbeddedStack:
    def __init__(self, workdir: Path, time_scale: float = 1.0, port: int = 0, api_keys: str | None = None,
                 with_agent: bool = True, callback_hosts: str | None = None, background: bool = True,
                 with_sandboxes: bool = True, agent_engine: str = "sim", comfyui_url: str | None = None,
                 restart_agent: bool | None = None, notify: Callable[[str], None] | None = None,
                 agents: str | None = None, agent_heartbeat_s: float | None = None,
                 auth_failure_limit: int = LOCAL_AUTH_FAILURE_LIMIT, keep_state: bool = False,
                 fresh: bool = False, save_every_s: float = SAVE_EVERY_S,
                 log: Callable[[str], None] | None = None) -> None:
        """`agents`: a fleet of sim GPU boxes (`5090,4090,3090`, see CARDS) instead of the one agent.
        `agent_heartbeat_s`: how often registered agents announce themselves (HVR_AGENT_HEARTBEAT_S, real seconds).
        `auth_failure_limit`: failed keys per source IP and window before the authorizer refuses that IP (its
        window is the template's, in real seconds: a client guesses in real time, whatever the time scale).
        `keep_state`: `workdir` is a data dir: what the account held is restored from it at start and saved to it
        while running and at stop (hvr/local/snapshot.py), with the dev key and secrets and the agent's SQLite file;
        `fresh` forgets what it held first; `save_every_s` bounds what a crash (kill -9) loses.
        `log`: gets a line per API request and per job status change."""
        self.workdir = Path(workdir)
        self.keep_state = keep_state
        self.fresh = fresh
        self.save_every_s = save_every_s
        self.log = log
        self.restored: Any = None  # what was restored from the data dir, if anything
        self.snapshots: Any = None  # hvr.local.snapshot.Snapshots of the data dir, once started
        self.clients: dict[str, Any] = {}  # boto3 clients on moto by service name, once started
        self.fleet = parse_agents(agents) if agents else []
        self.boxes: dict[str, Any] = {}  # box name → its agent process, in a fleet
        self.time_scale = time_scale
        self.port = port
        self.keys = parse_api_keys(api_keys)
        self.generated_key = not api_keys  # the random dev key: a kept data dir keeps it across restarts
        self.with_agent = with_agent
        self.callback_hosts = callback_hosts
        self.background = background  # False: nothing runs until drain() (deterministic tests)
        # In the background, a dead agent process is started again (its jobs resume from its SQLite file).
        self.restart_agent = background if restart_agent is None else restart_agent
        self.notify = notify or logging.getLogger(__name__).warning
        self.with_sandboxes = with_sandboxes
        self.agent_heartbeat_s = agent_heartbeat_s
        self.auth_failure_limit = auth_failure_limit
        self.agent_engine = agent_engine
        self.comfyui_url = comfyui_url
        self.comfyui: Any = None  # the ComfyUI sandbox, when the agent runs its comfyui engine against it
        self.sandboxes: Any = None
        self.webhook_token_secret = secrets.token_hex(16)
        self.agent_secret = secrets.token_hex(16)
        self.callback_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.transitions = TransitionLog(log) if log else None
        self.moto = LockedMotoServer(on_put_item=self.transitions)
        self._lock_file: IO[str] | None = None
        self._started = False  # set once start() has finished: only then may stop() save over the data dir
        self.agent: Any = None
        self.api: Any = None
        self.stack: Stack | None = None
        self.mappings: list[EventSourceMapping] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._saved_env: dict[str, str | None] = {}
        self._agent_lock = threading.Lock()  # the supervisor's restart and stop() never overlap
        self._retries = ScaledRetryBackoff(time_scale)

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> EmbeddedStack:
        """Start everything; if any part fails, whatever had started (the agent process above all) is stopped."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> EmbeddedStack:
        from hvr.local.console import console_page
        from hvr.local.docs import docs_page
        from hvr.local.gateway import LocalHttpApi, Route
        from router.store.aws import client

        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)  # a kept one holds the dev key (dev.json, 0600)
        kept = self._claim_data_dir() if self.keep_state else {}
        # Metrics are switched off locally; Powertools still warns on every invocation that none were published.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self._start_moto(kept.get("moto_port", 0))
        if self.keep_state:
            self._keep({**kept, "moto_port": int(self.moto.url.rsplit(":", 1)[1])})
        # moto keeps an S3 object under 5 MB in memory: every stored video, for as long as the stack runs (6 GB at the
        # storm's 10,000 jobs). Past 64 KiB it spills to a temporary file instead.
        self._set_env({**LOCAL_ENV, "AWS_ENDPOINT_URL": self.moto.url, "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": "65536"})
        self._retries.install()
        clients = {name: client(name, self.moto.url) for name in ("dynamodb", "sqs", "s3", "sns")}
        if self.with_agent and self.fleet:
            self._start_fleet()
        elif self.with_agent:
            from agent.launcher import AgentProcess

            self.agent = AgentProcess(self.workdir / "agent.sqlite", secrets=[self.agent_secret],
                                      time_scale=self.time_scale, agent_id="agent-1", env=self._agent_env()).start()
        if self.with_sandboxes:
            from hvr.sandbox.all import Sandboxes

            self.sandboxes = Sandboxes(time_scale=self.time_scale).start()
        template = load_template()
        self.stack = provision(clients, time_scale=self.time_scale,
                               parameters={"AgentUrl": self.agent.url if self.agent else ""})
        if self.transitions is not None:
            self.transitions.table = self.stack.table_names["JobsTable"]
        self.clients = clients
        if self.keep_state:
            from hvr.local.snapshot import Snapshots

            self.snapshots = Snapshots(self.workdir / "state")
            if self.snapshots.exists():
                self.restored = self.snapshots.restore(self.stack, clients)
        routes = [Route(method=r.method, path=r.path, handler=_handler(template, r.function), auth=r.auth,
                        function_name=r.function) for r in self.stack.http_routes()]
        authorizer = _handler(template, "AuthorizerFunction")
        self.api = LocalHttpApi(routes, authorizer=authorizer, port=self.port,
                                authorizer_ttl_s=300 / self.time_scale,
                                identity_context=_identity_context(template), pages=[docs_page, console_page],
                                on_request=_request_line(self.log) if self.log else None).start()
        self._set_env(self._function_env())
        self.reset_caches()
        self._seed_keys()
        for function, queue, batch in self.stack.sqs_sources():
            self.mappings.append(EventSourceMapping(clients["sqs"], self.stack.queue_urls[queue],
                                                    _handler(template, function), batch_size=batch,
                                                    function_name=function))
        self._started = True
        if not self.background:
            return self
        if self.keep_state:
            self._spawn("save", self._save_every, self.save_every_s)
        self._spawn("sqs", self._poll_forever)
        for function, every_s, event in self.stack.schedules():
            self._spawn(f"schedule-{function}", self._every, _handler(template, function), function,
                        max(0.5, every_s / self.time_scale), event)
        if self.agent is not None and self.restart_agent:
            self._spawn("agent-supervisor", self._supervise_agent)
        return self

    def _start_fleet(self) -> None:
        """One sim agent process per box, each with the sim models file made for its card: its VRAM, the boxes' RAM,
        and every model's time stretched by how much slower the card is than the studio's."""
        import yaml

        from agent.launcher import AgentProcess
        from router.workflows.models import DEFAULT_MODELS_FILE

        base = yaml.safe_load(DEFAULT_MODELS_FILE.read_text(encoding="utf-8"))
        for name, card in self.fleet:
            models = copy.deepcopy(base)
            sim = models["sim"]
            sim["vram_total_mb"], sim["vram_source"], sim["ram_total_mb"] = card.vram_mb, card.source, BOX_RAM_MB
            for figures in sim["models"].values():
                figures["overhead_s"] *= card.slower
                figures["seconds_per_frame"] *= card.slower
            path = self.workdir / f"models-{name}.yaml"
            path.write_text(yaml.safe_dump(models), encoding="utf-8")
            self.boxes[name] = AgentProcess(self.workdir / f"agent-{name}.sqlite", secrets=[self.agent_secret],
                                            time_scale=self.time_scale, agent_id=name,
                                            env={"HVR_AGENT_MODELS_FILE": str(path)}).start()
        self.agent = next(iter(self.boxes.values()))  # what a single-agent caller reads

    def _agent_env(self) -> dict[str, str]:
        from agent.config import LOOPBACK_INPUTS_ENV

        if self.agent_engine != "comfyui":
            return {}
        if self.comfyui_url is None:
            from hvr.sandbox.all import paced
            from hvr.sandbox.comfyui import ComfyUISandbox

            # In modelled time, like the sim engine: the agent's GPU-seconds come from ComfyUI's timestamps.
            self.comfyui = ComfyUISandbox(step_s=None, pace=paced("local", self.time_scale)).start()
        # Inputs come presigned from the loopback moto server: the same explicit exemption the router's downloads get.
        return {"HVR_AGENT_ENGINE": "comfyui", "HVR_AGENT_COMFYUI_URL": self.comfyui_url or self.comfyui.url,
                LOOPBACK_INPUTS_ENV: "1"}

    def stop(self) -> None:
        """Stop what was started, each part whatever became of the others (also after a start that failed)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for part in (self.api, self.comfyui, self.sandboxes):
            if part is not None:
                _quietly(part.stop)
        with self._agent_lock:
            for process in self.boxes.values() or ([self.agent] if self.agent is not None else []):
                _quietly(process.stop)
        if self.keep_state and self._started:  # everything that writes has stopped: a consistent state to keep
            _quietly(self.save)
        _quietly(self.moto.stop)
        self._retries.remove()
        if self._lock_file is not None:
            self._lock_file.close()  # and with it the lock
            self._lock_file = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.reset_caches()

    def save(self) -> None:
        """Save the account's contents to the data dir (a stack that keeps its state)."""
        assert self.stack is not None
        self.snapshots.save(self.stack, self.clients, self.moto)

    def _save_every(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            try:
                self.save()
            except Exception:  # the next try may well work (a file briefly locked); the one at stop is what counts
                logging.getLogger(__name__).exception("saving the state to %s failed", self.workdir)

    def _start_moto(self, port: int) -> None:
        """On the port it had last time if it can: presigned URLs handed out then (an agent's pending upload) stay
        valid."""
        if port:
            self.moto = LockedMotoServer(port=port, on_put_item=self.transitions)
            try:
                self.moto.start()
                return
            except OSError:
                self.moto = LockedMotoServer(on_put_item=self.transitions)
        self.moto.start()

    def _claim_data_dir(self) -> dict[str, Any]:
        """One stack per data dir: a second would save over the first's state and share its agent's SQLite file.
        Then what the last run kept: the dev key and secrets, so clients, the agent's queued callbacks and the
        webhook URLs out at providers stay valid, and moto's port."""
        import fcntl  # POSIX: imported here so that the module, and `make demo`, load without it

        handle = (self.workdir / LOCK_FILE).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise DataDirInUse(f"{self.workdir} is in use by another hvr dev") from exc
            raise
        self._lock_file = handle
        if self.fresh:
            clear_state(self.workdir)
        kept_path = self.workdir / DEV_FILE
        kept: dict[str, Any] = json.loads(kept_path.read_text(encoding="utf-8")) if kept_path.exists() else {}
        if kept.get("keys") and self.generated_key:
            self.keys = [(tenant, key, role) for tenant, key, role in kept["keys"]]
        for name in ("webhook_token_secret", "agent_secret", "callback_secret"):
            setattr(self, name, kept.get(name) or getattr(self, name))
        return {**kept, "keys": self.keys if self.generated_key else kept.get("keys", []),
                "webhook_token_secret": self.webhook_token_secret, "agent_secret": self.agent_secret,
                "callback_secret": self.callback_secret}

    def _keep(self, kept: dict[str, Any]) -> None:
        descriptor = os.open(self.workdir / DEV_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(kept, out, indent=2)

    def restart_dead_agent(self) -> bool:
        """Start the agent process again if it has died, on its port and SQLite file, so the router's URL still
        reaches it and its queued and running jobs resume; True if it did. The supervisor calls this."""
        restarted = False
        for process in self.boxes.values() or ([self.agent] if self.agent is not None else []):
            with self._agent_lock:
                if process.running or self._stop.is_set():
                    continue
                code = process.returncode
                process.start()
            self.notify(f"agent process exited (code {code}); restarted it at {process.url} (pid {process.pid})")
            restarted = True
        return restarted

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return str(self.api.url)

    @property
    def admin_key(self) -> str:
        return next(key for _, key, role in self.keys if role == "admin")

    @property
    def deps(self) -> Any:
        from router.services.deps import default_deps

        return default_deps()

    def poll_once(self) -> int:
        return sum(mapping.poll_once() for mapping in self.mappings)

    def drain(self, done: Callable[[], bool], timeout_s: float = 60.0) -> bool:
        """Until `done()` or the timeout: run the queue consumers here (or, in background mode, just wait)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return True
            if self.background or self.poll_once() == 0:
                time.sleep(0.05)
        return done()

    @staticmethod
    def reset_caches() -> None:
        """Settings and clients are cached per process, as in a Lambda container; a new stack starts afresh."""
        from router.services.deps import default_deps
        from router.settings import get_settings

        get_settings.cache_clear()
        default_deps.cache_clear()
        for module in ("functions.authorizer.handler",):
            loaded = importlib.import_module(module)
            if hasattr(loaded, "_keys"):
                loaded._keys.cache_clear()

    # --- wiring ------------------------------------------------------------------------------------------------

    def _function_env(self) -> dict[str, str]:
        assert self.stack is not None
        env: dict[str, str] = {}
        for logical, resource in self.stack.template["Resources"].items():
            if resource["Type"] == "AWS::Serverless::Function":
                env.update(self.stack.function_env(logical, overrides={"HVR_PUBLIC_API_URL": self.url}))
        env.update({
            "HVR_TIME_SCALE": str(self.time_scale),
            "HVR_AUTH_FAILURE_LIMIT": str(self.auth_failure_limit),
            "HVR_AGENT_SECRET": self.agent_secret if self.agent else "",
            "HVR_AGENTS": ",".join(f"{name}={process.url}" for name, process in self.boxes.items()),
            "HVR_CALLBACK_SECRET": self.callback_secret,
            "HVR_PUBLIC_API_URL": self.url,
            **({"HVR_AGENT_HEARTBEAT_S": str(self.agent_heartbeat_s)} if self.agent_heartbeat_s else {}),
            "HVR_DEV_CALLBACK_HOSTS": self.callback_hosts or "",
            "HVR_WEBHOOK_TOKEN_SECRET": self.webhook_token_secret,
            **(self.sandboxes.env() if self.sandboxes is not None else {}),
            "POWERTOOLS_METRICS_NAMESPACE": "hvr",
            "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines on stdout would drown the dev server's output
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        })
        return env

    def _seed_keys(self) -> None:
        from router.services.deps import default_deps
        from router.store.keys import KeyExists, Principal

        deps = default_deps()
        for tenant, key, role in self.keys:
            try:
                deps.keys.put(key, Principal(tenant=tenant, role=role), deps.clock())
            except KeyExists:  # restored from the data dir, possibly revoked since: left as it is
                continue

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            if not self.poll_once():
                self._stop.wait(0.1)

    def _supervise_agent(self) -> None:
        from agent.launcher import AgentStartError

        wait_s = AGENT_CHECK_S
        while not self._stop.wait(wait_s):
            try:
                self.restart_dead_agent()
                wait_s = AGENT_CHECK_S
            except AgentStartError as exc:  # e.g. its port taken meanwhile: say so, and try again less often
                self.notify(f"agent process exited and could not be restarted: {exc}")
                wait_s = min(30.0, wait_s * 4)

    def _every(self, handler: Callable[[dict[str, Any], Any], Any], function: str, period_s: float,
               event: dict[str, Any]) -> None:
        context = LambdaContextStub(function_name=function)
        while not self._stop.wait(period_s):
            try:
                handler(event, context)
            except Exception:  # a failed invocation, as in Lambda: logged, and the schedule goes on
                logging.getLogger(__name__).exception("%s failed", function)

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value


class ScaledRetryBackoff:
    """botocore's retry backoff in the stack's time: each delay divided by the time scale, as the stack divides
    visibility timeouts and poll delays. Throttles only happen here when AwsChaos injects them, and then botocore's
    standard mode sleeps real seconds (a throttle's first retry waits up to 1 s, its fourth up to 8): at the storm's
    rates that sleep was a third of its wall time. How many attempts are made, and what is retried, stay botocore's:
    only the wait between them shrinks. Every client made while the stack runs is wrapped; stop() restores them,
    since clients are cached per process and outlive the stack."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self._wrapped: list[tuple[Any, str, str, Callable[..., Any], Callable[..., Any]]] = []

    def install(self) -> None:
        from router.store import aws

        if self.time_scale == 1 or self._wrap in aws.CLIENT_HOOKS:
            return
        for made in list(aws.MADE):
            self._wrap(made)
        aws.CLIENT_HOOKS.append(self._wrap)

    def remove(self) -> None:
        from router.store import aws

        if self._wrap in aws.CLIENT_HOOKS:
            aws.CLIENT_HOOKS.remove(self._wrap)
        for made, event, unique_id, standard, scaled in self._wrapped:
            made.meta.events.unregister(event, scaled, unique_id=unique_id)
            made.meta.events.register(event, standard, unique_id=unique_id)
        self._wrapped.clear()

    def _wrap(self, made: Any) -> None:
        service = made.meta.service_model.service_id.hyphenize()
        # The names botocore's standard retry mode registers its handler under (botocore/retries/standard.py); the
        # handler itself is only reachable through the emitter's table of unique ids.
        event, unique_id = f"needs-retry.{service}", f"retry-config-{service}"
        entry = getattr(getattr(made.meta.events, "_emitter", None), "_unique_id_handlers", {}).get(unique_id)
        if entry is None or getattr(entry.get("handler"), "scaled_by", None):  # another botocore, or done already
            return
        standard = entry["handler"]
        scale = self.time_scale

        def scaled(**kwargs: Any) -> float | None:
            delay = standard(**kwargs)  # None: no retry; else the seconds botocore would sleep before it
            return None if delay is None else delay / scale

        scaled.scaled_by = scale  # type: ignore[attr-defined]
        made.meta.events.unregister(event, standard, unique_id=unique_id)
        made.meta.events.register(event, scaled, unique_id=unique_id)
        self._wrapped.append((made, event, unique_id, standard, scaled))


def _quietly(stop: Callable[[], object]) -> None:
    try:
        stop()
    except Exception:  # one part failing to stop must not leave the others (the agent process) running
        logging.getLogger(__name__).exception("stopping %s failed", stop)


class TransitionLog:
    """A line per job status change, read off the jobs table's writes as moto takes them: every write of a job goes
    through JobsRepository, which stores the status beside the whole job, so a changed status is a transition."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.table: str | None = None  # the jobs table's name, once provisioned
        self._status: dict[str, str] = {}  # job id → the status last seen
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> None:
        if self.table is None or request.get("TableName") != self.table:
            return
        item = request["Item"]
        job_id, status = item["id"]["S"], item["status"]["S"]
        with self._lock:
            before = self._status.get(job_id)
            if before == status:
                return
            self._status[job_id] = status
        job = json.loads(item["doc"]["S"])
        attempt = job["attempts"][-1] if job.get("attempts") else None
        where = f" on {attempt['offer']}" if attempt else ""  # an offer id starts with its provider's name
        error = job.get("error") or {}
        why = f": {error['code']}" if error.get("code") else ""
        # Without a `before`: a new job, or one restored from the data dir, seen here first at its next change.
        self.say(f"{job_id} {before + ' ' if before else ''}→ {status}{where}{why}")


def _request_line(say: Callable[[str], None]) -> Callable[..., None]:
    def line(request: Any, status: int, seconds: float, tenant: str | None) -> None:
        whose = f" tenant {tenant}" if tenant else ""
        say(f"{request.method} {request.raw_path} {status} {seconds * 1000:.0f} ms{whose}")

    return line


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the gateway could bind `port` now (with SO_REUSEADDR, as its server does)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def run_dev(port: int, time_scale: float | None, api_keys: str | None, agent_engine: str = "sim",
            comfyui_url: str | None = None, agents: str | None = None, data_dir: Path | None = None,
            fresh: bool = False, quiet: bool = False) -> int:
    """`hvr dev`: keep the stack up until interrupted, its state in `data_dir` (default_data_dir())."""
    from hvr.local.gateway import PortInUse
    from hvr.local.snapshot import UnreadableSnapshot
    from hvr.timescale import default_time_scale
    from router.store.auth_failures import DEFAULT_MAX_FAILURES

    if not port_free(port):  # said before anything starts; the server's own bind below still says it if racing
        print(f"hvr dev: port {port} is in use — pass --port N or stop the other process", file=sys.stderr)
        return 1
    scale = time_scale or default_time_scale()
    folder = Path(data_dir) if data_dir else default_data_dir()
    keys = api_keys or os.environ.get("HVR_DEV_API_KEYS")
    stack = EmbeddedStack(
        folder, time_scale=scale, port=port, api_keys=keys, keep_state=True, fresh=fresh,
        agent_engine=agent_engine, comfyui_url=comfyui_url, restart_agent=True,
        notify=lambda line: print(f"hvr dev: {line}", flush=True), agents=agents,
        log=None if quiet else lambda line: print(line, file=sys.stderr, flush=True),
        # A person at `hvr dev` gets the deployment's throttle, so a client's retry loop meets it here first.
        auth_failure_limit=int(os.environ.get("HVR_AUTH_FAILURE_LIMIT") or DEFAULT_MAX_FAILURES),
    )
    try:
        stack.start()
    except PortInUse:
        print(f"hvr dev: port {port} is in use — pass --port N or stop the other process", file=sys.stderr)
        return 1
    except DataDirInUse as exc:
        print(f"hvr dev: {exc} — stop it, or pass another --data-dir", file=sys.stderr)
        return 1
    except UnreadableSnapshot as exc:
        print(f"hvr dev: cannot restore the saved state: {exc} — pass --fresh to start empty", file=sys.stderr)
        return 1
    try:
        print(f"state kept in {folder}" + (f" (restored {stack.restored})" if stack.restored else "")
              + "; --fresh starts empty", flush=True)
        if not keys:
            print(f"dev API key (admin, tenant {DEV_TENANT}): {stack.admin_key} (kept in {folder / DEV_FILE})")
        print(f"time scale {scale:.0f}x; moto {stack.moto.url}; agent {stack.agent.url if stack.agent else '-'} "
              f"({agent_engine}{' on ' + (comfyui_url or stack.comfyui.url) if agent_engine == 'comfyui' else ''})")
        for name, process in stack.boxes.items():
            print(f"GPU box {name}: {process.url} ({CARDS[name.split('-')[0]].source})")
        print(f"console: {stack.url}/ (paste the key); API reference: {stack.url}/docs")
        print(f"hvr dev ready: {stack.url}", flush=True)
        stopped = threading.Event()
        # Closing the terminal (SIGHUP) stops it as Ctrl-C does: the state is saved either way.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: stopped.set())
        try:
            while not stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        stack.stop()
    return 0
