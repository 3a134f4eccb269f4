"""CLIP tokenisation at run time with the `tokenizers` package (no transformers).

The bundle's `tokenizer.json` is written at conversion time from the checkpoint's own CLIP tokenizer,
with CLIP's truncation and padding baked in: every prompt becomes exactly 77 ids, starting with
<|startoftext|> and ending with <|endoftext|>, padded with <|endoftext|> as Stable Diffusion expects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import ModelBundleError

CONTEXT_LENGTH = 77


class PromptTokenizer:
    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises a bare Exception on a bad file
            raise ModelBundleError(f"{path} is not a valid tokenizer file ({error}); re-convert the model") from None
        padding = self._tokenizer.padding or {}
        truncation = self._tokenizer.truncation or {}
        if padding.get("length") != CONTEXT_LENGTH or truncation.get("max_length") != CONTEXT_LENGTH:
            raise ModelBundleError(f"{path} does not pad and truncate to {CONTEXT_LENGTH} tokens; "
                                   "re-convert the model with this version of riffstudio")

    def encode(self, prompts: list[str]) -> np.ndarray:
        """Token ids of each prompt, int32 [len(prompts), 77] (the text encoder's input)."""
        encodings = self._tokenizer.encode_batch(prompts)
        return np.array([encoding.ids for encoding in encodings], dtype=np.int32).reshape(-1, CONTEXT_LENGTH)

    def is_truncated(self, prompt: str) -> bool:
        """Whether the prompt is longer than CLIP reads (75 tokens between start and end): worth a warning."""
        return sum(self._tokenizer.encode(prompt, add_special_tokens=False).attention_mask) > CONTEXT_LENGTH - 2
