"""The throughput benchmark runs end to end in its small form (so it cannot rot), on a tiny model,
and what it reports holds together: the two sides of each comparison trained the same pairs for
the same number of steps, every figure is there, and the tables carry the ratios. Its pure
helpers (sizes, run order, token counts, table rows) are checked on figures worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.throughput import (
    COMPARISONS,
    FULL,
    SMALL,
    base_config,
    cached_rows,
    length_rows,
    length_summary,
    padded_tokens,
    percentile,
    plain_arguments,
    plain_settings,
    run_order,
    run_sizes,
    sampler_rows,
    scaled_columns,
    selected,
    seq_len_run_rows,
    shown_command,
    step_rows,
)

pytestmark = pytest.mark.bench


def _check_run(run: dict, steps: int) -> None:
    assert run["steps"] == steps
    assert run["samples_per_second"] > 0 and run["train_runtime_s"] > 0
    assert run["wall_s"] >= run["train_runtime_s"] * 0.9  # wall also covers load and save
    assert run["cpu_s"] > 0
    assert run["peak_rss_mb"] >= run["rss_start_mb"] > 0
    assert run["peak_rss_growth_mb"] == pytest.approx(run["peak_rss_mb"] - run["rss_start_mb"], 1)


def test_throughput_benchmark_small(tmp_path):
    from bench.throughput import SAMPLERS, main, markdown

    out = tmp_path / "throughput.json"
    # --small builds its own tiny model, with MiniLM's limit of 256 tokens
    result = main(["--small", "--work", str(tmp_path / "work"), "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["command"] == "python bench/throughput.py --small"  # no --work/--out paths
    sizes, comps = result["sizes"], result["comparisons"]
    assert set(comps) == {"step", "seq_len", "sampler", "cached"}

    # 1. ours vs the plain script: same pairs, same steps, same settings -> the same loss
    step = comps["step"]
    for side in ("ours", "plain"):
        assert len(step[side]["runs"]) == sizes["repeats"]
        for run in step[side]["runs"]:
            _check_run(run, sizes["steps"])
            assert 0 < run["validation_s"] < run["train_runtime_s"]  # both validated
    assert step["ours"]["train_loss"] == pytest.approx(step["plain"]["train_loss"], rel=1e-4)

    # 2. max_seq_length from the data: a multiple of 8 below the model's limit (the demo texts
    # are shorter than 256 tokens), 1% of the texts longer, fewer padded tokens; both trained
    # models were evaluated
    seq = comps["seq_len"]
    assert seq["trained_on"] == "demo data" and list(seq["lengths"]) == ["demo data"]
    lengths = seq["lengths"]["demo data"]
    assert lengths["pairs"] == result["train_pairs_available"]
    limit, chosen = lengths["model_limit"], lengths["chosen"]
    assert limit == 256
    assert chosen < limit and chosen % 8 == 0
    assert 0 < lengths["truncated_share"][str(chosen)] <= 0.01  # the 99th percentile
    assert lengths["truncated_share"][str(limit)] == 0
    padded = lengths["padded_tokens_per_epoch"]
    assert 0 < padded[str(chosen)] < padded[str(limit)]
    assert seq["auto"]["max_seq_length"] == chosen
    assert seq["model_limit"]["max_seq_length"] == 256
    for run in (seq["model_limit"], seq["auto"]):
        _check_run(run, sizes["steps"])
        assert set(run["ndcg@10"]) == {"64", "32"}
        assert all(0.0 <= v <= 1.0 for v in run["ndcg@10"].values())
    assert set(seq["auto"]["ndcg@10_at"]["256"]) == {"64", "32"}  # also at the model's limit

    # 3. samplers: batch building timed for each, on the data and on a larger copy of it
    build = comps["sampler"]["batch_build"]
    assert build["train"]["rows"] == result["train_pairs_available"]
    assert build["scaled"]["rows"] == build["train"]["rows"] * sizes["sampler_scale"]
    for name, hashed, _ in SAMPLERS:
        for data in ("train", "scaled"):
            times = build[data][name]
            assert times["first_epoch_s"] > 0 and times["later_epoch_s"] > 0
            if hashed:  # hashing happens once, in the first epoch
                assert times["later_epoch_s"] < times["first_epoch_s"]
    _check_run(comps["sampler"]["no_duplicates_hashed"], sizes["steps"])

    # 4. cached vs plain MNRL at the large batch, each in its own process
    cached = comps["cached"]
    assert cached["settings"]["batch_size"] == sizes["cached_batch_size"] == 64
    for loss in ("mnrl", "cached_mnrl"):
        _check_run(cached[loss], sizes["cached_steps"])
        assert cached[loss]["validation_s"] == 0

    table = markdown(result)
    for heading in ("**1. Our train step", "**2. `max_seq_length`", "**3. NO_DUPLICATES", "**4."):
        assert heading in table
    assert table.count("| 1.00x |") >= 4  # every comparison has its reference row
    assert "no_duplicates_hashed, 8 processes" in table
    assert table.startswith("```bash\npython bench/throughput.py --small\n```")
    # --render prints the same tables from the JSON without measuring again
    assert main(["--render", str(out)]) == json.loads(out.read_text())
    assert markdown(json.loads(out.read_text())) == table


def test_sizes_comparisons_and_the_shown_command():
    assert run_sizes(True) == SMALL and run_sizes(False) == FULL
    sized = run_sizes(False, steps=8)
    assert (sized["steps"], sized["repeats"], FULL["steps"]) == (8, 3, 2)  # FULL unchanged
    assert run_sizes(True, repeats=5)["repeats"] == 5 and SMALL["repeats"] == 1
    assert selected(None) == list(COMPARISONS) == ["step", "seq_len", "sampler", "cached"]
    assert selected("cached,step") == ["cached", "step"]
    with pytest.raises(SystemExit, match=r"unknown comparison\(s\) \['speed'\]: use step, "):
        selected("step,speed")
    argv = ["--small", "--work", "/tmp/w", "--only", "step", "--out", "r.json", "--docs"]
    assert shown_command(argv) == "python bench/throughput.py --small --only step --docs"


def test_run_order_alternates_ours_and_the_plain_script():
    assert run_order(3, with_plain=True) == [
        (0, "plain"),
        (0, "ours"),
        (1, "ours"),
        (1, "plain"),
        (2, "plain"),
        (2, "ours"),
    ]
    assert run_order(1, with_plain=False) == [(0, "ours")]


def test_the_plain_script_gets_our_settings():
    from tasks.config import RunConfig

    base = base_config("some-model", SMALL)
    assert base["base_model"] == "some-model" and base["matryoshka_dims"] == [64, 32]
    assert (base["batch_size"], base["seed"], base["use_negatives"]) == (16, 42, False)
    # what the plain script does not do: mine, interpolate, raise the rate of a short schedule
    assert (base["mine_negatives"], base["wise_ft_points"], base["lr_reference_steps"]) == (
        "never",
        1,
        0,
    )
    cfg = RunConfig.from_mapping({**base, "data_path": "pairs.jsonl"})
    settings = plain_settings(cfg, SMALL)
    assert settings["dims"] == [64, 32] and settings["best_metric_dim"] == 32
    assert settings["batch_size"] == 16 and settings["seed"] == 42
    assert settings["learning_rate"] == cfg.learning_rate and settings["max_seq_length"] == 128
    # logging as often as our step: every steps // 4, between 1 and 10
    for steps, every in ((3, 1), (20, 5), (100, 10)):
        assert plain_settings(cfg, {**SMALL, "steps": steps})["logging_steps"] == every

    settings["precision"] = {"bf16": False, "fp16": False}
    validated = plain_arguments(Path("/out"), settings, validate=True)
    assert validated["output_dir"] == "/out/checkpoints" and validated["seed"] == 42
    assert validated["per_device_train_batch_size"] == 16
    assert validated["eval_strategy"] == validated["save_strategy"] == "epoch"
    assert validated["load_best_model_at_end"] is True
    assert validated["metric_for_best_model"] == "eval_val_cosine_ndcg@10"
    plain = plain_arguments(Path("/out"), settings, validate=False)
    assert plain["eval_strategy"] == plain["save_strategy"] == "no"
    assert plain["load_best_model_at_end"] is False and plain["metric_for_best_model"] is None


def test_token_lengths_percentiles_and_padded_tokens():
    assert percentile(list(range(1, 101)), 99) == 99 and percentile([7], 50) == 7
    assert percentile([9, 3, 5, 4], 50) == 4 and percentile([9, 3, 5, 4], 90) == 9
    lengths = {"query": [3, 5, 9, 4], "document": [10, 30, 12, 50]}
    batches = [[0, 1], [2, 3]]
    # each column of a batch padded to its longest text: (5 + 30) x 2 + (9 + 50) x 2 uncut
    assert padded_tokens(batches, lengths, 64) == 188
    assert padded_tokens(batches, lengths, 40) == 2 * 5 + 2 * 30 + 2 * 9 + 2 * 40 == 168
    assert padded_tokens(batches, lengths, 16) == 2 * 5 + 2 * 16 + 2 * 9 + 2 * 16 == 92
    assert length_summary(lengths, 40, 16, batches) == {
        "pairs": 4,
        "model_limit": 40,
        "chosen": 16,
        "percentiles": {
            "query": {"50": 4, "90": 9, "99": 9, "100": 9},
            "document": {"50": 12, "90": 50, "99": 50, "100": 50},
        },
        "truncated_share": {"40": 1 / 8, "16": 2 / 8},
        "padded_tokens_per_epoch": {"40": 168, "16": 92},
    }


def test_scaled_columns_make_every_copy_distinct():
    columns = {"query": ["a", "b"], "document": ["x", "y"]}
    assert scaled_columns(columns, 1) == columns
    assert scaled_columns(columns, 2) == {
        "query": ["a [0]", "b [0]", "a [1]", "b [1]"],
        "document": ["x [0]", "y [0]", "x [1]", "y [1]"],
    }


def _side(sps, runs, runtime, validation, wall, cpu, peak_mb):
    return {
        "samples_per_second": sps,
        "runs": [{"samples_per_second": r} for r in runs],
        "train_runtime_s": runtime,
        "validation_s": validation,
        "steps": 2,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": peak_mb,
    }


def test_step_rows_put_each_figure_in_its_column():
    plain = _side(10.0, [9.0, 11.0], 6.0, 2.0, 50.0, 80.0, 2048.0)
    ours = _side(12.5, [12.0, 13.0], 3.0, 1.0, 40.0, 70.0, 1536.0)
    # loop samples/s = steps x batch / (runtime - validation): plain 8 / 4, ours 8 / 2
    assert step_rows({"plain": plain, "ours": ours}, batch=4) == [
        ["plain SentenceTransformerTrainer script", "10.00", "9.00, 11.00", "1.00x"]
        + ["2.00", "1.00x", "2.0", "50.0", "1.00x", "80.0", "2.00"],
        ["ours", "12.50", "12.00, 13.00", "1.25x", "4.00", "2.00x", "1.0", "40.0", "1.25x"]
        + ["70.0", "1.50"],
    ]
    # validation as long as the trainer's runtime: no loop rate, so no ratio either
    ours["validation_s"] = 3.0
    assert step_rows({"plain": plain, "ours": ours}, batch=4)[1][4:6] == ["", ""]


def test_seq_len_rows_compare_both_models_at_the_limit():
    lengths = {"query": [3, 5, 9, 4], "document": [10, 30, 12, 50]}
    info = length_summary(lengths, 40, 16, [[0, 1], [2, 3]])
    same = {**info, "chosen": 40, "truncated_share": {"40": 0.125}}
    same["padded_tokens_per_epoch"] = {"40": 1234567}
    assert length_rows({"`a.jsonl`": info, "demo data": same}) == [
        ["`a.jsonl`", "4", "query 4/9/9; document 12/50/50", "16 of 40", "25.0%", "168", "92"]
        + ["0.55x"],
        ["demo data", "4", "query 4/9/9; document 12/50/50", "40 of 40", "12.5%", "1,234,567"]
        + ["1,234,567", "1.00x"],
    ]
    c = {
        "lengths": {"demo data": {"model_limit": 256, "chosen": 64}},
        "trained_on": "demo data",
        "model_limit": {
            **{"train_runtime_s": 4.0, "validation_s": 2.0, "steps": 2},
            **{"peak_rss_growth_mb": 1024.0, "ndcg@10": {"64": 0.5, "32": 0.25}},
        },
        "auto": {
            **{"train_runtime_s": 3.0, "validation_s": 2.0, "steps": 2},
            **{"peak_rss_growth_mb": 512.0, "ndcg@10": {"64": 0.6, "32": 0.3}},
            "ndcg@10_at": {"256": {"64": 0.55, "32": 0.35}},
        },
    }
    # the length from the data: evaluated at the model's limit (ndcg@10_at), not at its own
    assert seq_len_run_rows(c, batch=4) == [
        ["256 (the model's limit)", "4.00", "1.00x", "1.00", "1.00x", "0.5000", "0.2500"],
        ["64 (from the data)", "8.00", "2.00x", "0.50", "0.50x", "0.5500", "0.3500"],
    ]
    del c["auto"]
    assert seq_len_run_rows(c, batch=4)[1] == [
        "64 (from the data)",
        "the model's limit: nothing to compare",
    ]


def test_sampler_and_cached_rows():
    def times(first, later):
        return {"first_epoch_s": first, "later_epoch_s": later}

    build = {
        "train": {
            "no_duplicates": times(0.0123, 0.011),
            "no_duplicates_hashed": times(0.5, 0.004),
            "no_duplicates_hashed, 8 processes": times(1.5, 0.005),
        },
        "scaled": {
            "no_duplicates": times(0.9, 0.8),
            "no_duplicates_hashed": times(4.5, 0.3),
            "no_duplicates_hashed, 8 processes": times(2.5, 0.35),
        },
    }
    c = {
        "batch_build": build,
        "no_duplicates": {"samples_per_second": 10.0, "cpu_s": 5.0},
        "no_duplicates_hashed": {"samples_per_second": 12.0, "cpu_s": 6.0},
    }
    assert sampler_rows(c) == [
        ["no_duplicates", "0.012", "0.011", "0.900", "0.800", "10.00", "1.00x", "5.0"],
        ["no_duplicates_hashed", "0.500", "0.004", "4.500", "0.300", "12.00", "1.20x", "6.0"],
        ["no_duplicates_hashed, 8 processes", "1.500", "0.005", "2.500", "0.350", "", "", ""],
    ]

    def loss(sps, wall, cpu, peak, growth):
        return {
            **{"samples_per_second": sps, "wall_s": wall, "cpu_s": cpu},
            **{"peak_rss_mb": peak, "peak_rss_growth_mb": growth},
        }

    c = {"mnrl": loss(30.0, 20.0, 35.0, 6144.0, 5120.0)}
    c["cached_mnrl"] = loss(24.0, 22.0, 38.0, 2048.0, 1024.0)
    assert cached_rows(c) == [
        ["MNRL", "30.00", "1.00x", "20.0", "35.0", "6.00", "5.00", "1.00x"],
        ["CachedMNRL", "24.00", "0.80x", "22.0", "38.0", "2.00", "1.00", "0.20x"],
    ]
