"""The Studio's LoRA-Gen tab: a task description (+ demos) -> a generated adapter, its gates, a try-out and a zip."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go
import torch

from analysis.figures_loragen import gate_heatmap
from analysis.loragen_latency import chat_prompt, prompt_tokens
from logo.config import EngineConfig, GenerationConfig
from logo.engine import LoGoEngine
from logo.loragen import GeneratedLora, LoraGenerator
from logo.loragen.prompts import parse_demos, system_prompt
from logo.mixture import AdaptedModel
from logo.prompts import left_pad

MAX_NEW_TOKENS = 48


@dataclass(frozen=True)
class Made:
    """One generated adapter as the session holds it: the plain result and where its PEFT directory lies."""

    lora: GeneratedLora
    directory: Path
    archive: Path


class LoraGenTab:
    """The tab's handlers, apart from the widgets so tests can call them. The edge model is the engine's.

    `generator` is a LoraGenerator or a function that loads one: then it is loaded on the first Generate (its
    reader model takes a while), so the Studio starts without waiting for it.
    """

    def __init__(
        self, generator: LoraGenerator | Callable[[], LoraGenerator], engine: LoGoEngine, workdir: Path | None = None
    ):
        self._generator, self.engine = generator, engine
        self._lock = threading.Lock()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="logo-loragen-"))

    @property
    def generator(self) -> LoraGenerator:
        with self._lock:
            if not isinstance(self._generator, LoraGenerator):
                self._generator = self._generator()
            return self._generator

    def generate(self, description: str, demos_text: str) -> tuple[Made, go.Figure, str, str]:
        """(the adapter, its gate heatmap, the card in markdown, the zip to download)."""
        demos = parse_demos(demos_text, "the demos box") if demos_text and demos_text.strip() else ()
        lora = self.generator.generate(description, demos)
        directory = lora.save(self.workdir / lora.digest / "adapter")
        archive = Path(
            shutil.make_archive(str(self.workdir / lora.digest / f"loragen-{lora.digest}"), "zip", directory)
        )
        made = Made(lora, directory, archive)
        return made, gate_heatmap(lora.gate_array, lora.expert_names), self.card(lora), str(archive)

    def card(self, lora: GeneratedLora) -> str:
        t = lora.timings
        return (
            f"**Adapter {lora.digest}**: rank {lora.rank}, {len(lora.factors)} modules, from "
            f"{len(lora.demos)} demos.  \n"
            f"{self._tokens_line(lora)}  \n"
            f"**Generated in** {t['total_ms']:.0f} ms (reader {t['reader_ms']:.0f} ms, assembly "
            f"{t['assemble_ms']:.0f} ms)."
        )

    def _tokens_line(self, lora: GeneratedLora) -> str:
        """What a request saves, counted through the edge model's chat template: the bare input keeps the
        template's own default system turn, which the description would otherwise replace."""
        tok = self.engine.tokenizer
        in_context = prompt_tokens(tok, "", system_prompt(lora.description, lora.demos))
        saved = in_context - prompt_tokens(tok, "", None)
        verdict = f"{saved} tokens saved" if saved > 0 else f"{-saved} tokens more, nothing saved"
        return (
            f"**Prompt per request**: the system prompt's {lora.context_tokens} tokens leave the context, but the "
            f"bare input keeps the chat template's default system turn: {verdict} per request"
        )

    def try_input(self, made: Made | None, text: str) -> tuple[str, str, str]:
        """(answer with the adapter merged, answer of the base model with the description in context, latency)."""
        if made is None:
            raise ValueError("generate an adapter first: type a task description and press Generate")
        if not text or not text.strip():
            raise ValueError("the input is empty: type an input for the task")
        generation = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS)
        engine = LoGoEngine(EngineConfig(adapters=(str(made.directory),)), base=self.engine.base)
        adapted = engine.generate(text, None, generation, mixture={engine.adapter_names[0]: 1.0})
        system = system_prompt(made.lora.description, made.lora.demos)
        start = time.perf_counter()
        in_context, context_tokens = self._in_context(text, system)
        context_ms = 1000 * (time.perf_counter() - start)
        tok = self.engine.tokenizer
        latency = (
            f"| | prompt tokens | answer tokens | end to end (ms) |\n|---|---|---|---|\n"
            f"| generated adapter, bare input | {prompt_tokens(tok, text, None)} | {adapted.n_tokens} | "
            f"{adapted.timings.total_ms:.0f} |\n"
            f"| base, prompt in context | {prompt_tokens(tok, text, system)} | {context_tokens} | {context_ms:.0f} |"
        )
        return adapted.text, in_context, latency

    def _in_context(self, text: str, system: str) -> tuple[str, int]:
        """The base model's greedy answer with `system` as its system prompt (the engine has no system turn), and
        its number of tokens."""
        tok, model = self.engine.tokenizer, self.engine.model
        ids, mask = left_pad([tok(chat_prompt(tok, text, system), add_special_tokens=False)["input_ids"]], 0)
        with AdaptedModel.of(model).applied(None), torch.no_grad():  # no adapter active for this request
            out = model.generate(
                input_ids=ids.to(self.engine.device), attention_mask=mask.to(self.engine.device),
                max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tok.pad_token_id,
            )  # fmt: skip
        answer = out[0, ids.shape[1] :]
        return tok.decode(answer, skip_special_tokens=True), int((answer != tok.pad_token_id).sum())


def _shown(fn):
    """A handler whose ValueError shows as a Gradio error message naming the problem."""

    def run(*args):
        try:
            return fn(*args)
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err)) from err

    return run


def loragen_tab(generator: LoraGenerator | Callable[[], LoraGenerator], engine: LoGoEngine) -> gr.Tab:
    """The LoRA-Gen tab; call it inside the app's gr.Blocks (a function as `generator` loads it on first use)."""
    handlers = LoraGenTab(generator, engine)
    with gr.Tab("LoRA-Gen", elem_id="loragen") as tab:
        made = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=380):
                description = gr.Textbox(
                    label="Task description",
                    lines=3,
                    elem_id="loragen-description",
                    placeholder="e.g. Name the currency used in a country. Answer with the currency name only.",
                )
                demos = gr.Textbox(
                    label='Demos (optional): JSONL, one {"input": ..., "output": ...} per line',
                    lines=4,
                    elem_id="loragen-demos",
                )
                generate_btn = gr.Button("Generate adapter", variant="primary", elem_id="loragen-generate")
                card = gr.Markdown(elem_id="loragen-card")
                archive = gr.File(label="Adapter (PEFT, zip)", elem_id="loragen-zip", interactive=False)
            with gr.Column(scale=7, min_width=420):
                heatmap = gr.Plot(label="Gates: edge layers x experts", elem_id="loragen-gates")
        with gr.Row():
            text = gr.Textbox(label="Try an input (bare, no description)", lines=2, elem_id="loragen-input", scale=4)
            try_btn = gr.Button("Answer", elem_id="loragen-try", scale=1)
        with gr.Row():
            adapted = gr.Textbox(label="With the generated adapter merged", elem_id="loragen-adapted")
            in_context = gr.Textbox(label="Base model, description in context", elem_id="loragen-in-context")
        latency = gr.Markdown(elem_id="loragen-latency")
        generate_btn.click(
            _shown(handlers.generate),
            [description, demos],
            [made, heatmap, card, archive],
            concurrency_limit=1,
            api_visibility="private",
        )
        try_btn.click(
            _shown(handlers.try_input),
            [made, text],
            [adapted, in_context, latency],
            concurrency_limit=1,
            api_visibility="private",
        )
    return tab
