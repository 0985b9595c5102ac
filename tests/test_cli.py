"""The `plait` command as a user runs it: a real subprocess."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.job import Result
from tools.processes import start_time

PLAIT = [str(Path(sys.executable).with_name("plait"))]
SPEC = str(Path(__file__).parents[1] / "benchmarks/data/coq/add_zero.v")


def plait(*args, stdin=None, env=None):
    return subprocess.run(PLAIT + list(args), capture_output=True, text=True, input=stdin, timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(
    "args, words",
    [
        (["solve", ""], "problem: must not be empty"),
        (["solve", "2+2", "--strategy", "beam"], "strategy.name"),
        (["solve", "2+2", "--max-tokens", "0"], "budget.max_tokens"),
        (["solve", "2+2", "-p", "max_tool_calls=-3"], "max_tool_calls"),
        (["solve", "2+2", "-p", "bogus"], "key=value"),
        (["solve", "2+2", "--budget-samples", "0"], "budget.max_samples"),
        (["solve", "2+2", "-s", "rebase", "-p", "method=calc"], "method must be one of cot, pal, tora"),
        (["solve", "@/nonexistent/job.json"], "does not exist"),
        (["solve", "2+2", "--config", "/nonexistent/plait.toml"], "does not exist"),
        (["synth", "/nonexistent/max.dfy"], "does not exist"),
        (["synth", "README.md"], "cannot tell the language"),
        (["synth", SPEC, "-s", "tora"], "resample or vmcts"),
        (["synth", SPEC, "-p", "widen_alpha=3"], "widen_alpha"),
        (["synth", SPEC, "--lang", "rust"], "language"),
        (["solve", "2+3", "-p", "temperature=hot"], "parameter temperature must be a number, not 'hot'"),
        (["solve", "2+3", "-p", "x=" + "[" * 100_000], "--param x nests lists or objects more than 32 levels deep"),
        (["solve", "2+3", "--budget-flops", "inf"], "budget.max_flops: Input should be a finite number"),
        (["solve", "2+3", "--budget-flops", "nan"], "budget.max_flops: Input should be a finite number"),
        (["solve", "2+3", "--max-seconds", "inf"], "budget.max_seconds: Input should be a finite number"),
        (["serve", "--port", "0"], "--port 0: a port is 1-65535"),
        (["serve", "--port", "65536"], "--port 65536: a port is 1-65535"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(args, words):
    proc = plait(*args)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("problem.bin", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "is binary, not UTF-8 text"),
        ("problem.txt", b"What is 2+2?\x00\x00", "is binary, not UTF-8 text"),
        ("job.json", b"\xff\xfe{}", "is binary, not UTF-8 text"),
        ("job.json", b"[" * 100_000, "nests lists or objects more than 32 levels deep"),
    ],
)
def test_a_bad_problem_file_exits_2_naming_the_file(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    proc = plait("solve", f"@{path}")
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and str(path) in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("recorded", ["another start time", "none (an older state file)"])
def test_down_signals_a_pid_only_while_it_is_the_process_up_started(tmp_path, recorded):
    reused = subprocess.Popen(["sleep", "300"])  # holds a pid the state file names, but `plait up` never started it
    ours = subprocess.Popen(["sleep", "300"])  # stands in for what `plait up` did start
    try:
        state = {
            "ray_address": "127.0.0.1:1", "redis_url": "redis://127.0.0.1:1/0", "directory": str(tmp_path), "started": 0.0,
            "ray_pid": reused.pid, "redis_pid": ours.pid, "redis_started": start_time(ours.pid),
        }  # fmt: skip
        if recorded == "another start time":
            state["ray_started"] = start_time(reused.pid) - 1
        (tmp_path / "cluster").mkdir()
        (tmp_path / "cluster" / "state.json").write_text(json.dumps(state))

        proc = plait("down", env={"PLAIT_CACHE_DIR": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        assert f"not signalling pid {reused.pid}" in proc.stderr and "Ray head" in proc.stderr
        assert ours.wait(60) == -signal.SIGTERM
        assert reused.poll() is None, "a process plait did not start was signalled"
        assert not (tmp_path / "cluster" / "state.json").exists()
    finally:
        for process in (reused, ours):
            process.kill()
            process.wait()


def test_bad_config_file_names_the_problem(tmp_path):
    bad = tmp_path / "plait.toml"
    bad.write_text('[routing]\n1 = "huge"\n')
    proc = plait("config", "show", "--config", str(bad))
    assert proc.returncode == 2 and "tier 'huge'" in proc.stderr and "Traceback" not in proc.stderr
    assert "under [tiers]" in proc.stderr  # printed as text, not eaten as rich markup


def test_config_show_prints_the_effective_config(tmp_path):
    path = tmp_path / "plait.toml"
    path.write_text('[sandbox]\ntimeout = 3\n')
    proc = plait("config", "show", "--config", str(path), env={"PLAIT_REDIS_URL": "redis://127.0.0.1:9"})
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["sandbox"]["timeout"] == 3 and shown["redis_url"] == "redis://127.0.0.1:9"
    assert shown["tiers"]["small"]["model"] == "smollm2-135m"


def test_usage_errors_exit_2():
    assert plait("solve").returncode == 2
    assert plait("frobnicate").returncode == 2


@pytest.mark.slow
def test_solve_json_prints_a_result_from_a_job_file(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"problem": "What is 6 * 7?", "strategy": {"name": "pal"}, "reference": "42"}))
    proc = plait("solve", f"@{job}", "--json")
    assert proc.returncode == 0, proc.stderr
    result = Result.from_dict(json.loads(proc.stdout))
    assert result.status == "succeeded" and result.nodes[0].attempt.strategy == "pal"
    assert result.verdict.checker.name == "math"
    assert result.verified == (result.verdict.status == "verified")


@pytest.mark.slow
def test_solve_with_rebase_records_the_tree_and_votes():
    # pal: a program of a line or three (cot's sentences may not reach an answer in 8 steps).
    proc = plait(
        "solve", "What is 2 + 3?", "--strategy", "rebase", "--budget-samples", "2", "--max-tokens", "256",
        "-p", "method=pal", "-p", "max_depth=8", "-p", "seed=3", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    result = Result.from_dict(json.loads(proc.stdout))
    attempt = result.nodes[0].attempt
    search = attempt.search
    assert search["strategy"] == "rebase" and search["width"] == 2 and search["tree"][0]["parent"] is None
    assert len(search["samples"]) == 2 and attempt.completion_tokens <= 256
    assert {n["depth"] for n in search["tree"]} <= set(range(9))
    assert attempt.answer == "5" and sum(search["votes"].values()) > 0 and attempt.tool_calls
