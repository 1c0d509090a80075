"""The project's own files agree with each other: dependencies, README commands, the layout.
(The architecture table of docs/ is checked in test_networks.py, beside the networks it builds.)"""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_section = next(
        item["pip"]
        for item in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
        if isinstance(item, dict)
    )
    conda_pins = {line for line in pip_section if not line.startswith("-e")}
    assert conda_pins == set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


def test_readme_commands_are_make_targets():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^make (\w[\w-]*)", readme, flags=re.MULTILINE)
    assert {"reproduce-all", "test", "smoke"} <= set(commands)
    for target in commands:
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_the_layout_names_every_module_of_the_library_and_no_other():
    readme = (ROOT / "docs" / "layout.md").read_text()
    layout = readme.split("```")[1]
    library_lines = layout.split("lib/resattn/\n", 1)[1].splitlines()
    library_lines = library_lines[: next(i for i, line in enumerate(library_lines) if not line.startswith(" "))]
    named, folder = set(), ""
    for line in library_lines:
        entry = re.match(r"^  (\w+/|__init__\.py)", line)
        if entry:
            folder = entry[1] if entry[1].endswith("/") else ""
        named |= {folder + module for module in re.findall(r"\b(\w+\.py)\b", line)}
    library = ROOT / "lib" / "resattn"
    modules = {str(path.relative_to(library)) for path in library.rglob("*.py")}
    modules -= {path for path in modules if path.endswith("/__init__.py")}  # each folder's docstring
    assert named == modules, (
        f"docs/layout.md is stale: missing {sorted(modules - named)}, gone {sorted(named - modules)}"
    )


def test_building_a_network_imports_nothing_of_the_suite():
    probe = (
        "import resattn, sys; resattn.build_model('seed', 56); print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('papermill', 'nbformat', 'seaborn', 'ray') or m.startswith(('resattn.train', "
        "'resattn.suite'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    # Of the training engine, only what a saved run's compile config names (docs/layout.md).
    saved_objects = ["resattn.train", "resattn.train.optimizers", "resattn.train.schedules"]
    assert done.stdout.strip().splitlines()[-1] == str(saved_objects)
