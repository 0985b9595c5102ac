"""Redis store: jobs shared by every client and scheduler process of a cluster.

Key layout (prefix defaults to "plait"):
  {prefix}:job:{id}     string, the job as JSON (Job.to_dict)
  {prefix}:jobs         sorted set of job ids scored by created time, for `jobs()`
  {prefix}:result:{id}  string, the result as JSON (Result.to_dict)
  {prefix}:events:{id}  stream; event seq N has entry id 0-{N+1}, field "e" the event as JSON
                        (without "seq", which the id carries) and field "t" the append token
  {prefix}:cancel:{id}  string, present once a cancel was requested
  {prefix}:nodes:{id}   hash, node id -> the finished node's result as JSON (NodeResult.to_dict)
  {prefix}:lease:{id}   string, the lease holder's name, expiring with the lease (PX)
  {prefix}:idempotency:{key}  string, the KeyClaim as JSON, expiring with the key (PX)

Every write that must see the current state runs as one Lua script (atomic in Redis), except
transitions, which compare-and-set the whole record so the status machine stays in Python.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.client import Pipeline
from redis.retry import Retry

from orchestrator.job import TERMINAL, Job, JobNotFound, NodeResult, Result, check_transition
from orchestrator.store.base import KeyClaim, StoreUnavailable, check_ttl, encode_job, encode_node, encode_result
from plait.errors import ConfigError, InvalidInput

SCHEMES = ("redis", "rediss", "unix")
CONNECT_TIMEOUT = 2.0  # an unreachable Redis should fail a CLI call fast
SOCKET_TIMEOUT = 5.0
BLOCK_SLICE = 2.0  # XREAD BLOCK must return well within SOCKET_TIMEOUT
DEDUPE_WINDOW = 16  # recent entries searched for a retried append's token

# KEYS: job record, job index. ARGV: record JSON, created, job id.
_CREATE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# KEYS: job record[, a key written with it]. ARGV: record as read, record to write[, that key's
# value]. -1 no job, 0 changed meanwhile, 1 done.
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[3]) end
return 1
"""

# KEYS: job record, key to set. ARGV: value. 0 if there is no such job.
_SET_IF_JOB = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1
"""

# KEYS: job record, hash. ARGV: field, value. 0 if there is no such job.
_HSET_IF_JOB = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: job record, lease. ARGV: owner, ttl ms, the finished statuses. -1 no job, 0 the job has
# finished or another owner holds it, 1 taken or renewed.
_ACQUIRE_LEASE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return -1 end
local status = cjson.decode(raw)['status']
for i = 3, #ARGV do if status == ARGV[i] then return 0 end end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: job record, lease. ARGV: owner. -1 no job, else 1.
_RELEASE_LEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

# KEYS: the key's claim. ARGV: claim JSON, ttl ms. The claim holding the key, or nil once claimed.
_CLAIM_KEY = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# KEYS: the key's claim. ARGV: token, job id to bind ('' drops the key), ttl ms.
# Only the claim's own token settles it: a claim that expired meanwhile may be another's now.
_SETTLE_KEY = """
local held = redis.call('GET', KEYS[1])
if not held then return 0 end
local claim = cjson.decode(held)
if claim['token'] ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  claim['job_id'], claim['token'] = ARGV[2], nil
  redis.call('SET', KEYS[1], cjson.encode(claim), 'PX', ARGV[3])
end
return 1
"""

# KEYS: job record, event stream. ARGV: event JSON, append token, DEDUPE_WINDOW.
# Returns the event's seq, or -1 if there is no such job.
# redis-py resends a command whose reply was lost; the token makes that resend a no-op.
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local recent = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', tonumber(ARGV[3]))
for _, entry in ipairs(recent) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 't' and fields[i + 1] == ARGV[2] then
      return tonumber(string.match(entry[1], '%d+$')) - 1
    end
  end
end
local next_seq = 0
if #recent > 0 then next_seq = tonumber(string.match(recent[1][1], '%d+$')) end
redis.call('XADD', KEYS[2], '0-' .. (next_seq + 1), 'e', ARGV[1], 't', ARGV[2])
return next_seq
"""

P = ParamSpec("P")
T = TypeVar("T")


def _redacted(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    return re.sub(r"(password=)[^&]*", r"\1***", re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url))


