"""The connection's outbox: control first, audio in order, and errors that never overtake their stream."""

from __future__ import annotations

from dataclasses import dataclass, field

from voxwire.server.outbox import Outbox


@dataclass
class Owner:
    stream_id: str
    dropped: bool = False
    sent_samples: list[int] = field(default_factory=list)

    def sent(self, samples: int) -> None:
        self.sent_samples.append(samples)


async def drain(outbox: Outbox) -> list[bytes]:
    """Every frame the outbox gives, in order: up to an end marker queued behind everything."""
    outbox.put_done(Owner("end of test"), b"END")
    frames = []
    while (frame := await outbox.get()) != b"END":
        frames.append(frame)
    return frames


async def test_control_frames_go_first_and_dropped_audio_is_never_sent() -> None:
    outbox = Outbox(audio_capacity=8)
    kept, dropped = Owner("a"), Owner("b", dropped=True)
    await outbox.put_chunk(kept, b"a0", 10)
    await outbox.put_chunk(dropped, b"b0", 10)
    outbox.put_done(kept, b"a-done")
    outbox.put_control(b"b-cancelled")
    assert await drain(outbox) == [b"b-cancelled", b"a0", b"a-done"]
    assert kept.sent_samples == [10] and dropped.sent_samples == []


async def test_an_error_waits_behind_the_frames_of_its_stream_id_and_jumps_the_rest() -> None:
    outbox = Outbox(audio_capacity=8)
    finished, other = Owner("x"), Owner("y")
    await outbox.put_chunk(other, b"y0", 10)
    await outbox.put_chunk(finished, b"x0", 10)
    outbox.put_done(finished, b"x-done")  # x completed; a new start of x is refused before these went out
    outbox.put_error("x", b"x-error")
    outbox.put_error("z", b"z-error")  # nothing of z is queued: at once
    outbox.put_error(None, b"loose-error")
    assert outbox.error_backlog == 3
    assert await drain(outbox) == [b"z-error", b"loose-error", b"y0", b"x0", b"x-done", b"x-error"]
    assert outbox.error_backlog == 0
    outbox.put_error("x", b"x-again")  # x has nothing queued any more
    assert await drain(outbox) == [b"x-again"]
