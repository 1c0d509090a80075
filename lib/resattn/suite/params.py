"""The experiment configs in params/: listing them, profiles, and checking every one before a run.

A config is a flat YAML mapping of run keys (`resattn.train.run_config.RUN_CONFIG_KEYS`); the file's name,
without .yaml, names the experiment and its results folder. A profile (params/profiles/) is a
mapping of overrides that any config can run under.
"""

import ast
import fnmatch
import json
from pathlib import Path

from resattn.data.datasets import CIFAR
from resattn.train.run_config import RUN_CONFIG_KEYS, ParamsError, RunConfig, read_mapping

SUBSETS = ("all", "seed", "paper")
PROFILE_FOLDER = "profiles"
# Parameters of train.ipynb that say how to run, not what: never in a params file.
RUN_PARAMETERS = ("profile", "params_dir", "run_dir", "force")


def list_params_files(params_dir, subset="all", configs=None):
    """The params files of a subset, sorted by name: all, seed (seed*.yaml) or paper (paper*.yaml);
    `configs`, a comma-separated list of names or shell patterns ("seed[123]-*"), keeps those alone."""
    if subset not in SUBSETS:
        raise ParamsError(f"subset={subset!r} is not valid; choose one of {SUBSETS}")
    params_dir = Path(params_dir)
    if not params_dir.is_dir():
        raise ParamsError(f"{params_dir}: no such params folder")
    paths = [path for path in sorted(params_dir.glob("*.yaml")) if subset == "all" or path.name.startswith(subset)]
    if not configs:
        return paths
    patterns = [pattern.strip().removesuffix(".yaml") for pattern in configs.split(",") if pattern.strip()]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(path.stem, pattern) for path in paths):
            raise ParamsError(
                f"configs={pattern!r} matches no config of subset {subset!r}; choose among "
                f"{', '.join(path.stem for path in paths)}"
            )
    return [path for path in paths if any(fnmatch.fnmatchcase(path.stem, pattern) for pattern in patterns)]


def profile_names(params_dir):
    return tuple(sorted(path.stem for path in (Path(params_dir) / PROFILE_FOLDER).glob("*.yaml")))


def read_profile(params_dir, name):
    names = profile_names(params_dir)
    if name not in names:
        raise ParamsError(f"profile={name!r} is not valid; choose one of {names}")
    return read_mapping(Path(params_dir) / PROFILE_FOLDER / f"{name}.yaml")


def apply_profile(config, profile):
    """`config` with the profile's overrides. A profile's dataset replaces CIFAR only, and keeps
    the number of classes (smoke runs CIFAR-100 configs on 100 synthetic classes)."""
    merged = {**config}
    for key, value in profile.items():
        if key == "dataset" and merged.get("dataset") not in CIFAR:
            continue
        if key == "dataset" and value == "synthetic":
            merged["synthetic_classes"] = CIFAR[merged["dataset"]].classes
            merged.pop("data_dir", None)
        merged[key] = value
    return merged


def is_image_folder(data_dir):
    """Whether a data source is CIFAR-10's images as an image folder (train/<class>/*, or a .tar.gz
    of one), like ../shared/data's, rather than a folder of the official archives."""
    path = Path(data_dir)
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz", ".tar"))
    return path.is_dir() and any((candidate / "train").is_dir() for candidate in (path, *path.iterdir()))


def apply_data_source(config, data_dir):
    """Points a CIFAR config at a local folder of the official archives (None: downloaded into the
    cache), or a CIFAR-10 config at an image folder of CIFAR-10's images (dataset image_folder)."""
    if data_dir is None or config.get("dataset") not in CIFAR:
        return config
    if not is_image_folder(data_dir):
        return {**config, "data_dir": str(Path(data_dir).resolve())}
    if config["dataset"] != "cifar10":
        raise ParamsError(
            f"data={data_dir} is an image folder, which stands for CIFAR-10 only; this "
            f"{config['dataset']} config needs a folder of the official archives (or configs=... without it)"
        )
    return {**config, "dataset": "image_folder", "data_dir": str(Path(data_dir).resolve())}


def notebook_parameters(notebook):
    """The names and values assigned in the notebook's cell tagged `parameters` (plain literals)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    tagged = [cell for cell in cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ParamsError(f"{notebook}: needs exactly one cell tagged 'parameters', found {len(tagged)}")
    source = "".join(tagged[0]["source"])
    parameters = {}
    for statement in ast.parse(source).body:
        if not (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            raise ParamsError(f"{notebook}: the parameters cell may only assign plain literals to names")
        parameters[statement.targets[0].id] = ast.literal_eval(statement.value)
    return parameters


def params_keys(notebook):
    """The keys a params file may hold: the notebook's parameters, less the run's own. The
    notebook and the library must agree on them, or nothing runs."""
    names = set(notebook_parameters(notebook)) - set(RUN_PARAMETERS)
    if names != set(RUN_CONFIG_KEYS):
        missing, extra = sorted(set(RUN_CONFIG_KEYS) - names), sorted(names - set(RUN_CONFIG_KEYS))
        raise ParamsError(
            f"{notebook}: its parameters and the library's config keys differ"
            f" (missing from the notebook: {missing or 'none'}; unknown to the library: {extra or 'none'})"
        )
    return RUN_CONFIG_KEYS


def check_params_file(path, notebook, profile=None, data_dir=None):
    """Reads a params file and checks it as the notebook will run it: its keys against the
    notebook's parameters, then the notebook's defaults overlaid with the file, the data source
    and the profile against the library. Returns (the file's config with the data source, the
    config the run will train). Raises ParamsError naming the file and the bad key or value."""
    valid_keys = params_keys(notebook)
    config = read_mapping(path)
    unknown = sorted(set(config) - set(valid_keys))
    if unknown:
        raise ParamsError(f"{path}: unknown key {unknown[0]!r}; valid names: {', '.join(valid_keys)}")
    config = apply_data_source(config, data_dir)
    if config.get("data_dir") is not None:
        config = {
            **config,
            "data_dir": str(Path(config["data_dir"]).resolve()),
        }  # papermill's kernel runs in notebooks/
        if not Path(config["data_dir"]).exists():
            raise ParamsError(
                f"{path}: data_dir={config['data_dir']} does not exist (a relative data_dir is read "
                f"from the folder the command runs in, {Path.cwd()})"
            )
    effective = run_config(notebook_parameters(notebook) | config, profile or {})
    try:
        RunConfig.from_mapping(effective)
    except ValueError as error:
        raise ParamsError(f"{path}: {error}") from error
    return config, effective


def run_config(parameters, profile):
    """What a notebook with these parameter values trains: every config key that is not None,
    with the profile's overrides applied. The notebook itself calls this."""
    return apply_profile({key: parameters[key] for key in RUN_CONFIG_KEYS if parameters.get(key) is not None}, profile)
