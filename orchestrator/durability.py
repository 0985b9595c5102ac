"""What keeps a job alive when the process running it or the store behind it goes away.

- `JobLease`: whoever runs a job holds its lease in the store and renews it; a job that is
  `planning`/`running` while nobody holds its lease has lost its runner (a controller that
  died), and the next controller resumes it. A runner whose lease was taken over stops.
- `PatientStore`: the store as a running job uses it: a call that finds the backend
  unreachable waits and retries with backoff until the job's deadline, so a Redis restart
  costs a job time, not its life.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from orchestrator.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0  # a runner silent this long is taken for dead
OUTAGE_PATIENCE = 900.0  # how long a job without a timeout waits for its store


class JobLease:
    """The lease on one job, renewed every third of its life on a thread of its own."""

    def __init__(self, store: Store, job_id: str, owner: str, ttl: float = LEASE_SECONDS):
        self.store, self.job_id, self.owner, self.ttl = store, job_id, owner, ttl
        self.lost = threading.Event()  # another runner holds the job now
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self.store.acquire_lease(self.job_id, self.owner, self.ttl):
            return False
        self._thread = threading.Thread(target=self._renew, name=f"plait-lease-{self.job_id}", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._done.wait(self.ttl / 3):
            try:
                if not self.store.acquire_lease(self.job_id, self.owner, self.ttl):
                    self.lost.set()
                    return
            except StoreUnavailable:
                continue  # the job waits for the store too; renew when it is back
            except Exception:  # a renewal must never take the job down with it
                log.exception("renewing the lease of %s", self.job_id)

    def release(self) -> None:
        self._done.set()
        try:
            self.store.release_lease(self.job_id, self.owner)
        except StoreUnavailable:
            pass  # it expires by itself


class PatientStore:
    """Wraps a store: every call that raises StoreUnavailable is retried, waiting 0.5 s, then
    twice as long each time (at most 10 s), until `deadline` (time.monotonic())."""

    def __init__(self, store: Store, deadline: float):
        self._store, self._deadline = store, deadline

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not callable(method):
            return method

        def patient(*args, **kwargs):
            delay = 0.5
            while True:
                try:
                    return method(*args, **kwargs)
                except StoreUnavailable:
                    if time.monotonic() + delay > self._deadline:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)

        return patient
