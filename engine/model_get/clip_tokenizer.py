"""A diffusers `tokenizer/` folder -> the bundle's `tokenizer.json`, with the `tokenizers` package only.

`model convert` writes that file from transformers' CLIPTokenizerFast (engine/export/convert.py's
`write_tokenizer`); `model get` has no transformers, so this builds the same tokenizer itself, the way
transformers 5's CLIPTokenizer does (CLIPConverter's settings, plus its special-token regex):

- model: byte-level BPE, `continuing_subword_prefix=""`, `end_of_word_suffix="</w>"`, `fuse_unk=False`,
  the unk token the folder names;
- normalizer: NFC, every run of whitespace -> one space, lowercase;
- pre-tokenizer: CLIP's Split regex (the two special tokens, English contractions, letter runs, single
  digits, runs of other non-space characters; whitespace removed), then ByteLevel without a prefix space;
- post-processor: RobertaProcessing (<|startoftext|> ... <|endoftext|>); decoder: ByteLevel;
- added tokens: the named special tokens (bos, eos, unk, pad) with the flags the folder gives them, so
  a prompt holding "<|endoftext|>" (or "!" where a Stable Diffusion 2 folder pads with "!") reads it as
  that token, as transformers does.

The vocabulary and merges come from vocab.json + merges.txt (riffusion-model-v1) or from tokenizer.json
(what transformers 5 saves). Like transformers 5, only tokenizer.json's vocabulary, merges and added
tokens count: its normalizer, pre-tokenizer and post-processor are CLIP's anyway, or from an older
transformers that transformers 5 replaces. The file then gets CLIP's truncation and padding to 77 tokens
with the pad token's id, as `write_tokenizer` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.atomic import atomic_path
from engine.errors import ModelBundleError, reason
from engine.tokenizer import CONTEXT_LENGTH

# transformers' order of the named special tokens (those CLIP has), and CLIPTokenizer's defaults.
SPECIAL_TOKEN_DEFAULTS = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                          "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
CLIP_SPLIT_PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
                      r"""[^\s\p{L}\p{N}]+""")
ADDED_TOKEN_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")
DOWNLOAD_AGAIN = "download the model again"


def write_clip_tokenizer(folder: Path, out: Path) -> None:
    """A diffusers tokenizer folder (tokenizer.json, or vocab.json + merges.txt) -> the bundle's tokenizer.json."""
    folder = Path(folder)
    source = folder / "tokenizer.json"
    if source.is_file():
        vocab, merges, saved_tokens = _read_tokenizer_json(source)
    else:
        (vocab, merges), saved_tokens, source = _read_bpe_files(folder), [], folder
    named, listed = _special_tokens(folder, saved_tokens)
    tokenizer = _clip_tokenizer(vocab, merges, named["unk_token"].content, source)
    _add_special_tokens(tokenizer, listed, named)
    _set_post_processor(tokenizer, named)
    pad = named["pad_token"].content
    tokenizer.enable_truncation(CONTEXT_LENGTH)
    tokenizer.enable_padding(length=CONTEXT_LENGTH, pad_id=tokenizer.token_to_id(pad), pad_token=pad)
    with atomic_path(out) as temp:
        tokenizer.save(str(temp))


def _clip_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]], unk: str, source: Path) -> Any:
    """CLIP's tokenizer around a vocabulary and merges, without its special tokens and post-processor."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    try:
        model = BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                    end_of_word_suffix="</w>", fuse_unk=False, unk_token=unk)
    except Exception as error:  # tokenizers raises a bare Exception (a merge of unknown tokens)
        raise ModelBundleError(f"{source} holds an inconsistent BPE vocabulary ({reason(error, 120)}): "
                               f"{DOWNLOAD_AGAIN}") from None
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_SPLIT_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _add_special_tokens(tokenizer: Any, listed: list[Any], named: dict[str, Any]) -> None:
    """The listed added tokens, then each named one not among them, in transformers' order (bos, eos,
    unk, pad; where two share a text, the later one's flags win, as there)."""
    listed_texts = {token.content for token in listed}
    tokens = listed + [token for token in named.values() if token.content not in listed_texts]
    tokenizer.add_tokens(tokens)


def _set_post_processor(tokenizer: Any, named: dict[str, Any]) -> None:
    """<|startoftext|> before every prompt and <|endoftext|> after it (ids looked up once the tokens exist)."""
    from tokenizers import processors

    bos, eos = named["bos_token"].content, named["eos_token"].content
    tokenizer.post_processor = processors.RobertaProcessing(
        (eos, tokenizer.token_to_id(eos)), (bos, tokenizer.token_to_id(bos)), trim_offsets=False,
        add_prefix_space=False)


