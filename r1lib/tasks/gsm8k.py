"""GSM8K grade-school maths: the hub loader used on a GPU, and the same format from a local jsonl or parquet file.

Each record has a ``question`` and an ``answer`` whose last line is ``#### <number>``, exactly as
in the ``openai/gsm8k`` dataset. Nothing is downloaded unless :func:`load_gsm8k` is called without
a local ``path``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .base import Example, Messages

HUB_NAME = "openai/gsm8k"

# The R1-Zero template (paraphrased): the only instruction is the format.
R1_ZERO_SYSTEM = (
    "A conversation between User and Assistant. The User asks a question and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process and then gives the final answer. The reasoning "
    "and the answer are enclosed in <think> </think> and <answer> </answer> tags: "
    "<think> reasoning here </think> <answer> answer here </answer>."
)

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
MAX_ANSWER_CHARS = 200  # a longer "answer" is not a number; refuse it instead of parsing it


def gold_answer(solution: str) -> str:
    """The number after ``####`` in a GSM8K solution, without thousands separators."""
    if "####" not in solution:
        raise ValueError("GSM8K solution has no '#### <answer>' line")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def parse_number(text: str) -> float | None:
    """The last number in a short answer string (``$1,234.50`` -> 1234.5), or None."""
    if len(text) > MAX_ANSWER_CHARS:
        return None
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    try:
        return float(matches[-1].replace(",", ""))
    except ValueError:
        return None


def parse_final_number(text: str) -> float | None:
    """The answer number of ``text``: the first number after the last ``####`` marker when there is
    one (GSM8K style, ``#### 72 apples``), else the last number of a short text (:func:`parse_number`).

    Only the marker's own line is read, so a long worked solution ending in ``#### 72`` still counts.
    """
    marker = text.rfind("####")
    if marker < 0:
        return parse_number(text)
    line = text[marker + len("####") :].lstrip().split("\n", 1)[0]
    match = _NUMBER.search(line[:MAX_ANSWER_CHARS])
    if match is None:
        return None
    try:
        return float(match.group().replace(",", ""))
    except ValueError:
        return None


@dataclass(frozen=True)
class GSM8KTask:
    """GSM8K with the R1-Zero system prompt and numeric answer checking."""

    name: str = "gsm8k"
    system_prompt: str = R1_ZERO_SYSTEM

    def prompt(self, example: Example) -> Messages:
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": example.question}]

    def check_answer(self, answer: str, example: Example) -> bool:
        """Numeric equality; a ``#### n`` line in the answer (or the reference) gives the number."""
        predicted, gold = parse_final_number(answer), parse_final_number(example.answer)
        return predicted is not None and gold is not None and abs(predicted - gold) < 1e-6 * max(1.0, abs(gold))


REQUIRED_FIELDS = ("question", "answer")


def _to_example(record: object, where: str) -> Example:
    """One GSM8K record as an Example; errors say where the record came from and what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: a GSM8K record is a JSON object, got {type(record).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise ValueError(f"{where}: GSM8K record lacks the field(s) {missing}; it has {sorted(record)}")
    question, solution = record["question"], record["answer"]
    if not isinstance(question, str) or not isinstance(solution, str):
        raise ValueError(f"{where}: 'question' and 'answer' must be strings")
    try:
        gold = gold_answer(solution)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    if parse_number(gold) is None or parse_number(gold) != parse_final_number(solution):
        raise ValueError(f"{where}: the gold answer after '####' is not a number: {gold[:40]!r}")
    return Example(question, gold, {"solution": solution})


def read_gsm8k_jsonl(path: str | Path) -> list[Example]:
    """Examples from a local jsonl file in the hub's format; a bad line is an error naming its line number,
    a file without any record an error naming the file."""
    from ..records import jsonl_records  # imported here: records loads torch, and a task should load without it

    path = _existing(path)
    return _not_empty([_to_example(record, where) for where, record in jsonl_records(path)], path)


def read_gsm8k_parquet(path: str | Path) -> list[Example]:
    """Examples from a local parquet file (what the hub stores for ``openai/gsm8k``); errors name the row."""
    path = _existing(path)
    try:
        import pyarrow.parquet as pq  # imported here: only parquet files need it
    except ImportError:
        raise ImportError(f"reading {path} needs pyarrow: pip install pyarrow (or r1lib[gpu])") from None

    try:
        records = pq.read_table(path).to_pylist()
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types; the message is what matters
        raise ValueError(f"{path}: not a readable parquet file ({error})") from None
    return _not_empty([_to_example(r, f"{path}[row {i}]") for i, r in enumerate(records)], path)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GSM8K file at {path}")
    return path


def _not_empty(examples: list[Example], path: Path) -> list[Example]:
    # An empty file would otherwise surface much later, as "needs training examples", far from its cause.
    if not examples:
        raise ValueError(f"no GSM8K records in {path}: the file is empty (or holds only blank lines)")
    return examples


def load_gsm8k(split: str = "test", path: str | Path | None = None, limit: int | None = None) -> list[Example]:
    """GSM8K examples from a local ``path`` (``.parquet``, else jsonl; offline), or from the hub via ``datasets``."""
    if path is not None:
        examples = read_gsm8k_parquet(path) if Path(path).suffix == ".parquet" else read_gsm8k_jsonl(path)
    else:
        from datasets import load_dataset  # imported here: only the online path needs it

        records = load_dataset(HUB_NAME, "main", split=split)
        examples = [_to_example(r, f"{HUB_NAME}[{split}][{i}]") for i, r in enumerate(records)]
    return examples[:limit] if limit is not None else examples
