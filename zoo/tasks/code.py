"""Generators of code tasks: summarise stdlib functions, evaluate expressions, name functions, predict output."""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import random
import sysconfig
import textwrap
from functools import cache
from pathlib import Path

from .common import Example, TaskSpec, load_json, pick

# The word lists and the function corpus live in data/code.json.
_DATA = load_json("code.json")

# --- code_summarization ----------------------------------------------------------------------------

# Pure-Python standard-library modules; their .py files are parsed, never imported.
STDLIB_MODULES = _DATA["stdlib_modules"]
MAX_SOURCE_LINES = 40


def _stdlib_file(module_name: str) -> Path | None:
    base = Path(sysconfig.get_paths()["stdlib"]) / module_name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _function_nodes(body: list[ast.stmt]):
    """Module-level functions and methods of module-level classes (also inside module-level if/try blocks)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node
        elif isinstance(node, ast.ClassDef):
            yield from (n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
        elif isinstance(node, (ast.If, ast.Try)):
            yield from _function_nodes(node.body + node.orelse + getattr(node, "finalbody", []))


def _first_sentence(docstring: str) -> str | None:
    """First sentence of the docstring's first paragraph, or None when it is not a plain summary sentence."""
    paragraph = inspect.cleandoc(docstring).split("\n\n")[0]
    text = " ".join(line.strip() for line in paragraph.splitlines()).strip()
    if not text or text.startswith((">>>", ":", "@", "-", "*", "(", "[", "Usage", "usage")) or "::" in text:
        return None
    end = text.find(". ")
    sentence = text if end < 0 else text[: end + 1]
    if not sentence.endswith("."):
        sentence += "."
    words = sentence.split()
    if not 3 <= len(words) <= 30 or "->" in sentence or "[" in sentence or "(" in words[0]:
        return None  # signatures and usage lines ("f(x) -> y", "cmd [arg]") are not summaries
    return sentence


