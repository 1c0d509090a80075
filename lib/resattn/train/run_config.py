"""A run config: the flat mapping of keys a run trains (a params file's keys, overrides applied),
checked and split into its data, network and recipe parts before anything is read, and the
run's identity: what it trains, not where its files lie."""

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from resattn.data.datasets import CIFAR, check_data_options, data_fingerprint, load_dataset
from resattn.models.networks import KEYWORDS as NETWORK_KEYS
from resattn.models.networks import resolve_network
from resattn.train.recipes import FIELDS as RECIPE_KEYS
from resattn.train.recipes import Recipe, resolve_recipe


class ParamsError(ValueError):
    """A config that must not run; the message names the file, the key and the valid names."""


def read_mapping(path):
    """A params file: YAML that must hold a mapping (an empty file is an empty mapping)."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}".splitlines()[0]) from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ParamsError(f"{path}: a params file must be a mapping of keys to values")
    return loaded


@dataclass(frozen=True)
class DataOptions:
    """What `load_dataset` reads and how it splits it."""

    dataset: str = "synthetic"
    data_dir: str | None = None  # where the data lies: not part of a run's identity
    validation_split: float = 0.2
    label_noise: float = 0.0
    image_size: int = 32
    limit: int | None = None
    synthetic_size: int = 2000
    synthetic_classes: int = 10


DATA_KEYS = tuple(DataOptions.__dataclass_fields__)
RUN_KEYS = ("recipe", "seed")
RUN_CONFIG_KEYS = RUN_KEYS + DATA_KEYS + tuple(k for k in NETWORK_KEYS if k != "input_shape") + RECIPE_KEYS
LOCATION_KEYS = ("data_dir",)  # where things lie, not what a run trains
# How a run computes, not what it trains: the same formulas by other kernels (recipes.KERNELS). A
# run keeps the kernels it started with (state.json's "execution"), whatever the recipe now says.
EXECUTION_KEYS = ("recipe.kernels",)


@dataclass(frozen=True)
class RunConfig:
    raw: dict  # the keys as given
    seed: int
    recipe_name: str
    recipe: Recipe
    data: DataOptions
    model: dict  # build_model's keywords; num_classes None for an image folder until it is read

    @classmethod
    def from_mapping(cls, raw):
        """Checks a flat run config (the keys of a params file); every bad key or value raises
        ValueError naming it, before any data is read."""
        unknown = sorted(set(raw) - set(RUN_CONFIG_KEYS))
        if unknown:
            raise ValueError(f"unknown config key {unknown[0]!r}; valid keys: {', '.join(RUN_CONFIG_KEYS)}")
        seed = raw.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed={seed!r} is not valid; it must be an integer >= 0")
        data = DataOptions(**{key: raw[key] for key in DATA_KEYS if key in raw})
        check_data_options(
            data.dataset,
            data.data_dir,
            data.validation_split,
            data.label_noise,
            data.image_size,
            data.limit,
            data.synthetic_classes,
        )
        if data.dataset in CIFAR and data.image_size != 32:
            raise ValueError(f"image_size={data.image_size!r} is not valid for {data.dataset}; CIFAR images are 32")
        model = {key: raw[key] for key in NETWORK_KEYS if key in raw and key != "input_shape"}
        model.setdefault("num_classes", _classes_known_before_loading(data))
        model["input_shape"] = (data.image_size, data.image_size, 3)
        resolve_network(**model)
        recipe_name = raw.get("recipe", "seed_adam")
        recipe = resolve_recipe(recipe_name, **{key: raw[key] for key in RECIPE_KEYS if key in raw})
        if (
            recipe.early_stopping_patience
            and recipe.early_stopping_monitor == "val_accuracy"
            and not data.validation_split
        ):
            raise ValueError(
                "early_stopping_monitor='val_accuracy' is not valid with validation_split=0 (no validation "
                "images: it would never stop); choose 'accuracy' or a validation_split > 0"
            )
        return cls(dict(raw), seed, recipe_name, recipe, data, model)

    def load_data(self):
        """The dataset this run trains and tests on, split and noised as its run does."""
        return load_dataset(**asdict(self.data), seed=self.seed)

    def identity(self):
        """What this run trains, as a flat mapping: its seed, its network, its recipe and its
        data's content and split, every default filled in. Where the data lies is not part of it,
        so moved data or another cache resumes a run; nor are the kernels that compute it
        (EXECUTION_KEYS); whatever else differs is another run."""
        data = {f"data.{key}": value for key, value in asdict(self.data).items() if key not in LOCATION_KEYS}
        data["data.content"] = data_fingerprint(self.data.dataset, self.data.data_dir)
        model = {f"model.{key}": value for key, value in resolve_network(**self.model).items()}
        recipe = {f"recipe.{key}": value for key, value in self.recipe.to_dict().items()}
        return what_it_trains({"seed": self.seed, "recipe": self.recipe_name, **data, **model, **recipe})


def what_it_trains(identity):
    """`identity` without EXECUTION_KEYS (a state written before they left the identity holds them)."""
    return {key: value for key, value in identity.items() if key not in EXECUTION_KEYS}


def _classes_known_before_loading(data):
    if data.dataset in CIFAR:
        return CIFAR[data.dataset].classes
    if data.dataset == "image_folder":
        return None  # counted from the folder once it is read
    return data.synthetic_classes