def _reaching(method: Callable[Concatenate[RedisStore, P], T]) -> Callable[Concatenate[RedisStore, P], T]:
    """Turn redis-py's connection failures into StoreUnavailable, which users can act on."""

    @functools.wraps(method)
    def wrapper(self: RedisStore, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(
                f"cannot reach Redis at {self.url} ({exc}): start it with `plait up`, or set PLAIT_REDIS_URL"
            ) from exc

    return wrapper


def _not_found(job_id: str) -> JobNotFound:
    return JobNotFound(f"no job {job_id!r}: list jobs with `plait jobs`")


def _decode_event(entry_id: str, fields: dict[str, str]) -> dict:
    return {**json.loads(fields["e"]), "seq": int(entry_id.rpartition("-")[2]) - 1}


class RedisStore:
    def __init__(self, url: str, prefix: str = "plait") -> None:
        self.url = _redacted(url)
        if urlsplit(url).scheme not in SCHEMES:
            raise ConfigError(
                f"PLAIT_REDIS_URL {self.url!r} is not a Redis URL: use redis://host:port/db, "
                "rediss://host:port/db or unix:///path/to/redis.sock"
            )
        if not prefix:
            raise ConfigError("the Redis key prefix must not be empty")
        try:
            self._redis = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
                retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
            )
        except ValueError as exc:  # a bad port, db or query option
            raise ConfigError(f"PLAIT_REDIS_URL {self.url!r} is malformed: {exc}") from exc
        self.prefix = prefix
        self._create = self._redis.register_script(_CREATE)
        self._compare_and_set = self._redis.register_script(_COMPARE_AND_SET)
        self._set_if_job = self._redis.register_script(_SET_IF_JOB)
        self._append = self._redis.register_script(_APPEND)
        self._hset_if_job = self._redis.register_script(_HSET_IF_JOB)
        self._acquire_lease = self._redis.register_script(_ACQUIRE_LEASE)
        self._release_lease = self._redis.register_script(_RELEASE_LEASE)
        self._claim_key = self._redis.register_script(_CLAIM_KEY)
        self._settle_key = self._redis.register_script(_SETTLE_KEY)

    def _key(self, kind: str, job_id: str) -> str:
        return f"{self.prefix}:{kind}:{job_id}"

    def _of_job(self, job_id: str, read: Callable[[Pipeline], Pipeline]) -> Any:
        """The reply to what `read` queues, read together with the job's existence: JobNotFound
        if there is no such job."""
        exists, found = read(self._redis.pipeline(transaction=False).exists(self._key("job", job_id))).execute()
        if not exists:
            raise _not_found(job_id)
        return found

    @property
    def _index(self) -> str:
        return f"{self.prefix}:jobs"

    def close(self) -> None:
        self._redis.close()

    @_reaching
    def ping(self) -> None:
        self._redis.ping()

    @_reaching
    def create(self, job: Job) -> None:
        raw = encode_job(job)
        if not self._create(keys=[self._key("job", job.id), self._index], args=[raw, job.created, job.id]):
            raise ValueError(f"job {job.id} already exists")

    @_reaching
    def get(self, job_id: str) -> Job:
        raw = self._redis.get(self._key("job", job_id))
        if raw is None:
            raise _not_found(job_id)
        return Job.from_dict(json.loads(raw))

    @_reaching
    def transition(self, job_id: str, status: str) -> Job:
        return self._move(job_id, status)

    @_reaching
    def finish(self, result: Result) -> Job:
        return self._move(result.job_id, result.status, (self._key("result", result.job_id), encode_result(result)))

    def _move(self, job_id: str, status: str, result: tuple[str, str] | None = None) -> Job:
        """Move the job to `status`, writing `result` (key, value) with the move when given;
        with a result, a job in `status` already is not moved, only given it."""
        key = self._key("job", job_id)
        # Each lost race means another process moved the job along its finite status machine,
        # so this loop ends: in success, IllegalTransition, or JobNotFound.
        while True:
            raw = self._redis.get(key)
            if raw is None:
                raise _not_found(job_id)
            job = Job.from_dict(json.loads(raw))
            if result is None or job.status != status:
                check_transition(job_id, job.status, status)
            job.status, job.updated = status, time.time()
            keys, args = [key], [raw, json.dumps(job.to_dict())]
            if result:
                keys.append(result[0])
                args.append(result[1])
            outcome = self._compare_and_set(keys=keys, args=args)
            if outcome == 1:
                return job
            if outcome == -1:
                raise _not_found(job_id)

    @_reaching
    def result(self, job_id: str) -> Result | None:
        raw = self._of_job(job_id, lambda pipe: pipe.get(self._key("result", job_id)))
        return Result.from_dict(json.loads(raw)) if raw is not None else None

    @_reaching
    def put_node_result(self, job_id: str, node: NodeResult) -> None:
        raw = encode_node(job_id, node)
        if not self._hset_if_job(keys=[self._key("job", job_id), self._key("nodes", job_id)], args=[node.id, raw]):
            raise _not_found(job_id)

    @_reaching
    def node_results(self, job_id: str) -> dict[str, NodeResult]:
        found = self._of_job(job_id, lambda pipe: pipe.hgetall(self._key("nodes", job_id)))
        return {node_id: NodeResult.from_dict(json.loads(raw)) for node_id, raw in found.items()}

    @_reaching
    def append_event(self, job_id: str, event: dict) -> int:
        stored = {k: v for k, v in event.items() if k != "seq"}
        stored["ts"] = event.get("ts", time.time())
        try:
            raw = json.dumps(stored)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"event for job {job_id} is not JSON-serializable: {exc}") from exc
        seq = self._append(
            keys=[self._key("job", job_id), self._key("events", job_id)],
            args=[raw, uuid.uuid4().hex, DEDUPE_WINDOW],
        )
        if seq < 0:
            raise _not_found(job_id)
        return int(seq)

    @_reaching
    def events(self, job_id: str, offset: int = 0) -> list[dict]:
        start = f"0-{max(offset, 0) + 1}"
        entries = self._of_job(job_id, lambda pipe: pipe.xrange(self._key("events", job_id), min=start))
        return [_decode_event(entry_id, fields) for entry_id, fields in entries]

    @_reaching
    def wait_events(self, job_id: str, offset: int, timeout: float) -> list[dict]:
        offset = max(offset, 0)
        deadline = time.monotonic() + timeout
        found = self.events(job_id, offset)
        while not found:
            block_ms = int(min(deadline - time.monotonic(), BLOCK_SLICE) * 1000)
            if block_ms <= 0:  # BLOCK 0 would wait forever
                break
            # XREAD only signals that seq >= offset exists; events() then reads them all.
            if self._redis.xread({self._key("events", job_id): f"0-{offset}"}, count=1, block=block_ms):
                found = self.events(job_id, offset)
        return found

    @_reaching
    def jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        found: list[Job] = []
        page = max(limit, 100)
        start = 0
        while len(found) < limit:
            ids = self._redis.zrevrange(self._index, start, start + page - 1)
            if not ids:
                break
            for raw in self._redis.mget([self._key("job", job_id) for job_id in ids]):
                if raw is not None:
                    job = Job.from_dict(json.loads(raw))
                    if status is None or job.status == status:
                        found.append(job)
            start += page
        return found[: max(limit, 0)]

    @_reaching
    def request_cancel(self, job_id: str) -> None:
        if not self._set_if_job(keys=[self._key("job", job_id), self._key("cancel", job_id)], args=["1"]):
            raise _not_found(job_id)

    @_reaching
    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._of_job(job_id, lambda pipe: pipe.exists(self._key("cancel", job_id))))

    @_reaching
    def acquire_lease(self, job_id: str, owner: str, ttl: float) -> bool:
        check_ttl(ttl)
        outcome = self._acquire_lease(keys=[self._key("job", job_id), self._key("lease", job_id)], args=[owner, _ms(ttl), *TERMINAL])
        if outcome < 0:
            raise _not_found(job_id)
        return bool(outcome)

    @_reaching
    def release_lease(self, job_id: str, owner: str) -> None:
        if self._release_lease(keys=[self._key("job", job_id), self._key("lease", job_id)], args=[owner]) < 0:
            raise _not_found(job_id)

    @_reaching
    def lease_holder(self, job_id: str) -> str | None:
        return self._of_job(job_id, lambda pipe: pipe.get(self._key("lease", job_id)))

    @_reaching
    def claim_idempotency_key(self, key: str, fingerprint: str, ttl: float) -> KeyClaim:
        check_ttl(ttl)
        claim = KeyClaim(fingerprint, token=uuid.uuid4().hex)
        held = self._claim_key(keys=[self._key("idempotency", key)], args=[json.dumps(asdict(claim)), _ms(ttl)])
        if held is None:
            return claim
        found = json.loads(held)
        return KeyClaim(found["fingerprint"], found.get("job_id"))

    @_reaching
    def bind_idempotency_key(self, key: str, token: str, job_id: str, ttl: float) -> None:
        check_ttl(ttl)
        self._settle_key(keys=[self._key("idempotency", key)], args=[token, job_id, _ms(ttl)])

    @_reaching
    def release_idempotency_key(self, key: str, token: str) -> None:
        self._settle_key(keys=[self._key("idempotency", key)], args=[token, "", 0])


def _ms(seconds: float) -> int:
    """A ttl as PX wants it: whole milliseconds, at least one."""
    return max(1, round(seconds * 1000))
