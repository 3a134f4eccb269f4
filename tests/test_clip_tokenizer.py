"""`model get` writes the bundle's tokenizer.json without transformers: the same file `model convert` writes.

The reference is engine/export/convert.py's `write_tokenizer` on transformers' CLIPTokenizerFast loaded
from the same folder. Folders come in riffusion-model-v1's form (vocab.json + merges.txt + the two
config files, from tests/random_sd_model.py) and in the other forms a diffusers tokenizer/ folder
takes: Stable Diffusion 1.4's AddedToken dicts, Stable Diffusion 2's "!" pad, no config files, a
transformers 4.34+ `added_tokens_decoder`, and tokenizer.json as transformers 5 and older ones save it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from random_sd_model import write_tokenizer as write_riffusion_tokenizer

from engine.errors import ModelBundleError
from engine.model_get.clip_tokenizer import write_clip_tokenizer
from engine.tokenizer import CONTEXT_LENGTH, PromptTokenizer

REPO = Path(__file__).resolve().parents[1]

HAND_WRITTEN_PROMPTS = [
    "", " ", "   ", "\t", "\n", "\r\n", " \t\n ", "a", "A", "!", "!!!", "?", "...", "'", "''", "'s", "-", "--",
    "jazz", "JAZZ", "Jazz Fusion", "a jazz saxophone solo", "Funky SLAP bass, 100bpm!!", "100 bpm", "120BPM",
    "128 bpm techno", "4/4 drum loop at 90 bpm", "3:4 waltz", "1,000 violins", "-6.5 dB", "2024", "0.5x speed",
    "808 kick 🥁", "café del mar ✨ chill", "lo-fi hip hop beats to relax/study to", "church bells on sunday, reverb",
    "  lo-fi\tpiano\n rain  ", "double  space", "tab\tseparated\tsounds", "new\nline\nbass", "trailing space ",
    " leading space", "don't stop the music", "DON'T STOP", "it's a trap beat", "we'll rock you",
    "you're, i'm, they've", "rock'n'roll", "o'clock", "naïve café résumé", "Motörhead style riff",
    "Sigur Rós post-rock",
    "Beyoncé-style R&B", "cafe\u0301 (combining accent)", "e\u0301te\u0301", "Ⅻ roman numerals", "ﬁne ligature",
    "ｆｕｌｌｗｉｄｔｈ ｓｙｎｔｈ", "日本の音楽", "東京の夜 city pop", "한국 발라드", "русский рок",
    "Ελληνική μουσική", "موسيقى عربية", "שיר עברי", "हिंदी गाना", "ไทย", "emoji only 🎸🎹🎷🎺🎻", "🔥🔥🔥",
    "🏳️‍🌈 pride anthem", "👩🏽‍🎤",
    "non\u00a0breaking\u00a0space", "ideographic\u3000space", "zero\u200bwidth\u200bjoiner", "soft\u00adhyphen",
    "<|endoftext|>", "<|startoftext|>", "x<|endoftext|>y", "<|ENDOFTEXT|> drums", "<|StartOfText|>", "<| endoftext |>",
    "<|endoftext|><|endoftext|>", "a </w> b", "Ġ space marker", "#hashtag @mention", "$100 & 50%", "C# minor, Bb major",
    "key of F♯", "♪♫ melody ♫♪", "«guillemets» “quotes” ‘single’", "em—dash – en dash", "tilde~caret^pipe|",
    "back\\slash", "{braces} [brackets] (parens)", "email@example.com", "https://example.com/loop?bpm=120",
    "word " * 120, "bass " * 75, "drum" * 80, "🥁" * 100, "a, " * 60, "1 2 3 4 " * 30, "ÀÉÎÕÜ " * 40,
    "An extremely long prompt describing a cinematic orchestral piece with soaring strings, thunderous "
    "timpani, a gentle celesta motif, choir swelling in the background, brass fanfares at 140 bpm, "
    "recorded in a cathedral with long reverb tails, mastered loud for trailers and epic video games.",
]

WORDS = ["jazz", "techno", "ambient", "trap", "lofi", "piano", "guitar", "bass", "drums", "synth", "pad", "choir",
         "violin", "sax", "808", "kick", "snare", "hihat", "reverb", "delay", "chill", "dark", "bright", "funky",
         "groovy", "epic", "mellow", "distorted", "acoustic", "electric", "vinyl", "tape", "warm", "crunchy"]
ODD_PIECES = ["!", "?", ",", ".", "-", "'", "'s", "'ll", "&", "/", ":", "#", "%", "…", "—", "é", "ß", "ñ", "ø",
              "音", "楽", "ж", "λ", "🎵", "🔊", "✨", "🥁", "\u0301", "\u00a0", "\u200b", "\t", "\n", "  ", "<|", "|>"]
ALPHABET = ("abcXYZ019 \t\n!?.,'-_/&%$#@~^|\\<>[](){}\"`;:" "éèêëàâäôöûüçñßøåæœÀÉÖÜ" "αβγδЖжЯя" "日本音楽한국"
            "🎸🎹🥁🔥✨🏽\u200d\u0301\u00a0\u3000\u2028\u0085\x0b\x0c")


def generated_prompts(count: int = 320, seed: int = 20261) -> list[str]:
    """Music prompts with numbers, punctuation, unicode and odd whitespace mixed in; random casing;
    some long enough to be truncated; some strings of random characters."""
    rng = random.Random(seed)
    prompts = []
    for i in range(count):
        if i % 8 == 7:
            prompts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))))
            continue
        pieces = []
        for _ in range(rng.choice([1, 2, 3, 5, 8, 13, 40, 90])):
            roll = rng.random()
            if roll < 0.6:
                pieces.append(rng.choice(WORDS))
            elif roll < 0.75:
                pieces.append(f"{rng.randint(40, 200)} {rng.choice(['bpm', 'BPM', 'bpm,', 'Hz'])}")
            else:
                pieces.append(rng.choice(ODD_PIECES))
        prompt = "".join(piece + rng.choice([" ", " ", " ", "", "  ", ", ", "\t"]) for piece in pieces)
        prompts.append(rng.choice([str.lower, str.upper, str.title, str.strip, lambda text: text])(prompt))
    return prompts


PROMPTS = HAND_WRITTEN_PROMPTS + generated_prompts()


def _token(content: str, normalized: bool, **extra: object) -> dict[str, object]:
    return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False, "single_word": False,
            **extra}


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    path.write_text(json.dumps(edit(data) or data, ensure_ascii=False), encoding="utf-8")


def _sd14_dicts(folder: Path) -> None:
    """Stable Diffusion 1.4/1.5 and riffusion-model-v1 on the Hub: AddedToken dicts, normalized."""
    names = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    _edit_json(folder / "special_tokens_map.json",
               lambda data: data.update({key: _token(text, True) for key, text in names.items()}))
    _edit_json(folder / "tokenizer_config.json", lambda data: data.update(
        {key: _token(text, True, __type="AddedToken") for key, text in names.items()}))


def _sd2_bang_pad(folder: Path) -> None:
    """Stable Diffusion 2's tokenizer pads with "!" (id 0)."""
    _edit_json(folder / "special_tokens_map.json", lambda data: data.update(pad_token="!"))
    _edit_json(folder / "tokenizer_config.json",
               lambda data: data.update(pad_token=_token("!", True, __type="AddedToken")))


