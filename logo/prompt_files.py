"""A batch of prompts read from a file or standard input: one per line, or JSONL objects with a "prompt" key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import BinaryIO

from .config import check_text

FORMATS = ("auto", "lines", "jsonl")


@dataclass(frozen=True)
class Prompt:
    """One prompt of a batch and the line it came from (1-based), which its result carries."""

    line: int
    text: str


def read_prompts(stream: BinaryIO, name: str, fmt: str = "auto") -> list[Prompt]:
    """Every prompt in `stream` (bytes, UTF-8); blank lines are skipped. `name` says where it came from in errors.

    'lines': each line is one prompt as written. 'jsonl': each line is a JSON object with a string "prompt" (the
    way to pass prompts that hold line breaks). 'auto': JSONL when the first non-blank line starts with '{'.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown prompt format {fmt!r}: choose one of {', '.join(FORMATS)}")
    data = stream.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(
            f"line {line} of {name} is not valid UTF-8 (byte {data[err.start : err.start + 1]!r} at offset "
            f"{err.start}): save the prompts as UTF-8"
        ) from None
    lines = [(number, line.removesuffix("\r")) for number, line in enumerate(text.split("\n"), start=1)]
    lines = [(number, line) for number, line in lines if line.strip()]
    if not lines:
        raise ValueError(f'no prompts in {name}: write one prompt per line, or JSONL lines like {{"prompt": "..."}}')
    if fmt == "auto":
        fmt = "jsonl" if lines[0][1].lstrip().startswith("{") else "lines"
    prompts = [Prompt(n, _from_json(line, n, name) if fmt == "jsonl" else line) for n, line in lines]
    for prompt in prompts:
        check_text(prompt.text, f"the prompt on line {prompt.line} of {name}")
    return prompts


def _from_json(line: str, number: int, name: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"line {number} of {name} is not valid JSON ({err.msg}): "
            'write one object per line, like {"prompt": "..."}'
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
        raise ValueError(
            f'line {number} of {name} is not an object with a string "prompt" key: write {{"prompt": "..."}}'
        )
    if not record["prompt"].strip():
        raise ValueError(f"the prompt on line {number} of {name} is empty: type a question or an instruction")
    return record["prompt"]
