import pytest

from workers.strategies.answers import answer_from_text, last_boxed, last_output_line


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{42}.", "42"),
        ("\\boxed{1} then \\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\fbox{7}", "7"),
        ("\\boxed{}", None),
        ("\\boxed{unclosed", None),
        ("no box here", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_last_output_line_skips_blank_lines():
    assert last_output_line("a\n2.5\n\n  ") == "2.5"
    assert last_output_line("   \n") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("We get 5 and then \\boxed{12}.", ("12", "boxed")),
        ("The answer is 3/4.", ("3/4", "text")),
        ("Ten pencils: 2 + 3 = 5 dollars", ("5", "text")),
        ("nothing numeric", (None, "")),
    ],
)
def test_answer_from_text(text, expected):
    assert answer_from_text(text) == expected