def _no_config_files(folder: Path) -> None:
    (folder / "special_tokens_map.json").unlink()
    (folder / "tokenizer_config.json").unlink()


def _added_tokens_decoder(folder: Path) -> None:
    """transformers 4.34+ lists the added tokens in the config; special_tokens_map.json is then ignored."""
    _edit_json(folder / "special_tokens_map.json", lambda data: data.update(pad_token="!"))
    _edit_json(folder / "tokenizer_config.json", lambda data: data.update(added_tokens_decoder={
        "49407": _token("<|endoftext|>", False, special=True),
        "49406": _token("<|startoftext|>", True, special=False)}))


def _older_tokenizer_json(folder: Path) -> None:
    """A tokenizer.json from an older transformers: merges as "a b" strings, CLIPConverter's Split regex
    without the special tokens, a different normalizer (transformers 5 replaces both with CLIP's)."""
    def edit(data):
        data["model"]["merges"] = [" ".join(merge) for merge in data["model"]["merges"]]
        split = data["pre_tokenizer"]["pretokenizers"][0]["pattern"]
        split["Regex"] = split["Regex"].replace(r"<\|startoftext\|>|<\|endoftext\|>|", "")
        data["normalizer"] = {"type": "Lowercase"}
        data["padding"] = data["truncation"] = None

    _edit_json(folder / "tokenizer.json", edit)


