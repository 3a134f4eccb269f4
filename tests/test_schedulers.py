"""Our numpy schedulers against diffusers' on the same inputs: schedules, whole trajectories (text- and
audio-to-audio), the bundle-config semantics of `from_config`, errors, and properties of every schedule.

diffusers runs exactly as its Stable Diffusion pipelines drive it: the scheduler is
`XScheduler.from_config(pipe.scheduler.config)` of a pipeline built on riffusion's PNDM config, and the
img2img start is the pipeline's own `get_timesteps`. The "model" is a fixed smooth function of the
scaled latent and the timestep, evaluated in numpy for both sides.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from random_sd_model import SCHEDULER_CONFIG

from engine.errors import InvalidInputError
from engine.schedulers import (
    SCHEDULER_NAMES,
    DDIMSettings,
    DPMSolverSettings,
    EulerAncestralSettings,
    EulerSettings,
    LMSSettings,
    PNDMSettings,
    TrainingNoise,
    UniPCSettings,
    make_scheduler,
    sample,
    scheduler_settings,
)

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

DIFFUSERS = {  # name -> (diffusers class, from_config overrides)
    "pndm": ("PNDMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler",
                 {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler",
                        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "dpmpp_2m_ays": ("DPMSolverMultistepScheduler",
                     {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False}),
    "unipc": ("UniPCMultistepScheduler", {"solver_order": 2, "solver_type": "bh2"}),
}
SETTINGS_CLASSES = (PNDMSettings, DDIMSettings, EulerSettings, EulerAncestralSettings, LMSSettings, DPMSolverSettings,
                    UniPCSettings)
SHAPE = (1, 4, 8, 8)
FIELD = np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)
TOLERANCE = 1e-5


def model(x: np.ndarray, t) -> np.ndarray:
    """A stand-in UNet: mostly the input (as a noise predictor at high noise is), plus a t-dependent field."""
    return (np.float32(0.9) * x + np.float32(0.3) * FIELD * np.float32(np.cos(float(t) / 150))).astype(np.float32)


def pipeline_config(config: dict) -> dict:
    """`pipe.scheduler.config` of a StableDiffusionPipeline loaded with this PNDM scheduler config."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = diffusers.PNDMScheduler.from_config(config)
        pipe = diffusers.StableDiffusionPipeline(
            vae=None, text_encoder=None, tokenizer=None, unet=None, scheduler=scheduler, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
    return pipe.scheduler.config


def diffusers_scheduler(name: str, config: dict = SCHEDULER_CONFIG):
    class_name, overrides = DIFFUSERS[name]
    return getattr(diffusers, class_name).from_config(pipeline_config(config), **overrides)


def nvidia_ays_timesteps(num_steps: int) -> list[int]:
    """The AYS SD 1.5 schedule as NVIDIA's guide and diffusers give it: diffusers' published list at 10
    steps, NVIDIA's `loglinear_interp` of it (rounded to whole timesteps) otherwise."""
    published = list(diffusers.schedulers.AysSchedules["StableDiffusionTimesteps"])
    if num_steps == len(published):
        return published
    xs, ys = np.linspace(0, 1, len(published)), np.log(np.asarray(published, float)[::-1])
    return np.round(np.exp(np.interp(np.linspace(0, 1, num_steps), xs, ys))[::-1]).astype(int).tolist()


def set_diffusers_timesteps(scheduler, name: str, num_steps: int) -> None:
    """`set_timesteps` as the pipeline calls it: AYS passes its custom timesteps (diffusers' own AYS recipe)."""
    if name == "dpmpp_2m_ays":
        scheduler.set_timesteps(timesteps=nvidia_ays_timesteps(num_steps))
    else:
        scheduler.set_timesteps(num_steps)


def refused_step_count(name: str, num_steps: int) -> bool:
    """True (after checking the one-line refusal) where our scheduler is not defined for `num_steps`."""
    if name != "dpmpp_2m_ays" or 2 <= num_steps <= 400:
        return False
    with pytest.raises(InvalidInputError, match="dpmpp_2m_ays takes 2 to 400 steps"):
        make_scheduler(name, SCHEDULER_CONFIG, num_steps)
    return True


def error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest difference, relative to the reference's scale where that exceeds 1."""
    theirs = np.asarray(theirs, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(ours, np.float64) - theirs)) / max(1.0, np.max(np.abs(theirs))))


