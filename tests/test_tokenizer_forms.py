"""A diffusers folder's tokenizer comes in two forms, and `model convert` takes both.

riffusion-model-v1 (and transformers 4) ship `tokenizer/vocab.json` + `merges.txt`; a folder written
today by `StableDiffusionPipeline.save_pretrained` with transformers 5 has `tokenizer/tokenizer.json`
only. Either must become the same bundle tokenizer: the same 77 ids for the same prompt.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import EXPORT_CACHE

from engine.errors import ModelBundleError
from engine.tokenizer import CONTEXT_LENGTH, PromptTokenizer

pytestmark = pytest.mark.slow

PROMPTS = ["a jazz saxophone solo", "Funky SLAP bass, 100bpm!!", "café del mar ✨ chill", "",
           "word " * 120, "church bells on sunday, reverb, 80 bpm", "  lo-fi\tpiano\n rain  ", "808 kick 🥁"]


@pytest.fixture(scope="module")
def saved_pipeline_dir(tiny_sd_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint as the installed diffusers + transformers save it, tokenizer.json only.

    vocab.json and merges.txt are removed if this transformers still writes them, so the folder is
    transformers 5's form whatever version runs the test.
    """
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(tiny_sd_dir, safety_checker=None,
                                                       requires_safety_checker=False, local_files_only=True)
    folder = tmp_path_factory.mktemp("saved-pipeline") / "model"
    pipeline.save_pretrained(folder, safe_serialization=True)
    for name in ("vocab.json", "merges.txt"):
        (folder / "tokenizer" / name).unlink(missing_ok=True)
    assert (folder / "tokenizer" / "tokenizer.json").is_file()
    return folder


def test_folder_saved_with_tokenizer_json_only_converts_to_the_same_tokenizer(
        run_cli, saved_pipeline_dir, fp32_bundle, tmp_path):
    out = tmp_path / "bundle"
    entries = set(EXPORT_CACHE.iterdir())
    result = run_cli("model", "convert", saved_pipeline_dir, "--out", out, "--export-cache", EXPORT_CACHE)
    assert result.returncode == 0, result.stderr
    # The export cache is keyed by the modules' content: the same weights re-saved reuse every export.
    assert set(EXPORT_CACHE.iterdir()) == entries
    ours = PromptTokenizer(out / "tokenizer.json")
    # fp32_bundle is converted from the same weights in riffusion-model-v1's vocab.json + merges.txt form.
    reference = PromptTokenizer(fp32_bundle / "tokenizer.json")
    assert ours.encode(PROMPTS).shape == (len(PROMPTS), CONTEXT_LENGTH)
    assert ours.encode(PROMPTS).tolist() == reference.encode(PROMPTS).tolist()
    assert ours.encode(["a jazz saxophone solo"])[0, :6].tolist() == [49406, 320, 4528, 32296, 5797, 49407]
    assert [ours.is_truncated(p) for p in PROMPTS] == [reference.is_truncated(p) for p in PROMPTS]


@pytest.mark.parametrize("removed", [("vocab.json",), ("merges.txt",), ("vocab.json", "merges.txt")])
def test_folder_with_neither_tokenizer_form_names_both(run_cli, tiny_sd_dir, tmp_path, removed):
    source = tmp_path / "model"
    shutil.copytree(tiny_sd_dir, source)
    for name in removed:
        (source / "tokenizer" / name).unlink()
    out = tmp_path / "bundle"
    result = run_cli("model", "convert", source, "--out", out)
    assert result.returncode == ModelBundleError.exit_code
    lines = [line for line in result.stderr.splitlines() if line.startswith("riffstudio:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(name in lines[0] for name in ("tokenizer.json", "vocab.json", "merges.txt")), lines[0]
    assert not out.exists()
