"""Time to first token with a ~1,000-token shared prefix: cache miss vs hit, in-process and
through Redis, in one run.

Each repeat uses a new shared prefix (a document), so the miss is a real miss. Per backend:
the miss arm asks a first question about the document (the engine prefills everything and
publishes the prefix's chunks); the hit arm asks a second question about the same document
(the engine loads the prefix and prefills only the question). A third arm runs with the
cache off. TTFT is the wall time of a 1-token greedy `generate`. Redis comes from
--redis-url or PLAIT_REDIS_URL; without either, a throwaway redis-server is started on
loopback when the binary exists. Last line: one JSON object.

    python benchmarks/kv_prefix.py --prefix-tokens 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

from orchestrator.cluster import RedisServer
from plait.errors import MissingDependency
from workers.engines.base import SamplingParams, chat
from workers.engines.transformers_engine import TransformersEngine
from workers.kvcache import CacheSpec, open_prefix_cache

WORDS = "the ledger shows twelve crates of apples, nine of pears and a late shipment of plums from the coast".split()


def document(index: int, tokens: int, engine: TransformersEngine) -> str:
    """A prefix of about `tokens` tokens that no other repeat shares."""
    words, text = [f"Report {index}."], ""
    while len(engine.encode(text)) < tokens:
        words.append(WORDS[len(words) % len(WORDS)] + (f" {len(words)}" if len(words) % 7 == 0 else ""))
        text = " ".join(words)
    return text


def ttft(engine: TransformersEngine, prompt) -> tuple[float, int]:
    began = time.perf_counter()
    ((completion,),) = engine.generate([prompt], SamplingParams(max_tokens=1))
    return time.perf_counter() - began, completion.cached_tokens


@contextmanager
def redis_url(given: str | None):
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(directory, appendonly=False)
        try:
            server.start()
        except MissingDependency:
            yield None
            return
        try:
            yield server.url
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix-tokens", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-tokens", type=int, default=64)
    parser.add_argument("--redis-url", default=os.environ.get("PLAIT_REDIS_URL"))
    args = parser.parse_args()

    console = Console(stderr=True)
    engine = TransformersEngine()
    info = engine.info()
    engine.generate(["warm-up"], SamplingParams(max_tokens=1))
    docs = [document(i, args.prefix_tokens, engine) for i in range(args.repeats)]

    def prompt(doc: str, question: str):
        return chat(("system", "Answer from the report."), ("user", f"{doc}\n\nQuestion: {question}"))

    rows: dict[str, list[float]] = {}
    loaded: dict[str, int] = {}
    with redis_url(args.redis_url) as url:
        backends = {"memory": CacheSpec(chunk_tokens=args.chunk_tokens)}
        if url:
            backends["redis"] = CacheSpec(backend="redis", redis_url=url, chunk_tokens=args.chunk_tokens)
        else:
            console.print("[yellow]no Redis (give --redis-url or install redis-server): the redis arms are skipped")
        for name, spec in backends.items():
            engine.prefix_cache = open_prefix_cache(spec, info.fingerprint, info.kv_layout)
            with console.status(f"{name}: miss then hit, {args.repeats} documents"):
                for i, doc in enumerate(docs):
                    # Each backend needs documents it has not seen: tag them per backend.
                    doc = f"[{name}] {doc}"
                    rows.setdefault(f"{name}_miss", []).append(ttft(engine, prompt(doc, "How many crates of apples?"))[0])
                    seconds, cached = ttft(engine, prompt(doc, "Where did the plums come from?"))
                    rows.setdefault(f"{name}_hit", []).append(seconds)
                    loaded[name] = cached
        engine.prefix_cache = None
        with console.status("cache off"):
            for doc in docs:
                rows.setdefault("off", []).append(ttft(engine, prompt(doc, "Where did the plums come from?"))[0])

    medians = {arm: statistics.median(values) for arm, values in rows.items()}
    prompt_tokens = len(engine.encode(prompt(docs[0], "Where did the plums come from?")))
    table = Table(title=f"TTFT, {prompt_tokens}-token prompts (~{args.prefix_tokens}-token shared prefix), median of {args.repeats}")
    for column in ("arm", "seconds", "tokens loaded"):
        table.add_column(column, justify="right")
    for arm, seconds in medians.items():
        backend = arm.split("_")[0]
        table.add_row(arm, f"{seconds:.3f}", str(loaded.get(backend, 0)) if arm.endswith("hit") else "0")
    console.print(table)
    result = {"name": "kv_prefix", "prompt_tokens": prompt_tokens, "chunk_tokens": args.chunk_tokens, "repeats": args.repeats}
    result.update({f"{arm}_seconds": round(s, 4) for arm, s in medians.items()})
    result.update({f"{name}_loaded_tokens": n for name, n in loaded.items()})
    for name in ("memory", "redis"):
        if f"{name}_hit" in medians:
            result[f"{name}_ratio"] = round(medians[f"{name}_miss"] / medians[f"{name}_hit"], 3)
    result["ratio"] = result["memory_ratio"]
    result["ratio_of"] = "TTFT on a miss / TTFT on a hit (median), in-process backend; redis_ratio likewise through Redis"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
