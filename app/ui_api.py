"""The Studio's web API (`/route`, `/generate`): named parameters in, raw numbers out (no tables, no plots).

Example::

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    routing = client.predict("Translate to French: the cat is black", k=2, api_name="/route")
    routing["selected"], routing["weights"], routing["scores"]["en_fr"]
"""

from __future__ import annotations

import gradio as gr

from logo.config import GenerationConfig, ProbeConfig, RoutingConfig, field_default

from .ui_actions import shown_errors
from .ui_handlers import Controls, Sampling, Studio, clean_prompt, routed, token_cap
from .ui_overrides import Override

_R, _P, _G = RoutingConfig, ProbeConfig, GenerationConfig


def _plain(record: dict) -> dict:
    """`record` with the calibration reference's "path" renamed "file": gradio_client would take a dict with a
    "path" for a file to download (and the server refuses to serve it)."""
    for holder in (record.get("config", {}), (record.get("config", {}).get("routing") or {})):
        reference = holder.get("reference") if isinstance(holder, dict) else None
        if isinstance(reference, dict) and "path" in reference:
            holder["reference"] = {("file" if key == "path" else key): value for key, value in reference.items()}
    return record


def register(studio: Studio) -> None:
    """Add the two endpoints to the Blocks being built (call inside `with gr.Blocks()`)."""

    def route(
        prompt: str,
        signal: str = field_default(_R, "signal"),
        calibration: str = field_default(_R, "calibration"),
        k: int = field_default(_R, "k"),
        block: int = field_default(_P, "block"),
        module: str = field_default(_P, "module"),
        probe_input: str = field_default(_P, "probe_input"),
        aggregate: str = field_default(_P, "aggregate"),
        weighting: str = field_default(_R, "weighting"),
        temperature: float = field_default(_R, "temperature"),
        loudness_limit: float | None = field_default(_R, "loudness_limit"),
        pin: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> dict:
        """Route one prompt: {prompt, selected, weights, signals, scores, config, timings} (block: negative counts
        from the end; the last block is -1; loudness_limit 0 or None: off)."""
        controls = Controls(
            signal, calibration, k, block, module, probe_input, aggregate, weighting, temperature, loudness_limit
        )
        with shown_errors():
            text, _ = clean_prompt(prompt)
            return _plain(routed(studio, text, controls, Override(pin or (), exclude or ())).to_dict())

    def generate(
        prompt: str,
        signal: str = field_default(_R, "signal"),
        calibration: str = field_default(_R, "calibration"),
        k: int = field_default(_R, "k"),
        block: int = field_default(_P, "block"),
        module: str = field_default(_P, "module"),
        probe_input: str = field_default(_P, "probe_input"),
        aggregate: str = field_default(_P, "aggregate"),
        weighting: str = field_default(_R, "weighting"),
        temperature: float = field_default(_R, "temperature"),
        loudness_limit: float | None = field_default(_R, "loudness_limit"),
        mode: str = field_default(_G, "mode"),
        max_new_tokens: int = field_default(_G, "max_new_tokens"),
        sampling_temperature: float = field_default(_G, "temperature"),
        top_p: float = field_default(_G, "top_p"),
        seed: int | None = None,
    ) -> dict:
        """Route and answer: the Generation as a dict (text, selected, weights, signals, scores, config, timings)."""
        controls = Controls(
            signal, calibration, k, block, module, probe_input, aggregate, weighting, temperature, loudness_limit
        )
        with shown_errors():
            text, _ = clean_prompt(prompt)
            config, _ = Sampling(mode, max_new_tokens, sampling_temperature, top_p, seed).config(
                token_cap(studio.engine)
            )
            return _plain(studio.engine.generate(text, controls.routing(studio.n_blocks), config).to_dict())

    gr.api(route, api_name="route")
    gr.api(generate, api_name="generate")
