"""The forecast benchmark's statistics and verdicts (pgti.seeds, pgti.bench.suites.forecast)."""

from __future__ import annotations

import math

import pytest

from pgti.bench.suites import forecast
from pgti.errors import InputError
from pgti.seeds import margin, summarize, t95


def test_t95_is_the_one_sided_student_quantile():
    assert t95(1) == pytest.approx(6.314)
    assert t95(2) == pytest.approx(2.920)
    assert t95(10) == pytest.approx(1.812)
    assert t95(1000) == pytest.approx(1.645)
    with pytest.raises(ValueError):
        t95(0)


def test_summary_lower_bound_by_hand():
    s = summarize([1.0, 2.0, 3.0])
    assert (s.n, s.mean, s.sd) == (3, 2.0, 1.0)
    assert s.lower95 == pytest.approx(2.0 - 2.920 / math.sqrt(3))
    assert s.beyond_noise


def test_one_seed_is_never_beyond_noise():
    s = summarize([0.5])
    assert s.sd is None and s.lower95 is None and not s.beyond_noise


def test_a_mean_within_its_noise_is_not_beyond_it():
    assert not summarize([0.01, -0.005, 0.002]).beyond_noise


def test_summary_skips_missing_values_and_refuses_none_left():
    assert summarize([1.0, None, float("nan"), 3.0]).n == 2
    with pytest.raises(ValueError):
        summarize([None, float("inf")])


def test_margin_is_relative_to_the_baseline():
    assert margin(0.9, 1.0) == pytest.approx(0.1)
    assert margin(1.2, 1.0) == pytest.approx(-0.2)


def _row(model, seed, val, maes, lv=(3.0, 4.0, 5.0), ha=(5.0, 5.0, 4.9), stage="final", case="c"):
    row = {"case": case, "dataset": "d", "model": model, "stage": stage, "seed": seed, "status": "ok", "reason": "",
           "val_mae": val, "training_s": 10.0, "epochs": 5, "best_epoch": 4, "stop_reason": "epochs"}
    for h, m, a, b in zip((3, 6, 12), maes, lv, ha):
        row[f"test_mae_h{h}"] = m
        row[f"test_mae_h{h}_last_value"] = a
        row[f"test_mae_h{h}_historical_average"] = b
    return row


def test_verdict_passes_a_model_that_beats_the_better_baseline_at_every_horizon_on_every_seed():
    rows = [_row("good", s, 1.0 + 0.01 * s, (2.5 + 0.01 * s, 3.5, 4.5)) for s in range(3)]
    verdicts = forecast.verdicts("c", rows, "final", 3)
    assert [v["horizon"] for v in verdicts] == [3, 6, 12]
    assert [v["baseline"] for v in verdicts] == ["last value", "last value", "historical average"]
    assert all(v["beats"] for v in verdicts)
    assert verdicts[0]["margin"] == pytest.approx((3.0 - 2.51) / 3.0)
    assert all(v["errors_grow"] for v in verdicts)


def test_verdict_counts_a_tie_within_seed_noise_as_a_miss():
    rows = [_row("tied", s, 1.0, (2.9 + 0.2 * s, 3.5, 4.5)) for s in range(3)]  # h3 mean 3.1 +- 0.2 vs 3.0
    h3 = forecast.verdicts("c", rows, "final", 3)[0]
    assert h3["horizon"] == 3 and not h3["beats"]


def test_verdict_chooses_the_best_model_on_validation_not_on_test():
    rows = [_row("val-best", s, 1.0, (2.8, 3.8, 4.8)) for s in range(3)]
    rows += [_row("test-best", s, 2.0, (1.0, 1.5, 2.0)) for s in range(3)]
    assert {v["model"] for v in forecast.verdicts("c", rows, "final", 3)} == {"val-best"}


def test_verdict_ignores_a_model_that_did_not_finish_every_seed():
    rows = [_row("partial", 0, 0.1, (1.0, 1.1, 1.2)), _row("complete", 0, 1.0, (2.5, 3.5, 4.5)),
            _row("complete", 1, 1.0, (2.5, 3.5, 4.5))]
    rows.append({**_row("partial", 1, 0.1, (1.0, 1.1, 1.2)), "status": "failed", "val_mae": None})
    assert {v["model"] for v in forecast.verdicts("c", rows, "final", 2)} == {"complete"}


def test_errors_that_do_not_grow_with_the_horizon_are_reported():
    rows = [_row("flat", s, 1.0, (2.0, 2.0, 2.0 - 0.001 * s)) for s in range(2)]
    assert forecast.verdicts("c", rows, "final", 2)[0]["errors_grow"] is False


def test_baselines_that_differ_between_runs_of_one_dataset_are_refused():
    rows = [_row("a", 0, 1.0, (2.5, 3.5, 4.5)), _row("a", 1, 1.0, (2.5, 3.5, 4.5), lv=(3.1, 4.0, 5.0))]
    with pytest.raises(InputError, match="different data"):
        forecast.verdicts("c", rows, "final", 2)


def test_finalists_are_the_lowest_screen_validation_errors():
    rows = [_row(m, 0, v, (2.5, 3.5, 4.5), stage="screen") for m, v in (("a", 3.0), ("b", 1.0), ("c", 2.0))]
    rows.append({**_row("d", 0, 0.5, (2.5, 3.5, 4.5), stage="screen"), "status": "failed"})
    assert forecast.finalists(rows, 2) == ["b", "c"]


def test_case_table_lists_every_model_and_both_baselines():
    rows = [_row("m1", s, 1.0, (2.5, 3.5, 4.5)) for s in range(2)]
    rows.append({**_row("m2", 0, 1.0, (2.5, 3.5, 4.5)), "status": "failed", "reason": "diverged"})
    table = forecast.case_table(rows, ["final"])
    assert "| m1 | final | 2 |" in table and "failed" in table and "diverged" in table
    assert "*last value*" in table and "*historical average*" in table
    assert "2.5000 ± 0.0000 (+16.7%)" in table


def test_datasets_flag_refuses_unknown_and_repeated_names(tmp_path):
    gen = {"nodes": 8, "timesteps": 800, "seed": 0}
    with pytest.raises(InputError, match="unknown dataset 'nope'"):
        forecast.parse_cases("chickenpox,nope", "data", tmp_path, gen)
    with pytest.raises(InputError, match="given twice"):
        forecast.parse_cases("pedalme,pedalme", "data", tmp_path, gen)
    (real, generated) = forecast.parse_cases("pedalme,generated:metr-la", "data", tmp_path, gen)
    assert real.generated is None and generated.dataset == "metr-la"
    assert generated.data_dir.endswith("metr-la-n8-t800-s0")
