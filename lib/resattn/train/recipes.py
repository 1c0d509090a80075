"""Training recipes: the seed's two, the paper's and this project's fast one, by name,
overridable field by field."""

import math
from dataclasses import asdict, dataclass, fields, replace

import keras

from resattn.data.preprocessing import PREPROCESSINGS
from resattn.train.devices import has_gpu, native_bfloat16
from resattn.train.optimizers import FusedAdam, FusedSGD
from resattn.train.schedules import WarmupLinearDecay

OPTIMIZERS = ("adam", "sgd")
MONITORS = ("accuracy", "val_accuracy")
# drops: divided by 10 at each of lr_drops (the seed's and the paper's); warmup_linear: from 0 up
# to learning_rate over warmup_epochs, then straight down to 0 at the schedule's last step.
LR_SCHEDULES = ("drops", "warmup_linear")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# fused: TensorFlow's fused kernels for batch normalization and optimizer updates in training (the
# same formulas, as accurate against float64: tests/test_batch_norm.py, tests/test_optimizers.py;
# they learn within stock Keras's seed-to-seed range: BENCHMARKS.md), on TensorFlow only; JAX
# compiles Keras's own. keras: Keras's own layers, step for step what stock Keras computes.
KERNELS = ("fused", "keras")


@dataclass(frozen=True)
class Recipe:
    optimizer: str
    learning_rate: float
    batch_size: int
    preprocessing: str
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0  # wd * w added to the gradient of conv and dense kernels (Caffe-style)
    epochs: int | None = None  # at most this many epochs
    iterations: int | None = None  # or stop after this many steps (the paper's 160k)
    lr_drops: tuple = ()  # the learning rate is divided by 10 at each of these ...
    lr_drop_unit: str = "epoch"  # ... epochs or iterations
    lr_schedule: str = "drops"  # or warmup_linear: see LR_SCHEDULES
    warmup_epochs: int = 0  # warmup_linear only
    label_smoothing: float = 0.0  # the target is (1 - s) * one-hot + s / classes
    bn_momentum: float | None = None  # batch norm's moving-average momentum; None: the network's own
    early_stopping_patience: int | None = None
    early_stopping_monitor: str = "accuracy"
    # The seed trained in float32; "auto" trains in bfloat16 (mixed: float32 weights, batch-norm
    # statistics and softmax) where the hardware computes bfloat16 natively: see compute_precision.
    precision: str = "auto"
    jit_compile: bool | str = "auto"  # XLA where it is faster: see compiles_with_xla
    kernels: str = "fused"  # or keras: see KERNELS; like precision, not part of a run's identity
    run_eagerly: bool = False  # no graph at all: slow per step, but nothing to trace (smoke runs)
    steps_per_execution: int | str = "auto"  # steps per call into the compiled graph: see execution_steps
    schedule_scale: float = 1.0  # epochs or iterations and lr_drops, all times this (a short schedule)
    max_epochs: int | None = None  # caps for quick runs
    max_steps_per_epoch: int | None = None

    def epochs_for(self, train_size):
        """How many epochs this recipe runs on `train_size` images, caps included."""
        steps = self.steps_per_epoch(train_size)
        if self.iterations is None:
            epochs = math.ceil(self.epochs * self.schedule_scale)
        else:
            epochs = math.ceil(math.ceil(self.iterations * self.schedule_scale) / steps)
        return min(epochs, self.max_epochs) if self.max_epochs else epochs

    def steps_per_epoch(self, train_size):
        steps = math.ceil(train_size / self.batch_size)
        return min(steps, self.max_steps_per_epoch) if self.max_steps_per_epoch else steps

    def schedule_steps(self, train_size):
        """The schedule's length in steps: epochs (of steps_per_epoch) or iterations, times
        schedule_scale. max_epochs cuts a run short; it does not shorten its schedule."""
        if self.iterations is not None:
            return math.ceil(self.iterations * self.schedule_scale)
        return math.ceil(self.epochs * self.schedule_scale) * self.steps_per_epoch(train_size)

    def learning_rate_schedule(self, train_size):
        """The learning rate as a function of the step (the number of updates done before it)."""
        if self.lr_schedule == "warmup_linear":
            total = self.schedule_steps(train_size)
            warmup = min(self.warmup_epochs * self.steps_per_epoch(train_size), total - 1)
            return WarmupLinearDecay(self.learning_rate, warmup, total)
        if not self.lr_drops:
            return self.learning_rate
        per_step = 1 if self.lr_drop_unit == "iteration" else self.steps_per_epoch(train_size)
        # The optimizer's step counts updates done; Keras keeps the old rate at a boundary itself,
        # so "divide at 64k" is boundary 64k - 1: update 64,001 is the first at the new rate.
        boundaries = [int(math.ceil(drop * self.schedule_scale) * per_step) - 1 for drop in self.lr_drops]
        values = [self.learning_rate / 10**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)

    def compiles_with_xla(self):
        """What `jit_compile` means here. "auto": always on JAX (its compiled mode), and on
        TensorFlow only with a GPU: on a CPU, TensorFlow's own kernels train several times faster
        than XLA's (bench/bench.py measures both)."""
        if self.run_eagerly:
            return False
        if self.jit_compile != "auto":
            return self.jit_compile
        return keras.backend.backend() != "tensorflow" or has_gpu()

    def execution_steps(self):
        """What `steps_per_execution` means here. "auto": 32 on a GPU, where the device would
        otherwise wait for Python after every step while Keras reads the loss and metrics back
        (on TensorFlow); 1 on a CPU, which runs the Python itself (bench/bench.py measures both)."""
        if self.run_eagerly:
            return 1
        if self.steps_per_execution != "auto":
            return self.steps_per_execution
        return 32 if has_gpu() else 1

    def compute_precision(self):
        """What `precision` means here. "auto": bfloat16 on a GPU of compute capability 8.0 or
        later, and with TensorFlow on a CPU with AVX512-BF16 or AMX (twice float32's matmul rate
        on this project's CPU, bench/bench.py); float32 elsewhere, JAX on a CPU included (not
        measured there)."""
        if self.precision != "auto":
            return self.precision
        return "bfloat16" if native_bfloat16() else "float32"

    def make_optimizer(self, train_size):
        rate = self.learning_rate_schedule(train_size)
        fused = self.kernels == "fused"
        if self.optimizer == "adam":
            return (FusedAdam if fused else keras.optimizers.Adam)(rate)
        return (FusedSGD if fused else keras.optimizers.SGD)(rate, momentum=self.momentum, nesterov=self.nesterov)

    def to_dict(self):
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


