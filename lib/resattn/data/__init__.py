"""The data: CIFAR and image folders loaded and split, and the preprocessing and augmentation layers."""
