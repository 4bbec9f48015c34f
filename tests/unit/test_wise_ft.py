"""Weight interpolation (WiSE-FT): the mixing weights, the weight math and the choice rule."""

from __future__ import annotations

import pytest

from tasks.wise_ft import (
    CONFIDENCE_Z,
    alphas,
    choose_alpha,
    interpolate,
    paired_gain,
    search,
)

pytestmark = pytest.mark.unit


def test_alphas_are_evenly_spaced_and_end_at_the_fine_tuned_model():
    assert alphas(4) == [0.25, 0.5, 0.75, 1.0]
    assert alphas(1) == [1.0]
    assert alphas(3) == [0.3333, 0.6667, 1.0]
    with pytest.raises(ValueError):
        alphas(0)


def test_interpolate_mixes_float_weights_and_keeps_integer_buffers():
    import torch

    base = {"w": torch.tensor([0.0, 2.0]), "ids": torch.tensor([0, 1])}
    tuned = {"w": torch.tensor([4.0, 6.0]), "ids": torch.tensor([5, 6])}
    mixed = interpolate(base, tuned, 0.25)
    assert torch.allclose(mixed["w"], torch.tensor([1.0, 3.0]))
    assert torch.equal(mixed["ids"], tuned["ids"])
    assert torch.allclose(interpolate(base, tuned, 1.0)["w"], tuned["w"])
    with pytest.raises(ValueError, match="differ in names"):
        interpolate({"x": base["w"]}, tuned, 0.5)
    with pytest.raises(ValueError, match="shape"):
        interpolate({**base, "w": torch.zeros(3)}, tuned, 0.5)


def test_the_choice_never_takes_a_model_validation_scores_below_the_fine_tuned_one():
    tuned = [0.5, 0.6, 0.7, 0.4] * 10
    better = [v + 0.05 for v in tuned]  # every query gains: passes the paired test
    best = [v + 0.08 for v in tuned]
    worse = [v - 0.02 for v in tuned]
    assert choose_alpha({0.5: better, 0.75: best, 1.0: tuned}) == 0.75
    assert choose_alpha({0.5: worse, 0.75: worse, 1.0: tuned}) == 1.0
    assert choose_alpha({0.5: tuned, 0.75: tuned, 1.0: tuned}) == 1.0  # a tie keeps a = 1
    assert choose_alpha({0.25: best, 0.5: best, 1.0: tuned}) == 0.5  # the larger of two tied
    with pytest.raises(ValueError):
        choose_alpha({0.5: tuned})


def test_a_mix_that_wins_by_the_chance_of_a_few_queries_is_not_taken():
    """A higher mean is not enough: two queries that jump while the others drop a little is noise
    (z well under 1.645), a small gain on most queries is not."""
    tuned = [0.5] * 40
    lucky = [1.0, 1.0] + [0.49] * 38  # mean 0.5255 > 0.5
    mean, z = paired_gain(lucky, tuned)
    assert mean > 0 and z < CONFIDENCE_Z
    assert choose_alpha({0.5: lucky, 1.0: tuned}) == 1.0
    steady = [0.52] * 30 + [0.49] * 10  # mean 0.5125, the gain on 3 queries in 4
    assert paired_gain(steady, tuned)[1] >= CONFIDENCE_Z
    assert choose_alpha({0.5: steady, 1.0: tuned}) == 0.5
    assert paired_gain([0.6, 0.6], [0.5, 0.5]) == (pytest.approx(0.1), float("inf"))
    with pytest.raises(ValueError, match="same queries"):
        paired_gain([0.5], [0.5, 0.6])


def test_search_scores_each_mix_and_leaves_the_model_holding_the_chosen_one():
    """A one-weight model whose per-query scores peak at w = 1 on every query: base w = 0,
    fine-tuned w = 4, so a = 0.25 (w = 1) is the best mix."""
    import torch

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(4.0)
    base = {"weight": torch.zeros(1, 1)}
    seen = []

    def score(m):
        w = float(m.weight.detach())
        seen.append(w)
        return [1.0 - abs(w - 1.0) / 4 + 0.01 * q for q in range(10)]

    result = search(model, base, score, points=4, say=lambda line: None)
    assert result["alpha"] == 0.25
    assert float(model.weight.detach()) == pytest.approx(1.0)
    assert sorted(seen) == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert result["curve"] == pytest.approx(
        {"0.25": 1.045, "0.5": 0.795, "0.75": 0.545, "1.0": 0.295}
    )
    assert result["gain_z"]["0.25"] is None  # every query gains the same: no spread, certain
    # a mix that is worse is never kept, and the model keeps its fine-tuned weights
    with torch.no_grad():
        model.weight.fill_(1.0)
    kept = search(model, base, score, points=2, say=lambda line: None)
    assert kept["alpha"] == 1.0 and float(model.weight.detach()) == pytest.approx(1.0)
