"""JSON over HTTP to a model server, shared by the server engines: a bearer key, timeouts,
retries with exponential backoff on 429/5xx and connection errors, requests of a batch sent
concurrently, and failures as EngineErrors that say what to check."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from plait.errors import EngineError

T = TypeVar("T")
R = TypeVar("R")

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    pass


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (_Retryable, httpx.TransportError))


class JsonAPI:
    def __init__(self, base_url: str, *, api_key: str | None, timeout: float, max_retries: int, backoff: float, concurrency: int):
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout))
        self._pool = ThreadPoolExecutor(max_workers=concurrency)
        self._post = retry(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(max_retries + 1),
            wait=wait_exponential(multiplier=backoff, max=30),
            reraise=True,
        )(self._post_once)

    def _post_once(self, path: str, body: dict) -> dict:
        response = self.http.post(path, json=body)
        if response.status_code in _RETRY_STATUS:
            raise _Retryable(f"{path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise EngineError(f"{response.request.url} refused the request: HTTP {response.status_code} {response.text[:300]}")
        return response.json()

    def post(self, path: str, body: dict) -> dict:
        try:
            return self._post(path, body)
        except (_Retryable, httpx.TransportError) as exc:
            raise EngineError(f"{self.base_url} did not answer after retries ({exc}); is the server up?") from exc

    def get(self, path: str) -> dict:
        try:
            return self.http.get(path).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise EngineError(f"{self.base_url}{path} did not answer ({exc}); is the server up?") from exc

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`fn` over the items concurrently (one request each), results in order."""
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        self.http.close()
        self._pool.shutdown(wait=False)
