"""Tasks: generate or load examples, build prompts, verify answers."""

from .base import Example, Task, example_columns, verify
from .chain import ChainTask
from .countdown import CountdownTask
from .general import GeneralTask, PreferencePair
from .gsm8k import GSM8KTask, load_gsm8k
from .math500 import MathTask, load_math500

__all__ = [
    "ChainTask",
    "CountdownTask",
    "Example",
    "GSM8KTask",
    "GeneralTask",
    "MathTask",
    "PreferencePair",
    "Task",
    "example_columns",
    "load_gsm8k",
    "load_math500",
    "verify",
]
