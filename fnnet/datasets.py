"""Datasets for training: synthetic sets that need nothing, and scikit-learn's bundled ones.

Synthetic (numpy only, deterministic from ``seed``; ``noise`` is the standard deviation of a Gaussian
added to each raw coordinate):

* :func:`xor`: four Gaussian blobs at (±1, ±1); the label is 1 where the signs differ. Not linearly
  separable: the smallest task a linear model cannot fit.
* :func:`spirals`: ``n_classes`` interleaved spiral arms of radius 0 → 1, ``turns`` turns each.
* :func:`circles`: a circle of radius 1 (label 0) around one of radius ``factor`` (label 1).

Bundled with scikit-learn (no download; needs ``pip install 'fnnet[experiments]'``):
iris (150×4, 3 classes), wine (178×13, 3), breast_cancer (569×30, 2), digits (1797×64, 10).

:func:`load` turns any of them into a :class:`Dataset`: a stratified train/test split fixed by ``seed``
(the same seed gives the same split on every machine: numpy's PCG64 is specified), then features
standardised with the *training* mean and standard deviation only (test statistics never leak into the
model), in ``dtype`` (float32 unless asked). Labels are int32 class indices ``0 .. n_classes − 1``.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = [
    "Dataset",
    "NAMES",
    "SYNTHETIC",
    "SKLEARN",
    "xor",
    "spirals",
    "circles",
    "load_sklearn",
    "split",
    "standardize",
    "load",
]

SYNTHETIC = ("xor", "spirals", "circles")
"""The datasets made here, with no dependency."""
SKLEARN = ("iris", "wine", "breast_cancer", "digits")
"""scikit-learn's bundled datasets (need the ``experiments`` extra; nothing is downloaded)."""
NAMES = SYNTHETIC + SKLEARN
"""Every name :func:`load` accepts."""

_INSTALL_HINT = "pip install 'fnnet[experiments]' (or pip install scikit-learn)"


class Dataset(NamedTuple):
    """A train/test split, features standardised with the training statistics.

    ``x_train: (n_train, d)``, ``y_train: (n_train,)`` int32, likewise for test; ``mean`` and ``std``
    (shape ``(d,)``, float64) are the training statistics used, so new points can be transformed the
    same way: ``(x − mean) / std``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    mean: np.ndarray
    std: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


# ---------------------------------------------------------------------------------------------
# Synthetic sets
# ---------------------------------------------------------------------------------------------


def _check_n_noise(where, n, noise, minimum):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{where}: n must be an integer >= {minimum}; got {n!r}")
    if not (isinstance(noise, (int, float, np.floating)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"{where}: noise must be a finite number >= 0; got {noise!r}")


def _counts(n, k):
    """n split into k near-equal class sizes (the first n mod k classes get one more)."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def xor(n: int = 400, noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """XOR: ``n`` points in four Gaussian blobs centred at (±1, ±1), std ``noise``.

    Label ``1`` where the centre's two signs differ (quadrants II and IV), ``0`` otherwise.

    Returns:
      ``x: (n, 2)`` float64, ``y: (n,)`` int32.
    """
    _check_n_noise("fnnet.datasets.xor", n, noise, 4)
    rng = np.random.default_rng(seed)
    signs = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=np.float64)
    corner = np.repeat(np.arange(4), _counts(n, 4))
    x = signs[corner] + noise * rng.standard_normal((n, 2))
    y = (corner >= 2).astype(np.int32)
    order = rng.permutation(n)
    return x[order], y[order]


def spirals(
    n: int = 600, noise: float = 0.05, seed: int = 0, n_classes: int = 2, turns: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spirals: ``n_classes`` arms, each ``turns`` turns from the centre to radius 1.

    Arm ``k`` at parameter ``t ∈ [0, 1]``: radius ``t``, angle ``2π·turns·t + 2πk/n_classes``;
    Gaussian noise of std ``noise`` is added to each coordinate (adjacent arms are
    ``1/(turns·n_classes)`` apart along a ray, so noise above ~0.1 makes two arms overlap). More turns
    make a harder problem: 1.75 (TensorFlow Playground's) takes a small MLP thousands of steps.

    Returns:
      ``x: (n, 2)`` float64, ``y: (n,)`` int32.
    """
    _check_n_noise("fnnet.datasets.spirals", n, noise, 2)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"fnnet.datasets.spirals: n_classes must be an integer >= 2; got {n_classes!r}")
    if not (isinstance(turns, (int, float)) and 0 < turns < math.inf):
        raise ValueError(f"fnnet.datasets.spirals: turns must be a positive number; got {turns!r}")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k, m in enumerate(_counts(n, n_classes)):
        t = np.linspace(0.0, 1.0, m) if m > 1 else np.zeros(m)
        angle = 2 * np.pi * turns * t + 2 * np.pi * k / n_classes
        xs.append(np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1))
        ys.append(np.full(m, k, np.int32))
    x = np.concatenate(xs) + noise * rng.standard_normal((n, 2))
    y = np.concatenate(ys)
    order = rng.permutation(n)
    return x[order], y[order]


