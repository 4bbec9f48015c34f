"""The throughput benchmark runs end to end in its small form (so it cannot rot), on a tiny model,
and what it reports holds together: the two sides of each comparison trained the same pairs for
the same number of steps, every figure is there, and the tables carry the ratios."""

from __future__ import annotations

import json

import pytest

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