def run_diffusers(name, num_steps, noise, *, config=SCHEDULER_CONFIG, strength=1.0, init=None, seed=0,
                  pin_start=False):
    """(timesteps, sigmas or None, init_noise_sigma, states, per-step noise) the SD pipelines would produce.
    `pin_start`: start at step 0 explicitly rather than by looking the first timestep up."""
    scheduler = diffusers_scheduler(name, config)
    set_diffusers_timesteps(scheduler, name, num_steps)
    if pin_start:
        scheduler.set_begin_index(0)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.from_numpy(noise)
    if init is None:
        timesteps = scheduler.timesteps
        latents = noise * scheduler.init_noise_sigma
    else:
        fake_pipe = type("Pipe", (), {"scheduler": scheduler})()
        timesteps, _ = diffusers.StableDiffusionImg2ImgPipeline.get_timesteps(fake_pipe, num_steps, strength, "cpu")
        latents = scheduler.add_noise(torch.from_numpy(init), noise, timesteps[:1].repeat(1))
    sigmas = getattr(scheduler, "sigmas", None)
    states, step_noise = [latents.numpy().copy()], []
    for t in timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        prediction = torch.from_numpy(model(model_input.numpy(), t))
        twin = torch.Generator().set_state(generator.get_state())
        step_noise.append(torch.randn(SHAPE, generator=twin, dtype=torch.float32).numpy())
        kwargs = {"generator": generator} if name == "euler_a" else {}
        latents = scheduler.step(prediction, t, latents, return_dict=False, **kwargs)[0]
        states.append(latents.numpy().copy())
    sigmas = None if sigmas is None else np.asarray(sigmas)
    return np.asarray(timesteps, dtype=np.float32), sigmas, float(scheduler.init_noise_sigma), states, step_noise


def run_ours(name, num_steps, noise, *, config=SCHEDULER_CONFIG, strength=1.0, init=None, step_noise=None):
    scheduler = make_scheduler(name, config, num_steps, strength=strength)
    latents = noise * scheduler.init_noise_sigma if init is None else scheduler.add_noise(init, noise)
    states = [latents]
    for i, t in enumerate(scheduler.timesteps):
        prediction = model(scheduler.scale_model_input(latents, i), t)
        latents = scheduler.step(prediction, i, latents, noise=None if step_noise is None else step_noise[i])
        assert latents.dtype == np.float32
        states.append(latents)
    return scheduler, states


def assert_same_trajectory(name, num_steps, *, config=SCHEDULER_CONFIG, strength=1.0, with_init=False,
                           pin_start=False):
    rng = np.random.default_rng(num_steps)
    noise = rng.standard_normal(SHAPE).astype(np.float32)
    init = rng.standard_normal(SHAPE).astype(np.float32) * 2 if with_init else None
    timesteps, sigmas, init_sigma, theirs, step_noise = run_diffusers(
        name, num_steps, noise, config=config, strength=strength, init=init, pin_start=pin_start)
    scheduler, ours = run_ours(name, num_steps, noise, config=config, strength=strength, init=init,
                               step_noise=step_noise)
    np.testing.assert_array_equal(scheduler.timesteps, timesteps)
    assert scheduler.timesteps.dtype == np.float32
    if sigmas is not None:
        begin = len(sigmas) - 1 - len(timesteps)
        np.testing.assert_allclose(scheduler.sigmas, sigmas[begin:], rtol=1e-6, atol=0)
    if not with_init:
        assert scheduler.init_noise_sigma == pytest.approx(init_sigma, rel=1e-6)
    assert len(ours) == len(theirs)
    errors = [error(a, b) for a, b in zip(ours, theirs, strict=True)]
    assert max(errors) <= TOLERANCE, f"step {int(np.argmax(errors))} of {len(errors) - 1}: {max(errors):.2e}"
    assert np.all(np.isfinite(ours[-1]))


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


