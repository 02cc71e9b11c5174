"""The output pipeline: bytes from a runner -> text (UTF-8 safe across chunks) -> masker ->
numbered chunks published live and stored in batches, under a size cap.

Chunking adapts to the pace of the script: the first output after a quiet spell goes out at once
(low latency), a steady stream is cut into chunks every `EMIT_INTERVAL` or `CHUNK_CHARS`
(few events, few rows). Storage commits batches in order, one at a time; when it falls more than
`MAX_UNSTORED_CHARS` behind, the reader waits, which in turn slows the script down (backpressure).

While the database is unreachable (`db.unreachable.is_unreachable`: restarting, network cut) a
batch that failed is kept, in order, and written again every `STORE_RETRY_SECONDS`; the script
runs on and its output (at most `OPSCRAFT_MAX_OUTPUT_BYTES`) waits in memory, and `close` waits
for the database to be back. Before, the first failed batch ended the run's runner with an
exception: the rest of the output was lost and the run was left `running`.
"""

from __future__ import annotations

import codecs
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

from opscraft.db import clock
from opscraft.db.text import REPLACEMENT
from opscraft.db.unreachable import is_unreachable
from opscraft.execution.events import LogEvent, Stream
from opscraft.execution.ports import LogBus

# A chunk is one WebSocket message: 128 Ki characters stay below the usual 1 MiB message limit
# even when every character is escaped in JSON (6 bytes for a control character).
CHUNK_CHARS = 128 * 1024
EMIT_INTERVAL = 0.05
STORE_INTERVAL = 0.25
STORE_BATCH_CHARS = 4 * 1024 * 1024
MAX_UNSTORED_CHARS = 16 * 1024 * 1024
IDLE_TICK = 1.0
STORE_RETRY_SECONDS = 1.0
# The most characters of a run's last batch that `close(keep_tail=True)` hands back: a short
# run's whole output is stored with its final state (issue 15: one transaction less per run).
TAIL_CHARS = 64 * 1024
STREAMS: tuple[Stream, Stream] = ("stdout", "stderr")


class Masker(Protocol):
    """Hides secret values in output text; it may hold back the end of a text that could begin a secret
    until the next call.
    """

    def mask(self, stream: str, text: str) -> str:
        """Return `text` of `stream` with secrets masked, possibly holding back a tail."""

    def flush(self, stream: str, *, cut: bool = False) -> str:
        """Return what is held back for `stream`, masked; `cut` when the output ends mid-text (truncation)."""


StoreBatch = Callable[[list[LogEvent], int, int], "Future[None]"]
"""Stores a batch of chunks with the run's byte counts so far: written (`total_bytes`), and
taken by the chunks of this batch and those before it (`stored_bytes`)."""


def truncation_marker(max_bytes: int) -> str:
    """The line that ends stored output at its cap, which it names as set: in MiB when it is a
    whole number of them, else in bytes (never a rounded `1.90735 MiB`)."""
    whole_mib = max_bytes >= 1048576 and max_bytes % 1048576 == 0
    size = f"{max_bytes // 1048576} MiB" if whole_mib else f"{max_bytes} bytes"
    return (
        f"\r\n\x1b[33m[opscraft] output truncated: the stored output reached its limit of {size}; "
        "the script kept running and its exit status is kept\x1b[0m\r\n"
    )


