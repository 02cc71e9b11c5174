"""The engine's parts on their own: output pipeline, live-log bus, job queue, run control."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from opscraft.execution import queue as queue_module
from opscraft.execution.bus import OVERFLOW, LocalLogBus
from opscraft.execution.events import LogEvent, StatusEvent, Stream
from opscraft.execution.masking import MASK, Masker
from opscraft.execution.output import CHUNK_CHARS, TAIL_CHARS, OutputPipeline, truncation_marker
from opscraft.execution.queue import HueyQueue
from opscraft.execution.spec import RunControl, StopReason
from tests.waiting import until


class Recorder:
    """A bus and a store in one: what was published, what was stored (in order)."""

    def __init__(self) -> None:
        self.published: list[LogEvent] = []
        self.stored: list[LogEvent] = []

    def publish(self, _execution_id: int, event: object) -> None:
        assert isinstance(event, LogEvent)
        self.published.append(event)

    def stored(self, _execution_id: int, _upto_seq: int) -> None:
        pass

    def store(self, events: list[LogEvent], _total: int, _stored: int) -> Future[None]:
        self.stored.extend(events)
        done: Future[None] = Future()
        done.set_result(None)
        return done


class Unmasked:
    def mask(self, _stream: str, text: str) -> str:
        return text

    def flush(self, _stream: str, *, cut: bool = False) -> str:
        return ""


def pipeline(recorder: Recorder, max_bytes: int = 10**9) -> OutputPipeline:
    return OutputPipeline(1, recorder, recorder.store, Unmasked(), max_bytes)  # type: ignore[arg-type]


def test_utf8_split_across_reads_and_streams_kept_apart() -> None:
    recorder = Recorder()
    out = pipeline(recorder)
    euro = "€".encode()
    out.feed("stdout", b"price " + euro[:1])
    out.feed("stderr", b"warn\n")
    out.feed("stdout", euro[1:] + b" \xff\n")
    out.close()
    by_stream: dict[str, str] = {}
    for event in recorder.published:
        by_stream[event.stream] = by_stream.get(event.stream, "") + event.content
    assert by_stream == {"stdout": "price € \ufffd\n", "stderr": "warn\n"}
    assert [e.seq for e in recorder.published] == list(range(1, len(recorder.published) + 1))
    assert recorder.stored == recorder.published
    assert out.total_bytes == len(b"price ") + 3 + len(b"warn\n") + 3


def test_first_output_goes_out_at_once_then_is_batched() -> None:
    recorder = Recorder()
    out = pipeline(recorder)
    out.feed("stdout", b"first\n")
    assert [e.content for e in recorder.published] == ["first\n"]
    for i in range(100):
        out.feed("stdout", f"line {i}\n".encode())
    assert len(recorder.published) == 1  # held back: less than the chunk size, within 50 ms
    out.feed("stdout", b"x" * CHUNK_CHARS)  # a chunk's worth is due: out it goes, cut to size
    assert len(recorder.published) == 3
    assert all(len(e.content) <= CHUNK_CHARS for e in recorder.published)
    out.feed("stdout", b"y" * (3 * CHUNK_CHARS + 5))  # one large read
    assert [len(e.content) for e in recorder.published[3:]] == [CHUNK_CHARS] * 3 + [5]
    out.close()
    assert "".join(e.content for e in recorder.stored).startswith("first\nline 0\n")


def test_a_short_runs_last_batch_is_handed_back_and_a_long_ones_stored() -> None:
    """`close(keep_tail=True)`: a last batch of at most `TAIL_CHARS` goes with the run's end
    (stored in its transaction), after every batch before it was stored; a larger one is stored."""
    recorder = Recorder()
    out = pipeline(recorder)
    out.feed("stdout", b"short\n")
    tail = out.close(keep_tail=True)
    assert [e.content for e in tail] == ["short\n"] and recorder.stored == []
    long = Recorder()
    out = pipeline(long)
    out.feed("stdout", b"z" * (TAIL_CHARS + 1))
    assert out.close(keep_tail=True) == []
    assert "".join(e.content for e in long.stored) == "z" * (TAIL_CHARS + 1)


def test_cap_keeps_exactly_max_bytes_then_a_marker() -> None:
    recorder = Recorder()
    out = pipeline(recorder, max_bytes=1000)
    for _ in range(50):
        out.feed("stdout", b"0123456789" * 10)
    out.close()
    text = "".join(e.content for e in recorder.stored)
    kept, marker = text[:1000], text[1000:]
    assert kept == "0123456789" * 100
    assert "[opscraft] output truncated" in marker and "1000 bytes" in marker
    assert out.truncated and out.total_bytes == 5000


@pytest.mark.parametrize("split", [1, 2, 3])
def test_cap_falling_inside_a_character_split_across_reads_stores_none_of_it(split: int) -> None:
    """The cap falls inside a character whose first bytes came in an earlier read (of this stream
    or, for stderr's, of the other): the cut goes before it. Its beginning was stored as U+FFFD,
    a character the script never wrote, taking the stored output past the cap."""
    emoji = "\U0001f600".encode()
    recorder = Recorder()
    out = pipeline(recorder, max_bytes=10)
    reads = [
        ("stderr", b"e:" + emoji[:1]),
        ("stdout", b"0123456"[: 10 - 3 - split] + emoji[:split]),  # exactly at the cap
        ("stdout", emoji[split:] + b" more\n"),
        ("stderr", emoji[1:] + b"\n"),
    ]
    for stream, data in reads:
        out.feed(stream, data)
    out.close()
    text = "".join(e.content for e in recorder.stored)
    assert out.truncated and "\ufffd" not in text, text
    kept = text.split("\r\n\x1b[33m[opscraft] output truncated")[0]
    assert kept == "e:" + "0123456"[: 10 - 3 - split]
    assert out.total_bytes == sum(len(data) for _, data in reads)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_cap_cutting_through_a_secret_value_shows_none_of_it(stream: Stream) -> None:
    """The cap falls inside a value: its beginning, held back by the masker for the rest that
    will never be stored, becomes the mask; the other stream's held-back tail too."""
    value = "hunter2-Secret-Value"
    recorder = Recorder()
    out = OutputPipeline(1, recorder, recorder.store, Masker([value]), 30)
    out.feed("stderr" if stream == "stdout" else "stdout", b"other: hunter2-Se")
    out.feed(stream, f"0123456789 {value}\n".encode())
    out.close()
    text = "".join(e.content for e in recorder.stored)
    assert out.truncated and "[opscraft] output truncated" in text
    assert "hunter2" not in text and text.count(MASK) == 2, text


def test_the_last_text_of_each_stream_is_kept_masked_within_its_size() -> None:
    """What a failed playbook's or Terraform run's message is read from: each stream apart,
    masked, its last N characters."""
    value = "hunter2-Secret-Value"
    recorder = Recorder()
    out = OutputPipeline(1, recorder, recorder.store, Masker([value]), 10**9, last_text_chars=40)
    for i in range(1000):
        out.feed("stdout", f"line {i}\n".encode())
        out.feed("stderr", b"noise on stderr\n")
    out.feed("stdout", f"host {value} : failed=1\n".encode())
    out.close()
    tail = out.last_text("stdout")
    assert len(tail) == 40 and tail.endswith(f"host {MASK} : failed=1\n") and "line 999" in tail, tail
    assert "noise" not in tail and "hunter2" not in tail
    assert out.last_text("stderr").endswith("noise on stderr\n" * 2)
    assert pipeline(Recorder()).last_text("stdout") == ""  # kept only when asked for


async def test_bus_backlog_live_and_overflow() -> None:
    bus = LocalLogBus(max_queued_bytes=10)
    bus.publish(1, LogEvent(1, "stdout", "a"))
    bus.publish(1, LogEvent(2, "stdout", "b"))
    bus.stored(1, 1)
    sub = bus.subscribe(1)
    assert [e.seq for e in sub.backlog] == [2]  # published, not yet stored
    bus.publish(1, LogEvent(3, "stdout", "c"))
    assert await asyncio.wait_for(sub.get(), 1) == LogEvent(3, "stdout", "c")
    bus.publish(1, LogEvent(4, "stdout", "x" * 20))  # over the watcher's budget
    assert await asyncio.wait_for(sub.get(), 1) is OVERFLOW
    sub.close()
    live = bus.subscribe(1)
    bus.publish(1, StatusEvent("success", final=True))
    assert (await asyncio.wait_for(live.get(), 1)).final  # type: ignore[union-attr]


async def test_bus_delivers_across_threads_in_order() -> None:
    bus = LocalLogBus()
    sub = bus.subscribe(7)
    writer = threading.Thread(
        target=lambda: [bus.publish(7, LogEvent(i, "stdout", str(i))) for i in range(1, 2001)]
    )
    writer.start()
    seqs = [(await asyncio.wait_for(sub.get(), 5)).seq for _ in range(2000)]  # type: ignore[union-attr]
    writer.join()
    assert seqs == list(range(1, 2001))


def test_idle_queue_wakes_on_enqueue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle workers poll only every `IDLE_POLL_SECONDS`, stretched here to a minute: a job taken
    within seconds was taken by the wake-up on enqueue, however busy the machine."""
    monkeypatch.setattr(queue_module, "IDLE_POLL_SECONDS", 60.0)
    started: dict[int, float] = {}
    queue = HueyQueue.sqlite(tmp_path / "queue.db", 2, lambda i: started.setdefault(i, time.monotonic()))
    queue.start()
    try:
        time.sleep(1.5)  # every idle worker is now in a minute-long wait
        t0 = time.monotonic()
        queue.enqueue(1)
        deadline = t0 + 20
        while 1 not in started and time.monotonic() < deadline:
            time.sleep(0.001)
        assert 1 in started, "the job waited for the idle poll: the enqueue did not wake a worker"
    finally:
        queue.stop()
        assert queue.join(5)


def test_in_process_jobs_skip_the_queue_file_and_stored_ones_still_run(tmp_path: Path) -> None:
    """On a SQLite database the consumer's own jobs are handed over in memory: they run, in
    order, and the queue file never holds them; a job another process stored there (a queue
    that only enqueues) is still taken by the same consumer."""
    ran: list[int] = []
    done = threading.Event()

    def handler(execution_id: int) -> None:
        ran.append(execution_id)
        if len(ran) == 6:
            done.set()
        if execution_id == 3:
            raise RuntimeError("a failing job is logged, the consumer goes on")

    queue = HueyQueue.sqlite(tmp_path / "queue.db", 1, handler, in_process=True)
    other = HueyQueue.sqlite(tmp_path / "queue.db", 1, None)  # another process's enqueue-only queue
    stored: list[int] = []
    queue.start()
    try:
        for execution_id in range(1, 6):
            queue.enqueue(execution_id)
            stored.append(queue._huey.pending_count())
        other.enqueue(99)
        queue._wakeup.notify()  # another process cannot wake this one: its idle poll would
        assert done.wait(30), f"the stored job was not taken (ran {ran})"
    finally:
        queue.stop()
        assert queue.join(5)
    # Own jobs in order; the stored one whenever the consumer finds its own list empty (no order
    # holds between two processes' jobs: under load it ran second once).
    assert [i for i in ran if i != 99] == [1, 2, 3, 4, 5] and ran.count(99) == 1, ran
    assert stored == [0] * 5, "nothing of this process's own jobs was written to the queue file"
    assert other._huey.pending_count() == 0


@pytest.mark.parametrize("early", [True, False])
def test_run_control_kills_once_whenever_the_stop_comes(early: bool) -> None:
    kills: list[str] = []
    done = threading.Event()
    control = RunControl()
    if early:
        control.stop(StopReason.cancelled)
    control.on_kill(lambda: (kills.append("kill"), done.set()))
    control.stop(StopReason.cancelled)
    control.stop(StopReason.interrupted)
    assert done.wait(2)
    time.sleep(0.05)  # a second kill, had the second stop sent one, would be recorded by now
    assert kills == ["kill"] and control.reason is StopReason.cancelled


def _recorder() -> tuple[list[tuple[str, float]], Any, Any]:
    """What a run control did and when (seconds since the recorder was made): steps, interrupt, kill."""
    steps: list[tuple[str, float]] = []
    t0 = time.monotonic()
    return (
        steps,
        lambda: steps.append(("interrupt", time.monotonic() - t0)),
        lambda: steps.append(("kill", time.monotonic() - t0)),
    )


async def test_run_control_interrupts_first_and_kills_after_the_grace() -> None:
    """A cancel of a run with an interrupt and a grace (Terraform): SIGINT at once, the kill only
    once the grace is over; a second cancel changes nothing."""
    steps, interrupt, kill = _recorder()
    control = RunControl()
    control.on_kill(kill, interrupt, grace_seconds=0.4)
    control.stop(StopReason.cancelled)
    await until(lambda: len(steps) == 1, "step 1")
    control.stop(StopReason.cancelled)
    await until(lambda: len(steps) == 2, "step 2")
    (first, at_first), (second, at_second) = steps
    assert (first, second) == ("interrupt", "kill") and at_second - at_first >= 0.35, steps
    await asyncio.sleep(0.1)  # a third step, were there one, would be recorded by now
    assert len(steps) == 2


async def test_run_control_a_run_ending_in_its_grace_is_not_killed() -> None:
    steps, interrupt, kill = _recorder()
    control = RunControl()
    control.on_kill(kill, interrupt, grace_seconds=0.3)
    control.arm(0.05)  # the timeout interrupts too
    await until(lambda: len(steps) == 1, "step 1")
    control.finish()  # Terraform wrote its state and exited
    await asyncio.sleep(0.5)  # past the 0.3 s grace: a kill, were one still due, would have come
    assert [step for step, _ in steps] == ["interrupt"] and control.reason is StopReason.timed_out


@pytest.mark.parametrize("grace", [0.0, 5.0])
async def test_run_control_kills_at_once_without_a_grace_or_at_shutdown(grace: float) -> None:
    """No grace (every script type but Terraform, or a grace setting of 0) kills at once; so does a
    shutdown of the worker (`interrupted`), whatever the grace."""
    steps, interrupt, kill = _recorder()
    control = RunControl()
    control.on_kill(kill, interrupt, grace_seconds=grace)
    control.stop(StopReason.interrupted if grace else StopReason.cancelled)
    await until(lambda: len(steps) == 1, "step 1")
    await asyncio.sleep(0.05)  # a second step, were one due, would be recorded by now
    assert [step for step, _ in steps] == ["kill"]


def test_run_control_deadline() -> None:
    done = threading.Event()
    control = RunControl()
    control.on_kill(done.set)
    control.arm(0.2)
    t0 = time.monotonic()
    assert done.wait(2)
    assert 0.15 < time.monotonic() - t0 < 1 and control.reason is StopReason.timed_out
    finished = RunControl()
    finished.on_kill(lambda: pytest.fail("a finished run is not killed"))
    finished.arm(0.05)
    finished.finish()
    time.sleep(0.2)  # past the 0.05 s timeout: a finished run's timer, had it stayed armed, fired
    assert finished.reason is None


@pytest.mark.parametrize(
    ("cap", "said"),
    [
        (50 * 1048576, "50 MiB"),
        (2_000_000, "2000000 bytes"),
        (5000, "5000 bytes"),
        (1048576 + 1, "1048577 bytes"),
    ],
)
def test_the_truncation_marker_says_the_cap_as_it_was_set(cap: int, said: str) -> None:
    """A cap that is no whole number of MiB (OPSCRAFT_MAX_OUTPUT_BYTES=2000000) was said as
    "1.90735 MiB": the marker names it exactly, in bytes, and a whole MiB as MiB."""
    assert f"reached its limit of {said};" in truncation_marker(cap)
