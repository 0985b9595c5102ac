"""Accuracy vs compute of the search strategies, after Wu et al. "Inference Scaling Laws".

Problems: the `reasoning-gym` set of benchmarks/accuracy.py (fixed seed). Per problem:

- greedy: one sample at temperature 0;
- majority, best_of_n, weighted_majority: 16 samples are drawn once (temperature 0.7, all
  problems' samples batched together) and each budget N in 1, 2, 4, 8, 16 uses the first N,
  the usual subsampling — FLOPs are those N samples' own;
- rebase: a separate search per budget N (width N), its FLOPs as spent.

Rewards: before the votes, every reward (`tool`, `lm`, `reverse`, `prm` with the tier's own
model as judge) scores the first `--auc-samples` samples of each problem, and the AUC of each
(how often it ranks a right sample above a wrong one) is reported; `--reward auto` (the
default) then weights the votes and guides REBASE with the reward of the highest AUC. FLOPs =
2 · parameters · computed tokens (prompt tokens loaded from a KV cache are not computed); the
rewards' own scoring passes are not counted. Prints the accuracy/FLOPs table, writes a PNG of
the curves, and ends with one JSON object including the FLOPs ratio at which REBASE reaches
weighted voting's best accuracy. The engine is a tier of plait's default config.

    python benchmarks/compute_optimal.py --tier large --method pal --plot compute_optimal.png

A run stopped part-way (it can take hours) keeps its curves in `--out`, and `--report FILE`
prints that checkpoint's table, plot and JSON line (`"complete": false` when points are missing).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from accuracy import TASKS, correct, load_problems
from verifiers.role import MathVerifier
from orchestrator.config import default_tiers
from workers.engines import make_engine
from workers.strategies import make_strategy
from workers.strategies.base import RunContext
from workers.strategies.rewards import REWARDS, make_reward
from workers.strategies.search import BestOfN, Majority, WeightedMajority, candidate
from workers.types import Budget

VOTERS = {"majority": Majority, "best_of_n": BestOfN, "weighted_majority": WeightedMajority}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-task", type=int, default=13, help=f"problems per task ({len(TASKS)} tasks)")
    parser.add_argument("--method", default="pal", choices=("cot", "pal", "tora"))
    parser.add_argument("--tier", default="large", help="a tier of the default config")
    parser.add_argument("--reward", default="auto", choices=("auto", *REWARDS), help="auto: the reward with the best AUC")
    parser.add_argument("--auc-samples", type=int, default=4, help="samples per problem every reward scores for the AUC")
    parser.add_argument("--sample-tokens", type=int, default=160, help="generated tokens per sample at most")
    parser.add_argument("--in-flight", type=int, default=8, help="paths per engine batch (llama-server's slots on large): problems per batch = this / N")
    parser.add_argument("--max-n", type=int, default=16, help="largest budget N; the curves run N = 1, 2, 4, ... up to it")
    parser.add_argument("--step-tokens", type=int, default=48, help="REBASE: tokens per step (a program line, for pal) at most")
    parser.add_argument("--max-depth", type=int, default=24, help="REBASE: steps per path at most (a 160-token program runs to 15-20 lines)")
    parser.add_argument("--step-reward", choices=REWARDS, help="REBASE: the reward that scores open paths (default: the vote's)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--plot", type=Path, help="where the PNG of the curves goes (default compute_optimal.png; with --report: the checkpoint's)")
    parser.add_argument("--out", type=Path, default=Path("results/compute_optimal.json"), help="the curves so far, rewritten after every phase")
    parser.add_argument("--report", type=Path, help="measure nothing: the table, plot and JSON line of this checkpoint (--out of a stopped run)")
    args = parser.parse_args()

    console = Console(stderr=True)
    if args.report:
        return from_checkpoint(args.report, console, args.plot)
    args.plot = args.plot or Path("compute_optimal.png")
    problems = load_problems(list(TASKS), args.per_task, args.seed)
    questions = [p["entry"]["question"] for p in problems]
    references = [str(p["entry"]["answer"]) for p in problems]
    engine = make_engine(default_tiers()[args.tier].engine_spec())
    budgets = [2**k for k in range(args.max_n.bit_length()) if 2**k <= args.max_n]
    top = max(budgets)

    def chunks(n: int) -> list[range]:
        # As many problems as keep the server's slots busy with N paths each, and no more:
        # paths beyond the slots queue, and may find their prefix evicted when they run.
        size = max(1, args.in_flight // n)
        return [range(i, min(i + size, len(questions))) for i in range(0, len(questions), size)]

    curves: dict[str, dict[int, tuple[float, float]]] = {}  # strategy -> N -> (accuracy, mean FLOPs)
    began = time.monotonic()
    auc: dict[str, float | None] = {}

    def checkpoint(phase: str) -> None:
        # A run of hours stopped part-way keeps what it measured, and says so as it goes
        # (progress bars reach a redirected log only at the end).
        args.out.parent.mkdir(parents=True, exist_ok=True)
        state = {"args": {k: str(v) for k, v in vars(args).items()}, "model": engine.info().model_id, "seconds": round(time.monotonic() - began, 1),
                 "reward_auc": auc, "curves": _curves_json(curves)}
        args.out.write_text(json.dumps(state, indent=1))
        console.print(f"{state['seconds']:.0f} s: {phase} done")
        console.file.flush()

    def run(name: str, params: dict, per_sample: int, n: int, bar) -> list:
        out = []
        for chunk in chunks(n):
            budget = Budget(max_tokens=per_sample * n, max_samples=n)
            out += make_strategy(name, params).run([questions[i] for i in chunk], RunContext(engine, budget))
            progress.advance(bar, len(chunk))
        return out

    with Progress(console=console) as progress:
        greedy = run("greedy", {"method": args.method, "max_tokens_per_call": args.sample_tokens}, args.sample_tokens, 1, progress.add_task("greedy", total=len(questions)))
        curves["greedy"] = {1: _point([a.answer for a in greedy], references, [a.flops for a in greedy])}
        checkpoint(f"greedy ({curves['greedy'][1][0]:.1%})")

        # The method itself, on every question repeated `top` times: the shared samples.
        method = make_strategy(args.method, {"temperature": 0.7, "seed": args.seed, "max_tokens_per_call": args.sample_tokens})
        bar = progress.add_task(f"{top} samples each", total=len(questions))
        samples = []
        for chunk in chunks(top):
            rows = [questions[i] for i in chunk for _ in range(top)]
            flat = method.run(rows, RunContext(engine, Budget(max_tokens=args.sample_tokens)))
            samples += [flat[k * top : (k + 1) * top] for k in range(len(chunk))]
            progress.advance(bar, len(chunk))
        checkpoint(f"{top} samples each")
        k = args.auc_samples
        right = [correct(s.answer, r) for group, r in zip(samples, references) for s in group[:k]]
        scored = {}  # reward -> each problem's scores of its first k samples
        for name in REWARDS:
            reward = make_reward(name, engine)
            bar = progress.add_task(f"reward {name}", total=len(samples))
            scored[name] = []
            for group in samples:
                scored[name].append(reward.score([candidate(s) for s in group[:k]]))
                progress.advance(bar)
            auc[name] = _auc([v for vs in scored[name] for v in vs], right)
            checkpoint(f"reward {name} (AUC {auc[name]})")
        chosen = _chosen(args.reward, auc)
        reward = make_reward(chosen, engine)
        # Each candidate is scored on its own, so the first k scores are reused, not recomputed.
        rewards = [first + reward.score([candidate(s) for s in group[k:]]) for first, group in zip(scored[chosen], samples)]
        for name, cls in VOTERS.items():
            voter = cls(method=args.method)
            curves[name] = {}
            for n in budgets:
                picks = [voter.choose([s.answer for s in group[:n]], r[:n], MathVerifier())[0] for group, r in zip(samples, rewards)]
                answers = [group[i].answer if i is not None else None for group, i in zip(samples, picks)]
                curves[name][n] = _point(answers, references, [sum(s.flops for s in group[:n]) for group in samples])
            checkpoint(name)

        curves["rebase"] = {}
        for n in budgets:
            params = {"method": args.method, "reward": chosen, "step_reward": args.step_reward, "seed": args.seed, "step_tokens": args.step_tokens, "max_depth": args.max_depth}
            tree = run("rebase", params, args.sample_tokens, n, progress.add_task(f"rebase N={n}", total=len(questions)))
            curves["rebase"][n] = _point([a.answer for a in tree], references, [a.flops for a in tree])
            checkpoint(f"rebase N={n} ({curves['rebase'][n][0]:.1%})")

    report(curves, auc, chosen, vars(args), engine.info().model_id, len(questions), time.monotonic() - began, console)


def report(curves: dict, auc: dict, chosen: str, args: dict, model: str, problems: int, seconds: float, console: Console) -> None:
    """The table, the plot and the last JSON line, from a finished run or a checkpoint."""
    budgets = sorted({n for points in curves.values() for n in points})
    for name, value in auc.items():
        console.print(f"reward {name}: AUC {value if value is None else round(value, 3)}" + ("  <- used" if name == chosen else ""))
    table = Table(title=f"{problems} problems, {args['tier']}, method {args['method']}, reward {chosen}: accuracy (mean FLOPs/problem)")
    table.add_column("strategy")
    for n in budgets:
        table.add_column(f"N={n}", justify="right")
    for name, points in curves.items():
        table.add_row(name, *(f"{points[n][0]:.1%} ({points[n][1]:.2e})" if n in points else "" for n in budgets))
    console.print(table)
    _plot(curves, Path(args["plot"]), f"{problems} reasoning-gym problems, {model}, {args['method']}")

    best_acc, best_flops = max(curves["weighted_majority"].values(), key=lambda p: (p[0], -p[1]))
    reaching = [flops for acc, flops in curves.get("rebase", {}).values() if acc >= best_acc]
    ratio = round(best_flops / min(reaching), 3) if reaching and best_acc > 0 else None
    print(
        json.dumps(
            {
                "name": "compute_optimal",
                "problems": problems,
                "tier": args["tier"],
                "model": model,
                "method": args["method"],
                "reward": chosen,
                "reward_auc": {k: (round(v, 4) if v is not None else None) for k, v in auc.items()},
                "seed": int(args["seed"]),
                "curves": _curves_json(curves),
                "complete": all(set(points) == set(budgets) for name, points in curves.items() if name != "greedy"),
                "weighted_best_accuracy": round(best_acc, 4),
                "ratio": ratio,
                "ratio_of": "weighted voting's FLOPs at its best accuracy / the least FLOPs at which REBASE reaches it (None: REBASE never does, or that accuracy is 0)",
                "seconds": round(seconds, 1),
                "plot": str(args["plot"]),
            }
        )
    )


def from_checkpoint(path: Path, console: Console, plot: Path | None) -> None:
    """Report a run stopped part-way from what its checkpoint holds (its args as they were,
    but for the plot's path when one is given)."""
    state = json.loads(path.read_text())
    if plot is not None:
        state["args"]["plot"] = str(plot)
    curves = {name: {int(n): (p["accuracy"], p["flops"]) for n, p in points.items()} for name, points in state["curves"].items()}
    auc = state["reward_auc"]
    chosen = _chosen(state["args"]["reward"], auc)
    problems = int(state["args"]["per_task"]) * len(TASKS)
    report(curves, auc, chosen, state["args"], state.get("model", "?"), problems, state.get("seconds", 0.0), console)


def _chosen(reward: str, auc: dict[str, float | None]) -> str:
    """The reward the votes and REBASE use: the one asked for, or for "auto" the best AUC."""
    return max(auc, key=lambda name: auc[name] if auc[name] is not None else -1) if reward == "auto" else reward


def _curves_json(curves: dict) -> dict:
    return {name: {str(n): {"accuracy": round(a, 4), "flops": round(f)} for n, (a, f) in points.items()} for name, points in curves.items()}


def _auc(scores: list[float], right: list[bool]) -> float | None:
    """P(a right sample scores above a wrong one), ties counting half; None without both."""
    good = [s for s, r in zip(scores, right) if r]
    bad = [s for s, r in zip(scores, right) if not r]
    if not good or not bad:
        return None
    wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return wins / (len(good) * len(bad))


def _point(answers: list[str | None], references: list[str], flops: list[int]) -> tuple[float, float]:
    accuracy = sum(correct(a, r) for a, r in zip(answers, references)) / len(references)
    return accuracy, sum(flops) / len(flops)


def _plot(curves: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        xs = [points[n][1] for n in sorted(points)]
        ys = [points[n][0] * 100 for n in sorted(points)]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per problem")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
