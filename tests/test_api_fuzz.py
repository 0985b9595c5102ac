"""A schema fuzz of the HTTP API: schemathesis generates requests from docs/openapi.json, valid
and invalid, and every response must be a non-5xx that matches the spec. The app runs
in-process over a test double of the Client that finishes each job at once, so no Ray starts."""

from __future__ import annotations

import json
from pathlib import Path

import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from orchestrator.api import create_app
from orchestrator.client import Client
from orchestrator.config import Config
from orchestrator.job import Job, Result, new_job_id
from orchestrator.spec import JobSpec
from orchestrator.store import MemoryStore
from plait.events import event
from workers.strategies import make_strategy

TOKEN = "fuzz-token"
SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
CONFIG = """
seed = 20261201
[generation]
max-examples = 30
deterministic = true
[phases.stateful]
enabled = false
"""


class FinishingClient(Client):
    """Test double of the Client: validates and stores a job as Client.submit does, then
    finishes it on the spot instead of running it on Ray."""

    def submit(self, spec) -> str:
        spec = JobSpec.parse(spec)
        make_strategy(spec.strategy.name, spec.strategy_params())
        job = Job(id=new_job_id(), spec=spec)
        self.store.create(job)
        for status in ("planning", "running"):
            self.store.transition(job.id, status)
        self.store.finish(Result(job_id=job.id, status="succeeded", answer="42"))
        self.store.append_event(job.id, event("done", status="succeeded", answer="42", error=None, kv_cache={}, decode={}))
        return job.id


app = create_app(FinishingClient(config=Config(), store=MemoryStore(), discover=False), token=TOKEN)
schema = schemathesis.openapi.from_dict(json.loads(SPEC.read_text()), config=SchemathesisConfig.from_str(CONFIG))
schema.app = app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schema.parametrize()
def test_no_request_gets_a_server_error_or_an_off_spec_response(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)
