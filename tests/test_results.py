"""The results table from a set of fabricated run folders: repeats averaged, a failed, an
interrupted and a missing run each shown as such, the summary files written."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from resattn.suite import results
from resattn.suite.params import list_params_files, read_mapping
from resattn.suite.reported import PAPER_ERRORS, SEED_RESULTS, paper_errors

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params"
SEED2 = SEED_RESULTS["seed2-cifar10-a56-mixed-arl-adam"]


def fabricate(run_dir, status="completed", test_accuracy=None, seconds=10.0, seed=0, epochs=3):
    """A run folder with the files training writes, in their format."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"seed": seed, "config": {"seed": seed}}))
    (run_dir / "state.json").write_text(json.dumps({"status": status, "epoch": epochs}))
    history = pd.DataFrame(
        {
            "epoch": range(1, epochs + 1),
            "loss": [2.0, 1.5, 1.2][:epochs],
            "accuracy": [0.3, 0.5, 0.6][:epochs],
            "val_loss": [2.1, 1.7, 1.4][:epochs],
            "val_accuracy": [0.25, 0.45, 0.55][:epochs],
            "learning_rate": 0.1,
            "seconds": seconds,
        }
    )
    history.to_csv(run_dir / "history.csv", index=False)
    if status == "running":
        return
    metrics = {
        "status": status,
        "epochs": epochs,
        "best_val_accuracy": 0.55,
        "final_val_accuracy": 0.55,
        "test_loss": 1.0,
        "test_accuracy": test_accuracy,
        "seconds_per_epoch": seconds,
        "images_per_second": 4000 / seconds,
        "parameters": {"total": 1_000},
        "multiply_adds": 123,
    }
    if status == "failed":
        metrics = {"status": "failed", "error": "DataError: no such folder: /data"}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def runs_dir(tmp_path):
    runs = tmp_path / "results"
    fabricate(runs / "seed2-cifar10-a56-mixed-arl-adam", test_accuracy=0.86, seconds=2.0)
    fabricate(runs / "seed2-cifar10-a56-mixed-arl-adam-seed1", test_accuracy=0.88, seconds=4.0, seed=1)
    # Trained, then its notebook failed: its figures are not the config's, its time neither.
    notebook_failed = runs / "seed2-cifar10-a56-mixed-arl-adam-seed2"
    fabricate(notebook_failed, test_accuracy=0.10, seconds=100.0, seed=2)
    (notebook_failed / "notebook-error.txt").write_text("the notebook stopped (exit 1)\nValueError: plot broke\n")
    fabricate(runs / "seed1-cifar10-a56-seedspatial-arl-adam", status="failed")
    fabricate(runs / "seed3-cifar10-a56-mixed-nal-adam", status="running", epochs=1)
    notebook_failed = runs / "seed5-cifar100-a56-mixed-nal-adam"
    fabricate(notebook_failed, test_accuracy=0.5)
    (notebook_failed / "notebook-error.txt").write_text("the notebook stopped (exit 1)\nValueError: plot broke\n")
    fabricate(runs / "paper-cifar10-a56-mixed-arl", test_accuracy=0.95)
    fabricate(runs / "paper-cifar10-a92-noise30", status="diverged", test_accuracy=None)
    return runs


def test_every_config_gets_a_row_and_every_run_its_status(runs_dir):
    runs = results.collect_runs(runs_dir, PARAMS)
    by_run = runs.set_index("run")
    assert by_run.loc["seed2-cifar10-a56-mixed-arl-adam", "status"] == "completed"
    assert by_run.loc["seed2-cifar10-a56-mixed-arl-adam-seed1", "seed"] == 1
    assert by_run.loc["seed1-cifar10-a56-seedspatial-arl-adam", "status"] == "failed"
    assert by_run.loc["seed1-cifar10-a56-seedspatial-arl-adam", "error"] == "DataError: no such folder: /data"
    assert by_run.loc["seed3-cifar10-a56-mixed-nal-adam", "status"] == "interrupted"
    assert by_run.loc["seed5-cifar100-a56-mixed-nal-adam", "error"] == "ValueError: plot broke"
    assert by_run.loc["paper-cifar10-a92-noise30", "status"] == "diverged"
    missing = runs[runs["status"] == "missing"]
    assert len(missing) == len(list_params_files(PARAMS)) - 6  # six configs have runs, seed2 two of them
    assert set(runs["config"]) == {path.stem for path in list_params_files(PARAMS)}


def test_the_seed_table_averages_repeats_and_sets_the_reported_figures_beside(runs_dir):
    table = results.seed_table(results.collect_runs(runs_dir, PARAMS), PARAMS)
    row = table.loc["seed2-cifar10-a56-mixed-arl-adam"]
    assert row["acc (%)"] == pytest.approx(87.0) and row["measured on"] == "test"
    assert row["± std"] == pytest.approx(math.sqrt(2))  # sample std of 86 and 88
    assert row["runs"] == 2 and row["status"] == "2 completed, 1 failed"
    assert row["seed's acc (%)"] == SEED2.accuracy and row["difference"] == pytest.approx(87.0 - SEED2.accuracy)
    assert row["s/epoch"] == pytest.approx(3.0)  # the finished runs' mean
    assert row["seed's s/epoch (T4)"] == SEED2.seconds_per_epoch
    assert (row["dataset"], row["depth"], row["optimizer"], row["mask activation"], row["mechanism"]) == (
        "CIFAR-10",
        56,
        "Adam",
        "mixed",
        "ARL",
    )
    assert table.loc["seed1-cifar10-a56-seedspatial-arl-adam", "status"] == "failed"
    assert table.loc["seed1-cifar10-a56-seedspatial-arl-adam", "mask activation"] == "spatial (seed variant)"
    assert table.loc["seed4-cifar10-a92-seedspatial-arl-sgd-published", "optimizer"] == "Nesterov SGD"
    assert table.loc["seed6-cifar100-a56-seedspatial-arl-adam", "status"] == "missing"
    assert math.isnan(table.loc["seed5-cifar100-a56-mixed-nal-adam", "acc (%)"])  # failed: no figure


