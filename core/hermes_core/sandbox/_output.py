"""Bounded capture of a command's output: whatever a sandbox prints, the driver keeps at most
``limit`` bytes of it — the head and the tail — and says how much it dropped."""

from __future__ import annotations

__all__ = ["DEFAULT_OUTPUT_LIMIT", "OutputBuffer", "omitted_note"]

#: Bytes of one command's output the driver keeps by default (head + tail).
DEFAULT_OUTPUT_LIMIT = 4 * 1024 * 1024


def omitted_note(dropped: int) -> bytes:
    """The line that stands where output was dropped."""
    return f"\n[hermes: ... {dropped} bytes of output omitted ...]\n".encode()


class OutputBuffer:
    """Bytes kept head + tail once past ``limit``, so memory stays bounded.

    Attributes:
        dropped: bytes that were dropped from the middle.
        total: every byte ever appended.
    """

    def __init__(self, limit: int = DEFAULT_OUTPUT_LIMIT):
        self.limit = max(2, limit)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.total = 0

    def append(self, data: bytes) -> None:
        self.total += len(data)
        half = self.limit // 2
        if len(self.head) < half:
            room = half - len(self.head)
            self.head += data[:room]
            data = data[room:]
        if data:
            if len(data) >= half:  # a huge chunk: only its end can stay
                self.dropped += len(self.tail) + len(data) - half
                self.tail = bytearray(data[-half:])
                return
            self.tail += data
            excess = len(self.tail) - half
            if excess > 0:
                del self.tail[:excess]
                self.dropped += excess

    def getvalue(self) -> bytes:
        if not self.dropped:
            return bytes(self.head + self.tail)
        return bytes(self.head) + omitted_note(self.dropped) + bytes(self.tail)