# --- trajectories ------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_steps", [1, 2, 3, 4, 10, 25, 50])
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_text_to_audio_trajectory_matches_diffusers(name, num_steps):
    if not refused_step_count(name, num_steps):
        assert_same_trajectory(name, num_steps)


@pytest.mark.parametrize(("num_steps", "strength"), [(10, 0.5), (25, 0.75), (3, 0.5), (50, 0.3), (7, 0.9)])
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_audio_to_audio_start_and_trajectory_match_diffusers_img2img(name, num_steps, strength):
    assert_same_trajectory(name, num_steps, strength=strength, with_init=True)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_other_prediction_types_match_diffusers_or_are_refused(name, prediction_type):
    config = {**SCHEDULER_CONFIG, "prediction_type": prediction_type}
    if prediction_type == "sample" and name in ("pndm", "euler_a"):  # diffusers has no such step either
        with pytest.raises(InvalidInputError, match="prediction_type='sample'"):
            make_scheduler(name, config, 10)
        return
    assert_same_trajectory(name, 10, config=config)


@pytest.mark.parametrize("config_change", [
    {"timestep_spacing": "trailing"},
    {"timestep_spacing": "linspace"},
    {"timestep_spacing": "leading"},
    {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02},
    {"beta_schedule": "squaredcos_cap_v2"},
    {"set_alpha_to_one": True, "steps_offset": 0},
])
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_other_training_configs_match_diffusers(name, config_change):
    # Karras σ on the cosine schedule repeat timestep 998 five times; diffusers' pipeline loop, which finds
    # its first step by looking the timestep up, then starts at step 1 and fails at the end. We step by
    # index, so compare with diffusers started at step 0 explicitly.
    pin_start = name == "dpmpp_2m_karras" and config_change.get("beta_schedule") == "squaredcos_cap_v2"
    assert_same_trajectory(name, 12, config={**SCHEDULER_CONFIG, **config_change}, pin_start=pin_start)


@pytest.mark.parametrize(("name", "config_change"), [
    ("dpmpp_2m", {"final_sigmas_type": "sigma_min"}),
    ("dpmpp_2m", {"final_sigmas_type": "sigma_min", "lower_order_final": False}),
    ("dpmpp_2m_karras", {"final_sigmas_type": "sigma_min", "euler_at_final": True}),
    ("dpmpp_2m", {"solver_type": "heun"}),
    ("dpmpp_2m_karras", {"sigma_min": 0.1, "sigma_max": 10.0}),
    ("dpmpp_2m", {"solver_order": 3}),  # the name fixes the order at 2...
    ("dpmpp_2m", {"use_karras_sigmas": True}),  # ... and the σ schedule
    ("euler", {"final_sigmas_type": "sigma_min"}),
    ("euler", {"timestep_type": "continuous"}),  # only matters with v_prediction
    ("dpmpp_2m_ays", {"final_sigmas_type": "sigma_min"}),
    ("unipc", {"disable_corrector": [0, 1, 5]}),
    ("unipc", {"final_sigmas_type": "sigma_min"}),
    ("unipc", {"final_sigmas_type": "sigma_min", "lower_order_final": False}),
    ("unipc", {"solver_type": "midpoint"}),  # a DPM-Solver config: diffusers' UniPC reads it as bh2
    ("unipc", {"solver_order": 3, "solver_type": "bh1"}),  # the name fixes order 2 and bh2
])
@pytest.mark.parametrize(("num_steps", "strength"), [(10, 1.0), (25, 0.5), (40, 0.75)])
def test_solver_options_match_diffusers(name, config_change, num_steps, strength):
    assert_same_trajectory(name, num_steps, config={**SCHEDULER_CONFIG, **config_change}, strength=strength,
                           with_init=strength < 1)


