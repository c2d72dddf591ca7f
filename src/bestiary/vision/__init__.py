"""Image classification helpers: training recipes, norm swapping, a 1x1-conv-only network.

    from bestiary.vision import image_batch, fit_classifier, accuracy_of, predict_proba, one_cycle
    from bestiary.vision import replace_batchnorm, make_norm2d, PointwiseNet, PointwiseConfig

Augmentation lives in :mod:`bestiary.data.augment`; the architectures in the registry
(``bestiary.build("resnet", ...)``, ``"vit"``, ``"convnext"``, ``"swin"``, ``"mlp_mixer"``, ...).
"""

from bestiary.layers.norms2d import NORM_KINDS, make_norm2d, replace_batchnorm
from bestiary.vision.pointwise_net import PointwiseConfig, PointwiseNet
from bestiary.vision.recipes import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    MNIST_MEAN,
    MNIST_STD,
    FitResult,
    accuracy_of,
    fit_classifier,
    image_batch,
    one_cycle,
    predict_proba,
)

__all__ = [
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "NORM_KINDS",
    "FitResult",
    "PointwiseConfig",
    "PointwiseNet",
    "accuracy_of",
    "fit_classifier",
    "image_batch",
    "make_norm2d",
    "one_cycle",
    "predict_proba",
    "replace_batchnorm",
]
