"""Shared kernel of plait: the version and the error types every layer raises."""

__version__ = "0.1.0"
