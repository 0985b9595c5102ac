"""Search strategies and rewards. The strategy tests use `ScriptedEngine`, the deterministic
test double of test_strategies.py, so votes and budgets are checked on known samples; the
verifier and sandbox are the real ones. Reward orderings on hand-made cases; the
time-reversal reward on the real embedded model."""

import math

import pytest

from test_strategies import ScriptedEngine, run
from verifiers.role import MathVerifier
from workers.strategies.paths import split
from workers.strategies.rebase import allocate
from workers.strategies.rewards import Candidate, JudgeReward, LikelihoodReward, ReverseReward, ToolReward
from workers.strategies.search import tally
from workers.types import Budget

EQUATION = "Solve for x: 2*x + 3 = 11"


def test_tally_groups_equivalent_answers_heaviest_first():
    groups = tally(["4", "8/2", None, "5", "4.0"], [1, 1, 1, 2.5, 1], MathVerifier())
    assert [(rep, total, members) for rep, total, members in groups] == [("4", 3, [0, 1, 4]), ("5", 2.5, [3])]
    assert tally([None, None], [1, 1], MathVerifier()) == []


def test_majority_votes_over_samples_decoded_in_one_call():
    q = "What is 2 + 2?"
    (attempt,), engine, _ = run("majority", {q: ["\\boxed{4}", "\\boxed{8/2}", "\\boxed{5}", "\\boxed{4.0}"]}, {"samples": 4})
    assert attempt.answer == "4" and attempt.search["votes"] == {"4": 3.0, "5": 1.0}
    assert len(engine.calls) == 1 and len(engine.calls[0][0]) == 4 and engine.calls[0][1].temperature == 0.7
    assert attempt.completion_tokens == 4 and attempt.prompt_tokens == 40
    assert [s["answer"] for s in attempt.search["samples"]] == ["4", "8/2", "5", "4.0"]


def test_rewards_change_the_pick_where_votes_would_not():
    samples = ["\\boxed{5}", "\\boxed{5}", "\\boxed{4}"]  # 4 is right: 2*4 + 3 = 11
    params = {"samples": 3, "reward": "tool"}
    assert run("majority", {EQUATION: samples}, params)[0][0].answer == "5"
    best = run("best_of_n", {EQUATION: samples}, params)[0][0]
    assert best.answer == "4" and best.verdict.status == "verified"
    assert [s["reward"] for s in best.search["samples"]] == [0.0, 0.0, 1.0]
    assert run("weighted_majority", {EQUATION: samples}, params)[0][0].answer == "4"


def test_budgets_stop_search_exactly():
    q = "What is 1 + 1?"
    long = "one two three four five six \\boxed{2}"
    (attempt,), engine, _ = run("majority", {q: [long] * 4}, {"samples": 8}, Budget(max_tokens=10, max_samples=4))
    assert len(attempt.search["samples"]) == 4  # the budget's 4, not the strategy's 8
    assert engine.calls[0][1].max_tokens == 2 and attempt.completion_tokens <= 10
    (attempt,), engine, _ = run("best_of_n", {q: [long] * 3}, {}, Budget(max_tokens=3))
    assert len(attempt.search["samples"]) == 3 and attempt.completion_tokens == 3  # one token each
    flops = Budget(max_tokens=None, max_flops=2 * 1000 * (10 + 3) * 2, max_samples=2)
    (attempt,), _, _ = run("majority", {q: [long] * 2}, {}, flops)
    assert attempt.flops <= flops.max_flops and attempt.completion_tokens == 6
    assert split(Budget(max_tokens=10, max_flops=9.0), 4) == Budget(max_tokens=2, max_flops=2.25, max_samples=1)


def test_greedy_is_one_sample_at_temperature_zero():
    (attempt,), engine, _ = run("greedy", {"What is 3 + 3?": ["\\boxed{6}"]}, {"method": "cot"})
    assert attempt.answer == "6" and engine.calls[0][1].temperature == 0.0 and len(engine.calls[0][0]) == 1


def test_rebase_splits_the_width_and_collects_finished_paths():
    q = "What is 2 + 2?"
    # Depth 1: two children, one finished. Depth 2: the open one gets the one sample left.
    scripts = {q: ["Two plus two. So", "\\boxed{4}", "it is \\boxed{4}"]}
    (attempt,), engine, events = run("rebase", scripts, {"samples": 2, "method": "cot", "reward": "tool"})
    assert [len(prompts) for prompts, _ in engine.calls] == [2, 1]
    # The open path is continued. The stop ". " ends inside the token " So", so the step keeps all of it.
    assert engine.calls[1][0][0][-1].content == "Two plus two. So"
    tree = attempt.search["tree"]
    assert [(n["id"], n["parent"], n["depth"], n["finished"]) for n in tree] == [
        (0, None, 0, False), (1, 0, 1, False), (2, 0, 1, True), (3, 1, 2, True)
    ]  # fmt: skip
    assert attempt.answer == "4" and attempt.search["votes"] == {"4": 1.0}
    assert [e["questions"] for e in events if e["type"] == "generated"] == [2, 1]


def test_rebase_pal_runs_the_program_when_its_block_closes():
    q = "What is 6 * 7?"
    scripts = {q: ["x = 6 * 7\n", "print(x)\n", "```\n"]}  # each line ends at its stop string
    (attempt,), _, _ = run("rebase", scripts, {"samples": 1, "method": "pal"})
    assert attempt.answer == "42" and attempt.tool_calls[0].code.strip() == "x = 6 * 7\nprint(x)"


