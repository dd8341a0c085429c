"""The reader's input: a task description plus optional demonstrations, validated, hashed and formatted."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

Demo = tuple[str, str]  # (input, output)


def check_description(description: object) -> str:
    if not isinstance(description, str):
        raise TypeError(f"the task description is a {type(description).__name__}, not a string")
    if not description.strip():
        raise ValueError(
            "the task description is empty: describe the task in a sentence (what goes in, what comes out)"
        )
    return description.strip()


def normalise_demos(demos: Sequence) -> tuple[Demo, ...]:
    """Demos as (input, output) pairs or {'input': ..., 'output' | 'target': ...} mappings -> pairs of strings."""
    out = []
    for i, demo in enumerate(demos):
        if isinstance(demo, Mapping):
            if "input" not in demo or not ({"output", "target"} & set(demo)):
                raise ValueError(f"demo {i} has keys {sorted(demo)}: give 'input' and 'output'")
            pair = (demo["input"], demo.get("output", demo.get("target")))
        elif isinstance(demo, (tuple, list)) and len(demo) == 2:
            pair = tuple(demo)
        else:
            raise ValueError(f"demo {i} is {demo!r}: give an (input, output) pair or a mapping with input and output")
        if isinstance(pair[1], list) and pair[1]:
            pair = (pair[0], pair[1][0])  # several acceptable answers: the canonical one
        if not all(isinstance(p, str) and p.strip() for p in pair):
            raise ValueError(f"demo {i} has an empty or non-string input or output: {pair!r}")
        out.append((pair[0].strip(), pair[1].strip()))
    return tuple(out)


def load_demos(path: Path | str) -> tuple[Demo, ...]:
    """A JSON list or a JSONL file of {'input': ..., 'output': ...} objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"demo file {path} does not exist")
    return parse_demos(path.read_text(encoding="utf-8"), f"demo file {path}")


def parse_demos(text: str, source: str = "the demos") -> tuple[Demo, ...]:
    """Demos written as a JSON list or JSONL of {'input', 'output'} objects; `source` names them in errors."""
    if not text.strip():
        raise ValueError(f"{source} is empty: write a JSON list or JSONL of {{'input', 'output'}} objects")
    try:
        rows = json.loads(text)
        if isinstance(rows, dict):  # one JSONL line: one demo
            rows = [rows]
        if not isinstance(rows, list):
            raise ValueError(f"{source} holds a JSON {type(rows).__name__}: write a list of objects")
    except json.JSONDecodeError:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{source}, line {n}: not valid JSON ({err.msg}): write one {{'input', 'output'}} "
                    f"object per line, or one JSON list"
                ) from None
    try:
        return normalise_demos(rows)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def system_prompt(description: str, demos: Sequence[Demo] = ()) -> str:
    """The text the reader reads (and the edge model would otherwise carry in its context)."""
    if not demos:
        return description
    shots = "\n\n".join(f"Input: {i}\nOutput: {o}" for i, o in demos)
    return f"{description}\n\nExamples:\n\n{shots}"


def prompt_digest(description: str, demos: Sequence[Demo] = ()) -> str:
    """The cache key and the card's hash: sha256 over the description and demos."""
    payload = json.dumps([description, [list(d) for d in demos]], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def edge_prompt(tokenizer, text: str, system: str | None = None) -> str:
    """The edge model's prompt: `text` as a user turn after `system` when given (else the template's own
    default system prompt, exactly what the engine sends for a bare input)."""
    if not tokenizer.chat_template:
        return text if system is None else f"{system}\n\n{text}"
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": text})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
