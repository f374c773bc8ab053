"""Helpers for tests of background jobs (organizer.jobs)."""
from __future__ import annotations

import threading

from organizer import jobs

WAIT_S = 60


class Gate:
    """Holds a job at each progress step until the test lets it go on, so a test sees a
    job mid-way for sure (no sleeps, no races)."""

    def __init__(self) -> None:
        self.reached = threading.Semaphore(0)
        self.go = threading.Semaphore(0)

    def wrap(self, progress: jobs.Progress) -> jobs.Progress:
        gate = self

        class Held:
            def step(self, done: int, total: int, what: str = "") -> None:
                progress.step(done, total, what)
                gate.reached.release()
                assert gate.go.acquire(timeout=WAIT_S), "the test never let the job go on"

            @property
            def cancelled(self) -> bool:
                return progress.cancelled
        return Held()

    def wait_step(self) -> None:
        assert self.reached.acquire(timeout=WAIT_S), "the job did not reach its next step"

    def release(self, steps: int = 1) -> None:
        for _ in range(steps):
            self.go.release()
