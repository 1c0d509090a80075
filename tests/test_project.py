"""The project's own files agree with each other: dependencies, README table, README commands."""

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

from resattn.suite import model_table

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_section = next(
        item["pip"] for item in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
        if isinstance(item, dict)
    )
    conda_pins = {line for line in pip_section if not line.startswith("-e")}
    assert conda_pins == set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


def test_readme_table_is_what_make_table_prints(built):
    readme = (ROOT / "README.md").read_text()
    lines = list(model_table.HEADER) + [
        model_table.markdown_line(model_table.table_row(options, seed_configs, build=built))
        for options, seed_configs in model_table.ROWS
    ]
    assert "\n".join(lines) in readme, "README's table is stale: paste the output of `make table`"


def test_readme_commands_are_make_targets():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^make (\w[\w-]*)", readme, flags=re.MULTILINE)
    assert {"reproduce-all", "test", "smoke"} <= set(commands)
    for target in commands:
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