VOCAB_FORMS = {"riffusion": None, "sd14_added_token_dicts": _sd14_dicts, "sd2_bang_pad": _sd2_bang_pad,
               "no_config_files": _no_config_files, "added_tokens_decoder": _added_tokens_decoder}
SAVED_FORMS = {"saved_riffusion": ("riffusion", None), "saved_sd2_bang_pad": ("sd2_bang_pad", None),
               "saved_sd14_added_token_dicts": ("sd14_added_token_dicts", None),
               "older_tokenizer_json": ("riffusion", _older_tokenizer_json)}


def _transformers_file(folder: Path, out: Path) -> Path:
    """What `model convert` writes for this folder."""
    from transformers import CLIPTokenizerFast

    from engine.export.convert import write_tokenizer

    write_tokenizer(CLIPTokenizerFast.from_pretrained(folder), out)
    return out


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Each form's tokenizer folder and the file transformers + `write_tokenizer` make of it."""
    from transformers import CLIPTokenizerFast

    root = tmp_path_factory.mktemp("clip-tokenizer")
    made = {}
    for name, edit in VOCAB_FORMS.items():
        folder = root / name
        write_riffusion_tokenizer(folder)
        if edit:
            edit(folder)
        assert not (folder / "tokenizer.json").exists()
        made[name] = folder, _transformers_file(folder, root / f"{name}.reference.json")
    for name, (source, edit) in SAVED_FORMS.items():
        folder = root / name
        CLIPTokenizerFast.from_pretrained(made[source][0]).save_pretrained(folder)
        for leftover in ("vocab.json", "merges.txt"):  # transformers 4 wrote them beside tokenizer.json
            (folder / leftover).unlink(missing_ok=True)
        if edit:
            edit(folder)
        made[name] = folder, _transformers_file(folder, root / f"{name}.reference.json")
    return made


