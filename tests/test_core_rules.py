"""The pure-math core: hand-worked sequences, one transition, and the literal reference."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest
from reference import eve_sequences, factors, seed_sequences, usable

from eve_scheduler.core import (
    EveRule,
    EveState,
    SeedRule,
    SeedState,
    is_usable,
    make_rule,
    simulate,
    simulate_states,
)

REL = 1e-12


def run_in_a_fresh_interpreter(code: str) -> None:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_core_imports_no_torch() -> None:
    run_in_a_fresh_interpreter(
        "import eve_scheduler.core, sys; assert 'torch' not in sys.modules, 'torch imported'"
    )


def test_star_import_works_without_lightning() -> None:
    # A torch-only install: Lightning cannot be imported, so EveCallback is not exported.
    run_in_a_fresh_interpreter(
        "import sys\n"
        "for name in ('lightning', 'lightning.pytorch', 'pytorch_lightning'):\n"
        "    sys.modules[name] = None\n"
        "from eve_scheduler import *\n"
        "assert LossFeedbackScheduler.__name__ == 'LossFeedbackScheduler'\n"
        "assert 'EveCallback' not in dir()\n"
    )


def test_star_import_exports_every_name_with_lightning() -> None:
    run_in_a_fresh_interpreter(
        "import eve_scheduler\n"
        "from eve_scheduler import *\n"
        "assert 'EveCallback' in eve_scheduler.__all__\n"
        "imported = dir()\n"
        "assert all(name in imported for name in eve_scheduler.__all__)\n"
    )


# -- hand-worked first steps --------------------------------------------------------


def test_seed_hand_worked_descent() -> None:
    # losses 4, 2, 1 with beta = 0.9, gamma = 0.99, k = 1, eps = 1e-8
    states = simulate_states([4.0, 2.0, 1.0])
    # t = 1: r = 1, d = 0.9 * 1 + 0.1 * 1 = 1, v = 0.01 * (1 - 1)^2 = 0, factor = sigmoid(0)
    assert states[0] == SeedState(t=1, prev_loss=4.0, d=1.0, v=0.0)
    # t = 2: r = 4 / 2 = 2, d = 0.9 * 1 + 0.1 * 2 = 1.1, v = 0.99 * 0 + 0.01 * (2 - 1.1)^2 = 0.0081
    assert states[1].d == pytest.approx(1.1, rel=REL)
    assert states[1].v == pytest.approx(0.0081, rel=REL)
    # t = 3: r = 2 / 1 = 2, d = 0.9 * 1.1 + 0.1 * 2 = 1.19,
    #        v = 0.99 * 0.0081 + 0.01 * (2 - 1.19)^2 = 0.008019 + 0.006561 = 0.01458
    assert states[2].d == pytest.approx(1.19, rel=REL)
    assert states[2].v == pytest.approx(0.01458, rel=REL)
    assert [s.t for s in states] == [1, 2, 3]
    assert [s.prev_loss for s in states] == [4.0, 2.0, 1.0]
    # factor_t = 1 / (1 + exp(-(d_t - 1) / sqrt(v_t + 1e-8)))
    expected = [
        0.5,
        1 / (1 + math.exp(-0.1 / math.sqrt(0.0081 + 1e-8))),  # score 1.1111, factor 0.7523
        1 / (1 + math.exp(-0.19 / math.sqrt(0.01458 + 1e-8))),  # score 1.5735, factor 0.8283
    ]
    assert simulate([4.0, 2.0, 1.0]) == pytest.approx(expected, rel=REL)
    assert simulate([4.0, 2.0, 1.0])[1:] == pytest.approx([0.752336, 0.828286], abs=1e-6)


def test_seed_second_factor_depends_only_on_the_sign_of_the_first_change() -> None:
    # losses 1, 2: r = 0.5, d = 0.9 + 0.05 = 0.95, v = 0.01 * 0.45^2 = 0.002025
    # score = -0.05 / sqrt(0.002025 + 1e-8) = -1.1111, factor = 0.2477 (no bias correction)
    rise = simulate([1.0, 2.0])[1]
    assert rise == pytest.approx(1 / (1 + math.exp(0.05 / math.sqrt(0.002025 + 1e-8))), rel=REL)
    # any fall gives 1 - that: score = +(1 - beta)(r - 1) / (sqrt(1 - gamma) beta (r - 1))
    for drop in [1.5, 3.0, 100.0]:
        assert simulate([drop, 1.0])[1] == pytest.approx(1 - rise, rel=1e-5)


def test_seed_hand_worked_with_f_star_and_other_hparams() -> None:
    # f_star = -1: r_2 = (3 - (-1)) / (1 - (-1)) = 2, as for losses 4, 2 with f_star = 0
    # beta = 0.5: d_2 = 0.5 * 1 + 0.5 * 2 = 1.5; gamma = 0.5: v_2 = 0.5 * (2 - 1.5)^2 = 0.125
    # k = 2: factor = sigmoid(2 * 0.5 / sqrt(0.125 + 1e-8))
    hparams = {"f_star": -1.0, "beta": 0.5, "gamma": 0.5, "k": 2.0}
    state = simulate_states([3.0, 1.0], **hparams)[1]
    assert (state.d, state.v) == pytest.approx((1.5, 0.125), rel=REL)
    expected = 1 / (1 + math.exp(-2 * 0.5 / math.sqrt(0.125 + 1e-8)))
    assert simulate([3.0, 1.0], **hparams)[1] == pytest.approx(expected, rel=REL)


def test_seed_plateau_holds_one_half_and_clean_descent_goes_to_one() -> None:
    # constant loss: r = 1 for ever, so d = 1, v = 0, score = 0, factor = 0.5 exactly
    assert simulate([3.0] * 50) == [0.5] * 50
    # f_t = 0.99^t: r = 1 / 0.99 for ever, d -> r, v -> 0, the score grows without bound
    assert simulate([0.99**t for t in range(300)])[-1] > 0.999


def test_eve_hand_worked() -> None:
    # losses 10, 5, 4.9, 100 with c = 10, beta3 = 0.999
    states = simulate_states([10.0, 5.0, 4.9, 100.0], rule="eve")
    d_tilde = [s.d_tilde for s in states]
    # t = 1: dtilde = 1
    # t = 2: d = |5 - 10| / min(5, 10) = 1, dhat = 1, dtilde = 0.999 * 1 + 0.001 * 1 = 1
    # t = 3: d = 0.1 / 4.9 = 0.0204 < 1/c, dhat = 0.1, dtilde = 0.999 + 0.0001 = 0.9991
    # t = 4: d = 95.1 / 4.9 = 19.4 > c, dhat = 10, dtilde = 0.999 * 0.9991 + 0.01 = 1.0081009
    assert d_tilde == pytest.approx([1.0, 1.0, 0.9991, 1.0081009], rel=REL)
    expected = [1.0, 1.0, 1 / 0.9991, 1 / 1.0081009]
    assert simulate([10.0, 5.0, 4.9, 100.0], rule="eve") == pytest.approx(expected, rel=REL)


def test_eve_hand_worked_with_f_star() -> None:
    # f_star = 2, beta3 = 0.5, c = 10; losses 6, 4, 3, 5, 2.5
    # t = 2: d = 2 / (4 - 2) = 1,       dtilde = 0.5 * 1 + 0.5 * 1 = 1
    # t = 3: d = 1 / (3 - 2) = 1,       dtilde = 1
    # t = 4: d = 2 / (3 - 2) = 2,       dtilde = 0.5 * 1 + 0.5 * 2 = 1.5
    # t = 5: d = 2.5 / (2.5 - 2) = 5,   dtilde = 0.5 * 1.5 + 0.5 * 5 = 3.25
    losses = [6.0, 4.0, 3.0, 5.0, 2.5]
    got = simulate(losses, rule="eve", f_star=2.0, beta3=0.5)
    assert got == pytest.approx([1.0, 1.0, 1.0, 1 / 1.5, 1 / 3.25], rel=REL)


def test_eve_small_changes_follow_the_loss_independent_ramp() -> None:
    # relative changes below 1/c clip to 1/c, so dtilde_t = 1/c + (1 - 1/c) beta3^(t - 1)
    rng = random.Random(3)
    losses = [1.0]
    for _ in range(1499):
        losses.append(losses[-1] * (1 + rng.uniform(-0.05, 0.05)))
    got = simulate(losses, rule="eve")
    ramp = [1 / (0.1 + 0.9 * 0.999 ** (t - 1)) for t in range(1, 1501)]
    assert got == pytest.approx(ramp, rel=1e-9)
    assert got[999] == pytest.approx(2.3, abs=0.05)  # "2.3 x base at step 1,000"


# -- one transition on a hand-built state ------------------------------------------


def test_seed_one_transition() -> None:
    rule = SeedRule(beta=0.5, gamma=0.5, k=2.0, eps=1e-8)
    state = SeedState(t=5, prev_loss=2.0, d=1.2, v=0.04)
    new = rule.update(state, 1.0)
    # r = 2 / 1 = 2, d = 0.5 * 1.2 + 0.5 * 2 = 1.6, v = 0.5 * 0.04 + 0.5 * (2 - 1.6)^2 = 0.1
    assert new.t == 6
    assert new.prev_loss == 1.0
    assert (new.d, new.v) == pytest.approx((1.6, 0.1), rel=REL)
    # factor = sigmoid(2 * (1.6 - 1) / sqrt(0.1 + 1e-8))
    expected = 1 / (1 + math.exp(-2 * 0.6 / math.sqrt(0.1 + 1e-8)))
    assert rule.factor(new) == pytest.approx(expected, rel=REL)
    assert state == SeedState(t=5, prev_loss=2.0, d=1.2, v=0.04)  # the input is not changed


def test_seed_one_transition_with_f_star() -> None:
    rule = SeedRule(f_star=0.5)
    new = rule.update(SeedState(t=1, prev_loss=2.5, d=1.0, v=0.0), 1.5)
    # r = (2.5 - 0.5) / (1.5 - 0.5) = 2, d = 0.9 + 0.2 = 1.1, v = 0.01 * 0.9^2 = 0.0081
    assert (new.d, new.v) == pytest.approx((1.1, 0.0081), rel=REL)


def test_eve_one_transition() -> None:
    rule = EveRule(c=10.0, beta3=0.5)
    state = EveState(t=3, prev_loss=4.0, d_tilde=2.0)
    new = rule.update(state, 5.0)
    # d = |5 - 4| / (min(5, 4) - 0) = 0.25, inside [0.1, 10]; dtilde = 0.5 * 2 + 0.5 * 0.25
    assert new == EveState(t=4, prev_loss=5.0, d_tilde=1.125)
    assert rule.factor(new) == pytest.approx(1 / 1.125, rel=REL)
    # clipped from above: d = |1 - 4| / 1 = 3 > c = 2, dhat = 2, dtilde = 0.5 * 2 + 0.5 * 2
    assert EveRule(c=2.0, beta3=0.5).update(state, 1.0).d_tilde == 2.0


def test_factor_of_the_initial_state() -> None:
    # before any loss: d_0 = 1, v_0 = 0 gives sigmoid(0) = 0.5; dtilde_0 = 1 gives 1
    assert SeedRule().factor(SeedRule().init()) == 0.5
    assert EveRule().factor(EveRule().init()) == 1.0
    # at t = 1 too: r_1 = 1 keeps d = 1, v = 0 (seed); dtilde_1 = 1 (eve)
    for beta in [0.0, 0.1, 0.3, 0.7, 0.95]:
        assert simulate([7.0], beta=beta) == [0.5]
    assert simulate([7.0], rule="eve") == [1.0]


# -- skipped losses ------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["seed", "eve"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0.0, -1.0, 0.5])
def test_simulate_skips_unusable_losses(rule: str, bad: float) -> None:
    f_star = 0.5 if bad == 0.5 else 0.0  # 0.5 is then exactly at the bound
    losses = [3.0, 2.0, bad, 1.5, bad, bad, 1.0]
    states = simulate_states(losses, rule=rule, f_star=f_star)
    assert states[2] == states[1]
    assert states[4] == states[5] == states[3]
    assert states[-1].t == 4
    clean = simulate([3.0, 2.0, 1.5, 1.0], rule=rule, f_star=f_star)
    got = simulate(losses, rule=rule, f_star=f_star)
    assert got == [clean[0], clean[1], clean[1], clean[2], clean[2], clean[2], clean[3]]


def test_is_usable() -> None:
    assert is_usable(1e-300)
    assert is_usable(-0.5, f_star=-1.0)
    for bad in [0.0, -0.0, -1.0, math.nan, math.inf, -math.inf]:
        assert not is_usable(bad)
    assert not is_usable(2.0, f_star=2.0)


def test_simulate_starts_empty_and_accepts_ints_and_generators() -> None:
    assert simulate([]) == []
    assert simulate_states([], rule="eve") == []
    assert simulate(x for x in [4, 2, 1]) == simulate([4.0, 2.0, 1.0])


# -- agreement with the literal reference over long random streams -------------------


def _streams() -> dict[str, tuple[list[float], float]]:
    """Named random loss streams, each with the f_star to use: 12,500 losses in all."""
    rng = random.Random(20240611)
    n = 2500
    noisy_descent = [math.exp(-t / 700) * (1 + 0.2 * rng.gauss(0, 1) ** 2) for t in range(n)]
    rising = [1 + t / 500 + 0.01 * rng.random() for t in range(n)]
    spikes = [
        (10.0 if rng.random() < 0.01 else 1.0) * 0.999**t * (1 + 0.01 * rng.random())
        for t in range(n)
    ]
    # negative log-likelihood style: bounded below by -3, some values at or below it,
    # plus NaN and +-inf sprinkled in (all skipped)
    shifted: list[float] = []
    for t in range(n):
        u = rng.random()
        if u < 0.01:
            shifted.append(rng.choice([math.nan, math.inf, -math.inf, -3.0, -4.5]))
        else:
            shifted.append(-3.0 + 2.0 * math.exp(-t / 900) + 0.05 * rng.random())
    decades = [10 ** rng.uniform(-30, 30) for _ in range(n)]
    return {
        "noisy_descent": (noisy_descent, 0.0),
        "rising": (rising, 0.0),
        "spikes": (spikes, 0.0),
        "shifted": (shifted, -3.0),
        "decades": (decades, 0.0),
    }


STREAMS = _streams()
SEED_HPARAMS = [{}, {"beta": 0.5, "gamma": 0.9, "k": 3.0, "eps": 1e-4}, {"beta": 0.0, "gamma": 0.0}]
EVE_HPARAMS = [{}, {"c": 3.0, "beta3": 0.9}, {"c": 1.0, "beta3": 0.0}]


def test_streams_are_long_and_varied() -> None:
    assert sum(len(losses) for losses, _ in STREAMS.values()) >= 10_000
    decades = STREAMS["decades"][0]
    assert min(decades) < 1e-25 and max(decades) > 1e25
    assert sum(not math.isfinite(x) for x in STREAMS["shifted"][0]) > 5


def _assert_equal(got: list[float], expected: list[float]) -> None:
    assert len(got) == len(expected)
    for t, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a == b, f"step {t}: {a!r} != {b!r}"  # bit for bit


@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize("hparams", SEED_HPARAMS, ids=["default", "other", "zero"])
def test_seed_agrees_with_the_reference(name: str, hparams: dict[str, float]) -> None:
    losses, f_star = STREAMS[name]
    got = simulate(losses, f_star=f_star, **hparams)
    _assert_equal(got, factors(losses, f_star=f_star, **hparams))
    ref = seed_sequences(losses, f_star=f_star, **hparams)
    states = simulate_states(losses, f_star=f_star, **hparams)
    accepted = [s for s, x in zip(states, losses, strict=True) if usable(x, f_star)]
    assert [s.t for s in accepted] == list(range(1, len(ref["d"])))
    _assert_equal([s.d for s in accepted], ref["d"][1:])
    _assert_equal([s.v for s in accepted], ref["v"][1:])
    assert [s.prev_loss for s in accepted] == ref["f"][1:]


@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize("hparams", EVE_HPARAMS, ids=["default", "other", "c_one"])
def test_eve_agrees_with_the_reference(name: str, hparams: dict[str, float]) -> None:
    losses, f_star = STREAMS[name]
    got = simulate(losses, rule="eve", f_star=f_star, **hparams)
    _assert_equal(got, factors(losses, "eve", f_star=f_star, **hparams))
    ref = eve_sequences(losses, f_star=f_star, **hparams)
    states = simulate_states(losses, rule="eve", f_star=f_star, **hparams)
    accepted = [s for s, x in zip(states, losses, strict=True) if usable(x, f_star)]
    assert [s.t for s in accepted] == list(range(1, len(ref["dtilde"])))
    _assert_equal([s.d_tilde for s in accepted], ref["dtilde"][1:])
    assert [s.prev_loss for s in accepted] == ref["f"][1:]


def test_the_reference_is_not_trivially_equal_to_the_code() -> None:
    # a wrong hyper-parameter must show up as a disagreement (the comparison can fail)
    losses = STREAMS["noisy_descent"][0][:200]
    assert simulate(losses, beta=0.8) != pytest.approx(factors(losses), rel=REL)
    assert simulate(losses, rule="eve", c=5.0) != pytest.approx(factors(losses, "eve"), rel=REL)


# -- hyper-parameters -----------------------------------------------------------------


def test_make_rule_builds_the_named_rule_with_plain_floats() -> None:
    import numpy as np

    rule = make_rule("seed", beta=np.float32(0.5), k=2)
    assert rule == SeedRule(beta=0.5, k=2.0)
    assert all(type(getattr(rule, name)) is float for name in ["beta", "gamma", "k", "eps"])
    assert make_rule("eve", c=5) == EveRule(c=5.0)
