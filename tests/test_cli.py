"""The command line, run in-process on the tiny model saved as a local model directory."""

from __future__ import annotations

import json

import pytest

from logo.cli import main


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
    assert data["scores"] == data["signals"]
    assert data["config"]["signal"] == "entropy" and data["config"]["probe"]["block"] == -1


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
    assert set(data["timings"]) == {"probe_ms", "merge_ms", "prefill_ms", "decode_ms", "total_ms"}


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
        args = args + ["--adapters", str(tiny_world.pool_dir)]
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
