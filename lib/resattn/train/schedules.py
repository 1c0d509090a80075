"""The fast recipe's learning-rate schedule (the seed's and the paper's drops are Keras's own
`PiecewiseConstantDecay`)."""

import keras


@keras.saving.register_keras_serializable(package="resattn")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Update k (from 0) at peak * (k + 1) / warmup during the first `warmup` updates, then at
    peak * (total - k) / (total - warmup): up from near 0, then down to near 0 at update total - 1
    (Smith's one-cycle in the triangular form of Page's and Jordan's fast CIFAR training)."""

    def __init__(self, peak, warmup, total):
        self.peak, self.warmup, self.total = peak, warmup, total

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rising = (step + 1.0) / max(self.warmup, 1)
        falling = (self.total - step) / (self.total - self.warmup)
        rate = keras.ops.where(step < self.warmup, rising, falling)
        return self.peak * keras.ops.clip(rate, 0.0, 1.0)

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}
