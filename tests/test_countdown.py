import time
from fractions import Fraction

import pytest

from r1lib.tasks import CountdownTask, Example
from r1lib.tasks.arithmetic import (
    MAX_CHARS,
    MAX_DEPTH,
    BinOp,
    ExpressionError,
    Number,
    evaluate,
    format_expression,
    numbers_used,
    parse_expression,
)


def value(text: str) -> Fraction:
    return evaluate(parse_expression(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", Fraction(7)),  # * binds tighter than +
        ("(1 + 2) * 3", Fraction(9)),
        ("8 - 3 - 1", Fraction(4)),  # left associative
        ("8 - (3 - 1)", Fraction(6)),
        ("8 / 4 / 2", Fraction(1)),
        ("8 / (4 / 2)", Fraction(4)),
        ("6 / 4", Fraction(3, 2)),  # exact, no float rounding
        ("6 / 4 * 2", Fraction(3)),
        ("1/3+1/3+1/3", Fraction(1)),
        (" \t(((7)))\n", Fraction(7)),
        ("100 - 99 * (2 - 3)", Fraction(199)),
    ],
)
def test_parser_precedence_and_parentheses(text, expected):
    assert value(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "", "   ", "1 +", "+ 1", "-1 + 2", "1 + + 2", "(1 + 2", "1 + 2)", "()", "1 2", "2(3)",
        "1 ** 2", "1 ^ 2", "1.5 + 1", "x + 1", "1 = 1", "1,000", "abs(1)",
    ],
)
def test_parser_rejects_invalid_expressions(text):
    with pytest.raises(ExpressionError):
        parse_expression(text)


def test_division_by_zero_is_an_expression_error():
    with pytest.raises(ExpressionError, match="division by zero"):
        value("5 / (3 - 3)")
    with pytest.raises(ExpressionError, match="division by zero"):
        value("1 / 0")


def test_numbers_used_is_a_left_to_right_multiset():
    assert numbers_used(parse_expression("(25 - 5) * (5 + 3) / 25")) == [25, 5, 5, 3, 25]
    assert numbers_used(parse_expression("007")) == [7]


def test_format_expression_keeps_only_needed_parentheses():
    tree = BinOp("-", Number(8), BinOp("-", Number(3), Number(1)))
    assert format_expression(tree) == "8 - (3 - 1)"
    tree = BinOp("*", BinOp("+", Number(3), Number(5)), Number(2))
    assert format_expression(tree) == "(3 + 5) * 2"
    tree = BinOp("+", Number(1), BinOp("*", Number(2), Number(3)))
    assert format_expression(tree) == "1 + 2 * 3"
    tree = BinOp("/", Number(8), BinOp("*", Number(2), Number(2)))
    assert format_expression(tree) == "8 / (2 * 2)"


HOSTILE = [
    "__import__('os').system('touch /tmp/r1lib_pwned')",
    "1**1000000",
    "9**9**9**9",
    "9" * 10_000,
    "9" * 13,  # one digit over the literal bound
    "(" * 10_000 + "1" + ")" * 10_000,
    "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1),
    "١ + ٢",  # Arabic-Indic digits: str.isdigit() is True, but they are not ASCII digits
    "²+1",
    "1\u00a0+ 2",  # non-breaking space
    "999999999999 * 999999999999",  # each literal fits; the product is refused
    "1" + "+1" * 200,
    "\ud800",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_is_rejected_quickly(text):
    start = time.perf_counter()
    with pytest.raises(ExpressionError):
        evaluate(parse_expression(text))
    assert time.perf_counter() - start < 0.05


def test_limits_are_inclusive_at_the_boundary():
    depth = "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH
    assert value(depth) == 1
    assert value("1" + "+1" * ((MAX_CHARS - 1) // 2)) == 1 + (MAX_CHARS - 1) // 2
    assert value("999999999999") == 999_999_999_999


def test_generated_problems_are_solvable_and_seeded():
    task = CountdownTask()
    examples = task.generate(200, seed=3)
    assert examples == task.generate(200, seed=3)
    assert examples != task.generate(200, seed=4)
    for example in examples:
        numbers, target = example.info["numbers"], example.info["target"]
        assert 3 <= len(numbers) <= 4 and all(1 <= x <= 100 for x in numbers)
        assert 1 <= target <= 1000
        assert sorted(numbers_used(parse_expression(example.answer))) == sorted(numbers)
        assert value(example.answer) == target
        assert task.check_answer(example.answer, example)
        assert str(target) in example.question and str(numbers) in example.question


def test_generation_respects_exclusion():
    task = CountdownTask(min_numbers=3, max_numbers=3, max_number=5, max_target=20)
    held_out = {e.question for e in task.generate(50, seed=1)}
    assert not held_out & {e.question for e in task.generate(100, seed=2, exclude=held_out)}


def test_check_answer():
    task = CountdownTask()
    example = task.make_example([3, 5, 2], "(3 + 5) * 2")
    assert example.info == {"numbers": [3, 5, 2], "target": 16}
    check = task.check_answer
    assert check("(5 + 3) * 2", example)
    assert check("2*(3+5)", example)
    assert check("(3 + 5) * 2 = 16", example)
    assert not check("(3 + 5) * 2 = 17", example)  # a false claim is wrong even with the right value
    assert not check("3 * 5 + 2", example)  # 17: wrong value
    assert not check("(3 + 5) * 2 * 1", example)  # extra number
    assert not check("8 * 2", example)  # numbers not the given ones
    assert not check("(3 + 5) * 2 + 2 - 2", example)  # 2 used three times
    assert not check("16", example)
    assert not check("__import__('os')", example)
    # A reward function only has the reference solution: numbers and target are recovered from it.
    assert check("2 * (5 + 3)", Example("", "(3 + 5) * 2"))
    assert not check("2 * 5 + 3", Example("", "(3 + 5) * 2"))


def test_check_answer_exact_with_fractions():
    task = CountdownTask()
    example = task.make_example([1, 3, 4, 6], "6 / (1 - 3 / 4)")
    assert example.info["target"] == 24
    assert task.check_answer("6/(1-3/4)", example)


def test_bad_configuration_and_bad_solutions():
    with pytest.raises(ValueError, match="min_numbers"):
        CountdownTask(min_numbers=1)
    with pytest.raises(ValueError, match="max_target"):
        CountdownTask(max_target=0)
    with pytest.raises(ValueError, match="exactly the numbers"):
        CountdownTask().make_example([1, 2], "1 + 3")
    with pytest.raises(ValueError, match="positive integer"):
        CountdownTask().make_example([1, 2], "1 - 2")


def test_prompt_asks_for_the_format():
    task = CountdownTask()
    messages = task.prompt(task.generate(1, seed=0)[0])
    assert messages[0]["role"] == "system" and "<answer>" in messages[0]["content"]
    assert "exactly once" in messages[0]["content"] and messages[1]["role"] == "user"