@pytest.mark.parametrize("num_steps", range(6, 13))
@pytest.mark.parametrize("config_change", [{}, {"final_sigmas_type": "sigma_min"},
                                           {"final_sigmas_type": "sigma_min", "lower_order_final": False}])
@pytest.mark.parametrize("name", ["dpmpp_2m", "dpmpp_2m_karras", "dpmpp_2m_ays"])
# Karras σ end at σ_min, so "sigma_min" makes the last step zero-length (h = 0), as in diffusers.
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_dpm_solver_lower_order_final_at_few_steps_matches_diffusers(name, config_change, num_steps):
    """DPM-Solver++(2M) with diffusers' `lower_order_final` (its default, on below 15 steps): the last step
    is first order (always, to σ = 0; under "sigma_min" only because of the option)."""
    config = {**SCHEDULER_CONFIG, **config_change}
    assert scheduler_settings(name, config).lower_order_final == config_change.get("lower_order_final", True)
    assert diffusers_scheduler(name, config).config.lower_order_final == config_change.get("lower_order_final", True)
    if num_steps in (6, 9, 12):
        assert_same_trajectory(name, num_steps, config=config, strength=0.75, with_init=True)
    assert_same_trajectory(name, num_steps, config=config)


def test_lower_order_final_changes_the_last_step_only_where_diffusers_does():
    config = {**SCHEDULER_CONFIG, "final_sigmas_type": "sigma_min"}
    noise = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    with_option = sample(model, "dpmpp_2m", 8, config, noise)
    without = sample(model, "dpmpp_2m", 8, {**config, "lower_order_final": False}, noise)
    assert not np.array_equal(with_option, without)
    np.testing.assert_array_equal(sample(model, "dpmpp_2m", 8, SCHEDULER_CONFIG, noise),
                                  sample(model, "dpmpp_2m", 8, {**SCHEDULER_CONFIG, "lower_order_final": False},
                                         noise))  # to σ = 0 the last step is first order either way


def test_ays_schedule_is_nvidias_at_10_steps_and_log_linear_otherwise():
    published = diffusers.schedulers.AysSchedules["StableDiffusionTimesteps"]
    assert published == [999, 850, 736, 645, 545, 455, 343, 233, 124, 24]
    assert make_scheduler("dpmpp_2m_ays", SCHEDULER_CONFIG, 10).timesteps.tolist() == published
    for num_steps in (2, 3, 6, 8, 12, 15, 25, 50, 400):
        timesteps = make_scheduler("dpmpp_2m_ays", SCHEDULER_CONFIG, num_steps).timesteps
        assert timesteps.tolist() == nvidia_ays_timesteps(num_steps)
        assert timesteps[0] == 999 and timesteps[-1] == 24 and np.all(np.diff(timesteps) < 0)
    for bad in (1, 401):
        with pytest.raises(InvalidInputError, match="dpmpp_2m_ays takes 2 to 400 steps"):
            make_scheduler("dpmpp_2m_ays", SCHEDULER_CONFIG, bad)
    with pytest.raises(InvalidInputError, match="1000 training timesteps; this model has 500"):
        make_scheduler("dpmpp_2m_ays", {**SCHEDULER_CONFIG, "num_train_timesteps": 500}, 10)


def test_unipc_corrects_with_the_evaluation_it_already_has():
    """UniPC costs the same UNet calls as DPM-Solver++(2M) and lands elsewhere (its corrector), closer to
    the converged end point at few steps on the stand-in model."""
    noise = np.random.default_rng(4).standard_normal(SHAPE).astype(np.float32)
    reference = sample(model, "dpmpp_2m", 200, SCHEDULER_CONFIG, noise)
    calls = []

    def counting(x, t):
        calls.append(t)
        return model(x, t)

    unipc = sample(counting, "unipc", 8, SCHEDULER_CONFIG, noise)
    assert len(calls) == 8
    dpm = sample(model, "dpmpp_2m", 8, SCHEDULER_CONFIG, noise)
    assert error(unipc, reference) < error(dpm, reference)
    without_corrector = sample(model, "unipc", 8, {**SCHEDULER_CONFIG, "disable_corrector": list(range(8))}, noise)
    assert error(without_corrector, dpm) < error(unipc, dpm)  # UniP-2 alone is a 2M-like multistep


