"""Reading a batch of prompts: lines or JSONL, UTF-8, blank lines skipped, every bad line named."""

from __future__ import annotations

import io

import pytest

from logo.prompt_files import Prompt, read_prompts


@pytest.mark.parametrize(
    "data, fmt, expected",
    [
        (b"one\n\ntwo\r\nthree", "auto", [Prompt(1, "one"), Prompt(3, "two"), Prompt(4, "three")]),
        (b'{"prompt": "a\\nb"}\n  \n{"prompt": "c", "id": 7}\n', "auto", [Prompt(1, "a\nb"), Prompt(3, "c")]),
        (b'{"prompt": "a"}\n', "lines", [Prompt(1, '{"prompt": "a"}')]),  # a prompt may start with '{'
        ("café ✓\n".encode(), "lines", [Prompt(1, "café ✓")]),
        ("a\u2028b\n".encode(), "lines", [Prompt(1, "a\u2028b")]),  # only "\n" separates prompts
    ],
)
def test_prompts_and_their_lines(data, fmt, expected):
    assert read_prompts(io.BytesIO(data), "in", fmt) == expected


@pytest.mark.parametrize(
    "data, fmt, match",
    [
        (b" \n\n", "auto", "no prompts in in: write one prompt per line"),
        (b"ok\nbad \xe9\n", "auto", r"line 2 of in is not valid UTF-8 \(byte b'\\xe9' at offset 7\)"),
        (b'{"prompt": "a"}\nnot json\n', "auto", "line 2 of in is not valid JSON"),
        (b"[1, 2]\n", "jsonl", 'line 1 of in is not an object with a string "prompt" key'),
        (b'{"prompt": 3}\n', "jsonl", 'line 1 of in is not an object with a string "prompt" key'),
        (b'{"prompt": ""}\n', "jsonl", "the prompt on line 1 of in is empty"),
        (b'{"prompt": "\\ud800"}\n', "jsonl", "the prompt on line 1 of in holds '\\\\ud800' at character 0"),
        (b"a\n", "csv", "unknown prompt format 'csv': choose one of auto, lines, jsonl"),
    ],
)
def test_bad_batches_name_the_line(data, fmt, match):
    with pytest.raises(ValueError, match=match):
        read_prompts(io.BytesIO(data), "in", fmt)
