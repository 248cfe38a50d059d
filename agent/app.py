"""The agent's HTTP API (docs/agent-api.md): create, read and cancel jobs; an unauthenticated health check."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Response, status

from agent.auth import SignatureMiddleware
from agent.config import AgentSettings
from agent.delivery import CallbackSender
from agent.engines import build_engine
from agent.engines.base import Engine, EngineError
from agent.models_check import FamilyStatus, family_status, known_facts, lock_path, read_lock
from agent.registration import run_times, start_registration
from agent.runner import Runner
from agent.schemas import CreateJobRequest, Health, Job, QueuedJob, Utilization
from agent.store import JobRecord, JobStore
from router.workflows.models import ModelFiles

log = logging.getLogger("hvr.agent")

# How long a cancel of a running job waits for the render to stop, so the answer usually shows `cancelled`;
# past it the answer says `running` and the client polls.
CANCEL_WAIT_S = 5.0
# The health check's utilization looks back this far: long enough to smooth over single renders, short enough that
# `hvr agents` shows the box's recent load, not its average since it was installed.
UTILIZATION_WINDOW_S = 3600.0


def create_app(settings: AgentSettings, engine: Engine | None = None) -> FastAPI:
    engine = build_engine(settings) if engine is None else engine
    store = JobStore(settings.db_path)
    callbacks = _callback_sender(settings, store)
    runner = Runner(store, engine, slots=settings.slots, work_dir=settings.work_dir, callbacks=callbacks)
    families = _families_probe(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        recovered = store.recover()
        if recovered.requeued or recovered.cancelled:
            log.info("recovered after restart: %d re-queued, %d cancelled",
                     recovered.requeued, recovered.cancelled)
        callbacks.start()
        runner.start()
        # The fleet registry (agent.registration): the health check below, put to the router every heartbeat.
        stop_registration = start_registration(settings, health)
        try:
            yield
        finally:
            stop_registration()
            runner.stop()
            callbacks.stop()
            store.close()

    app = FastAPI(title="hvr GPU agent", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    # A router that reaches its boxes through the fleet registry signs with this box's own key (HVR_AGENTS=registry).
    verifying = (*settings.secrets, *((settings.key_secret,) if settings.key_secret else ()))
    app.add_middleware(SignatureMiddleware, secrets=verifying, nonce_is_fresh=store.nonce_is_fresh)

    def existing(attempt_id: str) -> JobRecord:
        record = store.get(attempt_id)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {attempt_id!r}")
        return record

    @app.get("/v1/health")
    def health() -> Health:
        active = store.active()
        running = [r for r in active if r.job.status == "running"]
        left = [_remaining_gpu_s(engine, r) for r in active]
        return Health(
            agent_id=settings.agent_id,
            engine=engine.name,
            slots=settings.slots,
            queue_depth=len(active) - len(running),
            running=len(running),
            eta_s=round(sum(left) / settings.slots, 1),
            vram=engine.vram(),
            ram_mb=engine.ram_mb(),
            models=engine.runnable_models(),
            families=families(),
            queue=[QueuedJob(model=r.request.model, spec=r.request.spec, status=r.job.status, progress=r.job.progress,
                             deadline=r.request.deadline, left_s=round(seconds, 1), stop_at=r.request.stop_at)
                   for r, seconds in zip(active, left, strict=True)],
            utilization=_utilization(store, settings.slots),
        )

    @app.post("/v1/jobs", status_code=status.HTTP_201_CREATED)
    def create_job(request: CreateJobRequest, response: Response) -> Job:
        if store.get(request.attempt_id) is None:
            # Refused before it is stored: a job the GPU can never hold goes elsewhere instead of crashing it.
            reason = engine.refusal(request)
            if reason is not None:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, reason)
        record, created = store.create(request)
        if created:
            runner.wake()
        else:
            response.status_code = status.HTTP_200_OK
        return record.job

    @app.get("/v1/jobs/{attempt_id}")
    def get_job(attempt_id: str) -> Job:
        record = existing(attempt_id)
        starts = _starts_in_s(engine, store, settings.slots, attempt_id) if record.job.status == "queued" else None
        return record.job if starts is None else record.job.model_copy(update={"starts_in_s": starts})

    @app.post("/v1/jobs/{attempt_id}/cancel")
    def cancel_job(attempt_id: str) -> Job:
        record, dequeued = store.cancel(attempt_id)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {attempt_id!r}")
        if dequeued and record.callback_pending:
            callbacks.notify(attempt_id)
        elif record.job.status == "running":
            runner.interrupt(attempt_id, CANCEL_WAIT_S)
            record = existing(attempt_id)
        return record.job

    return app


def _families_probe(settings: AgentSettings) -> Callable[[], dict[str, FamilyStatus] | None]:
    """The health check's `families`: the models file read once at start (a bad one stops the agent), the folders
    looked at (stat, no hashing) on every call; None without --comfyui-root."""
    root = settings.comfyui_root
    if root is None:
        return lambda: None
    models = ModelFiles.load(settings.models_file)
    facts = known_facts(models, read_lock(lock_path(settings.models_file)))
    return lambda: family_status(models, root, facts)


def _starts_in_s(engine: Engine, store: JobStore, slots: int, attempt_id: str) -> float | None:
    """When a queued job starts, by this agent's own figures: the work ahead of it spread over its slots."""
    active = store.active()
    times = run_times([_remaining_gpu_s(engine, r) for r in active], slots)
    return next((round(start, 1) for r, (start, _) in zip(active, times, strict=True) if r.job.id == attempt_id),
                None)


def _utilization(store: JobStore, slots: int) -> Utilization:
    # Capped at what the slots can hold: a box restarted with fewer slots still has the hour it rendered with more
    # in its store, and the router refuses a heartbeat claiming more than window * slots.
    busy = min(store.busy_seconds(UTILIZATION_WINDOW_S), UTILIZATION_WINDOW_S * slots)
    return Utilization(window_s=UTILIZATION_WINDOW_S, busy_s=round(busy, 1))


def _remaining_gpu_s(engine: Engine, record: JobRecord) -> float:
    try:
        estimate = engine.estimate_gpu_seconds(record.request)
    except EngineError:  # e.g. an unknown model: it will fail at once, so it adds nothing to the wait
        return 0.0
    return estimate * (1.0 - record.job.progress)


def _callback_sender(settings: AgentSettings, store: JobStore) -> CallbackSender:
    """Callbacks signed with the box's own key where it has one (no fleet secret needed), else the shared one."""
    if settings.own_key:
        assert settings.agent_name and settings.key_id and settings.key_secret
        return CallbackSender(store, settings.key_secret, key=(settings.agent_name, settings.key_id))
    return CallbackSender(store, settings.secrets[0])
