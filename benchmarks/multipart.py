"""Multi-part problems whose later parts use earlier answers, with every part's answer known.

Built from `reasoning-gym` tasks (fixed seed), each part an integer:

- pair:  two independent sub-questions (basic_arithmetic, chain_sum), then A + B;
- chain: a sub-question, then a calculation on its answer;
- word:  a gsm_symbolic word problem and an arithmetic question, then A - B.

Each problem keeps its parts as standalone questions (an earlier part's answer written in),
so a benchmark can also run and grade the sub-questions one by one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import reasoning_gym

KINDS = ("pair", "chain", "word")


@dataclass(frozen=True)
class Part:
    question: str  # standalone: the answers it depends on are written in
    answer: str
    depends_on: tuple[int, ...] = ()  # indices of earlier parts


@dataclass(frozen=True)
class MultiPart:
    kind: str
    question: str
    answer: str
    parts: tuple[Part, ...]


def _integer_entries(task: str, count: int, seed: int) -> list[dict]:
    entries = [e for e in reasoning_gym.create_dataset(task, size=count * 3, seed=seed) if _is_int(e["answer"])]
    return entries[:count]


def _is_int(answer: object) -> bool:
    try:
        return float(answer) == int(float(answer))
    except (TypeError, ValueError):
        return False


def multi_part_problems(count: int, seed: int) -> list[MultiPart]:
    """`count` problems, the kinds in turn."""
    rng = random.Random(seed)
    arithmetic = _integer_entries("basic_arithmetic", count, seed) + _integer_entries("chain_sum", count, seed)
    rng.shuffle(arithmetic)
    words = _integer_entries("gsm_symbolic", count, seed)
    problems = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        first, second = arithmetic[(2 * i) % len(arithmetic)], arithmetic[(2 * i + 1) % len(arithmetic)]
        a, b = int(float(first["answer"])), int(float(second["answer"]))
        if kind == "chain":
            k, c = rng.randint(2, 9), rng.randint(1, 20)
            question = f"Part 1: {first['question']} Call the answer A.\nPart 2: What is {k} times A, plus {c}?"
            parts = (Part(first["question"], str(a)), Part(f"What is {k} times {a}, plus {c}?", str(k * a + c), (0,)))
        else:
            if kind == "word":
                first = words[i % len(words)]
                a = int(float(first["answer"]))
            total, sign = (a + b, "+") if kind == "pair" else (a - b, "-")
            question = f"Part 1: {first['question']} Call the answer A.\nPart 2: {second['question']} Call the answer B.\nWhat is A {sign} B?"
            parts = (Part(first["question"], str(a)), Part(second["question"], str(b)), Part(f"What is {a} {sign} {b}?", str(total), (0, 1)))
        problems.append(MultiPart(kind, question, parts[-1].answer, parts))
    return problems
