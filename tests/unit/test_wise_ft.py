"""Weight interpolation (WiSE-FT): the mixing weights, the weight math and the choice rule."""

from __future__ import annotations

import pytest

from tasks.wise_ft import alphas, choose_alpha, interpolate, search

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
    assert choose_alpha({0.5: 0.61, 0.75: 0.63, 1.0: 0.62}) == 0.75
    assert choose_alpha({0.5: 0.60, 0.75: 0.61, 1.0: 0.62}) == 1.0
    assert choose_alpha({0.5: 0.62, 0.75: 0.62, 1.0: 0.62}) == 1.0  # a tie keeps a = 1
    assert choose_alpha({0.25: 0.7, 0.5: 0.7, 1.0: 0.6}) == 0.5  # the larger of two tied
    with pytest.raises(ValueError):
        choose_alpha({0.5: 0.7})


def test_search_scores_each_mix_and_leaves_the_model_holding_the_chosen_one():
    """A one-weight model whose validation score peaks at w = 1: base w = 0, fine-tuned w = 4,
    so a = 0.25 (w = 1) is the best mix."""
    import torch

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(4.0)
    base = {"weight": torch.zeros(1, 1)}
    seen = []

    def score(m):
        w = float(m.weight.detach())
        seen.append(w)
        return -abs(w - 1.0)

    result = search(model, base, score, points=4, say=lambda line: None)
    assert result["alpha"] == 0.25
    assert float(model.weight) == pytest.approx(1.0)
    assert sorted(seen) == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert result["curve"] == {"0.25": 0.0, "0.5": -1.0, "0.75": -2.0, "1.0": -3.0}
    # a known score of the fine-tuned model is not measured again; a worse mix is never kept
    with torch.no_grad():
        model.weight.fill_(1.0)
    seen.clear()
    kept = search(model, base, score, points=2, tuned_score=0.0, say=lambda line: None)
    assert kept["alpha"] == 1.0 and float(model.weight) == pytest.approx(1.0)
    assert seen == [pytest.approx(0.5)]
