"""The daily scheduler runs each job once per local day at its time, with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from time import sleep
from zoneinfo import ZoneInfo

from cunan.duties.scheduler import Scheduler
from tests.duties.helpers import FrozenClock

ZONE = ZoneInfo("Asia/Shanghai")


def at_local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 6, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def test_runs_once_a_day_at_the_time_of_day() -> None:
    clock = FrozenClock(at_local(1, 2, 59))
    scheduler = Scheduler(ZONE, clock=clock)
    runs: list[str] = []
    scheduler.add_daily("purge", time(3, 0), lambda: runs.append("purge"))
    scheduler.add_daily("count", time(4, 0), lambda: runs.append("count"))

    assert scheduler.run_pending() == []
    assert scheduler.next_run("purge") == datetime(2025, 6, 1, 3, 0, tzinfo=ZONE)
    clock.set(at_local(1, 3, 0))
    assert scheduler.run_pending() == ["purge"]
    clock.advance(minutes=30)
    assert scheduler.run_pending() == []
    assert scheduler.next_run("purge") == datetime(2025, 6, 2, 3, 0, tzinfo=ZONE)
    clock.set(at_local(1, 23, 59))
    assert scheduler.run_pending() == ["count"]
    clock.set(at_local(2, 3, 1))
    assert scheduler.run_pending() == ["purge"]
    assert runs == ["purge", "count", "purge"]


def test_missed_time_catches_up_and_a_failing_job_does_not_stop_others() -> None:
    clock = FrozenClock(at_local(1, 10, 0))  # started long after 03:00
    scheduler = Scheduler(ZONE, clock=clock)
    runs: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    scheduler.add_daily("broken", time(3, 0), broken)
    scheduler.add_daily("purge", time(3, 0), lambda: runs.append("purge"))
    assert scheduler.run_pending() == ["broken", "purge"]
    assert runs == ["purge"]
    # The failed job is not retried every poll, but within minutes, not a day later.
    clock.advance(minutes=1)
    assert scheduler.run_pending() == []
    assert scheduler.next_run("broken") == datetime(2025, 6, 1, 10, 5, tzinfo=ZONE)
    clock.advance(minutes=4)
    assert scheduler.run_pending() == ["broken"]
    # Backing off: 5 min, then 10 min, ... at most an hour.
    clock.advance(minutes=9)
    assert scheduler.run_pending() == []
    clock.advance(minutes=1)
    assert scheduler.run_pending() == ["broken"]
    assert runs == ["purge"]
    clock.advance(days=1)
    assert scheduler.run_pending() == ["broken", "purge"]


def test_a_failed_job_that_recovers_runs_daily_again() -> None:
    clock = FrozenClock(at_local(1, 3, 0))
    scheduler = Scheduler(ZONE, clock=clock, retry_initial_s=60)
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database down")

    scheduler.add_daily("purge", time(3, 0), flaky)
    assert scheduler.run_pending() == ["purge"]  # fails
    clock.advance(minutes=1)
    assert scheduler.run_pending() == ["purge"]  # retried, succeeds
    clock.advance(minutes=10)
    assert scheduler.run_pending() == []  # done for today
    assert scheduler.next_run("purge") == datetime(2025, 6, 2, 3, 0, tzinfo=ZONE)
    assert len(calls) == 2


def test_local_midnight_is_the_day_boundary() -> None:
    # 16:00 UTC is midnight in Shanghai: a new local day even though UTC's day is the same.
    clock = FrozenClock(datetime(2025, 6, 1, 15, 59, tzinfo=UTC))
    scheduler = Scheduler(ZONE, clock=clock)
    runs: list[datetime] = []
    scheduler.add_daily("job", time(0, 0), lambda: runs.append(clock.now))
    assert scheduler.run_pending() == ["job"]
    clock.advance(seconds=59)
    assert scheduler.run_pending() == []
    clock.advance(seconds=1)
    assert scheduler.run_pending() == ["job"]
    assert runs[1] - runs[0] == timedelta(seconds=60)


def test_background_thread_starts_and_stops() -> None:
    clock = FrozenClock(at_local(1, 5, 0))
    scheduler = Scheduler(ZONE, clock=clock, poll_s=0.01)
    done: list[int] = []
    scheduler.add_daily("job", time(3, 0), lambda: done.append(1))
    scheduler.start()
    try:
        for _ in range(500):
            if done:
                break
            sleep(0.01)  # waiting for the thread; the clock itself stays frozen
    finally:
        scheduler.stop()
    assert done == [1]
