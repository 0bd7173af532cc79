"""The ``trend`` rule: hand-worked steps, a literal reference, and the behaviour it promises.

Noise models of the synthetic streams (no training anywhere in this file):

- lognormal: f_t = trend_t * exp(sigma * z_t), z_t ~ N(0, 1) iid;
- uniform:   f_t = trend_t * (1 + a * u_t),    u_t ~ U(-1, 1) iid.

Every stochastic check runs over several fixed seeds (``SEEDS``).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eve_scheduler import LossFeedbackScheduler
from eve_scheduler.core import TrendRule, TrendState, make_rule, simulate, simulate_states
from eve_scheduler.core.trend import mean_age, trend_noise

SEEDS = range(6)
DEFAULTS = TrendRule()


def lognormal(sigma: float) -> Callable[[random.Random], float]:
    return lambda rng: math.exp(sigma * rng.gauss(0.0, 1.0))


def uniform(a: float) -> Callable[[random.Random], float]:
    return lambda rng: 1.0 + a * rng.uniform(-1.0, 1.0)


def stream(
    trend: Callable[[int], float], noise: Callable[[random.Random], float], n: int, seed: int
) -> list[float]:
    """f_t = trend(t) * noise_t for t = 0 .. n-1."""
    rng = random.Random(seed)
    return [trend(t) * noise(rng) for t in range(n)]


# -- a slow, literal reference written from docs/rules.md ---------------------------------


def reference_factors(losses: list[float], **hparams: float) -> list[float]:
    """The rule as docs/rules.md writes it, with explicit weighted sums over the history.

    O(T^2); every EMA is written as its sum of weights times values, every mean age
    as sum(k * w_k), the trend's noise as sqrt(sum((w_fast_k - w_slow_k)^2)) / gap.
    """
    p = {**_defaults(), **hparams}
    b1, b2, h, z0 = p["beta_fast"], p["beta_slow"], p["clip"], p["z0"]
    low, high = math.log(p["f_min"]), math.log(p["f_max"])
    xs: list[float] = []  # clipped log-losses, oldest first
    errors: list[float] = []  # clipped forecast errors, oldest first
    first = math.nan
    brake = log_factor = 0.0
    out = []

    def weights(beta: float, n: int) -> list[float]:  # by age k = 0 .. n-1
        return [(1 - beta) * beta**k / (1 - beta**n) for k in range(n)]

    def fit() -> tuple[float, float, float, float]:
        n = len(xs)
        w1, w2 = weights(b1, n), weights(b2, n)
        a_hat = sum(w * xs[n - 1 - k] for k, w in enumerate(w1))
        b_hat = sum(w * xs[n - 1 - k] for k, w in enumerate(w2))
        m = len(errors)
        noise = (
            math.inf
            if m == 0
            else math.sqrt(
                sum(w * errors[m - 1 - k] ** 2 for k, w in enumerate(weights(b2, m)))
                + p["eps"] ** 2
            )
        )
        if n == 1:
            return a_hat, 0.0, noise, 0.0
        age1 = sum(k * w for k, w in enumerate(w1))
        age2 = sum(k * w for k, w in enumerate(w2))
        trend = (b_hat - a_hat) / (age2 - age1)
        u = math.sqrt(sum((x - y) ** 2 for x, y in zip(w1, w2, strict=True))) / (age2 - age1)
        return a_hat - trend * age1, trend, noise, trend / (noise * u)

    for f in losses:
        if not (math.isfinite(f) and f > p["f_star"]):
            if out:
                out.append(out[-1])
            else:
                out.append(1.0)
            continue
        x = math.log(f - p["f_star"])
        if not xs:
            first = x
        else:
            level, trend, noise, _ = fit()
            error = x - (level - trend)
            if len(errors) >= 4:  # clipped once the noise rests on 4 errors
                error = max(-h * noise, min(h * noise, error))
            errors.append(error)
            x = level - trend + error
        xs.append(x)
        level, _, noise, z = fit()
        drop = (first - level) / noise if len(xs) >= 2 else 0.0
        close = p["eta"] * max(0.0, min(4.0, 4 * (-z - z0) / z0))  # significant rise
        stall = p["eta"] * max(0.0, min(1.0, (z0 - z) / z0)) if drop > z0 else 0.0
        move = -(close + stall) if close + stall > 0 else p["eta"] / 4  # else reopen
        brake = max(low, min(0.0, brake + move))
        opening = max(0.0, min(high, p["gain"] * (z - z0)))
        target = max(low, min(high, opening + brake))
        log_factor += max(-p["max_step"], min(p["max_step"], target - log_factor))
        out.append(math.exp(log_factor))
    return out


def _defaults() -> dict[str, float]:
    return {
        "beta_fast": 0.98,
        "beta_slow": 0.99,
        "clip": 3.0,
        "z0": 4.0,
        "gain": 0.05,
        "eta": 0.005,
        "max_step": 0.1,
        "f_min": 0.05,
        "f_max": 10.0,
        "eps": 1e-3,
        "f_star": 0.0,
    }


def test_reference_defaults_are_the_rule_defaults() -> None:
    assert {name: getattr(DEFAULTS, name) for name in _defaults()} == _defaults()


# -- hand-worked steps ----------------------------------------------------------------


def test_first_loss_gives_the_neutral_factor() -> None:
    rule = TrendRule()
    state = rule.update(rule.init(), 5.0)
    # x_1 = log 5; a_1 = 0.02 log 5, b_1 = 0.01 log 5; no forecast error yet; g_1 = 0
    assert state._replace(a=0.0, b=0.0) == TrendState(t=1, first=math.log(5.0))
    assert (state.a, state.b) == pytest.approx((0.02 * math.log(5.0), 0.01 * math.log(5.0)))
    assert rule.factor(rule.init()) == rule.factor(state) == 1.0


def test_two_losses_hand_worked() -> None:
    # x = log f: 0, -1. With two values any pair of bias-corrected EMAs gives the exact
    # line: a_hat = -1 / (1 + b1), b_hat = -1 / (1 + b2), mean ages b / (1 + b), so
    # trend = (b_hat - a_hat) / (L2 - L1) = 1 per step and level = a_hat - L1 = -1.
    # The first forecast error is x_2 - x_1 = -1 (never clipped): noise = sqrt(1 + eps^2).
    # Weight differences are +-(L2 - L1), so u(2) = sqrt(2): z = 1 / (sqrt(2) * noise).
    # drop = (x_1 - level) / noise = 1 / noise.
    rule = TrendRule(z0=0.5, gain=1.0)
    state = simulate_states([1.0, math.exp(-1.0)], rule="trend", z0=0.5, gain=1.0)[1]
    fit = rule.fit(state)
    noise = math.sqrt(1.0 + 1e-6)
    assert fit.trend == pytest.approx(1.0, rel=1e-9)
    assert fit.level == pytest.approx(-1.0, rel=1e-9)
    assert fit.noise == pytest.approx(noise, rel=1e-12)
    assert fit.z == pytest.approx(1 / (math.sqrt(2) * noise), rel=1e-9)
    assert fit.drop == pytest.approx(1 / noise, rel=1e-9)
    # opening = 1.0 * (0.7071 - 0.5) = 0.2071. Brake: no rise (z > -z0), and although
    # drop = 0.9999995 > z0 = 0.5, z > z0 is no stall, so it reopens by eta / 4 and
    # stays at its ceiling 0. target = 0.2071, but g moves at most max_step = 0.1.
    assert state.brake == 0.0
    assert state.log_factor == 0.1
    assert rule.factor(state) == math.exp(0.1)


def test_one_transition_in_the_order_of_the_equations() -> None:
    # l_1 = x_1 exactly (not a_1 / (1 - beta1), which can differ in the last bit), and
    # q_t = beta2 * q_{t-1} + (1 - beta2) * et_t^2 with et_t^2 rounded first
    first = 1.0150451354062187  # a_1 / (1 - beta1) != log(first) for this one
    rule = TrendRule()
    state = simulate_states([first], rule="trend")[0]
    assert state.a / (1.0 - 0.98) != math.log(first)
    assert rule.fit(state).level == math.log(first)
    state = simulate_states([first, 0.3], rule="trend")[1]
    error = math.log(2.5) - (rule.fit(state).level - rule.fit(state).trend)  # not clipped
    beta2 = 0.99
    expected = beta2 * state.q + (1 - beta2) * (error * error)
    assert beta2 * state.q + (1 - beta2) * error * error != expected  # the order matters
    assert rule.update(state, 2.5).q == expected


@pytest.mark.parametrize(
    ("beta_fast", "beta_slow"), [(0.98, 0.99), (0.989, 0.99), (0.9989, 0.9999), (0.0, 0.5)]
)
def test_a_constant_loss_leaves_the_factor_at_one_down_to_the_lowest_eps(
    beta_fast: float, beta_slow: float
) -> None:
    # the EMAs of a constant log-loss round to a trend of about |log f| * 1e-16 per step:
    # the noise floor, at its lowest, keeps that far below the threshold z0
    rule = TrendRule(beta_fast=beta_fast, beta_slow=beta_slow, eps=1e-6)
    for loss in [5e-324, 3.7e-240, 0.37, 5.6, 1.7e308]:
        state = rule.init()
        for _ in range(5000):
            state = rule.update(state, loss)
            assert abs(rule.fit(state).z) < 1.0, loss
        assert rule.factor(state) == 1.0, loss


def test_a_residual_is_clipped_once_the_noise_rests_on_four_errors() -> None:
    # x = 0, -1, ..., -5 is a line: the first forecast error is -1 (the forecast of step
    # 2 is x_1, with no trend yet), every later one is 0, since bias-corrected EMAs of a
    # line give the line back. After step 6 the noise rests on 5 errors:
    #   q_6 = b2^4 (1 - b2) * 1,  sigma_6 = sqrt(q_6 / (1 - b2^5) + eps^2).
    # Step 7 brings x = +50 against the forecast -6: error 56, clipped to 3 sigma_6.
    line = [math.exp(-k) for k in range(6)]
    rule = TrendRule()
    states = simulate_states([*line, math.exp(50.0)], rule="trend")
    q_6 = 0.99**4 * 0.01
    sigma_6 = math.sqrt(q_6 / (1 - 0.99**5) + 1e-6)
    assert states[5].q == pytest.approx(q_6, rel=1e-9)
    assert rule.fit(states[5]).noise == pytest.approx(sigma_6, rel=1e-9)
    assert rule.fit(states[5]).level == pytest.approx(-5.0, rel=1e-9)
    clipped = -6.0 + 3.0 * sigma_6
    assert states[6].q == pytest.approx(0.99 * q_6 + 0.01 * (3.0 * sigma_6) ** 2, rel=1e-9)
    assert states[6].a == pytest.approx(0.98 * states[5].a + 0.02 * clipped, rel=1e-12)
    assert states[6].b == pytest.approx(0.99 * states[5].b + 0.01 * clipped, rel=1e-12)
    # before that, nothing is clipped: x = 0 then +50 enters as it is
    early = simulate_states([1.0, math.exp(50.0)], rule="trend")[1]
    assert early.q == pytest.approx(0.01 * 50.0**2, rel=1e-12)


def test_mean_age_and_trend_noise_match_explicit_sums() -> None:
    for b1, b2 in [(0.0, 0.5), (0.9, 0.99), (0.98, 0.99), (0.5, 0.999)]:
        for n in [2, 3, 10, 250, 5000]:
            w1 = [(1 - b1) * b1**k / (1 - b1**n) for k in range(n)]
            w2 = [(1 - b2) * b2**k / (1 - b2**n) for k in range(n)]
            age1 = sum(k * w for k, w in enumerate(w1))
            age2 = sum(k * w for k, w in enumerate(w2))
            assert mean_age(b1, n) == pytest.approx(age1, rel=1e-9, abs=1e-12)
            assert mean_age(b2, n) == pytest.approx(age2, rel=1e-9, abs=1e-12)
            explicit = math.sqrt(sum((x - y) ** 2 for x, y in zip(w1, w2, strict=True))) / (
                age2 - age1
            )
            assert trend_noise(b1, b2, n) == pytest.approx(explicit, rel=1e-7)


# -- agreement with the literal reference over long random streams ---------------------


@pytest.mark.parametrize(
    "hparams",
    [
        {},
        {"beta_fast": 0.9, "beta_slow": 0.95, "z0": 2.0, "gain": 0.3, "eta": 0.05},
        {"f_star": -2.0, "clip": 1.5, "eta": 0.02, "max_step": 0.02, "f_min": 0.3},
        {"beta_fast": 0.0, "beta_slow": 0.9, "eps": 1e-6, "f_max": 2.0},
    ],
)
def test_agrees_with_the_literal_reference(hparams: dict[str, float]) -> None:
    for seed in range(3):
        rng = random.Random(seed)
        # a descent, a plateau, a rise, spikes and unusable losses, 300 steps
        losses = []
        for t in range(300):
            level = 3.0 * 0.99 ** min(t, 120) * (1.002 ** max(t - 220, 0))
            f = level * math.exp(0.2 * rng.gauss(0.0, 1.0))
            if rng.random() < 0.02:
                f *= 20.0
            if rng.random() < 0.01:
                f = rng.choice([math.nan, math.inf, -1.0])
            losses.append(f)
        got = simulate(losses, rule="trend", **hparams)
        assert got == pytest.approx(reference_factors(losses, **hparams), rel=1e-9)


# -- the behaviour the issue asks for --------------------------------------------------


def test_clean_descent_opens_the_factor_within_50_steps() -> None:
    # f_t = 0.99^t, no noise: 0.9 of f_max within 50 steps, for several f_max
    for f_max in [2.0, 10.0, 30.0]:
        factors = simulate([0.99**t for t in range(50)], rule="trend", f_max=f_max)
        assert max(factors) >= 0.9 * f_max, f_max


@pytest.mark.parametrize("noise", [lognormal(0.3), uniform(0.3)], ids=["lognormal", "uniform"])
def test_pure_noise_keeps_the_factor_neutral(noise: Callable[[random.Random], float]) -> None:
    # no trend, 30% multiplicative noise: within 10% of 1 at every step after a burn-in
    # of 10 steps, over 3,000 steps, on every seed; at any scale of the loss
    burn_in = 10
    for seed in SEEDS:
        losses = stream(lambda t: 2.5, noise, 3000, seed)
        factors = simulate(losses, rule="trend")
        worst = max(abs(f - 1.0) for f in factors[burn_in:])
        assert worst <= 0.1, (seed, worst)


def test_spike_in_a_clean_descent_is_forgotten_within_200_steps() -> None:
    # f_t = 0.99^t with f_300 x 10: within 10% of the pre-spike factor from step 500 on
    losses = [0.99**t * (10.0 if t == 300 else 1.0) for t in range(1000)]
    factors = simulate(losses, rule="trend")
    before = factors[299]
    assert all(abs(f / before - 1.0) <= 0.1 for f in factors[500:])


def test_spike_in_a_noisy_descent_is_forgotten_within_200_steps() -> None:
    # 0.3%-per-step descent under 10% lognormal noise, x10 spike at step 400: compare
    # the factor with the same stream without the spike, from step 600 on
    for seed in SEEDS:
        clean = stream(lambda t: 0.997**t, lognormal(0.1), 1200, seed)
        spiked = [f * (10.0 if t == 400 else 1.0) for t, f in enumerate(clean)]
        a, b = simulate(clean, rule="trend"), simulate(spiked, rule="trend")
        assert all(abs(y / x - 1.0) <= 0.1 for x, y in zip(a[600:], b[600:], strict=True)), seed


def test_steady_rise_under_noise_closes_the_factor() -> None:
    # 0.1%-per-step rise under 1% lognormal noise: below 0.5 within 500 steps
    for seed in SEEDS:
        losses = stream(lambda t: 1.001**t, lognormal(0.01), 500, seed)
        factors = simulate(losses, rule="trend")
        assert min(factors) < 0.5, seed


def test_a_stall_after_real_progress_lowers_the_factor() -> None:
    # 1%-per-step descent for 300 steps, then flat, under 10% lognormal noise: the factor
    # is at f_max during the descent and below 0.5 after 700 steps of plateau (careful
    # late), while the same plateau without the descent stays neutral (pure-noise test)
    for seed in SEEDS:
        losses = stream(lambda t: 0.99 ** min(t, 300), lognormal(0.1), 1000, seed)
        factors = simulate(losses, rule="trend")
        assert factors[299] == pytest.approx(DEFAULTS.f_max)
        assert factors[-1] < 0.5, seed


def test_the_brake_remembers_a_rise_and_reopens_slowly() -> None:
    # 0.2%-per-step rise for 300 steps, then flat, under 5% noise: the factor falls to
    # f_min, is still below 0.5 1,200 steps after the rise ended, and is back within 10%
    # of neutral after 2,700 (the brake reopens by eta / 4 = 0.00125 per step)
    for seed in SEEDS:
        losses = stream(lambda t: 1.002 ** min(t, 300), lognormal(0.05), 3000, seed)
        factors = simulate(losses, rule="trend")
        assert min(factors[:400]) == pytest.approx(DEFAULTS.f_min)
        assert factors[1500] < 0.5, seed
        assert abs(factors[-1] - 1.0) <= 0.1, seed


def test_factor_is_scale_invariant_and_shift_invariant_with_f_star() -> None:
    for seed in SEEDS:
        losses = stream(lambda t: 0.995**t, lognormal(0.1), 600, seed)
        factors = simulate(losses, rule="trend")
        scaled = simulate([37.0 * f for f in losses], rule="trend")
        shifted = simulate([f + 100.0 for f in losses], rule="trend", f_star=100.0)
        assert scaled == pytest.approx(factors, rel=1e-9)
        assert shifted == pytest.approx(factors, rel=1e-9)


def test_trend_z_score_is_standard_normal_under_pure_noise() -> None:
    # the standard error of the trend is right: z ~ N(0, 1) under iid noise (checked at
    # t = 400 over 300 streams: mean within 0.2, standard deviation within [0.85, 1.15])
    rule = TrendRule()
    zs = []
    for seed in range(300):
        state = rule.init()
        for f in stream(lambda t: 1.0, lognormal(0.3), 400, seed):
            state = rule.update(state, f)
        zs.append(rule.fit(state).z)
    mean = sum(zs) / len(zs)
    sd = math.sqrt(sum((z - mean) ** 2 for z in zs) / (len(zs) - 1))
    assert abs(mean) < 0.2
    assert 0.85 < sd < 1.15


# -- invariants over arbitrary streams ----------------------------------------------------

loss_values = st.one_of(
    st.floats(min_value=1e-30, max_value=1e30),
    st.floats(min_value=-30.0, max_value=30.0).map(lambda e: 10.0**e),
)


@settings(max_examples=100, deadline=None)
@given(losses=st.lists(loss_values, min_size=1, max_size=80))
def test_factor_stays_in_its_range_and_moves_by_at_most_max_step(losses: list[float]) -> None:
    rule = TrendRule()
    previous = 0.0
    for state in simulate_states(losses, rule="trend"):
        assert all(math.isfinite(v) for v in state[1:])
        assert DEFAULTS.f_min <= rule.factor(state) <= DEFAULTS.f_max
        assert math.log(DEFAULTS.f_min) <= state.brake <= 0.0
        assert abs(state.log_factor - previous) <= DEFAULTS.max_step * (1 + 1e-12)
        previous = state.log_factor


@pytest.mark.parametrize(
    ("losses", "hparams", "bound"),
    [
        ([0.99**t for t in range(60)], {}, 10.0),  # exp(log 10) = 10.000000000000002
        ([0.99**t for t in range(60)], {"f_max": 3.0}, 3.0),
        ([1.01**t for t in range(400)], {"f_min": 0.03}, 0.03),  # exp(log 0.03) < 0.03
    ],
)
def test_the_factor_reaches_its_bounds_exactly(
    losses: list[float], hparams: dict[str, float], bound: float
) -> None:
    assert math.exp(math.log(bound)) != bound  # what the clip is for
    assert simulate(losses, rule="trend", **hparams)[-1] == bound


def test_beta_fast_at_its_documented_bound_is_accepted() -> None:
    # 0.5003 - 0.001 is 0.49929999999999997 in floating point
    assert make_rule("trend", beta_slow=0.5003, beta_fast=0.4993).beta_fast == 0.4993
    with pytest.raises(ValueError, match=r"beta_fast must be in \[0, 0.4993\]"):
        make_rule("trend", beta_slow=0.5003, beta_fast=0.49931)


# -- hyper-parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("beta_slow", 1.0, r"beta_slow must be in \[0.5, 0.9999\], got beta_slow=1.0"),
        ("beta_slow", 0.4, r"beta_slow must be in \[0.5, 0.9999\]"),
        ("beta_fast", 0.9895, r"beta_fast must be in \[0, 0.989\], got beta_fast=0.9895"),
        ("beta_fast", -0.1, r"beta_fast must be in \[0, 0.989\]"),
        ("clip", 0.0, r"clip must be in \(0, inf\)"),
        ("z0", -1.0, r"z0 must be in \(0, inf\)"),
        ("gain", -0.1, r"gain must be in \[0, inf\)"),
        ("eta", 1.5, r"eta must be in \[0, 1\]"),
        ("max_step", 0.0, r"max_step must be in \(0, inf\)"),
        ("f_min", 0.0, r"f_min must be in \(0, 1\]"),
        ("f_min", 1.5, r"f_min must be in \(0, 1\]"),
        ("f_max", 0.5, r"f_max must be in \[1, inf\)"),
        ("eps", 0.0, r"eps must be in \[1e-06, 1e\+100\]"),
        ("eps", 1e-7, r"eps must be in \[1e-06"),  # below the rounding of the EMAs
        ("eps", 1e200, r"eps must be in \[1e-06"),  # eps**2 would overflow
        ("f_star", math.inf, r"f_star must be in \(-inf, inf\)"),
        ("z0", math.nan, r"z0 must be in"),
        ("gain", "1", r"gain must be a real number"),
    ],
)
def test_bad_hyper_parameters_are_rejected(name: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_rule("trend", **{name: value})  # type: ignore[arg-type]


# -- through the torch scheduler ----------------------------------------------------------


def _losses(n: int) -> list[float]:
    return stream(lambda t: 2.0 * 0.995**t + 0.1, lognormal(0.2), n, 7)


def test_scheduler_applies_the_trend_factor() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = LossFeedbackScheduler(opt, rule="trend", f_max=4.0)
    assert scheduler.get_last_lr() == [0.1]  # neutral before any loss
    losses = _losses(300)
    for loss in losses:
        scheduler.step(loss)
    assert scheduler.factor == simulate(losses, rule="trend", f_max=4.0)[-1]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * scheduler.factor, rel=1e-15)


def test_scheduler_checkpoint_resumes_bit_for_bit() -> None:
    def fresh() -> tuple[torch.optim.Optimizer, LossFeedbackScheduler]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, LossFeedbackScheduler(opt, rule="trend")

    losses = _losses(400)
    opt, unbroken = fresh()
    expected = []
    for loss in losses:
        unbroken.step(loss)
        expected.append(opt.param_groups[0]["lr"])

    opt, first = fresh()
    for loss in losses[:250]:
        first.step(loss)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    opt, resumed = fresh()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    got = []
    for loss in losses[250:]:
        resumed.step(loss)
        got.append(opt.param_groups[0]["lr"])
    assert got == expected[250:]
