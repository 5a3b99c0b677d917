"""Tasks: generate or load examples, build prompts, verify answers."""

from .base import Example, Task, example_columns, verify
from .chain import ChainTask
from .gsm8k import GSM8KTask, load_gsm8k

__all__ = ["ChainTask", "Example", "GSM8KTask", "Task", "example_columns", "load_gsm8k", "verify"]
