"""Models of the benchmarks: Llama-shaped random models (8B and a 2-layer tiny one) and a word-per-token tokenizer."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

LLAMA_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    max_position_embeddings=8192,
    rope_theta=500000.0,
)
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    max_position_embeddings=2048,
)


def word_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """Word i is token i: a prompt of n words is exactly n tokens (no chat template, no special tokens).

    Tokenise prompts with split_special_tokens=True, as the engine does: else "w114" reads as "w1" (the end of
    sequence) and "w0" (padding) plus "14".
    """
    vocab = {f"w{i}": i for i in range(vocab_size)}
    core = Tokenizer(WordLevel(vocab, unk_token="w0"))
    core.pre_tokenizer = WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="w0", eos_token="w1", unk_token="w0")
    tok.padding_side = "left"
    return tok


def random_model(shape: dict, device: str, dtype: torch.dtype) -> LlamaForCausalLM:
    config = LlamaConfig(**shape, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    torch.manual_seed(0)
    with torch.device(device):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = LlamaForCausalLM(config).eval()
        finally:
            torch.set_default_dtype(previous)
    model.requires_grad_(False)
    return model


def random_prompt(n_tokens: int, vocab_size: int, seed: int) -> str:
    return " ".join(f"w{2 + (i * 7919 + seed * 104729) % (vocab_size - 2)}" for i in range(n_tokens))
