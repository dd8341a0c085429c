"""The `logo` command line, run in-process on the tiny model saved as a local model directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logo.cli import main
from logo.config import EngineConfig, GenerationConfig, RoutingConfig, field_default, field_help

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def model_dir(tiny_world, tmp_path, monkeypatch):
    directory = tmp_path / "tiny-model"
    tiny_world.model.save_pretrained(directory)
    tiny_world.tokenizer.save_pretrained(directory)
    monkeypatch.setenv("LOGO_CACHE", str(tmp_path / "cache"))
    return directory


def _run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_route_json(capsys, model_dir, tiny_world):
    code, out, _ = _run(
        capsys,
        "route",
        "what is the capital of france ?",
        "--base-model",
        str(model_dir),
        "--adapters",
        str(tiny_world.pool_dir),
        "--k",
        "2",
        "--signal",
        "entropy",
        "--json",
        "--device",
        "cpu",
    )
    assert code == 0
    data = json.loads(out)
    assert len(data["selected"]) == 2 and sum(data["weights"]) == pytest.approx(1.0)
    assert set(data["signals"]) == {"alpha", "beta", "gamma", "delta", "epsilon"}
    assert data["scores"] != data["signals"]  # the recommended preset: z-scored, probed at block -2
    assert data["config"]["signal"] == "entropy" and data["config"]["probe"]["block"] == -2
    assert data["config"]["calibration"] == "zscore" and data["config"]["reference"]["source"] == "generic"


def test_generate_json_with_calibration_and_probe_options(capsys, model_dir, tiny_world):
    code, out, _ = _run(
        capsys,
        "generate",
        "sort the words cat dog",
        "--base-model",
        str(model_dir),
        "--adapters",
        str(tiny_world.pool_dir),
        "--calibration",
        "zscore",
        "--probe-block",
        "-2",
        "--probe-input",
        "residual",
        "--aggregate",
        "mean",
        "--mode",
        "fused",
        "--max-new-tokens",
        "4",
        "--json",
        "--device",
        "cpu",
    )
    assert code == 0
    data = json.loads(out)
    assert data["mode"] == "fused" and 1 <= data["n_tokens"] <= 4 and isinstance(data["text"], str)
    assert data["scores"] != data["signals"]
    assert data["config"]["routing"]["probe"] == {
        "block": -2,
        "module": "self_attn.q_proj",
        "probe_input": "residual",
        "aggregate": "mean",
    }
    assert {"probe_ms", "merge_ms", "prefill_ms", "decode_ms", "total_ms"} <= set(data["timings"])


def test_route_table(capsys, model_dir, tiny_world):
    code, out, _ = _run(
        capsys,
        "route",
        "count one two",
        "--base-model",
        str(model_dir),
        "--adapters",
        str(tiny_world.pool_dir),
        "--k",
        "1",
    )
    assert code == 0
    assert out.splitlines()[0].split() == ["adapter", "signal", "score", "weight"]
    assert sum(line.endswith(" *") for line in out.splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["route", "  "], "the prompt is empty"),
        (["route", "hello", "--k", "0"], "k must be a positive integer"),
        (["route", "hello", "--k", "9"], "larger than the pool"),
        (["route", "hello", "--adapters", "/no/such/dir"], "does not exist"),
        (["route", "hello", "--probe-block", "40"], "out of range"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, model_dir, tiny_world, args, message):
    if "--adapters" not in args:
        args = [*args, "--adapters", str(tiny_world.pool_dir)]
    code, _, err = _run(capsys, *args, "--base-model", str(model_dir))
    assert code == 2
    assert message in err


def test_unknown_signal_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["route", "hello", "--signal", "loudness"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'loudness'" in capsys.readouterr().err


def test_reference_prompts_file_changes_the_calibration(capsys, model_dir, tiny_world, tmp_path):
    common = [
        "route",
        "count one two",
        "--base-model",
        str(model_dir),
        "--adapters",
        str(tiny_world.pool_dir),
        "--calibration",
        "zscore",
        "--json",
    ]
    _, generic, _ = _run(capsys, *common)
    reference = tmp_path / "own.txt"
    reference.write_text("sort the words cat dog\ncount one two three\nwhat is two + three ?\n")
    _, own, _ = _run(capsys, *common, "--reference-prompts", str(reference))
    assert json.loads(own)["signals"] == json.loads(generic)["signals"]
    assert json.loads(own)["scores"] != json.loads(generic)["scores"]
    code, _, err = _run(capsys, *common, "--reference-prompts", str(tmp_path / "missing.txt"))
    assert code == 2 and "reference prompt file" in err


# ---------------------------------------------------------------- defaults live in the config dataclasses


def test_unset_options_keep_the_dataclass_defaults():
    from logo.cli import engine_config, generation_config, parse_args, routing_config

    args = parse_args(["generate", "hello", "--adapters", "pool"])
    assert engine_config(args) == EngineConfig(adapters=("pool",))
    assert routing_config(args) == RoutingConfig()
    assert generation_config(args) == GenerationConfig()


def test_every_option_shows_its_field_help_and_default(capsys):
    from logo.cli import ENGINE_OPTIONS, GENERATION_OPTIONS, ROUTING_OPTIONS

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    shown = "".join(capsys.readouterr().out.split())  # argparse wraps help text, also at hyphens
    for option in (*ENGINE_OPTIONS, *ROUTING_OPTIONS, *GENERATION_OPTIONS):
        if option.negate:
            assert "".join(option.negate.split()) in shown
            continue
        assert "".join(field_help(option.config, option.name).split()) in shown, option.name
        default = field_default(option.config, option.name)
        if default not in (None, (), False):
            assert "".join(f"(default: {default})".split()) in shown, option.name


def test_options_set_the_fields_they_name():
    from logo.cli import engine_config, generation_config, parse_args, routing_config

    args = parse_args(
        [
            *("generate", "x", "--adapters", "a", "b", "--raw", "--k", "2", "--probe-block", "-2"),
            *("--aggregate", "mean", "--temperature", "0.7", "--top-p", "0.9", "--seed", "5"),
            *("--ignore-eos", "--no-cuda-graph"),
        ]
    )
    assert engine_config(args) == EngineConfig(adapters=("a", "b"), chat_template=False)
    assert routing_config(args) == RoutingConfig(k=2).with_(block=-2, aggregate="mean")
    assert generation_config(args) == GenerationConfig(
        temperature=0.7, top_p=0.9, seed=5, ignore_eos=True, cuda_graph=False
    )


def test_prog_name_is_logo_and_python_m_logo_runs_it():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "logo", "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("usage: logo ")
    assert "route" in run.stdout and "generate" in run.stdout


# ---------------------------------------------------------------- bad inputs: exit 2 and "error: ..."


def test_missing_adapters_says_to_pass_adapters_dir(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["route", "hello"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: no adapters given: pass --adapters DIR" in err and "assets/adapters" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["route", "hello", "--device", "tpu"], "error: unknown device 'tpu': use 'cpu', 'cuda' or 'mps'"),
        (["generate", "hello", "--temperature", "nan"], "error: temperature must be a finite number, got nan"),
        (["generate", "hello", "--temperature", "inf"], "error: temperature must be a finite number, got inf"),
        (["generate", "hello", "--top-p", "nan"], "error: top_p must be a finite number, got nan"),
        (["route"], "error: no prompt given: pass a prompt, '-' to read prompts from standard input"),
        (["route", "hello", "--batch-size", "0"], "error: --batch-size must be a positive integer"),
        (["route", "hello", "--reference-prompts", "/no/such/file.txt", "--calibration", "mean"], "reference"),
    ],
)
def test_bad_values_exit_2_with_an_error_line(capsys, model_dir, tiny_world, args, message):
    code, out, err = _run(capsys, *args, "--adapters", str(tiny_world.pool_dir), "--base-model", str(model_dir))
    assert code == 2 and out == ""
    assert message in err.replace("\\\\", "\\")
    assert "Traceback" not in err


def test_bad_values_are_refused_before_loading_anything(capsys, monkeypatch):
    import logo.cli

    monkeypatch.setattr(logo.cli, "load_engine", lambda config: pytest.fail("the engine was loaded"))
    code, _, err = _run(capsys, "route", "hello", "--adapters", "pool", "--device", "tpu")
    assert code == 2 and "unknown device 'tpu'" in err


@pytest.mark.parametrize("args, message", [(["--k", "2.7"], "invalid int value: '2.7'"), (["--k", "x"], "'x'")])
def test_non_integral_k_is_refused_by_the_parser(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["route", "hello", "--adapters", "pool", *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cuda_without_cuda_is_a_clear_error(capsys, model_dir, tiny_world):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = _run(
        capsys, "route", "hello", "--adapters", str(tiny_world.pool_dir), "--base-model", str(model_dir), "--device",
        "cuda",
    )  # fmt: skip
    assert code == 2 and "error: --device cuda: CUDA is not available here: use --device cpu" in err


def test_invalid_utf8_arguments_are_an_error_not_a_traceback(tmp_path):
    """Bytes that are not UTF-8 reach Python as lone surrogates; the real console script must refuse them."""
    import subprocess
    import sys

    command = [sys.executable.encode(), b"-m", b"logo", b"route", b"caf\xe9 \xff", b"--adapters", b"pool"]
    run = subprocess.run(command, capture_output=True, timeout=60, cwd=REPO)
    err = run.stderr.decode("utf-8", "replace")
    assert run.returncode == 2, err
    assert "error: argument 2 ('caf\\udce9 \\udcff') is not valid UTF-8" in err and "--input FILE" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- batches: standard input or --input, JSONL out


def _stdin(monkeypatch, data: bytes) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def _tiny_args(model_dir, tiny_world, *extra):
    return ["--base-model", str(model_dir), "--adapters", str(tiny_world.pool_dir), "--device", "cpu", *extra]


BATCH = ["what is the capital of france ?", "sort the words cat dog", "count one two"]


def test_route_reads_lines_from_stdin_and_writes_one_json_per_prompt(capsys, monkeypatch, model_dir, tiny_world):
    _stdin(monkeypatch, ("\n".join(BATCH[:2]) + "\n\n" + BATCH[2] + "\n").encode())
    code, out, err = _run(capsys, "route", "-", *_tiny_args(model_dir, tiny_world, "--k", "2", "--batch-size", "2"))
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 4]  # the blank line 3 is skipped, line numbers stay true
    assert [r["prompt"] for r in records] == BATCH
    assert "3/3" in err  # the progress bar, on standard error
    for record, prompt in zip(records, BATCH, strict=True):  # a batch answers as each prompt does alone
        _, alone, _ = _run(capsys, "route", prompt, *_tiny_args(model_dir, tiny_world, "--k", "2", "--json"))
        alone = json.loads(alone)
        assert record["selected"] == alone["selected"]
        assert record["weights"] == pytest.approx(alone["weights"], abs=1e-5)


def test_generate_reads_jsonl_from_a_file(capsys, model_dir, tiny_world, tmp_path):
    batch = tmp_path / "prompts.jsonl"
    records = [{"prompt": "sort the words\ncat dog", "id": 1}, {"prompt": "count one two"}]
    batch.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    args = _tiny_args(model_dir, tiny_world, "--input", str(batch), "--max-new-tokens", "3", "--no-progress")
    code, out, err = _run(capsys, "generate", *args)
    assert code == 0 and "prompt" not in err  # no progress bar
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["prompt"] for r in results] == [r["prompt"] for r in records]  # a line break survives JSONL
    assert all(1 <= r["n_tokens"] <= 3 and isinstance(r["text"], str) for r in results)


def test_a_megabyte_prompt_on_stdin_gets_the_token_limit_error_and_its_line(capsys, monkeypatch, model_dir, tiny_world):
    huge = "cat " * 250_000  # 1 MB: too long for an argument list, fine on standard input
    _stdin(monkeypatch, (json.dumps({"prompt": "count one two"}) + "\n" + json.dumps({"prompt": huge}) + "\n").encode())
    code, out, err = _run(capsys, "route", "-", *_tiny_args(model_dir, tiny_world, "--no-progress"))
    assert code == 2 and out == ""
    assert "error: line 2: prompt 0 is" in err and "max_prompt_tokens" in err


def test_unset_k_is_the_whole_pool_when_it_is_smaller_than_the_default(capsys, model_dir, tiny_world):
    pool = [str(tiny_world.pool_dir / name) for name in ("alpha", "beta")]
    code, out, err = _run(
        capsys, "route", "count one two", "--base-model", str(model_dir), "--adapters", *pool, "--json"
    )
    assert code == 0, err
    assert sorted(json.loads(out)["selected"]) == ["alpha", "beta"]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "error: no prompts in standard input"),
        (b"count one two\n\xff\xfe bad\n", "error: line 2 of standard input is not valid UTF-8"),
        (b'{"prompt": "count"}\n{"prompt": \n', "error: line 2 of standard input is not valid JSON"),
        (b'{"text": "count"}\n', 'error: line 1 of standard input is not an object with a string "prompt" key'),
        (b'{"prompt": "   "}\n', "error: the prompt on line 1 of standard input is empty"),
        (b'{"prompt": "caf\\udce9"}\n', "error: the prompt on line 1 of standard input holds '\\udce9'"),
    ],
)
def test_bad_batches_exit_2_naming_the_line(capsys, monkeypatch, model_dir, tiny_world, data, message):
    _stdin(monkeypatch, data)
    code, out, err = _run(capsys, "route", "-", *_tiny_args(model_dir, tiny_world))
    assert code == 2 and out == ""
    assert message in err.replace("\\\\", "\\")


def test_a_prompt_and_input_together_are_refused(capsys, tmp_path, model_dir, tiny_world):
    batch = tmp_path / "p.txt"
    batch.write_text("count one two\n")
    code, _, err = _run(capsys, "route", "hello", "--input", str(batch), *_tiny_args(model_dir, tiny_world))
    assert code == 2 and f"give either a prompt or --input {batch}, not both" in err
    code, _, err = _run(capsys, "route", "--input", str(tmp_path / "none.txt"), *_tiny_args(model_dir, tiny_world))
    assert code == 2 and "none.txt" in err


def test_a_closed_pipe_ends_quietly(capsys, monkeypatch, model_dir, tiny_world):
    import io
    import sys

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = main(["route", "count one two", *_tiny_args(model_dir, tiny_world)])
    assert code == 141 and "Traceback" not in capsys.readouterr().err
