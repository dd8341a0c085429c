"""A tiny offline world for tests: a word-level tokenizer, a random Llama and random PEFT LoRA adapters."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from logo.base_model import BaseModel

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<user>", "<assistant>"]
WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "of",
    "to",
    "in",
    "on",
    "and",
    "or",
    "not",
    "what",
    "which",
    "who",
    "how",
    "many",
    "much",
    "translate",
    "sort",
    "count",
    "capital",
    "france",
    "paris",
    "germany",
    "berlin",
    "red",
    "blue",
    "green",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "cat",
    "dog",
    "bird",
    "fish",
    "apple",
    "pear",
    "plum",
    "true",
    "false",
    "yes",
    "no",
    "positive",
    "negative",
    "review",
    "movie",
    "good",
    "bad",
    "great",
    "def",
    "return",
    "print",
    "sum",
    "list",
    "len",
    "word",
    "words",
    "sentence",
    "english",
    "french",
    "german",
    "please",
    "answer",
    "question",
    "?",
    ".",
    ",",
    "!",
    ":",
    "(",
    ")",
    "+",
    "-",
    "*",
    "=",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<user> {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)

# (name, rank, alpha, targets, rslora, init scale): mixed ranks, alphas and targets on purpose; the scales keep every
# output norm within 3x the pool median (RoutingConfig.loudness_limit leaves louder ones out)
ADAPTER_SPECS = [
    ("alpha", 2, 4, ["q_proj", "k_proj", "v_proj", "o_proj"], False, 1.0),
    ("beta", 4, 4, ["q_proj", "k_proj", "v_proj", "o_proj"], False, 1.0),
    ("gamma", 8, 16, ["q_proj", "v_proj"], True, 0.45),  # no k/o: contributes zero there
    ("delta", 4, 8, ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"], False, 0.8),
    ("epsilon", 6, 3, ["q_proj", "o_proj"], False, 0.5),
]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def tiny_model(vocab_size: int, seed: int = 0, hidden: int = 64, layers: int = 4) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = 1
    model.generation_config.pad_token_id = 0
    return model


def save_random_adapter(
    base: LlamaForCausalLM,
    directory: Path,
    rank: int,
    alpha: int,
    targets: list[str],
    rslora: bool,
    scale: float,
    seed: int,
) -> Path:
    """A real PEFT adapter with non-zero random A and B, saved as safetensors."""
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, use_rslora=rslora, init_lora_weights=False)
    peft_model = get_peft_model(copy.deepcopy(base), config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.2 * scale)
    peft_model.save_pretrained(directory, safe_serialization=True)
    return directory


@dataclass
class TinyWorld:
    tokenizer: PreTrainedTokenizerFast
    model: LlamaForCausalLM  # pristine: copy it before handing it to an engine
    pool_dir: Path
    reference_file: Path

    def base(self) -> BaseModel:
        return BaseModel(copy.deepcopy(self.model), self.tokenizer, name="tiny", fingerprint="tiny:0:float32")


def build_tiny_world(root: Path) -> TinyWorld:
    tokenizer = tiny_tokenizer()
    model = tiny_model(len(tokenizer))
    pool_dir = root / "pool"
    for i, (name, rank, alpha, targets, rslora, scale) in enumerate(ADAPTER_SPECS):
        save_random_adapter(model, pool_dir / name, rank, alpha, targets, rslora, scale, seed=100 + i)
    reference = root / "reference.txt"
    reference.write_text(
        "\n".join(
            [
                "what is the capital of france ?",
                "sort the words cat dog bird",
                "translate the sentence to french",
                "is the movie review positive or negative ?",
                "count the apple and pear",
                "what is two + three ?",
            ]
        )
    )
    return TinyWorld(tokenizer, model, pool_dir, reference)