def _read_bpe_files(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """vocab.json and merges.txt, merges parsed by `tokenizers` itself (as transformers has it do)."""
    from tokenizers.models import BPE

    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab = _check_vocab(_read_json(vocab_path), vocab_path)
    _check_exists(merges_path)
    try:
        _, merges = BPE.read_file(str(vocab_path), str(merges_path))
    except Exception as error:  # tokenizers raises a bare Exception; vocab.json was read above
        raise ModelBundleError(f"{merges_path} is not a BPE merges file ({reason(error, 120)}): "
                               f"{DOWNLOAD_AGAIN}") from None
    return vocab, merges


def _read_tokenizer_json(path: Path) -> tuple[dict[str, int], list[tuple[str, str]], list[Any]]:
    """A saved fast tokenizer's BPE vocabulary, merges and added tokens (in id order)."""
    data = _read_json_object(path)
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE" or "merges" not in model:
        raise ModelBundleError(f"{path} is not a BPE tokenizer like CLIP's: {DOWNLOAD_AGAIN}")
    vocab = model.get("vocab")
    if isinstance(vocab, list):
        vocab = {token[0] if isinstance(token, list) else token: i for i, token in enumerate(vocab)}
    vocab = _check_vocab(vocab, path)
    try:
        merges = [tuple(merge.split(" ") if isinstance(merge, str) else merge) for merge in model["merges"]]
        entries = sorted(data.get("added_tokens") or [], key=lambda entry: int(entry["id"]))
        added = [_added_token(entry, path) for entry in entries]
    except (TypeError, ValueError, KeyError, AttributeError):
        raise ModelBundleError(f"{path} has unreadable merges or added tokens: {DOWNLOAD_AGAIN}") from None
    if not all(len(merge) == 2 and all(isinstance(part, str) for part in merge) for merge in merges):
        raise ModelBundleError(f"{path} has merges that are not pairs of tokens: {DOWNLOAD_AGAIN}")
    return vocab, merges, added


def _special_tokens(folder: Path, saved_tokens: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    """The named special tokens (bos, eos, unk, pad) and the listed added tokens, as transformers reads them.

    tokenizer_config.json names them. If it lists its added tokens (`added_tokens_decoder`, written
    since transformers 4.34), those are the listed ones; otherwise special_tokens_map.json overrides its
    names and tokenizer.json's added tokens are the listed ones. A named token is a string or a dict of
    AddedToken fields; one that is listed takes the listed flags; a missing one is CLIPTokenizer's default.
    """
    config_path, map_path = folder / "tokenizer_config.json", folder / "special_tokens_map.json"
    config = _read_json_object(config_path) if config_path.is_file() else {}
    tokens = {name: _added_token(config[name], config_path) for name in SPECIAL_TOKEN_DEFAULTS
              if config.get(name) is not None}
    decoder = config.get("added_tokens_decoder")
    if decoder is not None:
        try:
            listed = [_added_token(decoder[key], config_path) for key in sorted(decoder, key=int)]
        except (TypeError, ValueError, AttributeError):
            raise ModelBundleError(f"{config_path} has an unreadable added_tokens_decoder: "
                                   f"{DOWNLOAD_AGAIN}") from None
    else:
        listed = saved_tokens
        if map_path.is_file():
            special_map = _read_json_object(map_path)
            tokens.update({name: _map_token(special_map[name], map_path) for name in SPECIAL_TOKEN_DEFAULTS
                           if special_map.get(name)})
    by_text = {token.content: token for token in listed}
    named = {}
    for name, default in SPECIAL_TOKEN_DEFAULTS.items():
        token = tokens.get(name) or _added_token(default, config_path)
        named[name] = by_text.get(token.content, token)
        named[name].special = True
    return named, listed


def _added_token(value: Any, source: Path) -> Any:
    """A token from tokenizer_config.json: a string (special, not normalized) or AddedToken fields
    (normalized unless it says otherwise or is special, as `tokenizers` defaults)."""
    from tokenizers import AddedToken

    if isinstance(value, str):
        return AddedToken(value, special=True)
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        flags = {flag: bool(value[flag]) for flag in ADDED_TOKEN_FLAGS if flag in value}
        return AddedToken(value["content"], **flags)
    raise ModelBundleError(f"{source} names a special token that is not a string: {DOWNLOAD_AGAIN}")


def _map_token(value: Any, source: Path) -> Any:
    """A token from special_tokens_map.json: always special (so not normalized unless it says so)."""
    if isinstance(value, dict):
        value = {**value, "special": True}
    return _added_token(value, source)


def _check_vocab(vocab: Any, path: Path) -> dict[str, int]:
    if not (isinstance(vocab, dict) and all(type(i) is int for i in vocab.values())):
        raise ModelBundleError(f"{path} holds no token -> id vocabulary: {DOWNLOAD_AGAIN}")
    return vocab


def _read_json_object(path: Path) -> dict[str, Any]:
    value = _read_json(path)
    if not isinstance(value, dict):
        raise ModelBundleError(f"{path} is not a JSON object: {DOWNLOAD_AGAIN}")
    return value


def _read_json(path: Path) -> Any:
    _check_exists(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelBundleError(f"{path} is not readable JSON ({reason(error, 120)}): {DOWNLOAD_AGAIN}") from None


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise ModelBundleError(f"{path} is missing: {DOWNLOAD_AGAIN}")
