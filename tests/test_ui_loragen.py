"""The LoRA-Gen tab on the tiny model: generate (heatmap, card, zip), try an input beside the prompt in context."""

from __future__ import annotations

import zipfile

import gradio as gr
import numpy as np
import pytest
import torch

from analysis.figures_loragen import gate_heatmap
from analysis.loragen_latency import prompt_tokens
from app.ui_loragen import LoraGenTab, loragen_tab
from logo.loragen import LoraGenConfig, LoraGenerator
from logo.loragen.prompts import system_prompt


@pytest.fixture
def tab(tiny_world, engine, tmp_path):
    config = LoraGenConfig(edge_model="tiny", reader_model="tiny", router_hidden=16)
    # as the Studio wires it: the generator's edge model is the engine's (already wrapped), its reader a copy
    generator = LoraGenerator.build(config, edge=engine.base, reader=tiny_world.base())
    with torch.no_grad():
        for p in generator.model.experts.parameters():
            p.normal_(0, 0.05)
    return LoraGenTab(generator, engine, tmp_path / "work")


def test_generate_gives_the_gates_a_card_and_a_zip_of_the_peft_directory(tab):
    made, fig, card, archive = tab.generate("count the words", '{"input": "cat dog", "output": "two"}')
    z = np.array(fig.data[0].z, dtype=float)
    assert z.shape == (4, 8) and (np.isfinite(z).sum(axis=1) == 2).all()  # K = 2 kept experts per layer shown
    assert made.lora.digest in card and f"{made.lora.context_tokens} tokens leave the context" in card
    tok = tab.engine.tokenizer  # what a request saves is counted through the template, default system turn and all
    saved = prompt_tokens(tok, "", system_prompt(made.lora.description, made.lora.demos)) - prompt_tokens(tok, "", None)
    assert (f"{saved} tokens saved" if saved > 0 else f"{-saved} tokens more, nothing saved") in card
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["adapter_config.json", "adapter_model.safetensors", "card.json"]


def test_try_answers_with_the_adapter_and_with_the_prompt_in_context(tab):
    before = tab.engine.generate("count one two", mixture={}).text
    made, *_ = tab.generate("count the words", "")
    adapted, in_context, latency = tab.try_input(made, "count one two")
    assert isinstance(adapted, str) and isinstance(in_context, str)
    assert "generated adapter, bare input" in latency and "prompt in context" in latency
    assert f"| {prompt_tokens(tab.engine.tokenizer, 'count one two', None)} | " in latency
    assert latency.splitlines()[0] == "| | prompt tokens | answer tokens | end to end (ms) |"
    assert tab.engine.generate("count one two", mixture={}).text == before  # nothing leaks into the Studio engine


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda t: t.generate("   ", ""), "description is empty"),
        (lambda t: t.generate("count", "{oops"), "the demos box, line 1: not valid JSON"),
        (lambda t: t.try_input(None, "count one"), "generate an adapter first"),
    ],
)
def test_bad_input_in_the_tab_names_the_fix(tab, call, match):
    with pytest.raises(ValueError, match=match):
        call(tab)


def test_gate_heatmap_refuses_gates_that_do_not_match_the_names():
    with pytest.raises(ValueError, match="do not match 3 expert names"):
        gate_heatmap(np.ones((4, 2)), ["a", "b", "c"])


def test_the_tab_builds_inside_blocks(tab):
    with gr.Blocks() as demo:
        built = loragen_tab(tab.generator, tab.engine)
    assert isinstance(built, gr.Tab) and demo is not None
