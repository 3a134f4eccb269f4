"""Interpolation: ends equal plain generations, slerp keeps noise at its norm, the chain is seamless."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from engine.bundle import open_bundle
from engine.errors import InvalidInputError
from engine.generation.interpolate import interpolate, join_clips, slerp
from engine.generation.pipeline import LoopGenerator
from engine.generation.settings import GenerationSettings

WIDTH = 128


def test_slerp_hits_both_ends_and_keeps_the_norm_of_independent_noise():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4, 64, 16), dtype=np.float32)
    assert np.allclose(slerp(0.0, a, b), a, atol=1e-6) and np.allclose(slerp(1.0, a, b), b, atol=1e-6)
    middle = slerp(0.5, a, b)
    assert abs(np.linalg.norm(middle) / np.linalg.norm(a) - 1) < 0.02
    assert np.linalg.norm(0.5 * (a + b)) / np.linalg.norm(a) < 0.75  # what a straight line would give


def test_join_clips_crossfades_each_seam():
    sr = 1000
    clips = [np.full((500, 1), 0.5, np.float32), np.full((500, 1), -0.5, np.float32), np.zeros((500, 1), np.float32)]
    joined = join_clips(clips, sample_rate=sr, crossfade_seconds=0.04)
    assert joined.shape == (1500 - 2 * 40, 1)
    seam = joined[460:500, 0]
    assert seam[0] == pytest.approx(0.5, abs=0.05) and seam[-1] == pytest.approx(-0.5, abs=0.05)
    assert np.all(np.abs(np.diff(joined[:, 0])) < 0.05)  # no jump anywhere
    with pytest.raises(InvalidInputError):
        join_clips([])


@pytest.mark.slow
def test_the_ends_are_the_two_plain_generations(fp32_bundle):
    generator = LoopGenerator(open_bundle(fp32_bundle))
    start = GenerationSettings(prompt="jazz saxophone", seed=3, steps=3, width=WIDTH, scheduler="ddim",
                               quality="draft")
    images = {}
    clips = interpolate(generator, start, "techno kick drum", 8, 3,
                        on_clip=lambda index, image, audio: images.__setitem__(index, image))
    assert len(clips) == 3 and sorted(images) == [0, 1, 2]
    first = generator.generate(start).image
    last = generator.generate(GenerationSettings(prompt="techno kick drum", seed=8, steps=3, width=WIDTH,
                                                 scheduler="ddim")).image
    assert np.array_equal(images[0], first) and np.array_equal(images[2], last)
    assert not np.array_equal(images[1], first) and not np.array_equal(images[1], last)


@pytest.mark.slow
def test_interpolate_command_writes_every_clip_and_the_chain(run_cli, fp32_bundle, tmp_path):
    out = tmp_path / "morph"
    result = run_cli("interpolate", "jazz", "techno", "--model", fp32_bundle, "--out-dir", out, "--count", "3",
                     "--steps", "1", "--width", str(WIDTH), "--quality", "draft", "--end-seed", "4")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["chain.wav", "clip_1.wav", "clip_2.wav", "clip_3.wav",
                                                      "interpolation.json"]
    record = json.loads((out / "interpolation.json").read_text())
    assert record["end"] == {"prompt": "techno", "seed": 4} and record["count"] == 3


def test_bad_count_is_refused_before_anything_is_written(run_cli, fp32_bundle, tmp_path):
    result = run_cli("interpolate", "jazz", "--model", fp32_bundle, "--out-dir", tmp_path / "x", "--count", "1")
    assert result.returncode == InvalidInputError.exit_code and "2 to 64 steps" in result.stderr
    assert not (tmp_path / "x").exists()


def test_every_clip_keeps_the_guidance_interval(fp32_bundle):
    generator = LoopGenerator(open_bundle(fp32_bundle))
    start = GenerationSettings(prompt="jazz saxophone", seed=3, steps=3, width=WIDTH, scheduler="unipc",
                               guidance_interval=(2.0, 2.0))  # empty: every step unguided
    images = {}
    interpolate(generator, start, "techno kick drum", 3, 2,
                on_clip=lambda index, image, audio: images.__setitem__(index, image))
    assert np.array_equal(images[0], generator.generate(start).image)
    assert not np.array_equal(images[0], generator.generate(replace(start, guidance_interval=None)).image)


def test_bad_guidance_interval_is_refused_before_anything_is_written(run_cli, fp32_bundle, tmp_path):
    result = run_cli("interpolate", "jazz", "--model", fp32_bundle, "--out-dir", tmp_path / "x",
                     "--guidance-interval", "5,1")
    assert result.returncode == InvalidInputError.exit_code and "low bound 5.0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
