"""The config check: every params file against the notebook's parameters and the library, under
every profile; a misspelt key or a bad value stops reproduce-all before anything runs."""

import shutil
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from resattn.suite.params import (
    RUN_PARAMETERS,
    ParamsError,
    apply_profile,
    check_params_file,
    list_params_files,
    notebook_parameters,
    params_keys,
    profile_names,
    read_mapping,
    read_profile,
    run_config,
)
from resattn.train.recipes import resolve_recipe
from resattn.train.run_config import RUN_CONFIG_KEYS, RunConfig

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params"
TRAIN = ROOT / "notebooks" / "train.ipynb"


def test_the_train_notebook_takes_exactly_the_library_config_keys():
    assert set(notebook_parameters(TRAIN)) == set(RUN_CONFIG_KEYS) | set(RUN_PARAMETERS)
    assert set(params_keys(TRAIN)) == set(RUN_CONFIG_KEYS)


def test_the_profiles_are_fast_full_quick_and_smoke():
    assert profile_names(PARAMS) == ("fast", "full", "quick", "smoke")
    assert read_profile(PARAMS, "full") == {}
    for path in list_params_files(PARAMS):  # fast: every config, the seed's and the paper's, with the fast recipe
        assert check_params_file(path, TRAIN, read_profile(PARAMS, "fast"))[1]["recipe"] == "fast"


@pytest.mark.parametrize("profile", ["fast", "full", "quick", "smoke"])
def test_every_config_passes_the_check_under_every_profile(profile):
    for path in list_params_files(PARAMS):
        config, effective = check_params_file(path, TRAIN, read_profile(PARAMS, profile))
        assert config == read_mapping(path)
        assert (effective["dataset"] == "synthetic") == (profile == "smoke")


def test_subsets_split_the_configs_into_the_seed_and_the_paper():
    seed, paper = list_params_files(PARAMS, "seed"), list_params_files(PARAMS, "paper")
    assert len(seed) == 7 and len(paper) == 26
    assert sorted(seed + paper) == list_params_files(PARAMS)
    with pytest.raises(ParamsError, match=r"subset='papers' is not valid; choose one of \('all', 'seed', 'paper'\)"):
        list_params_files(PARAMS, "papers")


def test_configs_picks_configs_by_name_or_pattern_and_refuses_one_that_matches_none():
    names = [path.stem for path in list_params_files(PARAMS, "seed", "seed[123]-*")]
    assert names == [
        "seed1-cifar10-a56-seedspatial-arl-adam",
        "seed2-cifar10-a56-mixed-arl-adam",
        "seed3-cifar10-a56-mixed-nal-adam",
    ]
    assert [path.stem for path in list_params_files(PARAMS, "all", "paper-cifar10-a92-noise30.yaml, seed5-*")] == [
        "paper-cifar10-a92-noise30",
        "seed5-cifar100-a56-mixed-nal-adam",
    ]
    with pytest.raises(
        ParamsError, match=r"configs='paper-\*' matches no config of subset 'seed'; choose among seed1-"
    ):
        list_params_files(PARAMS, "seed", "seed1-*,paper-*")


def test_an_image_folder_as_data_stands_for_cifar10_and_is_refused_for_cifar100(tmp_path):
    archive = tmp_path / "cifar10-jpeg-train.tar.gz"
    archive.write_bytes(b"")  # what it holds is read by the run, not by the check
    config, effective = check_params_file(PARAMS / "seed2-cifar10-a56-mixed-arl-adam.yaml", TRAIN, {}, archive)
    assert config["dataset"] == effective["dataset"] == "image_folder" and config["data_dir"] == str(archive)
    folder = tmp_path / "images"
    (folder / "cifar10-jpeg" / "train" / "cat").mkdir(parents=True)
    assert (
        check_params_file(PARAMS / "seed2-cifar10-a56-mixed-arl-adam.yaml", TRAIN, {}, folder)[0]["dataset"]
        == "image_folder"
    )
    official = tmp_path / "official"
    official.mkdir()
    assert check_params_file(PARAMS / "seed2-cifar10-a56-mixed-arl-adam.yaml", TRAIN, {}, official)[0] == {
        **read_mapping(PARAMS / "seed2-cifar10-a56-mixed-arl-adam.yaml"),
        "data_dir": str(official),
    }
    with pytest.raises(
        ParamsError,
        match=r"data=.*cifar10-jpeg-train.tar.gz is an image folder, which stands for "
        r"CIFAR-10 only; this cifar100 config needs",
    ):
        check_params_file(PARAMS / "seed5-cifar100-a56-mixed-nal-adam.yaml", TRAIN, {}, archive)


def test_a_misspelt_key_is_refused_with_the_file_the_key_and_the_valid_names(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("dataset: cifar10\nfamily: paper\ndetph: 92\n")
    with pytest.raises(ParamsError) as caught:
        check_params_file(path, TRAIN)
    message = str(caught.value)
    assert message.startswith(f"{path}: unknown key 'detph'; valid names: recipe, seed, dataset")
    assert "depth" in message and "\n" not in message


def test_the_check_runs_the_notebooks_defaults_overlaid_with_the_file():
    # The notebook's own example is the seed's config 2; a ResNet file must not inherit its
    # attention keys, and a file without a dataset gets the notebook's.
    config, effective = check_params_file(PARAMS / "paper-cifar10-resnet164.yaml", TRAIN)
    assert "mechanism" not in effective and effective["family"] == "resnet"
    assert effective == run_config(notebook_parameters(TRAIN) | config, {})


def test_a_bad_value_is_refused_with_the_file_and_the_value(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("family: paper\ndepth: 57\n")
    with pytest.raises(ParamsError, match=r"bad\.yaml: depth=57 is not valid"):
        check_params_file(path, TRAIN)


def test_an_unknown_profile_is_refused_with_the_choices():
    with pytest.raises(
        ParamsError, match=r"profile='smok' is not valid; choose one of \('fast', 'full', 'quick', 'smoke'\)"
    ):
        read_profile(PARAMS, "smok")


def test_smoke_replaces_cifar_by_synthetic_images_of_as_many_classes():
    smoke = read_profile(PARAMS, "smoke")
    config = apply_profile({"dataset": "cifar100", "data_dir": "/data", "family": "seed"}, smoke)
    assert config["dataset"] == "synthetic" and config["synthetic_classes"] == 100 and "data_dir" not in config
    assert RunConfig.from_mapping(config).model["num_classes"] == 100
    folder = apply_profile({"dataset": "image_folder", "data_dir": "/data"}, smoke)
    assert folder["dataset"] == "image_folder" and folder["data_dir"] == "/data"


def test_quick_runs_a_tenth_of_the_schedule_with_the_drops_scaled_alike():
    paper = resolve_recipe("paper", **read_profile(PARAMS, "quick"))
    assert paper.epochs_for(50_000) == 21  # 16,000 iterations of 782 steps per epoch
    schedule = paper.learning_rate_schedule(50_000)
    assert [float(schedule(step)) for step in (6_399, 6_400, 9_600)] == pytest.approx([0.1, 0.01, 0.001])
    seed = resolve_recipe("seed_sgd", **read_profile(PARAMS, "quick"))
    assert seed.epochs_for(40_000) == 25
    schedule = seed.learning_rate_schedule(40_000)  # drops at epochs 7, 12 and 18 of 625 steps
    assert float(schedule(7 * 625 - 1)) == pytest.approx(0.1) and float(schedule(7 * 625)) == pytest.approx(0.01)


def test_the_fast_recipe_warms_up_then_decays_to_zero_over_the_runs_own_epochs():
    fast = resolve_recipe("fast")
    assert fast.epochs_for(40_000) == 40 and fast.steps_per_epoch(40_000) == 157
    schedule = fast.learning_rate_schedule(40_000)  # 6,280 steps, 628 of warmup
    rates = [float(schedule(step)) for step in (0, 313, 627, 628, 3454, 6279)]
    assert rates == pytest.approx([0.1 / 628, 0.1 * 314 / 628, 0.1, 0.1, 0.1 * 2826 / 5652, 0.1 / 5652])
    assert float(schedule(6280)) == 0.0
    short = resolve_recipe("fast", epochs=10).learning_rate_schedule(40_000)  # the schedule follows epochs
    assert float(short(1569)) == pytest.approx(0.1 / (1570 - 628))
    capped = resolve_recipe("fast", max_epochs=2).learning_rate_schedule(40_000)  # a cap cuts, it does not shorten
    assert float(capped(3454)) == pytest.approx(float(schedule(3454)))
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(restored(3454)) == pytest.approx(float(schedule(3454)))
    with pytest.raises(
        ValueError, match=r"lr_schedule='cosine' is not valid; choose one of \('drops', 'warmup_linear'\)"
    ):
        resolve_recipe("fast", lr_schedule="cosine")
    with pytest.raises(ValueError, match=r"label_smoothing=1.0 is not valid; it must be a number in \[0, 1\)"):
        resolve_recipe("fast", label_smoothing=1.0)


def test_giving_epochs_replaces_the_recipes_iterations():
    assert resolve_recipe("paper", epochs=30).epochs_for(50_000) == 30
    assert resolve_recipe("seed_adam", iterations=1000).epochs_for(6400) == 10


def test_reproduce_stops_on_a_misspelt_key_before_anything_runs(tmp_path):
    params = tmp_path / "params"
    shutil.copytree(PARAMS, params)
    (params / "seed2-cifar10-a56-mixed-arl-adam.yaml").write_text(
        "dataset: cifar10\nfamily: seed\nmask_activaton: mixed\n"
    )
    results = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "resattn.suite.reproduce",
            "--params",
            str(params),
            "--results",
            str(results),
            "--notebooks",
            str(ROOT / "notebooks"),
            "--profile",
            "smoke",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1
    assert "seed2-cifar10-a56-mixed-arl-adam.yaml: unknown key 'mask_activaton'; valid names:" in error[0]
    assert not results.exists()  # nothing ran, nothing was written
