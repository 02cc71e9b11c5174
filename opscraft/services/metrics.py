"""Prometheus metrics (`/metrics`, text exposition format 0.0.4 via prometheus-client).

Correct with any number of web and worker processes because no metric is a count kept in one
process's memory (prometheus-client's default, which would make each scrape see only the
process that answered it):
- execution and worker metrics are read from the database at each scrape (`executions`,
  `workers`), so every web process answers the same and a restart loses nothing. Counters
  (`opscraft_executions_total`, by final status, `opscraft_execution_output_bytes_total`, the
  duration histogram) are aggregates over the rows plus what the rows deleted by retention had
  added (`retired_executions`, written by `retire` as they are deleted), so they never go down;
  gauges (queue depth, running, workers alive, free slots) count the current rows.
- HTTP requests (`opscraft_http_requests_total`) are counted in Redis when `REDIS_URL` is set,
  one hash for the installation (`services/request_counts.py`), so every web process reports
  the installation's totals; without Redis there is one web process and they are its counts.
  `opscraft_redis_up` (with Redis only) says whether Redis answered the scrape within
  `redis_state.ANSWER_SECONDS`; a frozen Redis holds no scrape longer.
prometheus-client's multiprocess mode was not used: it sums files in one directory, so it only
covers processes on one machine and a web process on another host would be missing.

Access: a bearer token equal to `OPSCRAFT_METRICS_TOKEN` (for Prometheus), or a user access
token with `Permission.view_system` (admins).
Format: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import Float, case, cast, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.db.models import Execution, RetiredExecutions
from opscraft.db.models.executions import FINAL_STATUSES, ExecutionStatus
from opscraft.security.tokens import same_secret
from opscraft.services import execution_counts, redis_state, workers
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission, require

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Upper bounds (seconds) of the run duration histogram's buckets.
DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def count_request(route: str, method: str, status: int) -> None:
    """Count one answered HTTP request (called by the API's middleware; no I/O). Requests
    answered before the runtime exists (start-up) are not counted."""
    try:
        counts = runtime.current().request_counts
    except RuntimeError:
        return
    counts.count((route, method, str(status)))


def is_metrics_token(bearer: str | None) -> bool:
    """Whether `bearer` is `OPSCRAFT_METRICS_TOKEN` (compared in constant time; False when unset)."""
    token = runtime.current().settings.metrics_token
    return bool(token and bearer and same_secret(token, bearer))


def authorize(actor: Actor) -> None:
    """Allow a caller authenticated the usual way (access token or personal token, see
    `auth.actor_for_bearer`) whose effective role may view the system (admins): `Forbidden`
    otherwise. The metrics token is checked before, by `is_metrics_token`."""
    require(actor.user, Permission.view_system)


def _duration_seconds(dialect: str) -> object:
    if dialect == "sqlite":
        return (func.julianday(Execution.finished_at) - func.julianday(Execution.started_at)) * 86400.0
    return func.extract("epoch", col(Execution.finished_at) - col(Execution.started_at))


# A deleted run as `retire` takes it: status, script type, output bytes, started_at, finished_at.
RetiredRun = tuple[str, str, int, datetime | None, datetime | None]


async def retire(session: AsyncSession, runs: Iterable[RetiredRun]) -> None:
    """Add finished runs being deleted to `retired_executions`, in the caller's transaction (the
    one deleting them), so the counters keep them. Each (status, script type) row is read
    `FOR UPDATE`; two processes creating the same new row at once make one transaction fail
    (IntegrityError: nothing is deleted or counted, and its caller tries again later)."""
    retired: dict[tuple[str, str], RetiredExecutions] = {}
    for status, script_type, size, started_at, finished_at in runs:
        key = _read_key(status, script_type)
        row = retired.get(key)
        if row is None:
            row = await session.get(RetiredExecutions, key, with_for_update=True) or RetiredExecutions(
                status=key[0], script_type=key[1], duration_buckets=[0] * len(DURATION_BUCKETS)
            )
            session.add(row)
            retired[key] = row
        row.count += 1
        row.output_bytes += int(size)
        if started_at is not None and finished_at is not None:
            seconds = (finished_at - started_at).total_seconds()
            row.duration_count += 1
            row.duration_sum += seconds
            bounds = zip(row.duration_buckets, DURATION_BUCKETS, strict=True)
            row.duration_buckets = [n + (seconds <= bound) for n, bound in bounds]


async def _execution_families(session: AsyncSession) -> list[Metric]:
    retired = list((await session.exec(select(RetiredExecutions))).all())
    rows = await session.exec(
        select(
            Execution.status,
            Execution.script_type,
            func.count(),
            func.coalesce(func.sum(Execution.output_bytes), 0),
        ).group_by(col(Execution.status), col(Execution.script_type))
    )
    total = CounterMetricFamily(
        "opscraft_executions",
        "Finished executions by final status and script type (queued and running are gauges).",
        labels=["status", "script_type"],
    )
    output = CounterMetricFamily(
        "opscraft_execution_output_bytes",
        "Output bytes the runs wrote, by script type (also what retention removed or deleted since).",
        labels=["script_type"],
    )
    queued = GaugeMetricFamily("opscraft_queue_depth", "Executions waiting for a worker (status queued).")
    running = GaugeMetricFamily("opscraft_executions_running", "Executions running now.")
    by_type: dict[str, int] = {r.script_type: 0 for r in retired}
    finished: dict[tuple[str, str], int] = {(r.status, r.script_type): r.count for r in retired}
    counts = {ExecutionStatus.queued.value: 0, ExecutionStatus.running.value: 0}
    final = {s.value for s in FINAL_STATUSES}
    for r in retired:
        by_type[r.script_type] += r.output_bytes
    for stored_status, stored_type, count, size in rows.all():
        key = _read_key(stored_status, stored_type)
        if key[0] in final:
            finished[key] = finished.get(key, 0) + int(count)
        by_type[key[1]] = by_type.get(key[1], 0) + int(size)
        if key[0] in counts:
            counts[key[0]] += int(count)
    for (status, script_type), count in sorted(finished.items()):
        total.add_metric([status, script_type], count)
    for script_type, size in sorted(by_type.items()):
        output.add_metric([script_type], size)
    queued.add_metric([], counts[ExecutionStatus.queued.value])
    running.add_metric([], counts[ExecutionStatus.running.value])
    return [total, output, queued, running, await _duration_histogram(session, retired)]


def _read_key(status: object, script_type: object) -> tuple[str, str]:
    """(status, script type) labels of a run: its status as it reads
    (`execution_counts.read_status`: one none of today's as `failed`; as stored it was counted in
    no series, or a series `status="x"` of its own), its type as the run recorded it."""
    return execution_counts.read_status(status), str(script_type)


async def _duration_histogram(session: AsyncSession, retired: list[RetiredExecutions]) -> Metric:
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    seconds = cast(_duration_seconds(dialect), Float)
    columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
    row = (
        await session.exec(
            select(func.count(), func.coalesce(func.sum(seconds), 0.0), *columns).where(
                execution_counts.finished(),
                col(Execution.started_at).is_not(None),
                col(Execution.finished_at).is_not(None),
            )
        )
    ).one()
    count, total, *cumulative = row
    count = int(count) + sum(r.duration_count for r in retired)
    total = float(total or 0.0) + sum(r.duration_sum for r in retired)
    cumulative = [int(n or 0) + sum(r.duration_buckets[i] for r in retired) for i, n in enumerate(cumulative)]
    histogram = HistogramMetricFamily(
        "opscraft_execution_duration_seconds", "Run time of finished executions (started to finished)."
    )
    buckets = [(str(bound), n) for bound, n in zip(DURATION_BUCKETS, cumulative, strict=True)]
    histogram.add_metric([], [*buckets, ("+Inf", count)], total)
    return histogram


async def _worker_families(session: AsyncSession) -> list[Metric]:
    alive = GaugeMetricFamily("opscraft_workers_alive", "Workers with a recent heartbeat.")
    free = GaugeMetricFamily(
        "opscraft_worker_free_slots", "Free execution slots of each live worker.", labels=["worker"]
    )
    slots = GaugeMetricFamily(
        "opscraft_worker_slots", "Execution slots of each live worker.", labels=["worker"]
    )
    live = [w for w in await workers.statuses(session) if w.state == "alive"]
    alive.add_metric([], len(live))
    for worker in live:
        free.add_metric([worker.id], worker.free_slots)
        slots.add_metric([worker.id], worker.slots)
    return [alive, free, slots]


class _Families:
    """A collector that yields metric families read beforehand (prometheus-client's collectors are
    synchronous; the database is read asynchronously just before)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


async def _http_families() -> list[Metric]:
    rt = runtime.current()
    totals = await rt.request_counts.totals()
    families: list[Metric] = []
    if rt.settings.redis_url:
        up = GaugeMetricFamily(
            "opscraft_redis_up",
            f"1 when Redis answered this scrape within {redis_state.ANSWER_SECONDS:g} s; 0: it did not, "
            "and opscraft_http_requests_total, kept there, is left out.",
        )
        up.add_metric([], 0 if totals is None else 1)
        families.append(up)
    if totals is None:  # Redis unreachable: no sample rather than one process's part
        return families
    requests = CounterMetricFamily(
        "opscraft_http_requests",
        "HTTP requests answered by every web process, by route template, method and status code.",
        labels=["route", "method", "status"],
    )
    for (route, method, status), n in sorted(totals.items()):
        requests.add_metric([route, method, status], n)
    return [*families, requests]


async def render(session: AsyncSession) -> bytes:
    """The exposition text: execution and worker metrics from the database, HTTP counts of every
    web process (from Redis when configured)."""
    registry = CollectorRegistry(auto_describe=False)
    families = await _execution_families(session) + await _worker_families(session)
    registry.register(_Families(families + await _http_families()))
    return generate_latest(registry)
