"""Tools the reasoning workers and checkers call: a sandbox for model-written code and for
checkers run on model-written programs."""

from tools.sandbox import ExecResult, SandboxLimits, isolation_available, run_command, run_python

__all__ = ["ExecResult", "SandboxLimits", "isolation_available", "run_command", "run_python"]