@pytest.fixture(scope="module")
def ours(forms: dict[str, tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each form's tokenizer.json as write_clip_tokenizer writes it."""
    root = tmp_path_factory.mktemp("ours")
    written = {}
    for name, (folder, _) in forms.items():
        written[name] = root / name / "tokenizer.json"
        write_clip_tokenizer(folder, written[name])
    return written


ALL_FORMS = [*VOCAB_FORMS, *SAVED_FORMS]


def test_prompts_are_many_and_varied():
    assert len(PROMPTS) >= 300 and len(set(PROMPTS)) > 300
    lengths = [len(prompt.split()) for prompt in PROMPTS]
    assert min(lengths) == 0 and sum(length > CONTEXT_LENGTH for length in lengths) >= 20


@pytest.mark.parametrize("form", ALL_FORMS)
def test_same_ids_and_attention_as_model_convert(forms, ours, form):
    from tokenizers import Tokenizer

    reference = forms[form][1]
    expected, actual = PromptTokenizer(reference), PromptTokenizer(ours[form])
    assert actual.encode(PROMPTS).shape == (len(PROMPTS), CONTEXT_LENGTH)
    assert actual.encode(PROMPTS).tolist() == expected.encode(PROMPTS).tolist()
    assert [actual.is_truncated(p) for p in PROMPTS] == [expected.is_truncated(p) for p in PROMPTS]
    masks = [[encoding.attention_mask for encoding in Tokenizer.from_file(str(path)).encode_batch(PROMPTS)]
             for path in (reference, ours[form])]
    assert masks[1] == masks[0]


@pytest.mark.parametrize("form", ALL_FORMS)
def test_writes_the_file_model_convert_writes(forms, ours, form):
    """Not only the same ids on our prompts: the same settings, vocabulary, merges and added tokens."""
    assert json.loads(ours[form].read_text()) == json.loads(forms[form][1].read_text())


def test_both_forms_of_one_tokenizer_give_the_same_ids(ours):
    ids = [PromptTokenizer(ours[form]).encode(PROMPTS).tolist() for form in ("riffusion", "saved_riffusion")]
    assert ids[0] == ids[1]
    assert ids[0][HAND_WRITTEN_PROMPTS.index("a jazz saxophone solo")][:6] == [49406, 320, 4528, 32296, 5797, 49407]


@pytest.mark.parametrize("form", ["sd2_bang_pad", "saved_sd2_bang_pad"])
def test_honours_the_pad_token_the_folder_names(ours, form):
    ids = PromptTokenizer(ours[form]).encode(["piano!"])[0].tolist()
    # "!" is then a special token too: after a word it is id 0, not "!</w>" (256), as in transformers.
    assert ids[:4] == [49406, 7894, 0, 49407] and set(ids[4:]) == {0}
    assert PromptTokenizer(ours["riffusion"]).encode(["piano!"])[0, :4].tolist() == [49406, 7894, 256, 49407]


@pytest.mark.parametrize("form", ["riffusion", "saved_riffusion"])
def test_runs_without_transformers_or_torch(forms, tmp_path, form):
    poison = tmp_path / "poison"
    marker = tmp_path / "imported"
    for package in ("transformers", "torch"):
        (poison / package).mkdir(parents=True)
        (poison / package / "__init__.py").write_text(
            f"open({str(marker)!r}, 'a').write({package!r} + '\\n')\n"
            f"raise ImportError('{package} must not be imported by model get')\n")
    script = ("import sys\nfrom pathlib import Path\n"
              "from engine.model_get.clip_tokenizer import write_clip_tokenizer\n"
              "write_clip_tokenizer(Path(sys.argv[1]), Path(sys.argv[2]))\n"
              "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)\n")
    out = tmp_path / "tokenizer.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(poison), str(REPO)])}
    result = subprocess.run([sys.executable, "-c", script, str(forms[form][0]), str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), marker.read_text()
    assert json.loads(out.read_text()) == json.loads(forms[form][1].read_text())


def _missing_merges(folder: Path) -> None:
    (folder / "merges.txt").unlink()


def _vocab_not_json(folder: Path) -> None:
    (folder / "vocab.json").write_text('{"a": 0, "b":', encoding="utf-8")


def _vocab_not_a_map(folder: Path) -> None:
    (folder / "vocab.json").write_text('["a", "b"]', encoding="utf-8")


def _merges_not_pairs(folder: Path) -> None:
    (folder / "merges.txt").write_text("#version: 0.2\ni n\nt h e\n", encoding="utf-8")


def _vocab_not_utf8(folder: Path) -> None:
    (folder / "vocab.json").write_bytes(b'{"\xff\xfe": 0}')


def _config_not_json(folder: Path) -> None:
    (folder / "tokenizer_config.json").write_text("{", encoding="utf-8")


def _empty_folder(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


@pytest.mark.parametrize(("damage", "named"), [
    (_missing_merges, "merges.txt"), (_vocab_not_json, "vocab.json"), (_vocab_not_a_map, "vocab.json"),
    (_merges_not_pairs, "merges.txt"), (_vocab_not_utf8, "vocab.json"), (_config_not_json, "tokenizer_config.json"),
    (_empty_folder, "vocab.json"),
])
def test_bad_folder_is_one_line_naming_the_file(forms, tmp_path, damage, named):
    folder = tmp_path / "tokenizer"
    shutil.copytree(forms["riffusion"][0], folder)
    damage(folder)
    out = tmp_path / "bundle" / "tokenizer.json"
    with pytest.raises(ModelBundleError) as raised:
        write_clip_tokenizer(folder, out)
    message = str(raised.value)
    assert "\n" not in message and str(folder / named) in message and "download the model again" in message
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))


@pytest.mark.parametrize("content", ["{", '{"model": {"type": "Unigram", "vocab": []}}', '{"model": {"type": "BPE", '
                                     '"vocab": {"a": 0}, "merges": [["a", "b"]]}}'])
def test_bad_tokenizer_json_is_one_line_naming_the_file(forms, tmp_path, content):
    folder = tmp_path / "tokenizer"
    shutil.copytree(forms["saved_riffusion"][0], folder)
    (folder / "tokenizer.json").write_text(content, encoding="utf-8")
    out = tmp_path / "bundle" / "tokenizer.json"
    with pytest.raises(ModelBundleError) as raised:
        write_clip_tokenizer(folder, out)
    message = str(raised.value)
    assert "\n" not in message and str(folder / "tokenizer.json") in message and "download the model again" in message
    assert not out.exists()
