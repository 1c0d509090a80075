"""A params folder for grid tests, with configs that train in seconds under the `tiny` profile, and
a small image folder for configs to read."""

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


def write_image_folder(root, per_class=8):
    """Two classes of `per_class` 16x16 images: root/train/class0, root/train/class1."""
    from PIL import Image

    for label in range(2):
        folder = root / "train" / f"class{label}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            Image.new("RGB", (16, 16), (label * 200, index * 20, 0)).save(folder / f"{index}.png")
