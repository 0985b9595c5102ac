"""The `plait` command. User errors print one line and exit 2; internal failures exit 1
(set PLAIT_DEBUG=1 for the traceback)."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime
from typing import Annotated, Optional

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
        text = _source_text(path)
        if path.suffix == ".json":
            from orchestrator.spec import parse_json

            try:
                return parse_json(text, str(path))
            except ValueError as exc:
                raise InvalidInput(f"{path} is not valid JSON: {exc}") from None
        return {"problem": text}
    return {"problem": problem}


def _strategy_params(pairs: list[str]) -> dict:
    from orchestrator.spec import parse_json

    params = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param {pair!r} must look like key=value")
        try:
            params[key] = parse_json(raw, f"--param {key}")
        except ValueError:
            params[key] = raw
    return params


# Options shared by several verbs, declared once.
StrategyOpt = Annotated[
    Optional[str],
    typer.Option("--strategy", "-s", help="A strategy (`plait strategies` lists them and their parameters)  [default: tora; vmcts for synth]"),
]
AnswerOpt = Annotated[Optional[str], typer.Option("--answer", help="Reference answer: the result is checked against it.")]
ParamOpt = Annotated[list[str], typer.Option("--param", "-p", help="Strategy parameter key=value, e.g. -p max_tool_calls=2.")]
MaxTokensOpt = Annotated[Optional[int], typer.Option("--max-tokens", help="Budget: generated tokens per node.")]
MaxSecondsOpt = Annotated[Optional[float], typer.Option("--max-seconds", help="Budget: wall-clock seconds per node.")]
SamplesOpt = Annotated[Optional[int], typer.Option("--budget-samples", help="Budget: samples per node (search strategies).")]
FlopsOpt = Annotated[Optional[float], typer.Option("--budget-flops", help="Budget: FLOPs per node (2 x parameters x tokens).")]
TimeoutOpt = Annotated[Optional[float], typer.Option("--timeout", help="Wall-clock seconds for the whole job.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="plait.toml to use (default: $PLAIT_CONFIG, ./plait.toml).")]
AddressOpt = Annotated[
    Optional[str], typer.Option("--address", help="Ray cluster address (default: $RAY_ADDRESS, a `plait up` cluster, or in-process).")
]
ProblemArg = Annotated[str, typer.Argument(help="The problem text, '-' to read stdin, or @FILE (a JobSpec .json or plain text).")]
JobArg = Annotated[str, typer.Argument(help="Job id (see `plait jobs`).")]
PlannerOpt = Annotated[Optional[str], typer.Option("--planner", help="none | sgd (skeleton graph)  [default: none]")]
GraphOpt = Annotated[Optional[Path], typer.Option("--graph", help="Also draw the job's skeleton graph to this .png or .svg.")]


# The options of every verb that runs a job (solve, submit, synth), parsed in one place.
_JOB_OPTIONS = {
    "strategy": (StrategyOpt, None),
    "answer": (AnswerOpt, None),
    "param": (ParamOpt, []),
    "max_tokens": (MaxTokensOpt, None),
    "max_seconds": (MaxSecondsOpt, None),
    "budget_samples": (SamplesOpt, None),
    "budget_flops": (FlopsOpt, None),
    "timeout": (TimeoutOpt, None),
    "planner": (PlannerOpt, None),
    "as_json": (JsonOpt, False),
    "config": (ConfigOpt, None),
    "address": (AddressOpt, None),
}


@dataclass
class JobOptions:
    strategy: str | None = None
    answer: str | None = None
    param: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    max_seconds: float | None = None
    budget_samples: int | None = None
    budget_flops: float | None = None
    timeout: float | None = None
    planner: str | None = None
    as_json: bool = False
    config: Path | None = None
    address: str | None = None

    def spec(self, data: dict, budget_defaults: dict | None = None):
        """The JobSpec: `data` (the problem, maybe a whole JobSpec from @FILE) with these options
        on top. Bad input fails here, before Ray starts."""
        from orchestrator.spec import JobSpec

        if self.strategy or self.param:
            strategy = data.setdefault("strategy", {})
            if self.strategy:
                strategy["name"] = self.strategy
            strategy.setdefault("params", {}).update(_strategy_params(self.param))
        budget = {"max_tokens": self.max_tokens, "max_seconds": self.max_seconds, "max_samples": self.budget_samples, "max_flops": self.budget_flops}
        budget = {**(budget_defaults or {}), **{k: v for k, v in budget.items() if v is not None}}
        if budget:
            data.setdefault("budget", {}).update(budget)
        for key, value in (("reference", self.answer), ("timeout", self.timeout), ("planner", self.planner)):
            if value is not None:
                data[key] = value
        return JobSpec.parse(data)

    def client(self):
        return _client(self.config, self.address)


def job_options(command):
    """Give `command` the job options: its own parameters, then these, gathered into its `job`."""
    hints = typing.get_type_hints(command, include_extras=True)  # the Annotated options, not their names
    own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values() if p.name != "job"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default) for name, (kind, default) in _JOB_OPTIONS.items()]

    @functools.wraps(command)
    def with_options(**values):
        job = JobOptions(**{name: values.pop(name) for name in _JOB_OPTIONS})
        return command(job=job, **values)

    with_options.__signature__ = inspect.Signature([*own, *shared])
    return with_options


def _client(config: Optional[Path], address: Optional[str]):
    from orchestrator.client import Client
    from orchestrator.config import load_config

    return Client(address, config=load_config(config))


def _show_result(result, as_json: bool) -> None:
    from orchestrator.progress import render_result

    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render_result(result, out)
    if result.status == "failed":
        raise typer.Exit(1)


def _follow(client, job_id: str, graph: Optional[Path] = None):
    """Show the job live until it finishes; its result."""
    from orchestrator.progress import ProgressView

    with ProgressView(err) as view:
        for event in client.watch(job_id):
            view(event)
    if graph is not None:
        _draw(client, job_id, graph)
    return client.result(job_id)


def _draw(client, job_id: str, path: Path) -> None:
    from orchestrator.graphview import graph_from_events, render_graph

    found = client.result(job_id)
    written = render_graph(graph_from_events(client.events(job_id)), found.nodes if found else None, path)
    err.print(f"graph written to {written}", style="dim")


@app.command()
@job_options
def solve(problem: ProblemArg, graph: GraphOpt = None, *, job: JobOptions) -> None:
    """Solve one problem end to end and print the answer, its verdict, tokens and time."""
    spec = job.spec(_problem_spec(problem))
    with job.client() as client:
        _show_result(_follow(client, client.submit(spec), graph), job.as_json)


@app.command()
@job_options
def submit(
    problem: ProblemArg,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job and print its result.")] = False,
    *,
    job: JobOptions,
) -> None:
    """Queue a job on the cluster and print its id; it runs on after this command exits."""
    spec = job.spec(_problem_spec(problem))
    with job.client() as client:
        if client.mode == "local" and not wait:
            raise InvalidInput("no cluster to submit to: start one with `plait up`, pass --address, or use `plait solve`")
        job_id = client.submit(spec)
        if wait:
            err.print(job_id, style="dim")
            _show_result(_follow(client, job_id), job.as_json)
        else:
            print(json.dumps({"id": job_id}) if job.as_json else job_id)


@app.command()
def status(job_id: JobArg, as_json: JsonOpt = False, config: ConfigOpt = None, address: AddressOpt = None) -> None:
    """Print a job's status."""
    job = _client(config, address).status(job_id)
    if as_json:
        print(json.dumps(job.to_dict()))
    else:
        out.print(f"{job.id}  {job.status}  {job.spec.strategy.name}  {job.spec.problem[:60]!r}", highlight=False)


