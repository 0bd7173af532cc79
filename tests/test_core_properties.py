"""Invariants of the two rules, over arbitrary loss streams and hyper-parameters (hypothesis)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eve_scheduler.core import make_rule, simulate, simulate_states

PROPERTY = settings(max_examples=150, deadline=None)

# Finite positive losses in [1e-30, 1e30]: uniform draws (hypothesis likes the ends)
# and log-uniform draws that spread over the decades.
loss_values = st.one_of(
    st.floats(min_value=1e-30, max_value=1e30),
    st.floats(min_value=-30.0, max_value=30.0).map(lambda e: 10.0**e),
)
loss_streams = st.lists(loss_values, min_size=1, max_size=60)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
seed_hparams = st.fixed_dictionaries(
    {
        "beta": unit,
        "gamma": unit,
        "k": st.floats(min_value=1e-3, max_value=1e3),
        "eps": st.floats(min_value=1e-12, max_value=1.0),
    }
)
eve_hparams = st.fixed_dictionaries({"c": st.floats(min_value=1.0, max_value=1e3), "beta3": unit})
f_stars = st.one_of(st.just(0.0), st.floats(min_value=-1e30, max_value=1e30))
bad_losses = st.sampled_from([math.nan, math.inf, -math.inf])


def _score(state: Any, k: float, eps: float) -> float:
    """The argument of the seed sigmoid, recomputed from a state."""
    return k * (state.d - 1) / math.sqrt(state.v + eps)


@PROPERTY
@given(losses=loss_streams, hparams=seed_hparams)
def test_seed_factor_is_in_the_unit_interval(
    losses: list[float], hparams: dict[str, float]
) -> None:
    # Mathematically the factor is in the open (0, 1). In float64 the sigmoid rounds
    # to exactly 1.0 once the score passes about 37, and to 0.0 below about -745
    # (exp underflows), so only the closed [0, 1] holds for every stream; the open
    # interval holds wherever |score| < 30.
    states = simulate_states(losses, **hparams)
    rule = make_rule("seed", **hparams)
    for state in states:
        factor = rule.factor(state)
        assert 0.0 <= factor <= 1.0
        if abs(_score(state, hparams["k"], hparams["eps"])) < 30:
            assert 0.0 < factor < 1.0


def test_seed_factor_rounds_to_the_ends_for_huge_scores() -> None:
    # the nuance above, shown: beta = gamma = 0 gives v = 0 and a score of (r - 1) / 1e-4
    assert simulate([1.0, 0.5], beta=0.0, gamma=0.0)[-1] == 1.0  # score = 1e4
    assert simulate([1.0, 2.0], beta=0.0, gamma=0.0)[-1] == 0.0  # score = -5e3


@PROPERTY
@given(losses=loss_streams, hparams=eve_hparams)
def test_eve_factor_is_in_its_clip_range(losses: list[float], hparams: dict[str, float]) -> None:
    # factor = 1 / dtilde with dtilde a convex mix of values in [1/c, c]; the range
    # holds exactly, although 1 / (1/c) may round past c (see the next test).
    c = hparams["c"]
    for factor in simulate(losses, rule="eve", **hparams):
        assert 1 / c <= factor <= c


def test_eve_factor_is_clipped_where_one_over_dtilde_rounds_past_c() -> None:
    # beta3 = 0 and a flat loss: dtilde = dhat = 1/c, and for c = 12.25 the float
    # 1 / (1/c) is one unit in the last place above c
    c = 12.25
    assert 1 / (1 / c) > c
    assert simulate([1.0, 1.0, 1.0], rule="eve", c=c, beta3=0.0) == [1.0, c, c]


@PROPERTY
@given(
    losses=st.lists(st.one_of(loss_values, bad_losses), min_size=1, max_size=60),
    f_star=f_stars,
    seed=seed_hparams,
    eve=eve_hparams,
)
def test_state_stays_finite(
    losses: list[float], f_star: float, seed: dict[str, float], eve: dict[str, float]
) -> None:
    for rule, hparams in [("seed", seed), ("eve", eve)]:
        for state in simulate_states(losses, rule=rule, f_star=f_star, **hparams):
            if state.t == 0:  # nothing accepted yet: prev_loss is NaN by design
                state = state._replace(prev_loss=0.0)
            assert all(math.isfinite(x) for x in state), (rule, state)
        assert all(math.isfinite(x) for x in simulate(losses, rule=rule, f_star=f_star, **hparams))


@PROPERTY
@given(
    losses=loss_streams,
    inserts=st.lists(
        st.tuples(st.integers(min_value=0, max_value=60), st.one_of(bad_losses, st.just("bound"))),
        min_size=1,
        max_size=10,
    ),
    f_star=st.floats(min_value=-1e3, max_value=1e-31),
    rule=st.sampled_from(["seed", "eve"]),
)
def test_skipped_losses_leave_the_state_unchanged(
    losses: list[float], inserts: list[tuple[int, Any]], f_star: float, rule: str
) -> None:
    stream: list[float] = list(losses)
    for position, bad in inserts:
        # "bound": a loss at or below f_star (exactly at it, or below it)
        value = (f_star if position % 2 else f_star - 1.0) if bad == "bound" else bad
        stream.insert(min(position, len(stream)), value)
    states = simulate_states(stream, rule=rule, f_star=f_star)
    initial = make_rule(rule, f_star=f_star).init()
    previous = [initial, *states[:-1]]
    for value, before, after in zip(stream, previous, states, strict=True):
        if not (math.isfinite(value) and value > f_star):
            assert after == before
    kept = [s for s, x in zip(states, stream, strict=True) if math.isfinite(x) and x > f_star]
    assert kept == simulate_states(losses, rule=rule, f_star=f_star)


@PROPERTY
@given(losses=loss_streams, power=st.integers(min_value=-20, max_value=20))
def test_both_rules_are_scale_invariant(losses: list[float], power: int) -> None:
    # multiplying every loss by 2^p changes no ratio, bit for bit (f_star = 0)
    scaled = [x * 2.0**power for x in losses]
    assert simulate(scaled) == simulate(losses)
    assert simulate(scaled, rule="eve") == simulate(losses, rule="eve")


@pytest.mark.parametrize(
    ("losses", "f_star"),
    [
        ([1e10, 1e-300, 2e10], 0.0),  # r = 1e310 is not a float: r = d = inf, v = NaN
        ([1e10, 1e-150, 2e10], 0.0),  # r = 1e160 is, (r - d)^2 = 1e320 is not (OverflowError)
        ([1e308, 1.0, 2.0], -1e308),  # f_{t-1} - f* = 2e308 overflows: r = inf
    ],
)
def test_a_loss_that_would_overflow_the_seed_state_is_skipped(
    losses: list[float], f_star: float
) -> None:
    # ALGORITHMS.md: no NaN or inf in the state. The middle loss is skipped like a bad
    # one, so the states are those of the stream without it (the third loss is then
    # compared with the first).
    states = simulate_states(losses, f_star=f_star)
    without = simulate_states([losses[0], losses[2]], f_star=f_star)
    assert states == [without[0], without[0], without[1]]
    assert all(math.isfinite(x) for x in states[-1])


@PROPERTY
@given(
    losses=st.lists(
        st.one_of(
            st.floats(min_value=0.0, exclude_min=True),  # any positive float, subnormals too
            st.floats(min_value=-323.0, max_value=308.0).map(lambda e: 10.0**e),
        ),
        min_size=1,
        max_size=30,
    ),
    rule=st.sampled_from(["seed", "eve", "trend"]),
)
def test_no_positive_float_loss_crashes_a_rule_or_overflows_its_state(
    losses: list[float], rule: str
) -> None:
    for state in simulate_states(losses, rule=rule):
        if state.t > 0:
            assert all(math.isfinite(x) for x in state), state
    assert all(math.isfinite(x) for x in simulate(losses, rule=rule))


@pytest.mark.parametrize("loss", ["2.0", b"2.0", True])
def test_a_string_or_a_bool_is_not_a_loss(loss: object) -> None:
    with pytest.raises(TypeError, match="a loss must be a real number"):
        simulate([1.0, loss])  # type: ignore[list-item]


def test_losses_within_the_float_range_of_the_ratio_are_kept() -> None:
    # 1e10 then 1e-140: r = 1e150 and (r - d)^2 = 1e300 are floats, so the loss counts
    states = simulate_states([1e10, 1e-140])
    assert states[-1].t == 2
    assert states[-1].d == 0.9 * 1.0 + (1 - 0.9) * (1e10 / 1e-140)