class LastText:
    """The last `limit` characters of a stream's text, kept in the pieces it came in."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pieces: deque[str] = deque()
        self._chars = 0

    def add(self, text: str) -> None:
        """Append `text`, dropping whole pieces that fall out of the last `limit` characters."""
        self._pieces.append(text)
        self._chars += len(text)
        while self._chars - len(self._pieces[0]) >= self.limit:
            self._chars -= len(self._pieces.popleft())

    def text(self) -> str:
        """The last `limit` characters added."""
        return "".join(self._pieces)[-self.limit :]


class OutputPipeline:
    """The output of one run: `feed` raw bytes, `tick` between reads, `close` at the end."""

    def __init__(
        self,
        execution_id: int,
        bus: LogBus,
        store: StoreBatch,
        masker: Masker,
        max_bytes: int,
        last_text_chars: int = 0,
    ) -> None:
        """`last_text_chars`: how much of each stream's last text (masked, as stored) `last_text`
        gives back after the run, for messages read from it (a playbook's PLAY RECAP, Terraform's
        error); 0: none."""
        self.execution_id = execution_id
        self.total_bytes = 0
        """Bytes the script wrote, stored or not."""
        self.stored_bytes = 0
        """Bytes of UTF-8 the chunks emitted so far take (what storage holds once they are stored)."""
        self.truncated = False
        self._bus = bus
        self._store = store
        self._masker = masker
        self._max_bytes = max_bytes
        self._kept_bytes = 0
        self._decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in STREAMS}
        self._seq = 0
        self._pending: list[tuple[Stream, list[str]]] = []
        self._pending_chars = 0
        self._last_emit = float("-inf")
        self._batch: list[LogEvent] = []
        self._batch_chars = 0
        self._batch_started = 0.0
        self._in_flight: Future[None] | None = None
        self._in_flight_batch: list[LogEvent] = []
        self._retry_at = float("-inf")  # while the database is unreachable: next try (monotonic)
        self._last = {stream: LastText(last_text_chars) for stream in STREAMS} if last_text_chars else {}

    def feed(self, stream: Stream, data: bytes) -> None:
        """Take raw output bytes of a stream: count them, decode UTF-8, mask secrets and batch them into
        chunks.

        Past the run's byte limit the output is cut at a character boundary and a truncation marker is added
        to stderr; later bytes are counted only.
        """
        self.total_bytes += len(data)
        if self.truncated:
            return
        room = self._max_bytes - self._kept_bytes
        cut = len(data) > room
        if cut:  # between two characters: a UTF-8 character cut in half would be stored as U+FFFD
            room -= next((back for back in range(min(room, 3) + 1) if data[room - back] & 0xC0 != 0x80), 0)
            data = data[:room]
        self._kept_bytes += len(data)
        self._add(stream, self._masker.mask(stream, self._decoders[stream].decode(data)))
        if cut:
            self.truncated = True
            self._drain_decoders(cut=True)
            self._add("stderr", truncation_marker(self._max_bytes))
            self._emit(time.monotonic())
            return
        now = time.monotonic()
        if self._pending_chars >= CHUNK_CHARS or now - self._last_emit >= EMIT_INTERVAL:
            self._emit(now)

    def tick(self) -> float:
        """Emit and store what is due; returns the seconds until the next thing is due (at least 1 ms)."""
        now = time.monotonic()
        waits = [IDLE_TICK]
        if self._pending:
            due = self._last_emit + EMIT_INTERVAL - now
            if due <= 0:
                self._emit(now)
            else:
                waits.append(due)
        if self._batch:
            due = self._batch_started + STORE_INTERVAL - now
            if due <= 0:
                self._flush()
            else:
                waits.append(due)
        return max(min(waits), 0.001)

    def close(self, *, keep_tail: bool = False, cut: bool = False) -> list[LogEvent]:
        """Emit what is left and wait until every chunk is stored; returns [].

        With `keep_tail`, the last batch (at most `TAIL_CHARS` characters) is returned instead
        of stored, once every batch before it is: the caller stores it with the run's final
        state, in that one transaction (`store.finish`), and then calls `LogBus.stored`.
        `cut`: the output was cut short, not ended (the run was killed: timeout, cancel,
        shutdown; or its runner failed), so what is held back ends as at the cap
        (`_drain_decoders`): a secret value the script was printing when it was killed is never
        released in part, in clear."""
        if not self.truncated:
            self._drain_decoders(cut=cut)
        self._emit(time.monotonic())
        if keep_tail:
            while self._in_flight is not None:
                self._settle()  # a batch refused by an unreachable database joins the tail
            if self._batch_chars <= TAIL_CHARS:
                tail, self._batch, self._batch_chars = self._batch, [], 0
                return tail
        self._flush(wait=True)
        return []

    def _drain_decoders(self, *, cut: bool = False) -> None:
        """Release what the decoders and the masker hold back; `cut`: the output stops short (its
        cap, a killed run), so a held-back beginning of a secret value is released as the mask,
        and the bytes of a character begun before the cut (in this read or an earlier one, of
        either stream) whose rest never came are dropped: the cut falls between two characters,
        never stores half of one as U+FFFD. At the output's end such bytes are invalid UTF-8:
        U+FFFD."""
        for stream in STREAMS:
            decoder = self._decoders[stream]
            text = "" if cut else decoder.decode(b"", final=True)
            decoder.reset()
            self._add(stream, self._masker.mask(stream, text) + self._masker.flush(stream, cut=cut))

    def _add(self, stream: Stream, text: str) -> None:
        if not text:
            return
        # PostgreSQL cannot store NUL (`find -print0`, binary output): U+FFFD, as for bad UTF-8.
        text = text.replace("\x00", REPLACEMENT)
        if self._last:
            self._last[stream].add(text)
        if self._pending and self._pending[-1][0] == stream:
            self._pending[-1][1].append(text)
        else:
            self._pending.append((stream, [text]))
        self._pending_chars += len(text)

    def last_text(self, stream: Stream) -> str:
        """The last `last_text_chars` characters of `stream` that were kept (masked); the output
        past the cap is not in it. Empty when none is kept."""
        return self._last[stream].text() if self._last else ""

    def _emit(self, now: float) -> None:
        if not self._pending:
            return
        if not self._batch:
            self._batch_started = now
        at = clock.now()  # stored with the chunk (`store.store_logs`): one time live and stored
        for stream, parts in self._pending:
            text = "".join(parts)
            self.stored_bytes += len(text.encode("utf-8", "surrogatepass"))
            for start in range(0, len(text), CHUNK_CHARS):  # no chunk above CHUNK_CHARS
                self._seq += 1
                event = LogEvent(self._seq, stream, text[start : start + CHUNK_CHARS], at)
                self._bus.publish(self.execution_id, event)
                self._batch.append(event)
                self._batch_chars += len(event.content)
        self._pending = []
        self._pending_chars = 0
        self._last_emit = now
        if self._batch_chars >= STORE_BATCH_CHARS:
            self._flush()

    def _flush(self, *, wait: bool = False) -> None:
        """Hand the batch to storage: one batch in flight at a time, so batches commit in order.
        A batch the unreachable database refused goes back in front of the next one (module
        docstring); `wait` returns once everything is stored, trying again until then."""
        while True:
            if self._in_flight is not None:
                if not self._in_flight.done() and not wait and self._batch_chars < MAX_UNSTORED_CHARS:
                    return
                self._settle()
            if not self._batch:
                return
            pause = self._retry_at - time.monotonic()
            if pause > 0:
                if not wait:
                    return
                time.sleep(pause)
            batch, self._batch, self._batch_chars = self._batch, [], 0
            stored = self._store(batch, self.total_bytes, self.stored_bytes)
            self._in_flight, self._in_flight_batch = stored, batch
            last = batch[-1].seq
            self._in_flight.add_done_callback(
                lambda f, last=last: None if f.exception() else self._bus.stored(self.execution_id, last)
            )
            if not wait:
                return

    def _settle(self) -> None:
        """Wait for the batch in flight; if the database was unreachable, put it back in front of
        the batch being gathered and set the time of the next try. Raises any other failure."""
        assert self._in_flight is not None
        exc = self._in_flight.exception()
        failed, self._in_flight, self._in_flight_batch = self._in_flight_batch, None, []
        if exc is None:
            return
        if not is_unreachable(exc):
            raise exc
        self._batch = failed + self._batch
        self._batch_chars = sum(len(event.content) for event in self._batch)
        self._retry_at = time.monotonic() + STORE_RETRY_SECONDS