@app.command()
def result(
    job_id: JobArg,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the job has finished.")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    address: AddressOpt = None,
) -> None:
    """Print a finished job's result (answer, verdict, tokens, time)."""
    client = _client(config, address)
    found = client.result(job_id, wait=wait)
    if found is None:
        raise InvalidInput(f"job {job_id} is {client.status(job_id).status}, not finished: use --wait or `plait watch {job_id}`")
    _show_result(found, as_json)


@app.command()
def show(job_id: JobArg, graph: GraphOpt = None, config: ConfigOpt = None, address: AddressOpt = None) -> None:
    """Show a job's skeleton graph: each node's tier, status and answer (and draw it with --graph)."""
    from rich.table import Table

    from orchestrator.graphview import graph_from_events

    client = _client(config, address)
    job = client.status(job_id)
    nodes = graph_from_events(client.events(job_id))
    table = Table(title=f"{job.id}  {job.status}", box=None)
    for column in ("node", "depends on", "difficulty", "tier", "status", "answer"):
        table.add_column(column)
    for node in nodes:
        table.add_row(
            node["id"], ", ".join(node["depends_on"]), str(node["difficulty"]), node["tier"], node["status"], str(node.get("answer") or "")[:40]
        )
    out.print(table)
    if graph is not None:
        _draw(client, job_id, graph)