def _source_without_docstring(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The text inspect.getsource gives for node (decorators included), minus the docstring statement."""
    if len(node.body) < 2:  # nothing left once the docstring is gone
        return None
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    doc = node.body[0]
    if doc.lineno <= node.lineno:  # "def f(): '''doc'''" on one line: no clean cut
        return None
    kept = lines[first - 1 : doc.lineno - 1] + lines[doc.end_lineno : node.end_lineno]
    code = textwrap.dedent("\n".join(kept)).rstrip()
    if not code.startswith(("def ", "async def ", "@")):  # a string at column 0 blocked the dedent
        return None
    code_lines = code.splitlines()
    if len(code_lines) > MAX_SOURCE_LINES:
        code_lines = [*code_lines[:MAX_SOURCE_LINES], "    ..."]
    return "\n".join(code_lines)


@cache
def stdlib_function_corpus() -> tuple[tuple[str, str], ...]:
    """(source without docstring, first docstring sentence) for every usable stdlib function, sorted.

    Sources are read from the stdlib .py files with ast rather than from imported objects, so the corpus does
    not depend on which modules the process has already imported or patched (torch, for one, changes it).
    """
    seen: dict[str, str] = {}
    for module_name in STDLIB_MODULES:
        path = _stdlib_file(module_name)
        if path is None:  # absent from this build
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in _function_nodes(ast.parse(source).body):
            doc = ast.get_docstring(node)
            summary = _first_sentence(doc) if doc else None
            code = _source_without_docstring(lines, node) if summary else None
            if code is not None:
                seen.setdefault(code, summary)
    return tuple(sorted(seen.items()))


def gen_code_summarization(rng: random.Random) -> Example:
    code, summary = pick(rng, stdlib_function_corpus())
    return code, summary


# --- python_eval -----------------------------------------------------------------------------------

_WORDS = _DATA["words"]


def _small_list(rng: random.Random, low: int = 0, high: int = 9, size: tuple[int, int] = (3, 5)) -> list[int]:
    return [rng.randint(low, high) for _ in range(rng.randint(*size))]


def _random_expression(rng: random.Random) -> str:
    a, b, c = rng.randint(1, 12), rng.randint(1, 12), rng.randint(1, 9)
    w, w2 = rng.sample(_WORDS, 2)
    xs = _small_list(rng)
    i = rng.randint(0, len(w) - 1)
    j = rng.randint(i + 1, len(w))
    builders = [
        lambda: f"{a} + {b} * {c}",
        lambda: f"({a} + {b}) * {c}",
        lambda: f"{a * c} // {c}",
        lambda: f"{a + b} // {c}",
        lambda: f"{a + b} % {c}",
        lambda: f"{c} ** 2",
        lambda: f"{a} - {b} * 2",
        lambda: f"abs({a} - {b * 2})",
        lambda: f"divmod({a + b}, {c})",
        lambda: f"{a * 2} / 4",
        lambda: f"max({a}, {b}, {c})",
        lambda: f"min({a}, {b}) + {c}",
        lambda: f"'{w}'.upper()",
        lambda: f"'{w.capitalize()}'.lower()",
        lambda: f"'{w}'[{i}]",
        lambda: f"'{w}'[{i}:{j}]",
        lambda: f"'{w}'[::-1]",
        lambda: f"len('{w}')",
        lambda: f"'{w[:2]}' * {c % 4 + 1}",
        lambda: f"'{w}-{w2}'.split('-')",
        lambda: f"'-'.join(['{w}', '{w2}'])",
        lambda: f"'{w}'.count('{w[i]}')",
        lambda: f"'{w}'.find('{w[i]}')",
        lambda: f"'{w}'.startswith('{w[:2]}')",
        lambda: f"'{w}'.endswith('{w2[-2:]}')",
        lambda: f"'{w}'.replace('{w[i]}', '*')",
        lambda: f"'{w} {w2}'.title()",
        lambda: f"'  {w} '.strip()",
        lambda: f"'{w}' + str({a})",
        lambda: f"'{w}' in '{w} {w2}'",
        lambda: f"sorted('{w}')[0]",
        lambda: f"{xs}[{rng.randint(0, len(xs) - 1)}]",
        lambda: f"{xs}[-1]",
        lambda: f"len({xs})",
        lambda: f"sorted({xs})",
        lambda: f"sorted({xs}, reverse=True)",
        lambda: f"max({xs})",
        lambda: f"min({xs})",
        lambda: f"sum({xs})",
        lambda: f"{xs} + [{a}]",
        lambda: f"{xs}[1:]",
        lambda: f"{xs}[:2]",
        lambda: f"list(range({c}))",
        lambda: f"list(range({c}, {c + rng.randint(1, 4)}))",
        lambda: f"[x * 2 for x in {xs}]",
        lambda: f"[x for x in {xs} if x % 2 == 0]",
        lambda: f"{xs}.index({pick(rng, xs)})",
        lambda: f"{a} in {xs}",
        lambda: f"list(reversed({xs}))",
        lambda: f"{{'{w}': {a}, '{w2}': {b}}}['{w2}']",
        lambda: f"len({{'{w}': {a}, '{w2}': {b}}})",
        lambda: f"{{'{w}': {a}}}.get('{w2}', 0)",
        lambda: f"sorted({{'{w}': 1, '{w2}': 2}})",
        lambda: f"sorted(set({xs}))",
        lambda: f"len(set({xs}))",
        lambda: f"{a} > {b}",
        lambda: f"{a} == {b} or {c} < 5",
        lambda: f"not {a} == {b}",
        lambda: f"bool({a % 2})",
        lambda: "bool('')",
        lambda: "bool([0])",
        lambda: f"{min(a, b)} < {c} < {max(a, b)}",
        lambda: f"int('{a}') + {b}",
        lambda: f"str({a}) * 2",
        lambda: f"float({a})",
        lambda: f"int({a}.9)",
        lambda: f"round({a}.{c}6)",
        lambda: f"tuple({xs[:3]})",
        lambda: f"type({a} / {b}).__name__",
        lambda: f"{a} if {a} > {b} else {b}",
        lambda: f"[{a}, {b}] * 2",
        lambda: f"'{w}'.isalpha()",
    ]
    return pick(rng, builders)()


def gen_python_eval(rng: random.Random) -> Example:
    while True:
        expr = _random_expression(rng)
        value = repr(eval(expr, {"__builtins__": __builtins__}, {}))
        if len(value) <= 40:
            break
    template = pick(
        rng,
        (
            "{e}",
            ">>> {e}",
            "Evaluate: {e}",
            "What does the Python expression {e} return?",
            "print(repr({e}))",
            "Python: {e}",
        ),
    )
    return template.format(e=expr), value


# --- function_naming -------------------------------------------------------------------------------

# name -> {"alternatives": other accepted names, "bodies": signature-and-body templates}. Bodies use {x}
# (a number), {xs} (a list), {s} (a string), {a}/{b} (two values) and {f} (the function itself, for recursion).
# Parameters in the signature are filled in too.
_FUNCTIONS = _DATA["functions"]
_PARAM_NAMES = {
    "x": ["n", "x", "num", "value", "k"],
    "xs": ["xs", "nums", "items", "values", "lst", "data"],
    "s": ["s", "text", "word", "string", "line"],
    "a": ["a", "x", "first", "p"],
    "b": ["b", "y", "second", "q"],
}
_PLACEHOLDERS = ["f", "func", "mystery", "___", "unknown", "g"]


def gen_function_naming(rng: random.Random) -> Example:
    name = pick(rng, list(_FUNCTIONS))
    alternatives = _FUNCTIONS[name]["alternatives"]
    body = pick(rng, _FUNCTIONS[name]["bodies"])
    placeholder = pick(rng, _PLACEHOLDERS)
    names = {slot: pick(rng, options) for slot, options in _PARAM_NAMES.items()}
    if "{x}" in body and names["x"] in (names["a"], names["b"]):  # clamp takes x, a and b together
        names |= {"a": "lo", "b": "hi"}
    code = f"def {placeholder}" + body.format(f=placeholder, **names)
    template = pick(
        rng,
        (
            "{c}",
            "What is a good name for this function?\n{c}",
            "Name this function:\n{c}",
            "```python\n{c}\n```",
            "# Suggest a name for {p}\n{c}",
        ),
    )
    return template.format(c=code, p=placeholder), [name, *alternatives]


# --- program_output (held out) ---------------------------------------------------------------------


def _random_program(rng: random.Random) -> str:
    a, b, n = rng.randint(1, 9), rng.randint(1, 9), rng.randint(2, 6)
    w = pick(rng, _WORDS)
    xs = _small_list(rng, 1, 9)
    programs = [
        f"x = {a}\ny = {b}\nprint(x + y * 2)",
        f"total = 0\nfor i in range({n}):\n    total += i\nprint(total)",
        f"s = ''\nfor ch in '{w[:4]}':\n    s = ch + s\nprint(s)",
        f"n = {a + b}\nif n % 2 == 0:\n    print('even')\nelse:\n    print('odd')",
        f"nums = {xs}\nnums.append({a})\nprint(len(nums))",
        f"n = {a * 8}\ncount = 0\nwhile n > 1:\n    n //= 2\n    count += 1\nprint(count)",
        f"words = ['{w}', '{pick(rng, _WORDS)}']\nprint(words[{rng.randint(0, 1)}].upper())",
        f"x = {a}\nfor _ in range({rng.randint(1, 3)}):\n    x = x * 2\nprint(x)",
        f"nums = {xs}\nprint(sum(v for v in nums if v > {b}))",
        f"d = {{'a': {a}, 'b': {b}}}\nd['a'] += 1\nprint(d['a'] + d['b'])",
        f"text = '{w}'\nprint(text[{rng.randint(0, 2)}] + text[-1])",
        f"x = {a}\nif x > {b}:\n    x -= {b}\nelse:\n    x += {b}\nprint(x)",
        f"result = []\nfor i in range({n}):\n    if i % 2 == 1:\n        result.append(i)\nprint(result)",
        f"a, b = {a}, {b}\na, b = b, a\nprint(a - b)",
    ]
    return pick(rng, programs)


def gen_program_output(rng: random.Random) -> Example:
    program = _random_program(rng)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(program, {"__builtins__": __builtins__})
    template = pick(
        rng, ("{p}", "What does this program print?\n{p}", "```python\n{p}\n```", "# What is the output?\n{p}")
    )
    return template.format(p=program), buffer.getvalue().strip()


SPECS = [
    TaskSpec(
        name="code_summarization",
        category="code",
        description="Summarise a Python standard-library function in one sentence from its source code.",
        instruction="Summarise what this Python function does in one sentence.",
        metric="rouge_l",
        held_out=False,
        source="Functions and methods of ~185 pure-Python stdlib modules of the running Python (3.11), their "
        "source as inspect.getsource shows it (read from the .py files with ast); docstring removed from "
        "the input, its first sentence (3-30 words) is the target; sources truncated to 40 lines; "
        "deduplicated. The stdlib has fewer usable functions than 3,500, so all are used: dev and test "
        "get their full sizes and train holds the rest.",
        generate=gen_code_summarization,
    ),
    TaskSpec(
        name="python_eval",
        category="code",
        description="Give the value of a short Python expression as Python would print it with repr().",
        instruction="Evaluate the Python expression. Answer with the repr() of its value only.",
        metric="exact_match",
        held_out=False,
        source="73 expression builders (arithmetic, strings, lists, dicts, sets, comparisons, conversions) with "
        "random operands; target = repr(eval(expression)), at most 40 characters; 6 templates.",
        generate=gen_python_eval,
    ),
    TaskSpec(
        name="function_naming",
        category="code",
        description="Suggest the conventional name of a small Python function from its body.",
        instruction="Give the most fitting snake_case name for this Python function. Answer with the name only.",
        metric="exact_match",
        held_out=False,
        source="42 common helper functions (is_even, factorial, count_vowels, ...) with 1-2 implementations "
        "each, random parameter names and a placeholder function name; target = canonical name, "
        "common alternatives also listed; 5 templates.",
        generate=gen_function_naming,
    ),
    TaskSpec(
        name="program_output",
        category="code",
        description="Predict what a short Python program prints.",
        instruction="What does this Python program print? Answer with the printed output only.",
        metric="exact_match",
        held_out=True,
        source="14 program shapes (loops, conditionals, string building, list and dict updates) with random "
        "constants; target = captured stdout of running the program.",
        generate=gen_program_output,
    ),
]
