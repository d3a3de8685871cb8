"""PhaseClock: exclusive seconds per phase, on a fake clock so the figures are exact."""

from __future__ import annotations

import pytest

from jaxplanet.core import timing


class FakeClock:
    """A wall clock and a CPU clock the test advances by hand."""

    def __init__(self) -> None:
        self.wall, self.cpu = 100.0, 7.0

    def advance(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock.wall)
    monkeypatch.setattr(timing, "cpu_seconds", lambda: clock.cpu)
    return clock


def test_nested_phase_pauses_the_outer_one(fake: FakeClock) -> None:
    clock = timing.PhaseClock()
    with clock("env"):
        fake.advance(1.0, 0.5)
        with clock("plan"):
            fake.advance(3.0, 5.0)
        fake.advance(2.0, 1.0)
    fake.advance(10.0, 10.0)  # outside every phase: charged to nothing
    with clock("plan"):
        fake.advance(0.5, 1.5)
    assert clock.wall == pytest.approx({"env": 3.0, "plan": 3.5})
    assert clock.cpu == pytest.approx({"env": 1.5, "plan": 6.5})
    assert clock.row() == pytest.approx(
        {
            "time/env_wall_s": 3.0,
            "time/env_cpu_s": 1.5,
            "time/plan_wall_s": 3.5,
            "time/plan_cpu_s": 6.5,
        }
    )


def test_shares_add_other_and_sort_by_wall(fake: FakeClock) -> None:
    clock = timing.PhaseClock()
    with clock("update"):
        fake.advance(6.0, 12.0)
    with clock("eval"):
        fake.advance(2.0, 2.0)
    shares = clock.shares(total_wall=10.0)
    assert [s[0] for s in shares] == ["update", "eval", "other"]
    assert [s[1] for s in shares] == pytest.approx([6.0, 2.0, 2.0])
    assert [s[3] for s in shares] == pytest.approx([0.6, 0.2, 0.2])
    assert sum(s[3] for s in clock.shares()) == pytest.approx(1.0)  # no total: no other row
    text = timing.format_shares(shares)
    assert text.startswith("update 60% (6 s), eval 20% (2 s), other 20% (2 s)")


def test_a_phase_that_raises_is_still_charged(fake: FakeClock) -> None:
    clock = timing.PhaseClock()
    with pytest.raises(RuntimeError), clock("checkpoint"):
        fake.advance(4.0, 1.0)
        raise RuntimeError("disk full")
    with clock("env"):
        fake.advance(1.0, 1.0)
    assert clock.wall == pytest.approx({"checkpoint": 4.0, "env": 1.0})