def circles(
    n: int = 400, noise: float = 0.1, seed: int = 0, factor: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: radius 1 (label 0) and radius ``factor`` (label 1), std ``noise``.

    Returns:
      ``x: (n, 2)`` float64, ``y: (n,)`` int32.
    """
    _check_n_noise("fnnet.datasets.circles", n, noise, 2)
    if not (isinstance(factor, (int, float)) and 0 < factor < 1):
        raise ValueError(f"fnnet.datasets.circles: factor must lie in (0, 1); got {factor!r}")
    rng = np.random.default_rng(seed)
    n_outer, n_inner = _counts(n, 2)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    radius = np.concatenate([np.ones(n_outer), np.full(n_inner, float(factor))])
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x = x + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n_outer, np.int32), np.ones(n_inner, np.int32)])
    order = rng.permutation(n)
    return x[order], y[order]


# ---------------------------------------------------------------------------------------------
# scikit-learn's bundled datasets
# ---------------------------------------------------------------------------------------------


def load_sklearn(name: str) -> tuple[np.ndarray, np.ndarray]:
    """One of scikit-learn's bundled datasets (read from its package, never downloaded).

    Returns:
      ``x: (n, d)`` float64, ``y: (n,)`` int32.

    Raises:
      ValueError: ``name`` is not one of iris, wine, breast_cancer, digits.
      ImportError: scikit-learn is not installed (the message says how to install it).
    """
    if name not in SKLEARN:
        raise ValueError(
            f"fnnet.datasets.load_sklearn: unknown dataset {name!r}; the scikit-learn datasets are "
            f"{', '.join(SKLEARN)}"
        )
    try:
        from sklearn import datasets as skd
    except ImportError:
        raise ImportError(
            f"dataset {name!r} comes with scikit-learn, which is not installed: {_INSTALL_HINT}"
        ) from None
    bunch = getattr(skd, f"load_{name}")()
    return np.asarray(bunch.data, np.float64), np.asarray(bunch.target, np.int32)


# ---------------------------------------------------------------------------------------------
# Split and standardisation
# ---------------------------------------------------------------------------------------------


def split(
    x: ArrayLike, y: ArrayLike, test_fraction: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A stratified train/test split fixed by ``seed``.

    Each class contributes ``round(test_fraction · count)`` points to the test set (at least one, and
    at least one left for training, where the class has two or more), so class proportions are the same
    on both sides; within each side the points are shuffled.

    Returns:
      ``(x_train, y_train, x_test, y_test)``.
    """
    if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
        raise ValueError(f"fnnet.datasets.split: test_fraction must lie in (0, 1); got {test_fraction!r}")
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"fnnet.datasets.split: x has {x.shape[0]} rows but y has {y.shape[0]}")
    rng = np.random.default_rng(seed)
    test_idx, train_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(test_fraction * idx.size))
        k = min(max(k, 1), idx.size - 1) if idx.size >= 2 else 0
        test_idx.append(idx[:k])
        train_idx.append(idx[k:])
    train = rng.permutation(np.concatenate(train_idx))
    test = rng.permutation(np.concatenate(test_idx))
    return x[train], y[train], x[test], y[test]


def standardize(x_train: ArrayLike, *others: ArrayLike) -> tuple[np.ndarray, ...]:
    """Zero mean, unit variance per feature, with the statistics of ``x_train`` alone.

    A constant feature (std 0, e.g. the always-blank corner pixels of digits) is divided by 1, not 0:
    it becomes 0 everywhere instead of NaN.

    Returns:
      ``(x_train_std, *others_std, mean, std)``.
    """
    x_train = np.asarray(x_train, np.float64)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    out = [(np.asarray(a, np.float64) - mean) / std for a in (x_train, *others)]
    return (*out, mean, std)


_SYNTHETIC_FNS = {"xor": xor, "spirals": spirals, "circles": circles}


def load(
    name: str,
    *,
    seed: int = 0,
    test_fraction: float = 0.25,
    dtype: DTypeLike = np.float32,
    **options: Any,
) -> Dataset:
    """The dataset ``name`` split (stratified, fixed by ``seed``) and standardised (train statistics).

    Arguments:
      name: one of ``NAMES``: xor, spirals, circles, iris, wine, breast_cancer, digits.
      seed: fixes the split and, for the synthetic sets, the points themselves.
      test_fraction: share of each class held out for testing.
      dtype: of the features (``np.float32`` or ``np.float64``).
      options: for the synthetic sets, their generator's arguments (``n``, ``noise``, ``n_classes``,
        ``factor``, ``turns``).

    Raises:
      ValueError: an unknown ``name`` (the message lists the known ones), or options given to a
        scikit-learn dataset.
      ImportError: a scikit-learn dataset without scikit-learn installed.
    """
    if name in _SYNTHETIC_FNS:
        x, y = _SYNTHETIC_FNS[name](seed=seed, **options)
    elif name in SKLEARN:
        if options:
            raise ValueError(
                f"fnnet.datasets.load: dataset {name!r} takes no options; got {', '.join(options)}"
            )
        x, y = load_sklearn(name)
    else:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(NAMES)}")
    x_train, y_train, x_test, y_test = split(x, y, test_fraction, seed)
    x_train, x_test, mean, std = standardize(x_train, x_test)
    return Dataset(
        name=name,
        x_train=x_train.astype(dtype),
        y_train=y_train.astype(np.int32),
        x_test=x_test.astype(dtype),
        y_test=y_test.astype(np.int32),
        n_classes=int(y.max()) + 1,
        mean=mean,
        std=std,
    )
