"""A run config: the flat mapping of keys a run trains (a params file's keys, overrides applied),
checked and split into its data, network and recipe parts before anything is read."""

from resattn.data.datasets import CIFAR, check_data_options, load_dataset
from resattn.models.networks import KEYWORDS as NETWORK_KEYS
from resattn.models.networks import resolve_network
from resattn.train.recipes import FIELDS as RECIPE_KEYS
from resattn.train.recipes import resolve_recipe

DATA_DEFAULTS = {
    "dataset": "synthetic",
    "data_dir": None,
    "validation_split": 0.2,
    "label_noise": 0.0,
    "image_size": 32,
    "limit": None,
    "synthetic_size": 2000,
    "synthetic_classes": 10,
}
RUN_KEYS = ("recipe", "seed")
RUN_CONFIG_KEYS = RUN_KEYS + tuple(DATA_DEFAULTS) + tuple(k for k in NETWORK_KEYS if k != "input_shape") + RECIPE_KEYS
def resolve_run_config(raw):
    """Checks a flat run config (the keys of a params file) and returns it in three parts:
    {"seed", "recipe_name", "data": {...}, "model": {...}, "recipe": Recipe}. Every bad key or
    value raises ValueError naming it, before any data is read."""
    unknown = sorted(set(raw) - set(RUN_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; valid keys: {', '.join(RUN_CONFIG_KEYS)}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; it must be an integer >= 0")
    data = {key: raw.get(key, default) for key, default in DATA_DEFAULTS.items()}
    check_data_options(
        data["dataset"], data["data_dir"], data["validation_split"], data["label_noise"], data["image_size"],
        data["limit"], data["synthetic_classes"],
    )
    if data["dataset"] in CIFAR and data["image_size"] != 32:
        raise ValueError(f"image_size={data['image_size']!r} is not valid for {data['dataset']}; CIFAR images are 32")
    model = {key: raw[key] for key in NETWORK_KEYS if key in raw and key != "input_shape"}
    model.setdefault("num_classes", _classes_known_before_loading(data))
    model["input_shape"] = (data["image_size"], data["image_size"], 3)
    resolve_network(**model)
    recipe_name = raw.get("recipe", "seed_adam")
    recipe = resolve_recipe(recipe_name, **{key: raw[key] for key in RECIPE_KEYS if key in raw})
    if recipe.early_stopping_patience and recipe.early_stopping_monitor == "val_accuracy" and not data["validation_split"]:
        raise ValueError("early_stopping_monitor='val_accuracy' is not valid with validation_split=0 (no validation "
                         "images: it would never stop); choose 'accuracy' or a validation_split > 0")
    return {"seed": seed, "recipe_name": recipe_name, "data": data, "model": model, "recipe": recipe}


def _classes_known_before_loading(data):
    if data["dataset"] in CIFAR:
        return CIFAR[data["dataset"]].classes
    if data["dataset"] == "image_folder":
        return None  # counted from the folder once it is read
    return data["synthetic_classes"]


def load_run_data(raw_config):
    """The dataset a config trains and tests on, split and noised as its run does."""
    resolved = resolve_run_config(raw_config)
    return load_dataset(**resolved["data"], seed=resolved["seed"])
