"""EventHub (numbering, Last-Event-ID resume, bounded viewer queues) and the SSE parser.

Pure logic: no network. What the HTTP side does with these (a resync
snapshot, an exact resume on a real stream) is in ``test_service_events.py``.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from pacs_tui.remote.sse import SseError, SseEvent, SseParser
from pacs_tui.service.hub import EventHub

# -- numbering and resume -------------------------------------------------------------


def publish(hub: EventHub, count: int, kind: str = "readings") -> list[int]:
    return [hub.publish(kind, {"n": i}).id for i in range(count)]


def test_every_event_gets_the_next_number_and_compact_json() -> None:
    hub = EventHub()
    first = hub.publish("notice", {"text": "a b", "list": [1, 2]})
    ids = [first.id, *publish(hub, 4)]
    assert ids == list(range(ids[0], ids[0] + 5))  # consecutive, no gaps, no repeats
    assert hub.seq == ids[-1]
    assert first.kind == "notice"
    assert first.data == '{"text":"a b","list":[1,2]}'
    assert json.loads(first.data) == {"text": "a b", "list": [1, 2]}


def test_since_resumes_exactly_after_the_id_given() -> None:
    hub = EventHub(keep=10)
    ids = publish(hub, 6)
    for k, last in enumerate(ids):
        backlog = hub.since(last)
        assert backlog is not None
        assert [e.id for e in backlog] == ids[k + 1 :]  # nothing missed, nothing repeated
    assert hub.since(hub.seq) == []  # up to date: an empty backlog, not a resync


def test_since_is_none_once_the_gap_is_older_than_keep() -> None:
    hub = EventHub(keep=3)
    ids = publish(hub, 8)  # only the last 3 are kept
    kept = ids[-3:]
    backlog = hub.since(kept[0] - 1)  # exactly the oldest kept one is next: still exact
    assert backlog is not None and [e.id for e in backlog] == kept
    assert hub.since(kept[0] - 2) is None  # one event between is gone: resync
    assert hub.since(ids[0] - 1) is None
    assert hub.since(0) is None


def test_an_id_from_the_future_asks_for_a_resync() -> None:
    """An id the hub has not reached: not a place to resume from, a snapshot (the API also
    refuses ids of another run of the service by their instance prefix)."""
    hub = EventHub()
    publish(hub, 3)
    assert hub.since(hub.seq + 1) is None
    assert hub.since(hub.seq + 10_000) is None


# -- viewer queues --------------------------------------------------------------------


async def test_a_viewer_that_does_not_read_is_bounded_marked_and_resyncs() -> None:
    hub = EventHub(queue_limit=4)
    stalled = hub.attach()
    reader = hub.attach()
    got: list[int] = []
    ids: list[int] = []
    for _ in range(20):
        ids.append(hub.publish("readings", {"x": "y" * 100}).id)
        assert len(stalled) <= 4  # never holds more than queue_limit events
        got += [e.id for e in await reader.next(timeout=0)]
    assert got == ids  # a reading viewer is not affected by the stalled one
    assert stalled.overflowed
    assert len(stalled) == 0  # let go of the backlog: it gets a snapshot instead
    assert stalled.dropped == 20
    # It has something to do at once (the resync), it does not wait for an event.
    assert await asyncio.wait_for(stalled.next(timeout=10), 1) == []
    stalled.resynced()
    assert not stalled.overflowed
    after = hub.publish("readings", {}).id
    assert [e.id for e in await stalled.next(timeout=1)] == [after]


async def test_a_viewer_right_at_the_limit_is_not_overflowed() -> None:
    hub = EventHub(queue_limit=5)
    viewer = hub.attach()
    ids = publish(hub, 5)
    assert not viewer.overflowed and len(viewer) == 5
    assert [e.id for e in await viewer.next(timeout=0)] == ids
    ids = publish(hub, 5)  # having read, it has room for queue_limit again
    assert not viewer.overflowed
    assert [e.id for e in await viewer.next(timeout=0)] == ids


async def test_next_waits_for_an_event_or_times_out() -> None:
    hub = EventHub()
    viewer = hub.attach()
    started = time.monotonic()
    assert await viewer.next(timeout=0.05) == []
    assert time.monotonic() - started >= 0.04
    waiting = asyncio.create_task(viewer.next(timeout=10))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    event = hub.publish("notice", {})
    assert [e.id for e in await asyncio.wait_for(waiting, 1)] == [event.id]


async def test_a_detached_viewer_is_no_longer_queued_for() -> None:
    hub = EventHub(queue_limit=2)
    viewer = hub.attach()
    hub.detach(viewer)
    publish(hub, 10)
    assert len(viewer) == 0 and not viewer.overflowed
    assert list(hub.viewers) == []
    hub.detach(viewer)  # twice is harmless


def test_the_hub_keeps_at_most_keep_events() -> None:
    hub = EventHub(keep=7)
    publish(hub, 100)
    backlog = hub.since(hub.seq - 7)
    assert backlog is not None and len(backlog) == 7
    assert hub.since(hub.seq - 8) is None


# -- the SSE parser -------------------------------------------------------------------


def parse(*chunks: bytes, cap: int | None = None) -> list[SseEvent]:
    parser = SseParser() if cap is None else SseParser(cap)
    return [event for chunk in chunks for event in parser.feed(chunk)]


STREAM = (
    b": ping\r\n\r\n"
    b'id: 7\r\nevent: snapshot\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    b"id: 8\r\nevent: readings\r\ndata: caf\xc3\xa9\r\n\r\n"
    b": ping\r\n\r\n"
    b"data: plain\r\n\r\n"
)
EXPECTED = [
    SseEvent("snapshot", '{"a":\n1}', "7"),
    SseEvent("readings", "café", "8"),
    SseEvent("message", "plain", "8"),  # the last event id stays until a new one is given
]


def test_a_whole_stream_in_one_chunk() -> None:
    assert parse(STREAM) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_any_split_into_two_chunks_gives_the_same_events(cut: int) -> None:
    """CRLF split between chunks, a UTF-8 character split between chunks, a field split."""
    assert parse(STREAM[:cut], STREAM[cut:]) == EXPECTED


def test_byte_by_byte() -> None:
    assert parse(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


@pytest.mark.parametrize("newline", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending(newline: bytes) -> None:
    text = STREAM.replace(b"\r\n", newline)
    assert parse(text) == EXPECTED
    assert parse(*(text[i : i + 1] for i in range(len(text)))) == EXPECTED


def test_an_empty_chunk_between_cr_and_lf_does_not_end_an_event() -> None:
    """``data: a CR`` | empty chunk | ``LF data: b CRLF CRLF`` is one event with two lines."""
    events = parse(b"data: a\r", b"", b"\ndata: b\r\n\r\n")
    assert events == [SseEvent("message", "a\nb", None)]


def test_comments_and_unknown_fields_are_ignored() -> None:
    events = parse(b": ping\n\n:\n\nretry: 10\nfoo: bar\ndata:no-space\ndata:  two\n\n")
    assert events == [SseEvent("message", "no-space\n two", None)]


def test_a_blank_line_without_data_dispatches_nothing_and_resets_the_name() -> None:
    events = parse(b"event: batch\n\ndata: x\n\n")
    assert events == [SseEvent("message", "x", None)]


def test_an_event_over_the_cap_raises_sse_error_in_many_lines() -> None:
    parser = SseParser(1000)
    with pytest.raises(SseError):
        for _ in range(100):
            list(parser.feed(b"data: " + b"x" * 50 + b"\n"))


def test_an_event_over_the_cap_raises_sse_error_in_one_unfinished_line() -> None:
    """A line that never ends (a broken or hostile service) is not buffered without end."""
    parser = SseParser(1000)
    with pytest.raises(SseError):
        for _ in range(100):
            list(parser.feed(b"x" * 50))


def test_an_event_under_the_cap_passes() -> None:
    body = "y" * 900
    assert parse(f"data: {body}\n\n".encode(), cap=1000) == [SseEvent("message", body, None)]
