"""Every params file is a valid run config, and the seed's configs build the networks it reported."""

from pathlib import Path

import pytest
import yaml

from resattn import build_model, count_parameters
from resattn.suite.reported import SEED_RESULTS
from resattn.train.run_config import RunConfig

PARAMS = sorted((Path(__file__).resolve().parents[1] / "params").glob("*.yaml"))


def reported(path):
    figures = SEED_RESULTS.get(path.stem)
    return figures.parameters if figures else None


@pytest.mark.parametrize("path", PARAMS, ids=lambda path: path.stem)
def test_params_file_resolves(path):
    RunConfig.from_mapping(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", [p for p in PARAMS if reported(p)], ids=lambda p: p.stem)
def test_seed_configs_build_the_reported_networks(path):
    model = RunConfig.from_mapping(yaml.safe_load(path.read_text())).model
    assert count_parameters(build_model(**model))["total"] == reported(path)