@pytest.mark.parametrize("num_steps", [1, 2, 5, 10, 20])
def test_unipc_of_order_3_matches_diffusers(num_steps):
    """The solver is written for any order (diffusers solves for its coefficients): order 3, built from the
    settings directly, as diffusers' `solver_order=3`."""
    from engine.schedulers import UniPC, UniPCSettings

    noise = np.random.default_rng(num_steps).standard_normal(SHAPE).astype(np.float32)
    theirs = diffusers.UniPCMultistepScheduler.from_config(pipeline_config(SCHEDULER_CONFIG), solver_order=3)
    theirs.set_timesteps(num_steps)
    ours = UniPC(UniPCSettings.from_config(SCHEDULER_CONFIG, solver_order=3), num_steps)
    x_theirs, x_ours = torch.from_numpy(noise), noise
    for i, t in enumerate(theirs.timesteps):
        x_theirs = theirs.step(torch.from_numpy(model(x_theirs.numpy(), t)), t, x_theirs, return_dict=False)[0]
        x_ours = ours.step(model(x_ours, ours.timesteps[i]), i, x_ours)
        assert error(x_ours, x_theirs.numpy()) <= TOLERANCE, i


@pytest.mark.parametrize(("change", "key"), [
    ({"predict_x0": False}, "predict_x0"),
    ({"use_karras_sigmas": True}, "use_karras_sigmas"),
    ({"disable_corrector": "0"}, "disable_corrector"),
    ({"thresholding": True}, "thresholding"),
])
def test_unsupported_unipc_options_are_refused_by_name(change, key):
    with pytest.raises(InvalidInputError, match=key) as raised:
        make_scheduler("unipc", {**SCHEDULER_CONFIG, **change}, 10)
    assert len(str(raised.value).splitlines()) == 1


@pytest.mark.parametrize("beta_schedule", ["scaled_linear", "linear", "squaredcos_cap_v2"])
def test_training_noise_is_diffusers_bit_for_bit(beta_schedule):
    config = {**SCHEDULER_CONFIG, "beta_schedule": beta_schedule}
    theirs = diffusers.DDIMScheduler.from_config(config)
    noise = TrainingNoise.from_config(config)
    np.testing.assert_array_equal(noise.betas(), theirs.betas.numpy())
    np.testing.assert_array_equal(noise.alphas_cumprod(), theirs.alphas_cumprod.numpy())


def test_trained_betas_are_used_as_given():
    betas = np.linspace(0.001, 0.015, 1000).tolist()
    config = {**SCHEDULER_CONFIG, "trained_betas": betas}
    for name in ("pndm", "euler", "dpmpp_2m_karras"):
        assert_same_trajectory(name, 8, config=config)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_schedules_match_diffusers_for_every_kind_of_step_count(name):
    for num_steps in (5, 7, 13, 20, 30, 99, 100, 250, 333, 500, 999, 1000):
        if refused_step_count(name, num_steps):
            continue
        if name in ("pndm", "ddim") and num_steps == 1000:
            # leading spacing + steps_offset 1 puts the first timestep at 1000: diffusers fails with an
            # IndexError on the first step, we refuse up front.
            with pytest.raises(InvalidInputError, match="fewer steps"):
                make_scheduler(name, SCHEDULER_CONFIG, num_steps)
            continue
        theirs = diffusers_scheduler(name)
        set_diffusers_timesteps(theirs, name, num_steps)
        ours = make_scheduler(name, SCHEDULER_CONFIG, num_steps)
        np.testing.assert_array_equal(ours.timesteps, np.asarray(theirs.timesteps, dtype=np.float32))
        if hasattr(theirs, "sigmas"):
            np.testing.assert_allclose(ours.sigmas, np.asarray(theirs.sigmas), rtol=1e-6, atol=0)
        assert ours.init_noise_sigma == pytest.approx(float(theirs.init_noise_sigma), rel=1e-6)


