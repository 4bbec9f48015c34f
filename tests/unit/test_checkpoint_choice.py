"""Which validated checkpoint becomes the model: the rule, and the train step acting on it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tasks.checkpoint_choice import choose_checkpoint, needs_scores, step_of
from tasks.config import RunConfig
from tasks.evaluate import MatryoshkaIREvaluator

pytestmark = pytest.mark.unit

#: per-query validation scores of 8 queries: a clear, consistent gain and a noisy one
LAST = [0.2, 0.4, 0.1, 0.5, 0.3, 0.6, 0.2, 0.4]
CLEARLY_BETTER = [s + 0.1 + 0.01 * i for i, s in enumerate(LAST)]
NOISY_BETTER = [0.9, 0.0, 0.6, 0.1, 0.3, 0.6, 0.2, 0.5]  # higher mean, gains of both signs


def test_without_validation_or_when_the_last_is_best_the_last_checkpoint_is_kept():
    for mode in ("auto", "best", "last"):
        assert choose_checkpoint(mode, None, 42).step == 42
        same = choose_checkpoint(mode, 42, 42)
        assert same.step == 42 and "also scored best" in same.reason
    assert not needs_scores("auto", None, 42) and not needs_scores("auto", 42, 42)
    assert needs_scores("auto", 28, 42) and not needs_scores("best", 28, 42)


def test_best_and_last_modes_take_their_checkpoint_whatever_the_scores():
    assert choose_checkpoint("best", 28, 42).step == 28
    assert choose_checkpoint("last", 28, 42, {28: CLEARLY_BETTER, 42: LAST}).step == 42


def test_auto_keeps_an_earlier_checkpoint_only_when_it_wins_the_paired_test():
    clear = choose_checkpoint("auto", 28, 42, {28: CLEARLY_BETTER, 42: LAST})
    assert clear.step == 28 and clear.z is not None and clear.z >= 1.645
    assert clear.gain == pytest.approx(0.135)
    # a higher mean by a few queries' chance is not enough: the last checkpoint stays
    assert sum(NOISY_BETTER) > sum(LAST)
    noisy = choose_checkpoint("auto", 28, 42, {28: NOISY_BETTER, 42: LAST})
    assert noisy.step == 42 and noisy.gain > 0 and noisy.z < 1.645
    assert "within the noise of 8 queries" in noisy.reason
    # an earlier checkpoint that scored lower on these queries never replaces the last one
    assert choose_checkpoint("auto", 28, 42, {28: LAST, 42: CLEARLY_BETTER}).step == 42


def test_auto_needs_both_checkpoints_scores_and_modes_are_checked():
    with pytest.raises(ValueError, match="per-query scores"):
        choose_checkpoint("auto", 28, 42, {42: LAST})
    with pytest.raises(ValueError, match="keep_checkpoint"):
        choose_checkpoint("newest", 28, 42)


def test_the_choice_is_json_and_steps_are_read_from_folder_names():
    equal_gains = choose_checkpoint("auto", 1, 2, {1: [0.6, 0.7], 2: [0.5, 0.6]})
    assert equal_gains.step == 1 and equal_gains.z == float("inf")
    record = json.loads(json.dumps(equal_gains.as_dict()))
    assert record["z"] is None and record["mode"] == "auto" and record["last_step"] == 2
    assert step_of("/runs/x/train/checkpoints/checkpoint-28") == 28
    assert step_of("checkpoint-7/") == 7
    assert step_of(None) is None and step_of("model") is None


class _Inner:
    """The validation evaluator's per-query scores at dims 64 and 32, and its real averaging."""

    dims = [64, 32]
    per_query_mean_ndcg = MatryoshkaIREvaluator.per_query_mean_ndcg

    def __init__(self) -> None:
        self.per_query_ndcg: dict[int, list[float]] = {}


class _Evaluator:
    """Scores a model by what it is named: the per-query NDCG@10 of the validation queries, the
    same at both dims unless given per dim."""

    def __init__(self, by_model: dict[str, list[float] | dict[int, list[float]]]) -> None:
        self.by_model = by_model
        self.calls: list[str] = []
        self.inner = _Inner()

    def __call__(self, model):
        self.calls.append(model.name)
        scores = self.by_model[model.name]
        self.inner.per_query_ndcg = scores if isinstance(scores, dict) else {64: scores, 32: scores}


