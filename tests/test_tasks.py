import json
import random
import re

import pytest

from r1lib.tasks import ChainTask, Example, GSM8KTask, load_gsm8k, verify
from r1lib.tasks.gsm8k import gold_answer, parse_number
from r1lib.tasks.search import SearchTask
from r1lib.tiny.corpus import CorpusConfig, chain_trace, sample_document, search_trace


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


def test_chain_trace_languages():
    task = ChainTask()
    example = task.make_example([1, 2, 3])
    assert chain_trace(task, example, random.Random(0)) == "<think>1+2+3 so 3+3 so 6</think>"
    assert chain_trace(task, example, random.Random(0), language="es") == "<think>1+2+3 luego 3+3 luego 6</think>"
    with pytest.raises(ValueError, match="language"):
        chain_trace(task, example, random.Random(0), language="fr")


def test_search_task_checks_any_right_pair_and_nothing_else():
    task = SearchTask()
    example = task.make_example([3, 8, 5, 9], 7)  # 8+9 = 17 -> 7
    assert example.question == "3859=7" and example.answer == "8+9"
    assert task.check_answer("8+9", example) and task.check_answer(" 9 + 8 ", example)
    assert not task.check_answer("3+5", example)  # sums to 8
    assert not task.check_answer("8+8", example)  # 8 appears once
    assert not task.check_answer("8+9+0", example) and not task.check_answer("17", example)
    assert not task.check_answer("8+9" * 100, example)
    doubled = task.make_example([4, 4, 1, 2], 8)
    assert task.check_answer("4+4", doubled)
    # A reward function only sees the question column: the digits come from the question then.
    assert task.check_answer("8+9", Example("3859=7", ""))
    with pytest.raises(ValueError, match="no two of"):
        task.make_example([0, 0, 0, 0], 5)
    rng = random.Random(0)
    assert all(task.check_answer(e.answer, e) for e in (task.sample(rng) for _ in range(200)))


def test_search_trace_is_diligent_or_careless():
    task = SearchTask()
    example = task.make_example([3, 8, 5, 9], 7)
    trace, pair = search_trace(task, example, random.Random(0), diligent=True)
    assert trace == "<think>3+8=1 wait 3+5=8 wait 3+9=2 wait 8+5=3 wait 8+9=7</think>" and pair == "8+9"
    trace, pair = search_trace(task, example, random.Random(0), diligent=False)
    assert trace == "<think>3+8=1</think>" and pair == "3+8"  # answers the first pair, right or wrong
    assert " espera " in search_trace(task, example, random.Random(0), language="es")[0]


def test_corpus_curriculum_and_families():
    rng = random.Random(0)
    config = CorpusConfig(trace_fraction_early=0.9, trace_fraction_late=0.1)
    early = [sample_document(rng, config, 0.1) for _ in range(600)]
    late = [sample_document(rng, config, 0.9) for _ in range(600)]
    reasoning = lambda docs: [d for d in docs if "=" in d[0][0]["content"] or "+" in d[0][0]["content"]]  # noqa: E731
    thinks = lambda docs: sum("<think>" in reply for _, reply in reasoning(docs)) / len(reasoning(docs))  # noqa: E731
    assert thinks(early) > 0.8 and thinks(late) < 0.2
    general = [reply for prompt, reply in early if not prompt[0]["content"][0].isdigit()]
    assert 0.1 < len(general) / len(early) < 0.3 and not any("<answer>" in reply for reply in general)
    waits = [reply for prompt, reply in early if "=" in prompt[0]["content"] and " wait " in reply]
    assert waits, "diligent search traces exist"
    with pytest.raises(ValueError, match="family weights"):
        CorpusConfig(chain_weight=-1.0)


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


def test_load_gsm8k_reports_bad_lines_precisely(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"question": "q", "answer": "#### 7"})
    path.write_text(good + "\n\n" + '{"question": "q", "answer": ' + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:3: invalid JSON"):
        load_gsm8k(path=path)
    path.write_text(good + "\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: GSM8K record lacks the field\(s\) \['answer'\]"):
        load_gsm8k(path=path)
    path.write_text(json.dumps({"question": "q", "answer": "so\n#### seven"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: the gold answer after '####' is not a number: 'seven'"):
        load_gsm8k(path=path)
    with pytest.raises(FileNotFoundError, match="no GSM8K file"):
        load_gsm8k(path=tmp_path / "missing.jsonl")


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank-lines"])
def test_an_empty_gsm8k_jsonl_is_an_error_naming_the_file(tmp_path, content):
    from r1lib.tasks.registry import load_task

    path = tmp_path / "train.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"no GSM8K records in {re.escape(str(path))}: the file is empty"):
        load_gsm8k(path=path)
    (tmp_path / "test.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 7"}) + "\n")
    # as a profile's data_dir finds it
    with pytest.raises(ValueError, match=f"no GSM8K records in {re.escape(str(path))}"):
        load_task("gsm8k", 4, 1, data_dir=tmp_path)


def test_gsm8k_parquet_files_load_and_empty_ones_name_the_file(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "train-00000-of-00001.parquet"  # the hub's file name for openai/gsm8k
    pq.write_table(pa.table({"question": ["Half of 10?"], "answer": ["10/2=5\n#### 5"]}), path)
    assert [(e.question, e.answer) for e in load_gsm8k(path=path)] == [("Half of 10?", "5")]
    pq.write_table(pa.table({"question": pa.array([], pa.string()), "answer": pa.array([], pa.string())}), path)
    with pytest.raises(ValueError, match=f"no GSM8K records in {re.escape(str(path))}"):
        load_gsm8k(path=path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: not a readable parquet file"):
        load_gsm8k(path=path)
    pq.write_table(pa.table({"question": ["q"]}), path)
    with pytest.raises(ValueError, match=r"parquet\[row 0\]: GSM8K record lacks the field\(s\) \['answer'\]"):
        load_gsm8k(path=path)
