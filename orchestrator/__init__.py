"""plait's public API: `from orchestrator import Client, JobSpec`."""

from orchestrator.client import Client
from orchestrator.job import Job, NodeResult, Result
from orchestrator.spec import JobSpec
from plait.errors import PlaitError

__all__ = ["Client", "Job", "JobSpec", "NodeResult", "PlaitError", "Result"]
