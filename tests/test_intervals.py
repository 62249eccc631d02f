import random

import pytest

from plra.toolchain import intervals


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_questions():
    rng = random.Random(1)
    small = [float(rng.random() < 0.6) for _ in range(30)]
    large = [float(rng.random() < 0.6) for _ in range(600)]
    mean, low, high = intervals.bootstrap_mean(small)
    assert low <= mean <= high and 0 <= low < high <= 1
    _, big_low, big_high = intervals.bootstrap_mean(large)
    assert big_high - big_low < (high - low) / 2  # about 1/sqrt(20) as wide
    assert intervals.bootstrap_mean(small) == (mean, low, high)  # fixed seed: the same report every time


def test_bootstrap_interval_covers_the_true_rate_about_95_in_100_times():
    covered = 0
    for seed in range(100):
        rng = random.Random(seed)
        sample = [float(rng.random() < 0.3) for _ in range(120)]
        _, low, high = intervals.bootstrap_mean(sample, resamples=400, seed=seed)
        covered += low <= 0.3 <= high
    assert 88 <= covered <= 100


def test_paired_difference_sees_a_gain_that_independent_intervals_would_miss():
    rng = random.Random(2)
    base = [float(rng.random() < 0.5) for _ in range(200)]
    tuned = list(base)
    for i in range(0, 200, 12):  # the tuned model fixes a few questions and breaks none
        tuned[i] = 1.0
    delta, low, high = intervals.paired_difference(base, tuned)
    assert delta > 0 and low > 0 and intervals.verdict(low, high) == "higher than base"
    _, _, base_high = intervals.bootstrap_mean(base)
    _, tuned_low, _ = intervals.bootstrap_mean(tuned)
    assert tuned_low < base_high  # the two separate intervals overlap
    with pytest.raises(ValueError, match="differ in length"):
        intervals.paired_difference(base, tuned[:-1])


def test_no_difference_is_reported_as_such():
    same = [1.0, 0.0] * 50
    delta, low, high = intervals.paired_difference(same, same)
    assert delta == low == high == 0 and intervals.verdict(low, high) == "no measurable difference"
    assert (
        intervals.verdict(-0.1, 0.2) == "no measurable difference"
        and intervals.verdict(-0.3, -0.1) == "lower than base"
    )


def test_mcnemar_exact_p_counts_only_disagreements():
    # 10 questions only the tuned model gets right, 0 the other way: p = 2 * 0.5**10
    base = [0.0] * 10 + [1.0] * 50
    tuned = [1.0] * 60
    assert intervals.mcnemar_p(base, tuned) == pytest.approx(2 * 0.5**10)
    balanced = [1.0, 0.0] * 10
    assert intervals.mcnemar_p(balanced, balanced[::-1]) == 1.0
    assert intervals.mcnemar_p([1.0] * 5, [1.0] * 5) == 1.0
    with pytest.raises(ValueError):
        intervals.bootstrap_mean([])
