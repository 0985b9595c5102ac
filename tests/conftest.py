import os
import shutil

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_collection_modifyitems(config, items):
    """needs_* markers skip, with the reason, only when the tool is truly absent."""
    missing = {"needs_redis": "redis-server", "needs_bwrap": "bwrap"}
    for item in items:
        for marker, binary in missing.items():
            if marker in item.keywords and shutil.which(binary) is None:
                item.add_marker(pytest.mark.skip(reason=f"{binary} is not installed (make test installs it)"))


@pytest.fixture(scope="session")
def engine():
    """The real embedded model, loaded once per session."""
    from workers.engines.transformers_engine import TransformersEngine

    return TransformersEngine()


@pytest.fixture(scope="session")
def config():
    from orchestrator.config import Config

    return Config()


@pytest.fixture(scope="session")
def client(config):
    """A Client on an in-process Ray started once for the whole session."""
    import ray

    from orchestrator.client import Client

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, log_to_driver=False)
    c = Client(config=config)
    yield c
    c.close()
    ray.shutdown()
