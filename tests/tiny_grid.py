"""A params folder for grid tests: configs that train in seconds under the `tiny` profile."""

TINY = """\
dataset: synthetic
synthetic_size: 32
image_size: 16
validation_split: 0.25
batch_size: 8
max_steps_per_epoch: 1
run_eagerly: true
"""


def write_params(tmp_path, configs):
    """tmp_path/params with the tiny profile and one file per config: {name: YAML text}."""
    params = tmp_path / "params"
    (params / "profiles").mkdir(parents=True)
    (params / "profiles" / "tiny.yaml").write_text(TINY)
    for name, text in configs.items():
        (params / f"{name}.yaml").write_text(text)
    return params
