import json
import random

import pytest

from r1lib.tasks import ChainTask, Example, GSM8KTask, load_gsm8k, verify
from r1lib.tasks.gsm8k import gold_answer, parse_number
from r1lib.tiny.corpus import CorpusConfig, completion_text, reasoning_trace


def test_chain_answer_and_steps():
    task = ChainTask()
    example = task.make_example([3, 5, 9, 2])
    assert example.question == "3+5+9+2" and example.answer == "9"
    assert task.solution_steps(example) == ["3+5+9+2", "8+9+2", "7+2", "9"]


def test_chain_generation_is_seeded_and_respects_exclusion():
    task = ChainTask()
    assert task.generate(50, seed=1) == task.generate(50, seed=1)
    assert task.generate(50, seed=1) != task.generate(50, seed=2)
    held_out = {e.question for e in task.generate(200, seed=7)}
    train = task.generate(500, seed=0, exclude=held_out)
    assert not held_out & {e.question for e in train}
    assert all(2 <= len(e.info["terms"]) <= 7 for e in train)


def test_chain_rejects_bad_configuration():
    with pytest.raises(ValueError, match="min_terms"):
        ChainTask(min_terms=1)
    with pytest.raises(ValueError, match="modulus"):
        ChainTask(modulus=11)


def test_verify_extracts_the_answer_tag():
    task = ChainTask()
    example = task.make_example([4, 4])
    assert verify(task, "<think>4+4 so 8</think><answer>8</answer>", example)
    assert not verify(task, "<answer>7</answer>", example)
    assert not verify(task, "8", example)  # no answer tag, no credit


def test_reasoning_trace_languages_and_reflection():
    task = ChainTask()
    example = task.make_example([1, 2, 3])
    assert reasoning_trace(task, example, random.Random(0)) == "<think>1+2+3 so 3+3 so 6</think>"
    assert " luego " in reasoning_trace(task, example, random.Random(0), language="es")
    reflective = reasoning_trace(task, example, random.Random(0), reflect=True)
    assert " wait " in reflective and reflective.endswith("6</think>")


def test_corpus_curriculum_controls_trace_fraction():
    task, rng = ChainTask(), random.Random(0)
    config = CorpusConfig(trace_fraction_early=0.9, trace_fraction_late=0.1)
    early = sum("<think>" in completion_text(task, task.sample(rng), rng, config, 0.1) for _ in range(400))
    late = sum("<think>" in completion_text(task, task.sample(rng), rng, config, 0.9) for _ in range(400))
    assert early > 300 and late < 80


def test_gsm8k_parsing_and_check():
    assert gold_answer("so 3 + 4 = 7\n#### 1,234") == "1234"
    assert parse_number("$1,234.50") == 1234.5 and parse_number("no number") is None
    task = GSM8KTask()
    example = Example("q", "72")
    assert task.check_answer("72", example) and task.check_answer("The answer is 72.0", example)
    assert not task.check_answer("71", example)
    assert not task.check_answer("7" * 10_000, example)  # refused, not parsed
    assert task.prompt(example)[0]["role"] == "system"


def test_load_gsm8k_from_local_jsonl(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    rows = [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
            {"question": "Half of 10?", "answer": "10/2=5\n#### 5"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    examples = load_gsm8k(path=path)
    assert [e.answer for e in examples] == ["7", "5"]
    assert load_gsm8k(path=path, limit=1)[0].question.startswith("Tom")
