"""Every PEFT LoraConfig field that changes the maths is served exactly as PEFT serves it, or refused by name."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from logo.adapters import AdapterError
from logo.pool import AdapterPool, load_adapter

PROMPT = "what is the capital of france ?"
QV = ["q_proj", "v_proj"]
ALL = ["q_proj", "k_proj", "v_proj", "o_proj"]


def save_peft_adapter(world, directory, edit=None, **fields):
    """A real PEFT adapter (random non-zero factors) saved as safetensors; `edit` then changes its config JSON."""
    torch.manual_seed(7)
    fields = {"r": 4, "lora_alpha": 8, "target_modules": QV, **fields}
    model = get_peft_model(copy.deepcopy(world.model), LoraConfig(init_lora_weights=False, **fields))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.05)
    model.save_pretrained(directory, safe_serialization=True)
    if edit is not None:
        path = directory / "adapter_config.json"
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return directory


def peft_logits(world, directory) -> torch.Tensor:
    model = PeftModel.from_pretrained(copy.deepcopy(world.model), directory).eval()
    text = world.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
    )
    ids = world.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model(**ids).logits[0]  # (T, V)


def _drop(key):
    return lambda config: {k: v for k, v in config.items() if k != key}


def _set(**changes):
    return lambda config: {**config, **changes}


SUPPORTED = [
    ("plain", {}, None),
    ("no_lora_alpha", {"lora_alpha": 16}, _drop("lora_alpha")),  # PEFT's default of 8, not alpha = r
    ("rslora", {"use_rslora": True, "lora_alpha": 6}, None),
    ("rank_pattern", {"rank_pattern": {"v_proj": 2}}, None),
    ("alpha_pattern", {"alpha_pattern": {"q_proj": 2}}, None),
    ("layers_to_transform", {"layers_to_transform": [1, 3]}, None),
    ("one_layer_with_pattern", {"layers_to_transform": 2, "layers_pattern": "layers"}, None),
    ("fan_in_fan_out", {"fan_in_fan_out": True}, None),  # PEFT turns it off for nn.Linear
    ("regex_targets", {"target_modules": r".*\.(q_proj|up_proj)"}, None),
    ("exclude_modules", {"target_modules": ALL, "exclude_modules": ["k_proj"]}, None),
    ("all_linear", {"target_modules": "all-linear"}, None),
]


@pytest.mark.parametrize(("case", "fields", "edit"), SUPPORTED, ids=[c[0] for c in SUPPORTED])
def test_supported_fields_give_peft_logits(make_engine, tiny_world, tmp_path, case, fields, edit):
    directory = save_peft_adapter(tiny_world, tmp_path / "pool" / case, edit, **fields)
    engine = make_engine(adapters=[str(directory)])
    ours = engine.logits([PROMPT], [{case: 1.0}])[0]
    torch.testing.assert_close(ours, peft_logits(tiny_world, directory), rtol=0, atol=1e-5)


REFUSED = [
    ("alora", {}, _set(alora_invocation_tokens=[5, 6]), r"sets alora_invocation_tokens=\[5, 6\]"),
    ("pissa", {}, _set(init_lora_weights="pissa"), r"init_lora_weights='pissa', which changes the base weights"),
    ("olora", {}, _set(init_lora_weights="olora"), r"init_lora_weights='olora'"),
    ("save_lm_head", {}, _set(modules_to_save=["lm_head"]), r"sets modules_to_save=\['lm_head'\]"),
    ("dora", {}, _set(use_dora=True), r"sets use_dora=True"),
    ("bias", {}, _set(bias="all"), r"trains biases \(bias='all'\)"),
    ("absent_target", {}, _set(target_modules=[*QV, "nope_proj"]), r"targets \['nope_proj'\], but the base model"),
    ("untrained_target", {}, _set(target_modules=ALL), r"targets 8 module\(s\) that have no LoRA weights"),
    ("wrong_rank_pattern", {}, _set(rank_pattern={"q_proj": 2}), r"has rank 4 .* config \(r / rank_pattern\) gives 2"),
    ("wrong_layers", {}, _set(layers_to_transform=[0]), r"has LoRA weights for 6 module\(s\) its config does not"),
]


@pytest.mark.parametrize(("case", "fields", "edit", "message"), REFUSED, ids=[c[0] for c in REFUSED])
def test_unsupported_or_inconsistent_fields_are_refused(tiny_world, tmp_path, case, fields, edit, message):
    directory = save_peft_adapter(tiny_world, tmp_path / "pool" / case, edit, **fields)
    with pytest.raises(AdapterError, match=rf"adapter '{case}'.*{message}"):
        AdapterPool([load_adapter(directory)], tiny_world.model)