def test_a_run_without_test_images_is_measured_on_its_validation_images_and_says_so(tmp_path):
    fabricate(tmp_path / "seed3-cifar10-a56-mixed-nal-adam", test_accuracy=None)  # final val_accuracy 0.55
    row = results.seed_table(results.collect_runs(tmp_path, PARAMS), PARAMS).loc["seed3-cifar10-a56-mixed-nal-adam"]
    assert row["acc (%)"] == pytest.approx(55.0) and row["measured on"] == "validation"


def test_the_paper_tables_share_a_run_between_rows_and_show_the_papers_error(runs_dir):
    runs = results.collect_runs(runs_dir, PARAMS)
    table1, table4 = results.paper_table(runs, 1), results.paper_table(runs, 4)
    assert table1.loc["mixed (f1)", "error (%)"] == pytest.approx(5.0)
    assert table1.loc["mixed (f1)", "paper's error (%)"] == paper_errors("paper-cifar10-a56-mixed-arl")[0]
    assert table4.loc["encoder-decoder", "error (%)"] == pytest.approx(5.0)
    assert table4.loc["local convolutions", "status"] == "missing"
    table5 = results.paper_table(runs, 5)
    assert table5.loc["Attention-92, 30% noise", "status"] == "diverged"
    assert table5.loc["Attention-92, 30% noise", "paper's error (%)"] == paper_errors("paper-cifar10-a92-noise30")[0]
    with pytest.raises(ValueError, match=r"table=2 is not valid; choose one of \(1, 3, 4, 5, 6\)"):
        results.paper_table(runs, 2)


def test_the_summary_files_hold_every_table(runs_dir):
    runs = results.collect_runs(runs_dir, PARAMS)
    tables = results.tables(runs, PARAMS)
    summary = results.write_summary(tables, runs, runs_dir)
    text = summary.read_text()
    titled = tables.titled()
    assert list(titled)[0] == results.SEED_TITLE and len(titled) == 1 + 5
    for title in titled:
        assert f"## {title}" in text
    assert (
        "| seed2-cifar10-a56-mixed-arl-adam | CIFAR-10 | 56 | Adam | mixed | ARL | 87.00 | 1.41 | 2 | test "
        f"| {SEED2.accuracy:.2f} | {87 - SEED2.accuracy:.2f} |"
    ) in text
    local_conv = paper_errors("paper-cifar10-a56-localconv-arl")[0]
    assert (
        f"| local convolutions | paper-cifar10-a56-localconv-arl | - | - | 0 | - | {local_conv:.2f} | - | missing |"
        in text
    )
    frame = pd.read_csv(runs_dir / "summary.csv")
    assert set(frame["table"]) == set(titled)
    assert len(frame) == sum(len(table) for table in titled.values())


def test_histories_collects_every_run_with_a_history(runs_dir):
    runs = results.collect_runs(runs_dir, PARAMS)
    long = results.histories(runs, runs_dir)
    assert set(long["run"]) == set(runs["run"].dropna())
    assert set(long["split"]) == {"training", "validation"} and set(long["metric"]) == {"accuracy", "loss"}


def test_every_params_file_is_in_a_table_and_every_table_row_has_a_params_file():
    in_tables = set(SEED_RESULTS) | {config for _, _, config, _ in PAPER_ERRORS}
    assert in_tables == {path.stem for path in list_params_files(PARAMS)}


@pytest.mark.parametrize("table, row, config, error", PAPER_ERRORS, ids=lambda v: str(v)[:30])
def test_each_paper_row_points_at_the_config_it_names(table, row, config, error):
    config = read_mapping(PARAMS / f"{config}.yaml")
    assert config["recipe"] == "paper"
    depth = int(row.split(",")[0].split()[0].split("-")[1]) if row.startswith(("Attention", "ResNet")) else 56
    assert config["depth"] == depth
    noise = int(row.split("% noise")[0].split()[-1]) / 100 if table == 5 else 0
    assert config.get("label_noise", 0) == noise
    assert config["dataset"] == ("cifar100" if "CIFAR-100" in row else "cifar10")
    if row.startswith("ResNet"):
        assert config["family"] == "resnet"
    else:
        assert config["family"] == "paper" and config["mechanism"] == ("nal" if "NAL" in row else "arl")
        activation = {"channel (f2)": "channel", "spatial (f3)": "spatial"}.get(row, "mixed")
        assert config["mask_activation"] == activation
        assert config.get("mask_structure", "encoder_decoder") == (
            "local_conv" if row == "local convolutions" else "encoder_decoder"
        )
