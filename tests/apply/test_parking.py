"""Parking: writes in doubt on one schedule, beside the wave (apply/parking.py)."""

from __future__ import annotations

import threading

import pytest

from reconciler.apply.parking import Parking, drive


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def read_backs(name: str, log: list, t: FakeTime, waits: int = 3, every: float = 40.0):
    for _ in range(waits):
        log.append((name, t.clock()))
        yield every
    return f"{name} settled"


def test_a_hundred_parked_tasks_share_one_schedule_instead_of_queueing_behind_each_other():
    t = FakeTime()
    log: list = []
    found: list[str] = []
    with Parking(2, clock=t.clock, sleep=t.sleep) as parking:
        for i in range(100):
            parking.park(read_backs(f"t{i}", log, t), found.append, pytest.fail)
    assert sorted(found) == sorted(f"t{i} settled" for i in range(100))
    # each task's three looks are 40 s apart; all of them end within one task's own time (120 s), not 100 × 120 s
    assert t.now <= 121
    assert len(log) == 300


def test_then_may_park_more_and_join_waits_for_it():
    t = FakeTime()
    found: list[str] = []

    def again(result: str) -> None:
        found.append(result)
        if len(found) < 3:
            parking.park(read_backs(f"again{len(found)}", [], t, waits=1), again, pytest.fail)

    parking = Parking(1, clock=t.clock, sleep=t.sleep)
    parking.park(read_backs("first", [], t, waits=1), again, pytest.fail)
    parking.join()
    parking.close()
    assert found == ["first settled", "again1 settled", "again2 settled"]


def test_an_error_in_a_step_or_in_then_reaches_on_error_and_the_rest_go_on():
    errors: list[BaseException] = []
    found: list[str] = []

    def broken():
        yield 0.0
        raise ValueError("a malformed answer")

    def bad_then(_: str) -> None:
        raise KeyError("journal")

    with Parking(2) as parking:
        parking.park(broken(), found.append, errors.append)
        parking.park(read_backs("fine", [], FakeTime(), waits=1, every=0.01), found.append, errors.append)
        parking.park(read_backs("then", [], FakeTime(), waits=1, every=0.01), bad_then, errors.append)
    assert found == ["fine settled"]
    assert sorted(type(e).__name__ for e in errors) == ["KeyError", "ValueError"]


def test_drive_runs_a_task_inline_on_the_given_sleep():
    t = FakeTime()
    assert drive(read_backs("x", [], t), t.sleep) == "x settled"
    assert t.now == 120


def test_a_closed_parking_refuses_new_tasks():
    parking = Parking(1)
    parking.close()
    with pytest.raises(RuntimeError):
        parking.park(read_backs("late", [], FakeTime()), print, print)
