"""A run's figures once it ends (metrics.json): accuracy, time per epoch, size, status."""

import math

import keras
import numpy as np

from resattn.models.complexity import count_multiply_adds, count_parameters
from resattn.train.run_folder import seconds_per_epoch


def run_metrics(model, network, dataset, state, config):
    history = state["history"]
    val = [row["val_accuracy"] for row in history if finite(row["val_accuracy"])]
    mean_seconds = seconds_per_epoch(history) or math.nan
    steps = config["steps_per_epoch"]
    images_per_epoch = min(len(dataset.x_train), steps * config["recipe"]["batch_size"])
    metrics = {
        "status": state["status"],
        "epochs": state["epoch"],
        "best_val_accuracy": max(val) if val else None,
        "final_val_accuracy": val[-1] if val else None,
        "test_loss": None,
        "test_accuracy": None,
        # The seed's measure: the mean over epochs after the first, and after a resume's first too.
        "seconds_per_epoch": mean_seconds,
        "images_per_second": images_per_epoch / mean_seconds if mean_seconds else None,
        "parameters": count_parameters(network),
        "multiply_adds": count_multiply_adds(network),
    }
    if dataset.x_test is not None and state["status"] != "diverged":
        y_test = keras.utils.to_categorical(dataset.y_test, dataset.num_classes)
        loss, accuracy = model.evaluate(dataset.x_test, y_test, batch_size=256, verbose=0)
        metrics["test_loss"], metrics["test_accuracy"] = float(loss), float(accuracy)
    # Beside the plain figures, never instead of them: each image and its mirror image, their
    # probabilities averaged (test-time augmentation with the flip the network trained with).
    if state["status"] != "diverged":
        for key, x, y in (
            ("val_accuracy_flip", dataset.x_val, dataset.y_val),
            ("test_accuracy_flip", dataset.x_test, dataset.y_test),
        ):
            metrics[key] = flip_accuracy(model, x, y) if x is not None and len(x) else None
    return metrics


def flip_accuracy(model, images, labels):
    """Accuracy of the mean of the probabilities of each image and of its left-right mirror."""
    probabilities = model.predict(images, batch_size=256, verbose=0) + model.predict(
        images[:, :, ::-1], batch_size=256, verbose=0
    )
    return float(np.mean(probabilities.argmax(-1) == labels))


def figure(value):
    return f"{value:.4f}" if finite(value) else "n/a"


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def summary_line(metrics):
    return (
        f"{metrics['status']} after {metrics['epochs']} epochs: best val_accuracy {figure(metrics['best_val_accuracy'])}"
        f", test accuracy {figure(metrics['test_accuracy'])}, {figure(metrics['seconds_per_epoch'])} s per epoch"
        " (mean after the first)"
    )