def test_pndm_evaluates_the_second_to_last_timestep_twice():
    assert make_scheduler("pndm", SCHEDULER_CONFIG, 1).timesteps.tolist() == [1]
    assert make_scheduler("pndm", SCHEDULER_CONFIG, 2).timesteps.tolist() == [501, 1, 1]
    assert make_scheduler("pndm", SCHEDULER_CONFIG, 4).timesteps.tolist() == [751, 501, 501, 251, 1]


def test_audio_to_audio_below_one_whole_step_leaves_nothing_to_do_but_pndms_last_evaluation():
    for name in SCHEDULER_NAMES:
        for strength in (0, 0.05):  # int(10 * 0.05) = 0 steps kept
            scheduler = make_scheduler(name, SCHEDULER_CONFIG, 10, strength=strength)
            assert scheduler.timesteps.tolist() == ([1] if name == "pndm" else [])
    assert_same_trajectory("pndm", 10, strength=0.05, with_init=True)


def test_audio_to_audio_keeps_diffusers_share_of_the_steps():
    for name in SCHEDULER_NAMES:
        full = make_scheduler(name, SCHEDULER_CONFIG, 10)
        part = make_scheduler(name, SCHEDULER_CONFIG, 10, strength=0.35)  # int(3.5) = 3 steps kept
        # diffusers slices its evaluation list after the first 7 entries; pndm's list has one more
        assert part.timesteps.tolist() == full.timesteps[7:].tolist()
        assert len(part.timesteps) == (4 if name == "pndm" else 3)


# --- the sampling helper -----------------------------------------------------------------------------


def test_sample_runs_the_same_loop_as_the_pipeline():
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(SHAPE).astype(np.float32)
    for name in ("pndm", "dpmpp_2m_karras"):
        *_, states, _ = run_diffusers(name, 12, noise)
        assert error(sample(model, name, 12, SCHEDULER_CONFIG, noise), states[-1]) <= TOLERANCE
    init = rng.standard_normal(SHAPE).astype(np.float32)
    *_, states, _ = run_diffusers("lms", 20, noise, strength=0.6, init=init)
    ours = sample(model, "lms", 20, SCHEDULER_CONFIG, noise, init_latents=init, strength=0.6)
    assert error(ours, states[-1]) <= TOLERANCE


def test_ancestral_sampling_is_fixed_by_the_seed():
    noise = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)

    def run(seed: int) -> np.ndarray:
        return sample(model, "euler_a", 10, SCHEDULER_CONFIG, noise, rng=np.random.default_rng(seed))

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.allclose(run(1), run(2))
    with pytest.raises(ValueError, match="rng"):
        sample(model, "euler_a", 10, SCHEDULER_CONFIG, noise)


def test_more_steps_converge_to_the_same_latent():
    """The solver-accuracy measure the benchmark uses: every deterministic scheduler approaches a 200-step
    reference as its step count grows."""
    noise = np.random.default_rng(5).standard_normal(SHAPE).astype(np.float32)
    reference = sample(model, "dpmpp_2m", 200, SCHEDULER_CONFIG, noise)
    for name in ("ddim", "euler", "lms", "dpmpp_2m", "dpmpp_2m_karras", "pndm", "dpmpp_2m_ays", "unipc"):
        distances = [error(sample(model, name, n, SCHEDULER_CONFIG, noise), reference) for n in (5, 20, 80)]
        assert distances[2] < distances[0], (name, distances)


# --- the bundle's config -----------------------------------------------------------------------------


def our_settings_match_diffusers_config(name: str, config: dict) -> None:
    ours = scheduler_settings(name, config).to_dict()
    class_name, overrides = DIFFUSERS[name]
    theirs = getattr(diffusers, class_name).from_config(config, **overrides).config
    for key, value in ours.items():
        if key == "noise":
            for noise_key, noise_value in value.items():
                assert theirs[noise_key] == noise_value, (name, noise_key)
        elif key in theirs:
            assert theirs[key] == value, (name, key)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_config_keys_follow_diffusers_from_config(name):
    loaded = pipeline_config(SCHEDULER_CONFIG)
    # riffusion's JSON, the loaded config (defaults marked), and the loaded one without private keys (what a
    # bundle converted from a hub id stores): diffusers gives euler "leading" spacing only in the last case.
    stripped = {k: v for k, v in dict(loaded).items() if not k.startswith("_")}
    for config in (SCHEDULER_CONFIG, dict(loaded), stripped):
        our_settings_match_diffusers_config(name, config)


def test_the_pipelines_config_fixes_are_applied():
    old = {k: v for k, v in SCHEDULER_CONFIG.items() if k not in ("clip_sample",)}
    old.update(steps_offset=0, clip_sample=True)
    assert scheduler_settings("ddim", old).clip_sample is False
    assert scheduler_settings("ddim", old).steps_offset == 1
    for name in ("pndm", "ddim", "euler"):
        our_settings_match_diffusers_config(name, dict(pipeline_config(old)))
    assert_same_trajectory("ddim", 10, config=old)
    # An absent clip_sample is DDIM's default, true: x0 is clipped to [-1, 1].
    no_clip_key = {k: v for k, v in SCHEDULER_CONFIG.items() if k != "clip_sample"}
    assert scheduler_settings("ddim", no_clip_key).clip_sample is True
    assert_same_trajectory("ddim", 10, config=no_clip_key)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_settings_round_trip_through_json(name):
    settings_ = scheduler_settings(name, {**SCHEDULER_CONFIG, "trained_betas": [0.001] * 1000})
    again = type(settings_).from_dict(json.loads(json.dumps(settings_.to_dict())))
    assert again == settings_
    with pytest.raises(InvalidInputError, match="unknown scheduler setting"):
        type(settings_).from_dict({**settings_.to_dict(), "eta": 0.5})


def test_every_schedulers_settings_class_is_in_the_defaults_test():
    assert {type(scheduler_settings(name, SCHEDULER_CONFIG)) for name in SCHEDULER_NAMES} <= set(SETTINGS_CLASSES)


@pytest.mark.parametrize("settings_cls", SETTINGS_CLASSES, ids=lambda cls: cls.__name__)
def test_settings_construct_with_their_defaults_and_round_trip(settings_cls):
    """A settings class built with no arguments (what `from_dict` fills missing keys with) is valid."""
    defaults = settings_cls()
    assert settings_cls.from_dict(json.loads(json.dumps(defaults.to_dict()))) == defaults
    assert settings_cls.from_dict({}) == defaults


def test_pndm_config_without_skip_prk_steps_is_refused_as_diffusers_would_run_runge_kutta_steps():
    """PNDMSettings defaults to PLMS (riffusion's and SD 1.5's skip_prk_steps=true), but a config that leaves
    the key out means diffusers' default, false: the Runge-Kutta warm-up, which we do not run."""
    assert PNDMSettings().skip_prk_steps is True
    config = {k: v for k, v in SCHEDULER_CONFIG.items() if k != "skip_prk_steps"}
    for config_ in (config, dict(pipeline_config(config))):
        assert diffusers.PNDMScheduler.from_config(config_).config.skip_prk_steps is False
        with pytest.raises(InvalidInputError, match="skip_prk_steps=False"):
            make_scheduler("pndm", config_, 10)
    assert scheduler_settings("pndm", config | {"skip_prk_steps": True}).skip_prk_steps is True


# --- errors ------------------------------------------------------------------------------------------


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(InvalidInputError, match="unknown scheduler 'k_euler'") as raised:
        make_scheduler("k_euler", SCHEDULER_CONFIG, 10)
    assert all(name in str(raised.value) for name in SCHEDULER_NAMES)


@pytest.mark.parametrize("num_steps", [0, -1, 1001, 2.5, True, "10", None])
def test_bad_step_counts_are_refused(num_steps):
    with pytest.raises(InvalidInputError, match="number of steps"):
        make_scheduler("euler", SCHEDULER_CONFIG, num_steps)


def test_step_count_is_bounded_by_the_training_timesteps():
    config = {**SCHEDULER_CONFIG, "num_train_timesteps": 100}
    make_scheduler("euler", config, 100)
    with pytest.raises(InvalidInputError, match="from 1 to 100"):
        make_scheduler("euler", config, 101)


@pytest.mark.parametrize("strength", [-0.5, 1.01, float("nan"), "0.5", None])
def test_bad_strengths_are_refused(strength):
    with pytest.raises(InvalidInputError, match="strength"):
        make_scheduler("ddim", SCHEDULER_CONFIG, 10, strength=strength)


@pytest.mark.parametrize(("name", "change", "key"), [
    ("pndm", {"skip_prk_steps": False}, "skip_prk_steps"),
    ("ddim", {"thresholding": True}, "thresholding"),
    ("euler", {"use_karras_sigmas": True}, "use_karras_sigmas"),
    ("euler", {"interpolation_type": "log_linear"}, "interpolation_type"),
    ("dpmpp_2m", {"lambda_min_clipped": -5.1}, "lambda_min_clipped"),
    ("lms", {"prediction_type": "flow_prediction"}, "prediction_type"),
    ("euler_a", {"beta_schedule": "cosine"}, "beta_schedule"),
    ("dpmpp_2m", {"num_train_timesteps": "1000"}, "num_train_timesteps"),
    ("ddim", {"trained_betas": [0.1] * 10}, "trained_betas"),
])
def test_unsupported_config_options_are_refused_by_name(name, change, key):
    with pytest.raises(InvalidInputError, match=key):
        make_scheduler(name, {**SCHEDULER_CONFIG, **change}, 10)


def test_steps_run_in_order_for_multistep_schedulers():
    scheduler = make_scheduler("dpmpp_2m", SCHEDULER_CONFIG, 10)
    latents = np.zeros(SHAPE, np.float32)
    latents = scheduler.step(model(latents, 999), 0, latents)
    with pytest.raises(ValueError, match="in order"):
        scheduler.step(model(latents, 999), 2, latents)


def test_schedulers_need_no_torch_at_run_time():
    code = ("import sys, numpy as np, engine.schedulers as s, json; "
            f"cfg = json.loads({json.dumps(json.dumps(SCHEDULER_CONFIG))}); "
            "[s.sample(lambda x, t: 0.5 * x, n, 4, cfg, np.ones((1, 4, 2, 2), np.float32), "
            "rng=np.random.default_rng(0)) for n in s.SCHEDULER_NAMES]; "
            "assert not {'torch', 'diffusers', 'transformers'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# --- properties --------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(SCHEDULER_NAMES), num_steps=st.integers(1, 999),
       strength=st.sampled_from([1.0, 0.8, 0.5]), seed=st.integers(0, 2 ** 32 - 1))
def test_every_schedule_descends_and_ends_finite(name, num_steps, strength, seed):
    if int(num_steps * strength) < 1 or refused_step_count(name, num_steps):
        return
    scheduler = make_scheduler(name, SCHEDULER_CONFIG, num_steps, strength=strength)
    timesteps = scheduler.timesteps
    assert np.all(np.diff(timesteps) <= 0) and timesteps[0] <= 999 and timesteps[-1] >= 0
    if name in ("ddim", "euler", "euler_a", "lms"):
        assert np.all(np.diff(timesteps) < 0)
    if hasattr(scheduler, "sigmas"):
        assert np.all(np.diff(scheduler.sigmas) <= 0) and scheduler.sigmas[-1] == 0
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((1, 4, 2, 2)).astype(np.float32) * scheduler.init_noise_sigma
    for i, t in enumerate(timesteps[:12]):  # the start of a long schedule, and all of a short one
        latents = scheduler.step(model_small(scheduler.scale_model_input(latents, i), t), i, latents, rng)
    assert np.all(np.isfinite(latents))


def model_small(x: np.ndarray, t) -> np.ndarray:
    return (0.9 * x + 0.1 * np.float32(np.sin(float(t)))).astype(np.float32)
