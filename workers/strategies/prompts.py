"""Prompts for the per-sample methods, in two styles chosen by the model (`prompt_set`):

* few-shot, for the embedded 135M model: short worked examples, because a model that small
  copies the format of examples far better than it follows instructions (every example
  token is prefilled on every call, so they stay short);
* instruct, for every other model: a chat model that already knows tool-integrated
  reasoning (Qwen2.5, the models vLLM serves) gets the instruction alone, in the wording
  such models were tuned on, and no example it could copy blindly.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.engines.base import Message, Prompt
from workers.engines.packaged import SMOLLM2

OUTPUT_FENCE = "```output"


def output_block(shown: str) -> str:
    """How a tool's output stands in a transcript, in the examples and after every real run."""
    return f"{OUTPUT_FENCE}\n{shown}\n```\n"


@dataclass(frozen=True)
class FewShot:
    system: str  # empty: the model's own default system prompt (its chat template's)
    examples: tuple[tuple[str, str], ...] = ()  # (question, worked answer)
    instruction: str = ""  # follows the question in the user turn

    def prompt(self, question: str, partial_answer: str = "") -> Prompt:
        """Chat prompt for `question`; a non-empty partial answer is continued by the model."""
        messages = [Message("system", self.system)] if self.system else []
        for q, a in self.examples:
            messages += [Message("user", q), Message("assistant", a)]
        messages.append(Message("user", f"{question}\n{self.instruction}" if self.instruction else question))
        if partial_answer:
            messages.append(Message("assistant", partial_answer))
        return tuple(messages)


_EXAMPLES = (
    (
        "A shop sells 3 pencils for $0.75. How much do 10 pencils cost, in dollars?",
        "One pencil costs 0.75 / 3 dollars, so multiply that by 10.",
        "price = 0.75 / 3\nprint(price * 10)",
        "2.5",
        "Ten pencils cost \\boxed{2.5} dollars.",
    ),
    (
        "Solve for x: 4*x - 7 = 21",
        "Let sympy solve the equation.",
        "from sympy import symbols, Eq, solve\nx = symbols('x')\nprint(solve(Eq(4*x - 7, 21), x))",
        "[7]",
        "So x = \\boxed{7}.",
    ),
    (
        "Simplify the fraction 84/126 to its lowest terms.",
        "Fraction reduces by the greatest common divisor.",
        "from fractions import Fraction\nprint(Fraction(84, 126))",
        "2/3",
        "The simplest form is \\boxed{2/3}.",
    ),
)


def _tora(rationale: str, code: str, output: str, conclusion: str) -> str:
    return f"{rationale}\n```python\n{code}\n```\n{output_block(output)}{conclusion}"


TORA_PROMPT = FewShot(
    system=(
        "Solve the math problem. Reason briefly, then write Python in a ```python block that prints "
        "the result; its output is shown to you in an ```output block. "
        "Finish with the final answer in \\boxed{}."
    ),
    examples=tuple((q, _tora(r, c, o, f)) for q, r, c, o, f in _EXAMPLES),
)

PAL_PROMPT = FewShot(
    system="Write a Python program that computes the answer to the problem and prints it.",
    examples=tuple((q, f"```python\n{c}\n```") for q, _r, c, _o, _f in _EXAMPLES),
)

COT_PROMPT = FewShot(
    system="Solve the math problem step by step. Finish with the final answer in \\boxed{}.",
    examples=(
        (
            "A shop sells 3 pencils for $0.75. How much do 10 pencils cost, in dollars?",
            "One pencil costs 0.75 / 3 = 0.25 dollars. Ten pencils cost 10 * 0.25 = 2.5 dollars. "
            "The answer is \\boxed{2.5}.",
        ),
        (
            "Solve for x: 4*x - 7 = 21",
            "Add 7 to both sides: 4*x = 28. Divide by 4: x = 7. The answer is \\boxed{7}.",
        ),
        (
            "Simplify the fraction 84/126 to its lowest terms.",
            "The greatest common divisor of 84 and 126 is 42. 84 / 42 = 2 and 126 / 42 = 3. "
            "The answer is \\boxed{2/3}.",
        ),
    ),
)


@dataclass(frozen=True)
class PromptSet:
    style: str
    tora: FewShot
    pal: FewShot
    cot: FewShot


FEW_SHOT = PromptSet("few_shot", TORA_PROMPT, PAL_PROMPT, COT_PROMPT)

INSTRUCT = PromptSet(
    "instruct",
    tora=FewShot(
        system="",
        instruction="Please integrate natural language reasoning with programs to solve the problem above, "
        "and put your final answer within \\boxed{}.",
    ),
    pal=FewShot(
        system="",
        instruction="Write a Python program that solves the problem above and prints only the final answer.",
    ),
    cot=FewShot(system="", instruction="Please reason step by step, and put your final answer within \\boxed{}."),
)

_FEW_SHOT_MODELS = frozenset({SMOLLM2.name})


def prompt_set(model_id: str) -> PromptSet:
    """The prompts for a model: few-shot for the tiny embedded model, instructions otherwise."""
    return FEW_SHOT if model_id in _FEW_SHOT_MODELS else INSTRUCT
