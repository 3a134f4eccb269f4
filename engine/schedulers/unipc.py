"""UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion
Models"), as diffusers' `UniPCMultistepScheduler` with its defaults: data prediction (predict_x0), B(h) =
e^{-h} - 1 ("bh2", recommended for guided sampling), order 2, the corrector on every step.

Same variance-preserving form as DPM-Solver++ (x = α x_0 + s ε, λ = log α - log s, D the data estimate)
on the same σ table. With h = λ_t - λ_s, each step (s -> t) is

    predictor (UniP-p):  x_t = (s_t / s_s) x_s - α_t (e^{-h} - 1) D_s - α_t B(h) Σ_k a_k D1_k
    corrector (UniC-p):  x_s <- (s_s / s_r) x_r - α_s (e^{-h'} - 1) D_r - α_s B(h') (Σ_k c_k D1_k + c_p (D_s - D_r))

where D1_k = (D_{s-k} - D_s) / r_k are the divided differences of the last data estimates over
r_k = (λ_{s-k} - λ_s) / h, a = 1/2 at order 2 (else solved from R a = b), and c from R c = b with the
new estimate D_s included. The corrector refines the latent the UNet has just been evaluated at (x_s,
reached from x_r) using that very evaluation, so it costs no extra UNet call; the evaluation itself was
made at the uncorrected x_s, as in diffusers. The order warms up from 1 and, with `lower_order_final`,
drops to fit the steps left (counted over the whole schedule, as diffusers does in audio-to-audio).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.errors import InvalidInputError
from engine.schedulers.noise import (
    TIMESTEP_SPACINGS,
    TrainingNoise,
    check_bool,
    check_choice,
    check_int,
    next_step,
    sigmas_of,
)
from engine.schedulers.settings import SchedulerSettings
from engine.schedulers.sigmas import interpolated_sigmas, multistep_timesteps, with_final_sigma

# diffusers' UniPC turns DPM-Solver's solver types into bh2 when built from their config.
_LEGACY_SOLVER_TYPES = ("midpoint", "heun", "logrho")


@dataclass(frozen=True)
class UniPCSettings(SchedulerSettings):
    """diffusers' `UniPCMultistepScheduler` config keys we read, with its defaults."""

    noise: TrainingNoise = field(default_factory=TrainingNoise)
    solver_order: int = 2
    prediction_type: str = "epsilon"
    thresholding: bool = False
    predict_x0: bool = True
    solver_type: str = "bh2"
    lower_order_final: bool = True
    disable_corrector: tuple[int, ...] = ()
    use_karras_sigmas: bool = False
    use_exponential_sigmas: bool = False
    use_beta_sigmas: bool = False
    use_flow_sigmas: bool = False
    use_dynamic_shifting: bool = False
    timestep_spacing: str = "linspace"
    steps_offset: int = 0
    final_sigmas_type: str = "zero"
    rescale_betas_zero_snr: bool = False

    def __post_init__(self) -> None:
        if self.solver_type in _LEGACY_SOLVER_TYPES:
            object.__setattr__(self, "solver_type", "bh2")
        check_choice("solver_order", self.solver_order, (1, 2, 3), "unipc")
        check_choice("prediction_type", self.prediction_type, ("epsilon", "v_prediction", "sample"), "unipc")
        check_choice("solver_type", self.solver_type, ("bh2",), "unipc")
        check_bool("lower_order_final", self.lower_order_final)
        # Noise prediction (predict_x0 false) divides by σ = 0 on the last step, in diffusers too.
        for key in ("thresholding", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                    "use_flow_sigmas", "use_dynamic_shifting", "rescale_betas_zero_snr"):
            check_choice(key, getattr(self, key), (False,), "unipc")
        check_choice("predict_x0", self.predict_x0, (True,), "unipc")
        check_choice("final_sigmas_type", self.final_sigmas_type, ("zero", "sigma_min"))
        check_choice("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        check_int("steps_offset", self.steps_offset, minimum=0)
        steps = self.disable_corrector
        if isinstance(steps, str) or not isinstance(steps, list | tuple) or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise InvalidInputError(f"the model's scheduler config sets disable_corrector={steps!r}, "
                                    "not a list of step numbers")
        object.__setattr__(self, "disable_corrector", tuple(steps))


def _alpha_sigma(sigma: np.float32) -> tuple[np.float32, np.float32]:
    alpha = np.float32(1) / np.sqrt(sigma ** 2 + np.float32(1))
    return alpha, sigma * alpha


def _log_snr(sigma: np.float32) -> np.float32:
    alpha, s = _alpha_sigma(sigma)
    with np.errstate(divide="ignore"):  # σ = 0 at the end: λ = +inf, e^{-h} - 1 = -1
        return np.log(alpha) - np.log(s)


def _coefficients(h: np.float32, order: int, rks: list[np.float32]) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """(R, b, B(h)) of diffusers' UniPC B(h) update: R_ij = r_j^i over the nodes r (plus 1), b_i from the
    φ functions of -h (data prediction); float32 like diffusers' torch maths."""
    hh = -h
    h_phi_k = np.expm1(hh) / hh - np.float32(1)
    b_h = np.expm1(hh)  # bh2
    nodes = np.array([*rks, 1.0], dtype=np.float32)
    rows, b = [], []
    factorial = 1
    for i in range(1, order + 1):
        rows.append(nodes ** (i - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - np.float32(1 / factorial)
    return np.stack(rows).astype(np.float32), np.array(b, dtype=np.float32), b_h


class UniPC:
    """UniPC (bh2, data prediction) over `num_steps` steps, starting at step `begin`. One per trajectory."""

    ancestral = False

    def __init__(self, settings: UniPCSettings, num_steps: int, begin: int = 0) -> None:
        self.settings = settings
        self.num_steps = num_steps
        self.begin = begin
        train_sigmas = sigmas_of(settings.noise.alphas_cumprod())
        all_timesteps = multistep_timesteps(settings.noise.num_train_timesteps, settings.timestep_spacing,
                                            settings.steps_offset, num_steps)
        self.all_sigmas = with_final_sigma(interpolated_sigmas(train_sigmas, all_timesteps), train_sigmas,
                                           settings.final_sigmas_type)
        self._schedule_length = len(all_timesteps)
        self.timesteps = all_timesteps[begin:].astype(np.float32)
        self.sigmas = self.all_sigmas[begin:]
        self.init_noise_sigma = 1.0
        self._estimates: list[np.ndarray] = []  # D of the last evaluations, newest last (at most solver_order)
        self._last_sample: np.ndarray | None = None  # x_r: where the last predictor started
        self._last_order = 0  # the last predictor's order, which its correction uses
        self._next = 0

    def scale_model_input(self, sample: np.ndarray, step_index: int) -> np.ndarray:
        return np.asarray(sample, dtype=np.float32)

    def step(self, model_output: np.ndarray, step_index: int, sample: np.ndarray,
             rng: np.random.Generator | None = None, *, noise: np.ndarray | None = None) -> np.ndarray:
        self._next = next_step("unipc", self._next, step_index)
        settings = self.settings
        i = self.begin + step_index  # σ indices, the disabled corrector steps and the final order are absolute
        x = np.asarray(sample, dtype=np.float32)
        data = self._data_estimate(np.asarray(model_output, np.float32), x, self.all_sigmas[i])
        if self._last_sample is not None and i - 1 not in settings.disable_corrector:
            x = self._correct(data, x, i)
        self._estimates = [*self._estimates, data][-settings.solver_order:]
        order = settings.solver_order
        if settings.lower_order_final:
            order = min(order, self._schedule_length - i)
        order = min(order, len(self._estimates))  # warm-up: as many as evaluated so far
        self._last_sample, self._last_order = x, order
        return self._predict(x, i, order)

    def _data_estimate(self, model_output: np.ndarray, x: np.ndarray, sigma: np.float32) -> np.ndarray:
        alpha, s = _alpha_sigma(sigma)
        kind = self.settings.prediction_type
        if kind == "epsilon":
            return (x - s * model_output) / alpha
        if kind == "v_prediction":
            return alpha * x - s * model_output
        return model_output  # "sample"

    def _differences(self, newest: np.ndarray, history: list[np.ndarray], base: int, h: np.float32,
                     lambda_s: np.float32) -> tuple[list[np.float32], list[np.ndarray]]:
        """r_k and D1_k for the estimates before `newest` (history[-1] is one step back, at index base - 1)."""
        rks, d1s = [], []
        for k, older in enumerate(reversed(history), start=1):
            rk = (_log_snr(self.all_sigmas[base - k]) - lambda_s) / h
            rks.append(rk)
            d1s.append((older - newest) / rk)
        return rks, d1s

    def _predict(self, x: np.ndarray, i: int, order: int) -> np.ndarray:
        """UniP: from x at σ_i (estimate D_i, the newest) to σ_{i+1}."""
        sigma_s, sigma_t = self.all_sigmas[i], self.all_sigmas[i + 1]
        alpha_t, s_t = _alpha_sigma(sigma_t)
        _, s_s = _alpha_sigma(sigma_s)
        lambda_s = _log_snr(sigma_s)
        h = _log_snr(sigma_t) - lambda_s
        m0 = self._estimates[-1]
        x_next = (s_t / s_s) * x - alpha_t * np.expm1(-h) * m0
        if order == 1:
            return x_next
        rks, d1s = self._differences(m0, self._estimates[-order:-1], i, h, lambda_s)
        r, b, b_h = _coefficients(h, order, rks)
        rhos = np.array([0.5], np.float32) if order == 2 else np.linalg.solve(r[:-1, :-1], b[:-1]).astype(np.float32)
        return x_next - alpha_t * b_h * _combine(rhos, d1s)

    def _correct(self, data: np.ndarray, x: np.ndarray, i: int) -> np.ndarray:
        """UniC: x at σ_i, reached from the last sample at σ_{i-1}, refined with the new estimate `data`."""
        order = self._last_order
        sigma_r, sigma_s = self.all_sigmas[i - 1], self.all_sigmas[i]
        alpha_s, s_s = _alpha_sigma(sigma_s)
        _, s_r = _alpha_sigma(sigma_r)
        lambda_r = _log_snr(sigma_r)
        h = _log_snr(sigma_s) - lambda_r
        m0 = self._estimates[-1]
        rks, d1s = self._differences(m0, self._estimates[-order:-1], i - 1, h, lambda_r)
        r, b, b_h = _coefficients(h, order, rks)
        rhos = np.array([0.5], np.float32) if order == 1 else np.linalg.solve(r, b).astype(np.float32)
        base = (s_s / s_r) * self._last_sample - alpha_s * np.expm1(-h) * m0
        correction = _combine(rhos[:-1], d1s) + rhos[-1] * (data - m0)
        return base - alpha_s * b_h * correction

    def add_noise(self, original: np.ndarray, noise: np.ndarray, step_index: int = 0) -> np.ndarray:
        """x = α x_0 + s ε at step `step_index`."""
        alpha, s = _alpha_sigma(self.sigmas[step_index])
        return alpha * np.asarray(original, np.float32) + s * np.asarray(noise, np.float32)


def _combine(weights: np.ndarray, differences: list[np.ndarray]) -> np.ndarray | np.float32:
    """Σ_k w_k D1_k (0 when there are none)."""
    total: np.ndarray | np.float32 = np.float32(0)
    for weight, difference in zip(weights, differences, strict=True):
        total = total + weight * difference
    return total
