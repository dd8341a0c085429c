"""Prompt tokenisation: the chat template around user text whose special-token strings stay plain text.

Tokenising the rendered template as one string turns any `<|im_start|>` a user typed into the real control
token, so a user could forge system or assistant turns. Here the template's own text is tokenised with its
special tokens and the user's text with `split_special_tokens=True`, so the template's special tokens are the
only ones. A prompt without special-token text is tokenised exactly as before, as one string (token for token).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SENTINEL = "\u2063LOGO-USER-TEXT\u2063"  # stands for the user text while the template is rendered


def special_strings(tokenizer) -> tuple[str, ...]:
    """The strings the tokenizer turns into special (control) tokens."""
    added = (t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special)
    return tuple(sorted({*tokenizer.all_special_tokens, *added}))


def format_prompt(tokenizer, prompt: str, chat_template: bool) -> str:
    """The text the model reads: the prompt as the user's turn of the chat template (when used), else the prompt."""
    if chat_template and tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


def prompt_pieces(tokenizer, prompt: str, chat_template: bool) -> list[tuple[str, bool]]:
    """The text the model reads as (text, is_user_text) pieces, in order.

    1. Without the template, or when the prompt holds no special-token string: one piece, the whole text
       (user text without control tokens tokenises the same either way).
    2. Else the template is rendered around a sentinel to find its text before and after the user's turn;
       the user's turn is what the real rendering holds between the two (templates may trim it).
    """
    templated = chat_template and bool(tokenizer.chat_template)
    if not templated:
        return [(prompt, True)]
    text = format_prompt(tokenizer, prompt, chat_template)
    if not any(s in prompt for s in special_strings(tokenizer)):
        return [(text, False)]
    before, found, after = format_prompt(tokenizer, SENTINEL, chat_template).partition(SENTINEL)
    if not found or not (text.startswith(before) and text.endswith(after)) or len(before) + len(after) > len(text):
        raise ValueError(
            "the chat template does not render the user's text in one place, so its special-token strings cannot "
            "be kept plain: use a template that writes the message content once, or EngineConfig.chat_template=False"
        )
    user = text[len(before) : len(text) - len(after)]
    return [(piece, is_user) for piece, is_user in ((before, False), (user, True), (after, False)) if piece]


def token_ids(tokenizer, pieces: Sequence[tuple[str, bool]], add_special_tokens: bool) -> list[int]:
    """Token ids of the pieces: user text with its special-token strings as plain text, template text as it is.

    `add_special_tokens` lets the tokenizer add its own (BOS) around a piece: for a plain prompt without template.
    """
    ids: list[int] = []
    for text, is_user in pieces:
        ids += tokenizer(text, add_special_tokens=add_special_tokens, split_special_tokens=is_user)["input_ids"]
    return ids


def with_answer(pieces: list[tuple[str, bool]], answer: str) -> list[tuple[str, bool]]:
    """The pieces followed by an answer (the caller's labelled text, special tokens allowed, e.g. end of turn).

    The answer joins the template's last piece, so a prompt and answer tokenise as the one string they were.
    """
    if pieces and not pieces[-1][1]:
        return [*pieces[:-1], (pieces[-1][0] + answer, False)]
    return [*pieces, (answer, False)]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded token ids and attention mask of rows of different lengths: (B, T) each."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask
