"""Every params file is a valid run config, and the seed's configs build the networks it reported."""

from pathlib import Path

import pytest
import yaml

from resattn import build_model, count_parameters
from resattn.training import resolve_run_config

PARAMS = sorted((Path(__file__).resolve().parents[1] / "params").glob("*.yaml"))
# FACTS section 1: the parameter counts the seed reported for its configs.
SEED_PARAMETERS = {
    "seed1": 2_893_866,
    "seed2": 2_892_970,
    "seed3": 2_892_970,
    "seed4-cifar10-a92-seedspatial-arl-sgd-published": 9_396_778,
    "seed5": 2_939_140,
    "seed6": 2_940_036,
}


def reported(path):
    return SEED_PARAMETERS.get(path.stem, SEED_PARAMETERS.get(path.stem.split("-")[0]))


@pytest.mark.parametrize("path", PARAMS, ids=lambda path: path.stem)
def test_params_file_resolves(path):
    resolve_run_config(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", [p for p in PARAMS if reported(p)], ids=lambda p: p.stem)
def test_seed_configs_build_the_reported_networks(path):
    model = resolve_run_config(yaml.safe_load(path.read_text()))["model"]
    assert count_parameters(build_model(**model))["total"] == reported(path)
