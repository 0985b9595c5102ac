"""Run an ASGI app on a free loopback port in a background thread, for tests."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from tools.processes import free_port


@contextmanager
def serving(app, timeout: float = 30.0) -> Iterator[str]:
    """Yields http://127.0.0.1:PORT while uvicorn serves `app` there."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
