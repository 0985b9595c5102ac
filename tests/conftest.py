import os
import shutil

import pytest

# Importing it sets plait's Ray environment (token auth, no usage stats), which ray reads when
# it is imported: before any test module imports ray itself (test_deploy's autoscaler check).
import orchestrator.runtime  # noqa: F401


def pytest_collection_modifyitems(config, items):
    """needs_* markers skip, with the reason, only when the tool is truly absent."""
    installed_by_make_test = "is not installed (make test installs it)"
    missing = {
        "needs_redis": ("redis-server", installed_by_make_test),
        "needs_bwrap": ("bwrap", installed_by_make_test),
        "needs_dafny": ("dafny", installed_by_make_test),
        "needs_coq": ("coqc", installed_by_make_test),
        # No Lean toolchain installs offline; see README "Program verifiers" for elan.
        "needs_lean": ("lean", "is not on PATH: install elan, then `elan default leanprover/lean4:stable` (needs internet)"),
    }
    for item in items:
        for marker, (binary, why) in missing.items():
            if marker in item.keywords and shutil.which(binary) is None:
                item.add_marker(pytest.mark.skip(reason=f"{binary} {why}"))


@pytest.fixture(scope="session")
def engine():
    """The real embedded model, loaded once per session."""
    from workers.engines.transformers_engine import TransformersEngine

    return TransformersEngine()


@pytest.fixture(scope="session")
def config():
    """Every difficulty on the small tier (the embedded 135M model): fast, and what the
    plumbing tests were written for. Tests of the capable tier say so."""
    from orchestrator.config import Config

    return Config(routing={1: "small"}, ray={"num_cpus": 2})


@pytest.fixture(scope="session")
def client(config):
    """A local-mode Client on an in-process Ray started once for the whole session."""
    from orchestrator.client import Client
    from orchestrator.runtime import init_ray, shutdown_local_ray

    # Also offer a second tier, for tests that route to two different engines.
    init_ray(config.model_copy(update={"tiers": {**config.tiers, "large": config.tiers["small"]}}))
    c = Client(config=config, discover=False)
    yield c
    c.close()
    shutdown_local_ray()  # Ray and the agents its raylet forked: the suite leaves nothing running


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server (AOF on) on a free loopback port for the whole session."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    from orchestrator.cluster import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """The session server's URL, emptied so each test starts from nothing."""
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    yield redis_server.url