@app.command()
def watch(job_id: JobArg, as_json: JsonOpt = False, config: ConfigOpt = None, address: AddressOpt = None) -> None:
    """Follow a job live (its graph's nodes, decoding rounds, tool calls) until it finishes."""
    _show_result(_follow(_client(config, address), job_id), as_json)


@app.command()
def cancel(job_id: JobArg, config: ConfigOpt = None, address: AddressOpt = None) -> None:
    """Cancel a job: nodes not yet started never run."""
    job = _client(config, address).cancel(job_id)
    out.print(f"{job.id}  {job.status}" + ("" if job.status in ("succeeded", "failed", "cancelled") else "  (cancel requested)"))


@app.command()
def jobs(
    status_filter: Annotated[Optional[str], typer.Option("--status", help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many, newest first.")] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    address: AddressOpt = None,
) -> None:
    """List jobs, newest first."""
    from rich.table import Table

    from orchestrator.job import STATUSES

    if status_filter is not None and status_filter not in STATUSES:
        raise InvalidInput(f"--status {status_filter!r}: choose one of {', '.join(STATUSES)}")
    listed = _client(config, address).jobs(status_filter, limit)
    if as_json:
        print(json.dumps([j.to_dict() for j in listed]))
        return
    table = Table(box=None)
    for column in ("id", "status", "strategy", "created", "problem"):
        table.add_column(column)
    for j in listed:
        created = datetime.fromtimestamp(j.created).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(j.id, j.status, j.spec.strategy.name, created, j.spec.problem[:50])
    out.print(table)


@app.command()
def up(
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs the Ray head offers (default: all).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Start a persistent local cluster (Ray head + Redis) that solve/submit then use."""
    from orchestrator import cluster
    from orchestrator.config import load_config

    state, started = cluster.up(load_config(config), num_cpus)
    out.print(("started" if started else "already up") + f": ray {state.ray_address}, redis {state.redis_url}")
    out.print(f"logs and data in {state.directory}; stop with `plait down`", style="dim")


@app.command()
def down() -> None:
    """Stop the cluster `plait up` started."""
    from orchestrator import cluster

    state = cluster.down()
    out.print("stopped" if state else "no cluster was up")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; any non-loopback address needs PLAIT_API_TOKEN.")] = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option(help="Port to bind [default: 8080].")] = None,
    config: ConfigOpt = None,
    address: AddressOpt = None,
) -> None:
    """Serve the HTTP API (jobs, server-sent events, metrics) with uvicorn."""
    from orchestrator.api import run_server
    from orchestrator.config import API_PORT

    if port is not None and not 1 <= port <= 65535:
        raise InvalidInput(f"--port {port}: a port is 1-65535; leave it out for {API_PORT}")
    with _client(config, address) as client:
        err.print(f"plait API at http://{host}:{port or API_PORT} ({client.mode} mode)", style="bold")
        run_server(client, host, port or API_PORT, os.environ.get("PLAIT_API_TOKEN") or None)


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

    from orchestrator.api import is_loopback
    from workers.engines.server import create_app
    from workers.engines.transformers_engine import TransformersEngine

    key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not key:
        raise InvalidInput(f"--api-key-env {api_key_env}: that variable is not set")
    if not key and not is_loopback(host):
        raise InvalidInput(f"refusing to serve on {host} without an API key: pass --api-key-env VAR, or bind 127.0.0.1")
    engine = TransformersEngine(model, progress=lambda msg: err.print(msg, style="dim"))
    err.print(f"serving {model} at http://{host}:{port}/v1", style="bold")
    uvicorn.run(create_app(engine, api_key=key), host=host, port=port, log_level="warning")


@engine_app.command("install")
def engine_install(
    models: Annotated[bool, typer.Option("--models/--no-models", help="Also prepare the embedded models (assemble the large one, convert the small one).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Build llama-server again even if it is built.")] = False,
) -> None:
    """Build the llama.cpp runtime (llama-server, from pinned sources) and prepare the embedded models."""
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from workers.engines import llamacpp_build
    from workers.engines.embedded import embedded_model_dir
    from workers.engines.packaged import QWEN_CODER, gguf_path

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        tasks: dict[str, int] = {}

        def step(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"llama-server {llamacpp_build.LLAMA_CPP_PYTHON}: {stage}", total=total)
            progress.update(tasks[stage], completed=done, total=total)

        binary = llamacpp_build.install(step, force=force)
    err.print(f"llama.cpp runtime: {binary}", style="dim")
    if not models:
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task(f"assembling {QWEN_CODER.title}", total=QWEN_CODER.size)
        large = gguf_path(QWEN_CODER, lambda done, total: progress.update(task, completed=done))
        progress.update(task, completed=QWEN_CODER.size)
    err.print(f"large model: {large}", style="dim")
    small = embedded_model_dir(lambda message: err.print(message, style="dim"))
    err.print(f"small model: {small}", style="dim")


def _source_text(path: Path) -> str:
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:  # valid UTF-8 can still be binary
        raise InvalidInput(f"{path} is binary, not UTF-8 text: give a text or JSON file")
    return text


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="The program or proof to check (.dfy, .v, .lean).")],
    lang: Annotated[Optional[str], typer.Option("--lang", help="dafny | coq | lean (default: from FILE's extension)")] = None,
    spec: Annotated[Optional[Path], typer.Option("--spec", help="Specification FILE must contain verbatim (signature or theorem statement).")] = None,
    partial: Annotated[bool, typer.Option("--partial", help="FILE is unfinished: errors only at its end give 'incomplete'.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds the checker may run.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Check a program or proof with Dafny, Coq or Lean and print the verdict; exit 0 only when verified."""
    from verifiers.programs import language_of, verify_program

    source, spec_text = _source_text(file), _source_text(spec) if spec else None
    verdict = verify_program(lang or language_of(file), source, spec_text, partial, timeout)
    if as_json:
        print(json.dumps(verdict.to_dict()))
    else:
        checker = f"{verdict.checker.name} {verdict.checker.version}".strip()
        out.print(f"{verdict.status}  score {verdict.score:+g}  checker {checker}", highlight=False)
        out.print(verdict.message, highlight=False, markup=False, soft_wrap=True)
    if not verdict.verified:
        raise typer.Exit(1)


SYNTH_TOKENS = 4096  # a synthesis's generated-token budget unless --max-tokens says otherwise


@app.command()
@job_options
def synth(
    spec_file: Annotated[Path, typer.Argument(help="The specification: a Dafny signature with its contract, or a Coq/Lean theorem statement.")],
    lang: Annotated[Optional[str], typer.Option("--lang", help="dafny | coq | lean (default: from the file's extension)")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Where to write the verified program (default: NAME.verified.EXT here).")] = None,
    *,
    job: JobOptions,
) -> None:
    """Synthesize a program or proof that the real checker accepts (strategy vmcts or resample); print it and write it to a file."""
    from verifiers.programs import language_of

    data = {"kind": "program", "language": lang or language_of(spec_file), "problem": _source_text(spec_file)}
    spec = job.spec(data, {"max_tokens": SYNTH_TOKENS})
    with job.client() as client:
        job_id = client.submit(spec)
        result = _follow(client, job_id)
    as_json = job.as_json
    path = None
    if result.verified:
        path = out_file or Path(f"{spec_file.name.removesuffix(spec_file.suffix)}.verified{spec_file.suffix}")
        path.write_text(result.answer if result.answer.endswith("\n") else result.answer + "\n")
    certificate = f"{result.verdict.checker.name} {result.verdict.checker.version}".strip() if result.verified else None
    if as_json:
        summary = {"job": job_id, "verified": result.verified, "program": result.answer, "certificate": certificate}
        summary.update(file=str(path) if path else None, tokens=result.tokens, seconds=result.seconds, error=result.error)
        print(json.dumps(summary))
    else:
        from orchestrator.progress import render_result

        render_result(result, out)
        if path:
            out.print(f"verified by {certificate}; written to {path}", style="green", highlight=False)
    if not result.verified:
        raise typer.Exit(1)


@app.command()
def strategies() -> None:
    """List the strategies, with their parameters and defaults."""
    import dataclasses

    from rich.table import Table

    from workers.strategies import PROGRAM_STRATEGIES, STRATEGIES

    table = Table(box=None)
    for column in ("strategy", "jobs", "parameters (-p name=value)"):
        table.add_column(column)
    for name, cls in sorted(STRATEGIES.items()):
        params = ", ".join(
            f"{f.name}={f.default!r}" if f.default is not dataclasses.MISSING else f.name
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is dataclasses.MISSING
        )
        table.add_row(name, "program" if name in PROGRAM_STRATEGIES else "math", params or "-")
    out.print(table)


@app.command()
def version() -> None:
    """Print plait's version."""
    out.print(f"plait {__version__}")


def main() -> None:
    # typer exits by itself on success and on usage errors (exit 2); what escapes it is ours.
    try:
        app()
    except PlaitError as exc:
        err.print(f"error: {exc}", style="red", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("PLAIT_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (PLAIT_DEBUG=1 shows the traceback)", style="red", markup=False, soft_wrap=True)
        sys.exit(1)