RECIPES = {
    # docs/sources.md, section 1: the seed's configs 1-3, 5, 6.
    "seed_adam": Recipe(
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=64,
        preprocessing="seed",
        epochs=250,
        early_stopping_patience=15,
    ),
    # The seed's config 4.
    "seed_sgd": Recipe(
        optimizer="sgd",
        learning_rate=0.1,
        batch_size=64,
        preprocessing="seed",
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        epochs=250,
        lr_drops=(65, 120, 180),
        early_stopping_patience=15,
    ),
    # docs/sources.md, section 3: the paper's CIFAR training.
    "paper": Recipe(
        optimizer="sgd",
        learning_rate=0.1,
        batch_size=64,
        preprocessing="paper",
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        iterations=160_000,
        lr_drops=(64_000, 96_000),
        lr_drop_unit="iteration",
    ),
    # This project's fast recipe, for every CIFAR family: the same networks, trained to more in
    # far fewer epochs (docs/training.md, "The fast recipe", says what each choice buys here and
    # where it departs from the seed and the paper). One dict, airbench-style: a reason per value.
    "fast": Recipe(
        optimizer="sgd",  # Nesterov SGD, as the paper's and the seed's config 4
        momentum=0.9,
        nesterov=True,
        batch_size=256,  # 4x the seed's 64: fewer, larger steps, 1.6x the images/s on the CPU (BENCHMARKS.md)
        # Half the 0.2 that scaling ResNet's 0.1 at batch 128 gives: on the seed's Attention-56 (shortcut
        # projections without batch norm) 0.2 trailed (8 epochs of 16,000 real images: validation 19% at
        # epoch 4 against 35% at 0.1); 0.05 and 0.1 ended level (60.7%, 60.9%). docs/training.md.
        learning_rate=0.1,
        lr_schedule="warmup_linear",  # up, then down to 0 at the run's own end, whatever `epochs` is
        warmup_epochs=4,  # a tenth of the run: 0.1 at once on a fresh network blew the seed's Attention-56 up
        epochs=40,  # the schedule's length; shorter or longer runs set epochs and the schedule follows
        # Short schedules want more than the paper's 1e-4; kernels only, as the paper. 2e-4 ended level
        # (config 2, 40 epochs: 85.89% against 86.12%, the same training accuracy; BENCHMARKS.md).
        weight_decay=5e-4,
        label_smoothing=0.1,  # softer targets: a few tenths of a point in short runs (Szegedy et al. 2016)
        # Statistics of the last ~10 steps, not Keras's ~100 (0.99): at this learning rate the weights
        # move faster than 0.99 follows. Seed's Attention-56 at epoch 20 of 40 on the real images:
        # validation 48% on the 0.99 statistics, 76% on statistics re-estimated over 30 batches at 0.9.
        bn_momentum=0.9,
        preprocessing="crop_flip",  # the paper's pad-4 crop and flip on the seed's per-channel scaling
    ),
}


