"""``Pacer``: reads finer only around the shortest wait of the batch (pure logic, issue 14)."""

from __future__ import annotations

import pytest

from pacs_tui.batch.pacing import Pacer


def test_nothing_learnt_reads_at_the_normal_step() -> None:
    pacer = Pacer(0.25)
    assert pacer.expected("wait:Off") is None
    assert [pacer.next_read_in("wait:Off", t) for t in (0.0, 0.5, 3.0)] == [0.25] * 3


def test_fine_reads_between_the_reads_around_the_shortest_wait_and_a_step_past_it() -> None:
    pacer = Pacer(0.25)
    assert pacer.fine_s == pytest.approx(0.05)
    pacer.learn("wait:Off", 1.0, 0.75)  # read false at 0.75 s, true at 1.0 s
    pacer.learn("wait:Off", 1.25, 1.0)  # a slower one teaches nothing
    assert pacer.expected("wait:Off") == pytest.approx(1.0)
    # Normal steps while a whole one stays short of 0.70 s, then exactly up to it.
    assert pacer.next_read_in("wait:Off", 0.0) == pytest.approx(0.25)
    assert pacer.next_read_in("wait:Off", 0.4) == pytest.approx(0.25)
    assert pacer.next_read_in("wait:Off", 0.5) == pytest.approx(0.20)
    # Fine from 0.70 s to 1.25 s; normal again after (a slower server).
    assert pacer.next_read_in("wait:Off", 0.70) == pytest.approx(0.05)
    assert pacer.next_read_in("wait:Off", 1.20) == pytest.approx(0.05)
    assert pacer.next_read_in("wait:Off", 1.25) == pytest.approx(0.25)
    # Seen at the fine step, the interval narrows to one fine step.
    pacer.learn("wait:Off", 0.85, 0.80)
    assert pacer.expected("wait:Off") == pytest.approx(0.85)
    assert pacer.next_read_in("wait:Off", 0.5) == pytest.approx(0.25)
    assert pacer.next_read_in("wait:Off", 0.6) == pytest.approx(0.15)
    assert pacer.next_read_in("wait:Off", 0.75) == pytest.approx(0.05)
    # Each kind learns on its own.
    assert pacer.next_read_in("gate:power+ssh", 0.6) == pytest.approx(0.25)


def test_the_fine_step_is_bounded() -> None:
    assert Pacer(0.1).fine_s == pytest.approx(0.05)  # never finer than 50 ms
    assert Pacer(0.02).fine_s == pytest.approx(0.02)  # nor coarser than the normal step
    assert Pacer(1.0, fine_s=0.2).fine_s == pytest.approx(0.2)
    with pytest.raises(ValueError):
        Pacer(0)
