"""The model-ranking sweep (scripts/rank_models.py, pgti.ranking): the rank statistics against
hand computations, the bootstrap and the power law, the quick budget's schedule, and a real
sweep on the shipped chickenpox and pedalme data, rerun, and refused on bad input."""

import csv
import math

import numpy as np
import pytest
import torch

from conftest import REPO, load_script
from pgti.ranking.agreement import (average_ranks, bootstrap_interval, extrapolate, fit_power_law, kendall_tau_b,
                                    regret, spearman_rho)
from pgti.ranking.sweep import quick_schedule
from pgti.ranking.tables import ranking_rows


# --- rank statistics, computed by hand ---------------------------------------------------------

def test_average_ranks_share_the_mean_rank_of_ties():
    assert average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert average_ranks([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]


def test_kendall_tau_b_matches_hand_counts():
    # One discordant pair of six: (5 - 1) / 6.
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Ties: x ties pair (1, 2), y ties pair (2, 3); 4 concordant, 0 discordant:
    # 4 / sqrt((6 - 1) (6 - 1)) = 0.8.
    assert kendall_tau_b([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)


def test_kendall_tau_b_is_undefined_for_a_constant_or_a_single_model():
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau_b([1], [1]))


def test_spearman_rho_matches_hand_computations():
    # No ties: 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 4 / 120.
    assert spearman_rho([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # Ties: ranks (1, 2.5, 2.5, 4) and (1, 2, 3.5, 3.5); Pearson of the ranks = 3.75 / 4.5.
    assert spearman_rho([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(3.75 / 4.5)
    assert spearman_rho([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(spearman_rho([2, 2, 2], [1, 2, 3]))


def test_regret_is_the_test_mae_lost_by_the_pick():
    pick = regret(["a", "b", "c"], predicted=[3.0, 1.0, 2.0], actual=[1.0, 1.5, 2.0])
    assert (pick.picked, pick.best) == ("b", "a")
    assert pick.absolute == pytest.approx(0.5)
    assert pick.relative == pytest.approx(0.5)
    assert regret(["a", "b"], [1.0, 2.0], [1.0, 2.0]).absolute == 0.0


# --- bootstrap over seeds ------------------------------------------------------------------------

def _noisy_seeds(rng, means, seeds=3, noise=0.6):
    return [list(m + noise * rng.standard_normal(seeds)) for m in means]


def test_bootstrap_interval_holds_the_estimate_and_repeats_for_a_seed():
    rng = np.random.default_rng(1)
    x = _noisy_seeds(rng, [1.0, 2.0, 3.0, 4.0, 5.0])
    y = _noisy_seeds(rng, [1.2, 1.9, 3.4, 3.6, 5.1])
    first = bootstrap_interval(x, y, kendall_tau_b, resamples=300, seed=7)
    assert first.estimate == pytest.approx(kendall_tau_b([np.mean(v) for v in x], [np.mean(v) for v in y]))
    assert -1.0 <= first.low <= first.estimate <= first.high <= 1.0
    assert first.low < first.high  # the seeds' noise does reorder some models
    assert bootstrap_interval(x, y, kendall_tau_b, resamples=300, seed=7) == first


def test_bootstrap_interval_is_a_point_when_seeds_agree_exactly():
    x = [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    interval = bootstrap_interval(x, x, spearman_rho, resamples=50, seed=0)
    assert (interval.estimate, interval.low, interval.high) == (1.0, 1.0, 1.0)


# --- the quick run's curve ---------------------------------------------------------------------

def test_power_law_fit_recovers_known_parameters():
    steps = np.array([10, 20, 40, 80, 160, 320])
    law = fit_power_law(steps, 0.5 + 3.0 * steps ** -0.7)
    assert law.c == pytest.approx(0.7, rel=0.01)
    assert law.a == pytest.approx(0.5, rel=0.02)
    assert law.b == pytest.approx(3.0, rel=0.03)
    assert extrapolate(steps, 0.5 + 3.0 * steps ** -0.7, 10_000) == pytest.approx(0.5 + 3.0 * 10_000 ** -0.7, rel=0.01)


def test_power_law_needs_three_points_and_falls_back_to_the_last_value():
    assert fit_power_law([1, 2], [3.0, 2.0]) is None
    assert extrapolate([1, 2], [3.0, 2.0], 1000) == 2.0


def test_a_rising_curve_extrapolates_flat_not_upwards():
    steps = np.array([1, 2, 3, 4])
    values = np.array([1.0, 1.1, 1.2, 1.3])
    assert extrapolate(steps, values, 1000) == pytest.approx(values.mean())


def test_quick_schedule_spreads_the_fraction_over_short_epochs():
    assert quick_schedule(1800, 90, 0.03, 4) == (4, 14)  # 54 steps: 4 epochs of 14 batches
    assert quick_schedule(14, 7, 0.03, 4) == (4, 1)  # at least one batch an epoch
    assert quick_schedule(100, 5, 0.5, 4) == (10, None)  # whole epochs needed: more of them


def test_ranking_marks_ties_where_the_seeds_spreads_overlap():
    def row(model, mae):
        return {"dataset": "d", "budget": "full", "model": model, "status": "ok", "test_mae": mae}

    rows = [row("a", 1.0), row("a", 1.2), row("b", 1.15), row("b", 1.25), row("c", 2.0), row("c", 2.0),
            {**row("c", None), "status": "failed"}]
    ranking = {r["model"]: r for r in ranking_rows(rows, ["d"], ["full"], ["a", "b", "c"])}
    assert [ranking[m]["rank"] for m in "abc"] == [1.0, 2.0, 3.0]
    assert ranking["a"]["mean_test_mae"] == pytest.approx(1.1)
    assert ranking["a"]["std_test_mae"] == pytest.approx(np.std([1.0, 1.2], ddof=1))
    assert (ranking["a"]["tied_with"], ranking["b"]["tied_with"], ranking["c"]["tied_with"]) == ("b", "a", "")
    assert ranking["c"]["seeds"] == 2


# --- the sweep, end to end -----------------------------------------------------------------------

MODELS = ["last-value", "historical-average", "dcrnn-cell"]


def sweep_args(out, *extra):
    return ["--datasets", "chickenpox,pedalme", "--models", ",".join(MODELS), "--seeds", "2",
            "--budgets", "quick,full", "--epochs", "2", "-np", "2", "--data-dir", str(REPO / "data"),
            "--output-dir", str(out), "--bootstrap", "200", "-q", *extra]


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def rank_models():
    return load_script("rank_models")


def test_sweep_writes_every_output_and_a_rerun_skips_every_run(tmp_path, capsys, rank_models):
    out = tmp_path / "sweep"
    assert rank_models.main(sweep_args(out)) == 0
    printed, err = capsys.readouterr()
    assert "ran 24, skipped 0" in printed
    assert "pedalme full vs chickenpox full: tau" in printed  # the first dataset is the reference
    assert "chickenpox quick_powerlaw vs full: tau" in printed
    assert "24 runs: 0 already done, 24 to run" in err

    runs = read_rows(out / "runs.csv")
    assert len(runs) == 2 * 3 * 2 * 2 and {r["status"] for r in runs} == {"ok"}
    for r in runs:
        run_dir = out / "runs" / r["dataset"] / r["model"] / f"{r['budget']}-seed{r['seed']}"
        assert r["run_dir"] == str(run_dir)
        for name in ("stats.csv", "per_epoch_stats.csv", "config.json", "checkpoint.pt"):
            assert (run_dir / name).is_file(), (run_dir, name)
        assert float(r["test_mae"]) > 0 and float(r["max_process_mem_mb"]) > 0 and r["test_mae_h3"]
        if r["budget"] == "quick":  # 3% of the full steps is under a batch an epoch: 4 epochs of 1 batch
            assert (r["epochs"], r["steps"]) == ("4", "4") and r["powerlaw_val_mae"]
        else:  # chickenpox: 359 train windows / 4 = 90 batches; pedalme: 21 / 3 = 7
            assert (r["epochs"], r["steps"]) == ("2", {"chickenpox": "180", "pedalme": "14"}[r["dataset"]])
            assert r["powerlaw_val_mae"] == ""
    seeds_differ = {r["test_mae"] for r in runs if (r["dataset"], r["model"], r["budget"]) == ("chickenpox", "dcrnn-cell", "full")}
    assert len(seeds_differ) == 2

    ranking = read_rows(out / "ranking.csv")
    assert len(ranking) == 2 * 2 * 3
    for dataset in ("chickenpox", "pedalme"):
        for budget in ("quick", "full"):
            ranks = sorted(float(r["rank"]) for r in ranking if (r["dataset"], r["budget"]) == (dataset, budget))
            assert sum(ranks) == 6.0  # ranks 1..3, ties averaged

    agreement = read_rows(out / "agreement.csv")
    kinds = [(r["comparison"], r["dataset"], r["predictor"]) for r in agreement]
    assert kinds == [("dataset_vs_reference", "pedalme", "full_test_mae")] + [
        (comparison, dataset, predictor) for dataset in ("chickenpox", "pedalme")
        for comparison in ("quick_vs_full", "quick_vs_full_trained") for predictor in ("quick_val_mae", "quick_powerlaw")]
    for r in agreement:
        if r["comparison"] == "quick_vs_full_trained":  # the baselines left out: dcrnn-cell alone, no order
            assert r["models"] == "1" and r["kendall_tau"] == "" and r["agrees_better"] == ""
            assert (r["picked_model"], r["best_model"], float(r["regret"])) == ("dcrnn-cell", "dcrnn-cell", 0.0)
            continue
        tau, lo, hi = float(r["kendall_tau"]), float(r["kendall_tau_lo"]), float(r["kendall_tau_hi"])
        assert -1 <= lo <= hi <= 1 and -1 <= tau <= 1 and r["models"] == "3"
        if r["comparison"] == "quick_vs_full":
            assert r["picked_model"] in MODELS and float(r["regret"]) >= 0
    for name in ("ranks.png", "quick_vs_full.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("stats.csv")}
    assert len(stamps) == 24
    assert rank_models.main(sweep_args(out)) == 0
    printed, err = capsys.readouterr()
    assert "ran 0, skipped 24" in printed and "24 already done, 0 to run" in err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert read_rows(out / "runs.csv") == runs

    # Other settings in the same directory would mix two experiments: refused, nothing run.
    assert rank_models.main(sweep_args(out, "--epochs", "3")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --output-dir:") and "finished run with other settings" in err and "\n" not in err


class NaNModel(torch.nn.Module):
    """A model whose loss is NaN from the first step (a diverging model)."""

    def __init__(self, *, num_nodes, num_features, lags, edge_index, edge_weight):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, y=None):
        return x[..., :1] * self.scale * float("nan")


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, capsys, rank_models):
    out = tmp_path / "sweep"
    argv = ["--datasets", "pedalme", "--models", "last-value,test_ranking:NaNModel", "--seeds", "1",
            "--budgets", "full", "--epochs", "1", "-np", "1", "--data-dir", str(REPO / "data"),
            "--output-dir", str(out), "-q"]
    assert rank_models.main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 runs ok, 1 failed" in printed
    runs = {r["model"]: r for r in read_rows(out / "runs.csv")}
    assert runs["last-value"]["status"] == "ok"
    assert runs["test_ranking:NaNModel"]["status"] == "failed"
    assert runs["test_ranking:NaNModel"]["reason"].startswith("FloatingPointError: training loss became nan")
    assert [r["model"] for r in read_rows(out / "ranking.csv")] == ["last-value"]


def test_list_models_prints_one_name_a_line(capsys, rank_models):
    from pgti.nn import MODELS as BUILTIN

    assert rank_models.main(["--list-models"]) == 0
    assert capsys.readouterr().out.splitlines() == list(BUILTIN)


@pytest.mark.parametrize("argv, message", [
    (["--datasets", "chickenpox", "--budgets", "fast"], "error: --budgets: expected quick, full or quick,full"),
    (["--datasets", "atlantis"], "error: --datasets: unknown dataset(s) atlantis"),
    (["--datasets", "chickenpox", "--models", "no-such-model"], "error: --models: unknown model 'no-such-model'"),
    (["--datasets", "chickenpox", "--reference", "pedalme"], "error: --reference: pedalme is not one of"),
    (["--datasets", "pedalme", "--batch-size", "50"], "error: --batch-size: 50 is larger than the train split"),
    (["--datasets", "chickenpox", "--seeds", "0"], "error: argument --seeds: must be a positive integer"),
    (["--bogus"], "error: unrecognized arguments: --bogus"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, rank_models, argv, message):
    assert rank_models.main([*argv, "--data-dir", str(REPO / "data"), "--output-dir", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1, captured.err
    assert not (tmp_path / "o").exists()


def test_sweeps_sharing_a_runs_dir_reuse_each_others_runs(tmp_path, capsys, rank_models):
    """A second sweep (another model list) on the first's --runs-dir runs only what is new and
    writes its own tables; a sweep on a runs directory in use is refused before it runs."""
    shared = tmp_path / "runs"
    common = ["--datasets", "pedalme", "--seeds", "1", "--budgets", "full", "--epochs", "1", "-np", "1",
              "--data-dir", str(REPO / "data"), "--runs-dir", str(shared), "-q"]
    assert rank_models.main([*common, "--models", "last-value", "--output-dir", str(tmp_path / "a")]) == 0
    first = (shared / "pedalme" / "last-value" / "full-seed0" / "stats.csv").read_bytes()
    capsys.readouterr()
    assert rank_models.main([*common, "--models", "last-value,linear", "--output-dir", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    assert "2 runs: 1 already done, 1 to run" in captured.err
    assert (shared / "pedalme" / "last-value" / "full-seed0" / "stats.csv").read_bytes() == first
    assert [r["model"] for r in read_rows(tmp_path / "a" / "runs.csv")] == ["last-value"]
    assert {r["model"] for r in read_rows(tmp_path / "b" / "runs.csv")} == {"last-value", "linear"}
    assert not (tmp_path / "b" / "runs").exists()

    import fcntl

    with open(shared / ".sweep.lock", "a") as held:  # as a sweep running now holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert rank_models.main([*common, "--models", "linear", "--output-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {shared} is in use by another sweep running now") and err.count("\n") == 1