FIELDS = tuple(field.name for field in fields(Recipe))


def resolve_recipe(name, **overrides):
    """The named recipe with `overrides` applied; a bad name, field or value raises ValueError.

    Giving one of epochs and iterations replaces the recipe's other: the paper's recipe with
    epochs=30 runs 30 epochs."""
    if name not in RECIPES:
        raise ValueError(f"recipe={name!r} is not valid; choose one of {tuple(RECIPES)}")
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown recipe field {unknown[0]!r}; valid fields: {', '.join(FIELDS)}")
    overrides = {key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}
    for given, other in (("epochs", "iterations"), ("iterations", "epochs")):
        if overrides.get(given) is not None and other not in overrides:
            overrides[other] = None
    recipe = replace(RECIPES[name], **overrides)
    _check(recipe)
    return recipe


def _check(recipe):
    def bad(key, rule):
        raise ValueError(f"{key}={getattr(recipe, key)!r} is not valid; {rule}")

    for key, choices in (
        ("optimizer", OPTIMIZERS),
        ("preprocessing", PREPROCESSINGS),
        ("early_stopping_monitor", MONITORS),
        ("precision", PRECISIONS),
        ("lr_drop_unit", ("epoch", "iteration")),
        ("lr_schedule", LR_SCHEDULES),
        ("kernels", KERNELS),
    ):
        if getattr(recipe, key) not in choices:
            bad(key, f"choose one of {choices}")
    if not _number(recipe.learning_rate) or recipe.learning_rate <= 0:
        bad("learning_rate", "it must be a number > 0")
    for key in ("momentum", "weight_decay"):
        if not _number(getattr(recipe, key)) or getattr(recipe, key) < 0:
            bad(key, "it must be a number >= 0")
    if not _number(recipe.label_smoothing) or not 0 <= recipe.label_smoothing < 1:
        bad("label_smoothing", "it must be a number in [0, 1)")
    if recipe.bn_momentum is not None and (not _number(recipe.bn_momentum) or not 0 <= recipe.bn_momentum < 1):
        bad("bn_momentum", "it must be a number in [0, 1) or null")
    if not isinstance(recipe.warmup_epochs, int) or isinstance(recipe.warmup_epochs, bool) or recipe.warmup_epochs < 0:
        bad("warmup_epochs", "it must be an integer >= 0")
    if not _positive_int(recipe.batch_size):
        bad("batch_size", "it must be an integer >= 1")
    for key in ("epochs", "iterations", "early_stopping_patience", "max_epochs", "max_steps_per_epoch"):
        if getattr(recipe, key) is not None and not _positive_int(getattr(recipe, key)):
            bad(key, "it must be an integer >= 1 or null")
    if (recipe.epochs is None) == (recipe.iterations is None):
        bad("epochs", "give exactly one of epochs and iterations (the other null)")
    if not all(_number(drop) and drop > 0 for drop in recipe.lr_drops) or list(recipe.lr_drops) != sorted(
        recipe.lr_drops
    ):
        bad("lr_drops", "it must be an increasing list of positive numbers")
    for key in ("nesterov", "run_eagerly"):
        if not isinstance(getattr(recipe, key), bool):
            bad(key, "it must be true or false")
    if not _number(recipe.schedule_scale) or not 0 < recipe.schedule_scale <= 1:
        bad("schedule_scale", "it must be a number in (0, 1]")
    if recipe.jit_compile not in (True, False, "auto"):
        bad("jit_compile", "it must be true, false or 'auto'")
    if recipe.steps_per_execution != "auto" and not _positive_int(recipe.steps_per_execution):
        bad("steps_per_execution", "it must be an integer >= 1 or 'auto'")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
