"""fnnet.datasets: synthetic sets, scikit-learn loaders, the split and the standardisation."""
import sys

import numpy as np
import pytest

from fnnet import datasets

SYNTHETIC = {"xor": datasets.xor, "spirals": datasets.spirals, "circles": datasets.circles}


@pytest.mark.parametrize("name", datasets.SYNTHETIC)
def test_synthetic_shapes_dtypes_and_balance(name):
    x, y = SYNTHETIC[name](n=101, seed=3)
    assert x.shape == (101, 2) and x.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int32
    counts = np.bincount(y)
    # n is split as evenly as the classes allow.
    assert counts.max() - counts.min() <= 1, counts


@pytest.mark.parametrize("name", datasets.SYNTHETIC)
def test_synthetic_deterministic_from_seed(name):
    x1, y1 = SYNTHETIC[name](n=50, seed=7)
    x2, y2 = SYNTHETIC[name](n=50, seed=7)
    x3, _ = SYNTHETIC[name](n=50, seed=8)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_noise_free_sets_match_their_definition():
    # xor: every point is exactly on a corner; the label is 1 where the two signs differ.
    x, y = datasets.xor(n=40, noise=0.0)
    np.testing.assert_array_equal(np.abs(x), 1.0)
    np.testing.assert_array_equal(y, (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(np.int32))
    # circles: radius 1 for label 0 and `factor` for label 1.
    x, y = datasets.circles(n=40, noise=0.0, factor=0.3)
    r = np.hypot(x[:, 0], x[:, 1])
    np.testing.assert_allclose(r, np.where(y == 0, 1.0, 0.3), rtol=1e-12)
    # spirals: radii span [0, 1]; arm k's angle is 2π·turns·r + 2πk/K (mod 2π) at radius r.
    x, y = datasets.spirals(n=60, noise=0.0, n_classes=3, turns=1.75)
    r = np.hypot(x[:, 0], x[:, 1])
    assert r.min() == 0.0 and abs(r.max() - 1.0) < 1e-12
    keep = r > 1e-9
    angle = np.arctan2(x[keep, 1], x[keep, 0])
    expected = 3.5 * np.pi * r[keep] + 2 * np.pi * y[keep] / 3
    np.testing.assert_allclose(np.cos(angle - expected), 1.0, atol=1e-12)


def test_synthetic_argument_errors():
    with pytest.raises(ValueError, match="n must be an integer >= 4"):
        datasets.xor(n=2)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        datasets.circles(noise=-0.1)
    with pytest.raises(ValueError, match="n_classes"):
        datasets.spirals(n_classes=1)
    with pytest.raises(ValueError, match="turns must be a positive number"):
        datasets.spirals(turns=0)
    with pytest.raises(ValueError, match="factor"):
        datasets.circles(factor=1.5)


def test_split_is_stratified_deterministic_and_disjoint():
    x = np.arange(200, dtype=np.float64).reshape(100, 2)
    y = np.repeat(np.arange(4), 25).astype(np.int32)
    a = datasets.split(x, y, test_fraction=0.2, seed=1)
    b = datasets.split(x, y, test_fraction=0.2, seed=1)
    c = datasets.split(x, y, test_fraction=0.2, seed=2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[2], c[2])
    x_tr, y_tr, x_te, y_te = a
    # 20 % of each class of 25 is 5: same class proportions on both sides.
    np.testing.assert_array_equal(np.bincount(y_te), [5, 5, 5, 5])
    np.testing.assert_array_equal(np.bincount(y_tr), [20, 20, 20, 20])
    # Disjoint and complete: every row lands exactly once, with its own label.
    rows = np.concatenate([x_tr[:, 0], x_te[:, 0]])
    np.testing.assert_array_equal(np.sort(rows), x[:, 0])
    np.testing.assert_array_equal(np.concatenate([y_tr, y_te]), y[(rows // 2).astype(int)])


def test_split_errors():
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.split(np.zeros((4, 1)), np.zeros(4), test_fraction=1.0)
    with pytest.raises(ValueError, match="x has 4 rows but y has 3"):
        datasets.split(np.zeros((4, 1)), np.zeros(3))


def test_standardize_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    x_train = rng.normal(3.0, 2.0, (50, 3))
    x_train[:, 2] = 7.0  # a constant feature
    x_test = rng.normal(-1.0, 5.0, (20, 3))
    tr, te, mean, std = datasets.standardize(x_train, x_test)
    np.testing.assert_allclose(tr[:, :2].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(tr[:, :2].std(0), 1.0, rtol=1e-12)
    # The constant feature is divided by 1, not 0: zeros, no NaN.
    assert std[2] == 1.0
    np.testing.assert_array_equal(tr[:, 2], 0.0)
    # The test set is transformed with the *training* statistics (its own would give mean 0).
    np.testing.assert_allclose(te, (x_test - x_train.mean(0)) / std, rtol=1e-12)
    assert abs(te[:, 0].mean()) > 0.5


@pytest.mark.parametrize("name", datasets.SYNTHETIC)
def test_load_synthetic(name):
    ds = datasets.load(name, seed=0, n=200)
    assert ds.name == name and ds.n_classes == 2 and ds.n_features == 2
    assert ds.x_train.shape == (150, 2) and ds.x_test.shape == (50, 2)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    # float32 rounding of standardised values of size ~1 over 150 points: 1e-5 is ~100 ulp of slack
    # for the mean of 150 float32 roundings, far below any real offset.
    np.testing.assert_allclose(ds.x_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1.0, atol=1e-5)
    again = datasets.load(name, seed=0, n=200, dtype=np.float64)
    assert again.x_train.dtype == np.float64
    np.testing.assert_array_equal(again.y_test, ds.y_test)
    np.testing.assert_allclose(again.x_train, ds.x_train, rtol=1e-6)


def test_load_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as e:
        datasets.load("mnist")
    msg = str(e.value)
    assert "'mnist'" in msg
    for name in datasets.NAMES:
        assert name in msg


def test_load_rejects_options_for_sklearn_sets():
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match="takes no options"):
        datasets.load("iris", n=10)


@pytest.mark.parametrize("name", datasets.SKLEARN)
def test_missing_sklearn_message(name, monkeypatch):
    # A None entry in sys.modules makes `import sklearn` raise ImportError, as if it were absent.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError) as e:
        datasets.load(name)
    assert "pip install 'fnnet[experiments]'" in str(e.value)
    assert "pip install scikit-learn" in str(e.value)
    assert repr(name) in str(e.value)


SKLEARN_SHAPES = {"iris": (150, 4, 3), "wine": (178, 13, 3), "breast_cancer": (569, 30, 2),
                  "digits": (1797, 64, 10)}


@pytest.mark.parametrize("name", datasets.SKLEARN)
def test_sklearn_loaders(name):
    pytest.importorskip("sklearn")
    n, d, k = SKLEARN_SHAPES[name]
    x, y = datasets.load_sklearn(name)
    assert x.shape == (n, d) and y.shape == (n,) and y.dtype == np.int32
    ds = datasets.load(name, seed=0)
    assert ds.n_classes == k and ds.n_features == d
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == n
    assert set(np.unique(ds.y_test)) == set(range(k))
    assert np.all(np.isfinite(ds.x_train)) and np.all(np.isfinite(ds.x_test))
    np.testing.assert_array_equal(datasets.load(name, seed=0).y_test, ds.y_test)
