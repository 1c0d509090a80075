"""A run's figures as TensorBoard event files, one point per epoch, in <run>/tensorboard/.

`make tensorboard` shows every run of a results folder side by side. The events are written
with the tensorboard package's own writer; where it is not installed (a bare JAX machine) the
run trains the same and history.csv keeps every figure.
"""

import math
import time

# (tag, history column): training and validation of one figure share a chart.
SCALARS = (
    ("loss/training", "loss"),
    ("loss/validation", "val_loss"),
    ("accuracy/training", "accuracy"),
    ("accuracy/validation", "val_accuracy"),
    ("learning_rate", "learning_rate"),
    ("seconds_per_epoch", "seconds"),
)


class TensorBoardLog:
    def __init__(self, run_dir):
        try:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            self.writer = None
            return
        self.event, self.summary = Event, Summary
        self.writer = EventFileWriter(str(run_dir / "tensorboard"))

    def write(self, row):
        """One epoch's history row, at step = its epoch."""
        if self.writer is None:
            return
        values = [
            self.summary.Value(tag=tag, simple_value=float(row[column]))
            for tag, column in SCALARS
            if isinstance(row.get(column), (int, float)) and math.isfinite(row[column])
        ]
        self.writer.add_event(
            self.event(wall_time=time.time(), step=int(row["epoch"]), summary=self.summary(value=values))
        )
        self.writer.flush()  # its thread is a daemon: what is not flushed is lost with the process
