"""An Ansible run's scratch paths said in the user's words in its output, before the masker sees it.

Ansible names the files OpsCraft wrote for a run by their path on the machine that ran it:
"Failed to parse /tmp/opscraft-work-w1-7-x1y2z3ab/inventory.yml with yaml plugin", "The error
appears to be in '/opscraft/work/playbook.yml'", a vault password file under
`/dev/shm/opscraft-secrets-...`. Those paths are the server's (a temporary directory, the
container's mount) and mean nothing to the user; `commands.said_paths` gives each one's words
("the inventory", "the playbook", a file's own name, "the file secret NAME"), and `SaidPaths`
puts them in place of the paths in each stream, a path cut between two reads included: the end
of a read that could begin one is held until the next read or `close`. The run's stored output,
its live output and the `error_message` read from it (`ansible_options.exit_message`) all say
the words. Only Ansible runs are rewritten (the tool prints these paths, not the user's code):
the output of a Bash, Python or Terraform run is passed on byte for byte, so a script's own
`pwd` or `$TMPDIR` reads as it printed it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from opscraft.execution.events import Stream
from opscraft.execution.spec import OutputSink


@contextmanager
def saying(output: OutputSink, words: dict[str, str]) -> Iterator[OutputSink]:
    """The sink a runner feeds a run's output to: `output` itself when `words` (path -> its
    words, `commands.said_paths`) has no path to rewrite (every Bash, Python and Terraform run),
    else a `SaidPaths` over it, closed (what it holds passed on) when the block ends. The
    wrapper cost a call and a check on every read of every run's output, for nothing."""
    if not any(words):
        yield output
        return
    said = SaidPaths(output, words)
    try:
        yield said
    finally:
        said.close()


class SaidPaths:
    """An `OutputSink` that replaces each path of `words` (path -> its words) in the output it
    passes on to `output`; the longest path wins where one begins another. Call `close` when
    the run's output has ended (before the runner returns), to pass on what is held."""

    def __init__(self, output: OutputSink, words: dict[str, str]) -> None:
        self._output = output
        self._words = {path.encode(): said.encode() for path, said in words.items() if path}
        longest_first = sorted(self._words, key=len, reverse=True)
        self._paths = re.compile(b"|".join(map(re.escape, longest_first))) if longest_first else None
        self._starts = {path[:k] for path in self._words for k in range(1, len(path))}
        self._longest = max(map(len, self._words), default=0)
        self._held: dict[Stream, bytes] = {}

    def feed(self, stream: Stream, data: bytes) -> None:
        """Pass on `data` of `stream` with the paths said in words; the end of it that could
        begin a path is held until the next read."""
        if self._paths is None:
            self._output.feed(stream, data)
            return
        data = self._held.pop(stream, b"") + data
        hold = self._hold_from(data)
        if hold < len(data):
            self._held[stream] = data[hold:]
        if hold:
            self._output.feed(stream, self._said(data[:hold]))

    def tick(self) -> float:
        """`OutputSink.tick` of the output passed on to."""
        return self._output.tick()

    def close(self) -> None:
        """Pass on what is held: the output has ended, so no path continues it."""
        for stream, held in list(self._held.items()):
            self._output.feed(stream, self._said(held))
        self._held.clear()

    def _said(self, data: bytes) -> bytes:
        assert self._paths is not None
        return self._paths.sub(lambda found: self._words[found.group()], data)

    def _hold_from(self, data: bytes) -> int:
        """Where the longest tail of `data` that begins some path (and is not all of it) starts:
        never inside a path found whole, but at its start when it may begin a longer one."""
        if data.endswith(b"\n"):  # no path holds a line break
            return len(data)
        assert self._paths is not None
        found = list(self._paths.finditer(data, max(0, len(data) - 2 * self._longest)))
        last = found[-1] if found else None
        for size in range(min(self._longest - 1, len(data)), 0, -1):
            start = len(data) - size
            inside = last is not None and last.start() < start < last.end()
            if not inside and data[start:] in self._starts:
                return start
        return len(data)
