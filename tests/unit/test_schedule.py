"""The training schedule from the data size: more epochs for small data, bounded validations."""

from __future__ import annotations

import pytest

from tasks.schedule import MAX_EPOCHS_FACTOR, MAX_VALIDATIONS, plan_schedule, steps_per_epoch

pytestmark = pytest.mark.unit


def test_steps_per_epoch_count_the_last_partial_batch_and_accumulation():
    assert steps_per_epoch(100, 32) == 4
    assert steps_per_epoch(96, 32) == 3
    assert steps_per_epoch(1505, 32, 16) == 3
    assert steps_per_epoch(5, 32) == 1


def test_large_data_trains_the_epochs_asked_for():
    s = plan_schedule(5000, 32, 1, epochs=3, min_steps=150)
    assert (s.epochs, s.steps_per_epoch, s.total_steps, s.validate_every) == (3, 157, 471, 1)
    assert s.reason == "3 epoch(s) as configured"


def test_small_data_trains_more_epochs_to_reach_min_steps():
    s = plan_schedule(300, 32, 1, epochs=3, min_steps=120)
    assert (s.epochs, s.steps_per_epoch, s.total_steps) == (12, 10, 120)
    assert s.validate_every == 3  # 12 epochs, validated after 3, 6, 9 and 12
    assert "fewer than min_steps=120" in s.reason


def test_tiny_data_is_capped_at_a_multiple_of_the_epochs_asked_for():
    s = plan_schedule(40, 32, 1, epochs=3, min_steps=150)
    assert s.epochs == 3 * MAX_EPOCHS_FACTOR and s.total_steps == 30
    assert "at most" in s.reason
    assert s.epochs / s.validate_every <= MAX_VALIDATIONS


def test_min_steps_0_is_exactly_the_epochs_asked_for():
    assert plan_schedule(40, 32, 1, epochs=2, min_steps=0).epochs == 2


def test_a_short_schedule_trains_at_a_higher_learning_rate():
    from tasks.schedule import MAX_LR_FACTOR, scaled_learning_rate

    # 270 reference steps, 30 planned: sqrt(9) = 3x
    s = plan_schedule(300, 32, 1, 3, 0, learning_rate=2e-5, lr_reference_steps=270)
    assert s.total_steps == 30 and s.learning_rate == pytest.approx(6e-5)
    assert "fewer than lr_reference_steps=270" in s.lr_reason
    assert scaled_learning_rate(2e-5, 1, 10_000)[0] == pytest.approx(2e-5 * MAX_LR_FACTOR)
    assert "at most 4x" in scaled_learning_rate(2e-5, 1, 10_000)[1]
    # at or above the reference, and with the rule off: the configured rate
    assert scaled_learning_rate(2e-5, 300, 270) == (2e-5, "learning rate 2e-05 as configured")
    assert scaled_learning_rate(2e-5, 10, 0)[0] == 2e-5
