"""Tools the reasoning workers call: a sandbox for model-written Python."""

from tools.sandbox import ExecResult, SandboxLimits, isolation_available, run_python

__all__ = ["ExecResult", "SandboxLimits", "isolation_available", "run_python"]
