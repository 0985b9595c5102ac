"""The `plait` command. User errors print one line and exit 2; internal failures exit 1
(set PLAIT_DEBUG=1 for the traceback)."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from plait import __version__
from plait.errors import InvalidInput, PlaitError

app = typer.Typer(
    name="plait",
    help="Distributed reasoning orchestrator: plan, reason with tools, verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
engine_app = typer.Typer(help="Serve a model over an OpenAI-compatible HTTP API.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(engine_app, name="engine")

out = Console()
err = Console(stderr=True)


def _problem_spec(problem: str) -> dict:
    """PROBLEM is the text itself, '-' for stdin, or @FILE holding a JobSpec (JSON) or plain text."""
    if problem == "-":
        return {"problem": sys.stdin.read()}
    if problem.startswith("@"):
        path = Path(problem[1:])
        if not path.is_file():
            raise InvalidInput(f"{path} does not exist (an argument starting with @ names a file)")
        text = path.read_text()
        if path.suffix == ".json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path} is not valid JSON: {exc}") from None
        return {"problem": text}
    return {"problem": problem}


def _strategy_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param {pair!r} must look like key=value")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


@app.command()
def solve(
    problem: str = typer.Argument(..., help="The problem text, '-' to read stdin, or @FILE (a JobSpec .json or plain text)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="tora | cot | pal  [default: tora]"),
    answer: Optional[str] = typer.Option(None, "--answer", help="Reference answer: the result is checked against it."),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy parameter key=value, e.g. -p max_tool_calls=2."),
    max_tokens: Optional[int] = typer.Option(None, help="Budget: generated tokens per node."),
    max_seconds: Optional[float] = typer.Option(None, help="Budget: wall-clock seconds per node."),
    as_json: bool = typer.Option(False, "--json", help="Print the Result as JSON on stdout."),
    config: Optional[Path] = typer.Option(None, "--config", help="plait.toml to use (default: $PLAIT_CONFIG, ./plait.toml)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: $RAY_ADDRESS or in-process)."),
) -> None:
    """Solve one problem end to end and print the answer, its verdict, tokens and time."""
    from orchestrator.client import Client
    from orchestrator.config import load_config
    from orchestrator.progress import ProgressView, render_result
    from orchestrator.spec import JobSpec

    data = _problem_spec(problem)
    if strategy or param:
        data.setdefault("strategy", {})
        if strategy:
            data["strategy"]["name"] = strategy
        data["strategy"].setdefault("params", {}).update(_strategy_params(param))
    budget = {k: v for k, v in (("max_tokens", max_tokens), ("max_seconds", max_seconds)) if v is not None}
    if budget:
        data.setdefault("budget", {}).update(budget)
    if answer is not None:
        data["reference"] = answer
    spec = JobSpec.parse(data)  # bad input fails here, before Ray starts
    client = Client(address, config=load_config(config))
    with ProgressView(err) as view:
        result = client.solve(spec, on_event=view)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render_result(result, out)
    if result.status == "failed":
        raise typer.Exit(1)


@config_app.command("show")
def config_show(config: Optional[Path] = typer.Option(None, "--config", help="plait.toml to read.")) -> None:
    """Print the effective configuration (file + PLAIT_* variables + defaults) as JSON."""
    from orchestrator.config import config_path, load_config

    effective = load_config(config)
    source = config_path(config)
    err.print(f"# from {source or 'defaults (no plait.toml found)'} and PLAIT_* variables", style="dim")
    out.print_json(effective.model_dump_json())


@engine_app.command("serve")
def engine_serve(
    model: str = typer.Option("smollm2-135m", help="'smollm2-135m' (embedded) or a local transformers model directory."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    api_key_env: Optional[str] = typer.Option(None, help="Environment variable holding the API key clients must send."),
) -> None:
    """Serve MODEL at http://HOST:PORT/v1 (completions, chat completions, models)."""
    import uvicorn

    from workers.engines.server import create_app
    from workers.engines.transformers_engine import TransformersEngine

    key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not key:
        raise InvalidInput(f"--api-key-env {api_key_env}: that variable is not set")
    if not key and not _is_loopback(host):
        raise InvalidInput(f"refusing to serve on {host} without an API key: pass --api-key-env VAR, or bind 127.0.0.1")
    engine = TransformersEngine(model, progress=lambda msg: err.print(msg, style="dim"))
    err.print(f"serving {model} at http://{host}:{port}/v1", style="bold")
    uvicorn.run(create_app(engine, api_key=key), host=host, port=port, log_level="warning")


@app.command()
def version() -> None:
    """Print plait's version."""
    out.print(f"plait {__version__}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    # typer exits by itself on success and on usage errors (exit 2); what escapes it is ours.
    try:
        app()
    except PlaitError as exc:
        err.print(f"error: {exc}", style="red", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("PLAIT_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (PLAIT_DEBUG=1 shows the traceback)", style="red", soft_wrap=True)
        sys.exit(1)
