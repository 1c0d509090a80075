"""A run's checkpoint: every variable of the model (weights, batch-norm statistics, the
augmentation's random state) and of its optimizer (step, slots, loss scale), as arrays in one
`.npz` file, in the order the network creates them.

Departure from Keras's own checkpoint (`model.save`): that walks every layer and writes its
config, about 0.75 s for Attention-56 and 9.2 s for Attention-452 on this CPU at every
epoch; the arrays alone take a seventh of that (bench/checkpoint.py). `.keras` files also leave out the seed generators'
state, so a resumed run drew other flips and shifts than an uninterrupted one. The trained
model is still written once as `model.keras`, which loads without this package's code.
"""

from pathlib import Path

import keras
import numpy as np

from resattn.train.run_files import atomic_write

SUFFIX = ".npz"


def checkpoint_name(epoch):
    return f"checkpoint-{epoch:04d}{SUFFIX}"


def checkpointed_variables(model):
    """The variables a run resumes from. Order, not name, matches them: a second model built
    in one process gets other automatic layer names."""
    return [*model.variables, *model.optimizer.variables]


def save_checkpoint(model, path):
    arrays = {f"{index:05d}": keras.ops.convert_to_numpy(variable)
              for index, variable in enumerate(checkpointed_variables(model))}

    def write(temporary):
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)

    atomic_write(path, write)


def restore_checkpoint(model, path):
    """Assigns a checkpoint's arrays to `model`, built and compiled as the run that saved it
    was (its optimizer's variables made): a checkpoint of another network is refused."""
    if Path(path).suffix == ".keras":  # written before checkpoints were arrays: Keras reads its own
        model.load_weights(path)
        return
    variables = checkpointed_variables(model)
    with np.load(path, allow_pickle=False) as saved:
        arrays = [saved[key] for key in sorted(saved.files)]
    expected = [tuple(variable.shape) for variable in variables]
    if [array.shape for array in arrays] != expected:
        raise ValueError(f"{path} holds {len(arrays)} variables that do not match this run's model "
                         f"({len(expected)} variables): it was saved by another network or optimizer")
    for variable, array in zip(variables, arrays):
        variable.assign(array)