def test_rebase_step_reward_steers_the_width_to_the_open_paths_it_prefers():
    q = "What is 6 * 7?"
    sure, unsure = ("x = 6 * 7\n", -0.01), ("x = 6 + 7\n", -2.0)  # first lines, with their tokens' log-probabilities
    scripts = {q: [sure, unsure, sure, unsure] + ["print(x)\n"] * 4 + ["```\n"] * 4}
    params = {"samples": 4, "method": "pal", "reward": "tool"}
    (even,), engine, _ = run("rebase", {q: list(scripts[q])}, params)
    continued = [prompt[-1].content for prompt in engine.calls[1][0]]
    assert sum("6 + 7" in c for c in continued) == 2  # tool cannot tell unrun programs apart: an even split
    (steered,), engine, _ = run("rebase", {q: list(scripts[q])}, {**params, "step_reward": "lm"})
    continued = [prompt[-1].content for prompt in engine.calls[1][0]]
    assert len(continued) == 4 and all("6 * 7" in c for c in continued)
    assert steered.answer == "42" and steered.search["votes"] == {"42": 3.0} and steered.search["step_reward"] == "lm"
    assert {s["reward"] for s in steered.search["samples"]} == {0.75}  # the vote is weighted by `reward` (tool: ran, unchecked)


def test_rebase_pal_steps_end_with_the_token_that_ends_the_line():
    q = "What is the square root of 49?"
    # "math\n\n" is one token: the line's step keeps its blank line, as the model wrote it.
    scripts = {q: ["import math\n\n", "print(math.sqrt(49))\n", "```\n"]}
    (attempt,), engine, _ = run("rebase", scripts, {"samples": 1, "method": "pal"})
    assert engine.calls[1][0][0][-1].content == "```python\nimport math\n\n"  # not a prompt ending inside that token
    assert attempt.tool_calls[0].code == "import math\n\nprint(math.sqrt(49))" and attempt.answer == "7.0"


def test_rebase_pal_writes_on_after_a_line_its_step_cap_cut_but_not_after_the_budget_cut_it():
    q = "What is 6 * 7?"
    scripts = {q: ["x = 6 * 7", "* 7\n", "print(x)\n", "```\n"]}  # the first turn is cut after 3 words
    (attempt,), _, _ = run("rebase", scripts, {"samples": 1, "method": "pal", "step_tokens": 3})
    assert attempt.tool_calls[0].code.strip() == "x = 6* 7\nprint(x)" and attempt.answer == "42"
    (spent,), _, _ = run("rebase", {q: list(scripts[q])}, {"samples": 1, "method": "pal", "step_tokens": 3}, Budget(max_tokens=3))
    cut = spent.search["tree"][1]
    assert (cut["step"], cut["finished"]) == ("x = 6", True)  # the budget's end closes the program as written


def test_rebase_pal_runs_a_program_left_open_when_the_budget_ends_the_search():
    q = "What is 6 * 7?"
    # The one line spends the whole budget: no step can follow, so the tree ends with the path open.
    (attempt,), engine, _ = run("rebase", {q: ["print(6 * 7)\n", "```\n"]}, {"samples": 1, "method": "pal"}, Budget(max_tokens=3))
    assert len(engine.calls) == 1 and attempt.tool_calls[0].code == "print(6 * 7)" and attempt.answer == "42"
    (sample,) = attempt.search["samples"]
    assert sample["answer"] == "42" and sample["reward"] > 0.5  # in the vote, rescored once the program ran


def test_allocate_follows_the_rewards_and_sums_to_the_width():
    assert allocate(16, [0.9, 0.5, 0.1], 0.2) == [14, 2, 0]
    assert allocate(3, [0.2, 0.2], 1.0) in ([2, 1], [1, 2])
    assert sum(allocate(7, [0.3, 0.31, 0.29], 10.0)) == 7 and allocate(0, [1.0], 1.0) == [0]
    # A higher temperature spreads the width more evenly.
    assert max(allocate(12, [1.0, 0.0], 1.0)) < max(allocate(12, [1.0, 0.0], 0.1))


def test_tool_reward_orders_verified_ran_failed_refuted():
    cases = [
        Candidate(EQUATION, "", "4", verdict="verified"),
        Candidate(EQUATION, "", "4", tools_ok=1),
        Candidate(EQUATION, "", "4"),
        Candidate(EQUATION, "", "4", tools_failed=1),
        Candidate(EQUATION, "", "5", verdict="refuted"),
    ]
    scores = ToolReward().score(cases)
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)


def test_likelihood_reward_is_the_geometric_mean_token_probability():
    sure, unsure = Candidate("q", "a", logprob=-1.0, generated=10), Candidate("q", "a", logprob=-20.0, generated=10)
    assert LikelihoodReward().score([sure, unsure]) == [pytest.approx(math.exp(-0.1)), pytest.approx(math.exp(-2.0))]
    assert LikelihoodReward().score([Candidate("q", "")]) == [0.0]


def test_judge_reward_is_p_yes_against_no():
    class Judge(ScriptedEngine):
        def score(self, prompt, continuation):
            return -0.1 if ("= 4" in prompt) == (continuation == " Yes") else -3.0

    judge = JudgeReward(Judge({}))
    right, wrong = judge.score([Candidate("2+2?", "2 + 2 = 4"), Candidate("2+2?", "2 + 2 = 5")])
    assert right == pytest.approx(1 / (1 + math.exp(-2.9))) and wrong == pytest.approx(1 - right)


@pytest.mark.slow
def test_time_reversal_prefers_the_solution_that_explains_the_question(engine):
    question = "What is the capital of France?"
    reward = ReverseReward(engine)
    right, wrong = reward.score(
        [
            Candidate(question, "France's capital city is Paris.", "Paris"),
            Candidate(question, "The largest planet of the solar system is Jupiter.", "Jupiter"),
        ]
    )
    assert 0 < wrong < right <= 1