class _Model:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loaded: list[str] = []

    def state_dict(self):
        return {"weights": self.name}

    def load_state_dict(self, state):
        self.loaded.append(state["weights"])


def _trainer(tmp_path, best: int, last: int):
    folder = tmp_path / "checkpoints"
    return SimpleNamespace(
        state=SimpleNamespace(
            best_model_checkpoint=str(folder / f"checkpoint-{best}"), global_step=last
        ),
        model=_Model("last"),
    )


def test_the_train_step_loads_the_chosen_checkpoint_and_scores_only_what_it_lacks(
    tmp_path, monkeypatch
):
    import tasks.train as train_step

    loads: list[str] = []

    def load_model(path, **kwargs):
        loads.append(str(path))
        return _Model("best")

    monkeypatch.setattr(train_step, "load_model", load_model)
    cfg = RunConfig(data_path="x", best_metric_dim=32, matryoshka_dims=[64, 32])

    # the scores of both validations were kept during training: no second pass, no load
    evaluator = _Evaluator({"last": LAST, "best": NOISY_BETTER})
    trainer = _trainer(tmp_path, 28, 42)
    kept = train_step._keep_checkpoint(cfg, trainer, evaluator, {28: NOISY_BETTER, 42: LAST}, "cpu")
    assert kept.step == 42 and evaluator.calls == [] and loads == [] and trainer.model.loaded == []

    # a resumed run lacks the scores of the validations of the first attempt: it scores both,
    # and an earlier checkpoint that wins the test becomes the model
    evaluator = _Evaluator({"last": LAST, "best": CLEARLY_BETTER})
    trainer = _trainer(tmp_path, 28, 42)
    kept = train_step._keep_checkpoint(cfg, trainer, evaluator, {}, "cpu")
    assert kept.step == 28 and evaluator.calls == ["last", "best"]
    assert trainer.model.loaded == ["best"] and all(p.endswith("checkpoint-28") for p in loads)

    # keep_checkpoint=last needs no scores at all
    evaluator = _Evaluator({})
    last_cfg = RunConfig(data_path="x", best_metric_dim=32, keep_checkpoint="last")
    kept = train_step._keep_checkpoint(last_cfg, _trainer(tmp_path, 28, 42), evaluator, {}, "cpu")
    assert kept.step == 42 and evaluator.calls == []


def test_a_gain_at_one_dim_paid_for_at_another_does_not_replace_the_last_checkpoint(
    tmp_path, monkeypatch
):
    """The checkpoint the trainer found best at ``best_metric_dim`` (32) is clearly better there
    and as clearly worse at 64: averaged over the dims it gains nothing, so the last one stays;
    better at both dims, it is kept. The scores the callback keeps during training are the same
    averages."""
    import tasks.train as train_step

    monkeypatch.setattr(train_step, "load_model", lambda path, **kwargs: _Model("best"))
    cfg = RunConfig(data_path="x", best_metric_dim=32, matryoshka_dims=[64, 32])
    worse_at_64 = [2 * s - c for s, c in zip(LAST, CLEARLY_BETTER)]
    trade = {32: CLEARLY_BETTER, 64: worse_at_64}
    assert choose_checkpoint("auto", 28, 42, {28: CLEARLY_BETTER, 42: LAST}).step == 28

    evaluator = _Evaluator({"last": LAST, "best": trade})
    kept = train_step._keep_checkpoint(cfg, _trainer(tmp_path, 28, 42), evaluator, {}, "cpu")
    assert (
        kept.step == 42 and kept.gain == pytest.approx(0.0) and "mean over the dims" in kept.reason
    )

    evaluator = _Evaluator({"last": LAST, "best": {32: CLEARLY_BETTER, 64: CLEARLY_BETTER}})
    assert (
        train_step._keep_checkpoint(cfg, _trainer(tmp_path, 28, 42), evaluator, {}, "cpu").step
        == 28
    )

    scores: dict[int, list[float]] = {}
    keeper = train_step._score_keeper(evaluator, scores)
    evaluator.inner.per_query_ndcg = trade  # as the trainer's validation leaves it
    keeper.on_evaluate(None, SimpleNamespace(global_step=28), None)
    assert scores[28] == pytest.approx(LAST)  # (better + worse) / 2 per query
