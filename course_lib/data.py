"""The course's data: two-class tables (real, your own or synthetic), MNIST-1D, and a synthetic language.

Every table loader returns a :class:`Dataset`: a stratified train / validation / test
split (fixed seed, so the same call gives the same split everywhere), features
standardized with the mean and standard deviation of the *training* split only
(the validation and test splits never leak into the scaling), as float32
tensors on the CPU. Labels are 0.0 or 1.0, shape (n,).

* :func:`breast_cancer` — scikit-learn's bundled Wisconsin diagnostic breast
  cancer table (569 × 30). Nothing is downloaded.
* :func:`load_csv` — your own CSV with a binary target column (for instance the
  768 × 8 Pima diabetes table the seed article's network was shaped for), with
  errors that say what is wrong and where.
* :func:`synthetic_binary` — the seed's input shape (n × 8) for quick runs and
  benchmarks.
* :func:`mnist1d` — MNIST-1D's ten classes (a :class:`MulticlassDataset`, int64 labels), generated offline.
* :func:`zipf_markov_corpus` — token sequences from a Zipfian Markov chain whose best loss is known
  (a :class:`MarkovCorpus`).

>>> from course_lib.data import breast_cancer
>>> data = breast_cancer()
>>> X_train, y_train = data.train
>>> X_train.shape, data.n_features
(torch.Size([341, 30]), 30)
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Dataset", "split_and_scale", "breast_cancer", "breast_cancer_table", "load_csv", "synthetic_binary",
           "MISSING_MARKERS"]

SPLITS = ("train", "val", "test")

# Cells that mean "no value" in the CSVs learners meet (compared case-insensitively, after stripping spaces).
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})


@dataclass(frozen=True)
class Dataset:
    """A train / validation / test split of a two-class table.

    ``train``, ``val`` and ``test`` are ``(X, y)`` pairs of float32 tensors:
    X of shape (n, features), standardized as (x − mean) / std with the training
    split's ``mean`` and ``std``; y of shape (n,) holding 0.0 and 1.0. ``classes``
    names the original label values behind 0 and 1.
    """

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    feature_names: tuple[str, ...]
    classes: tuple = (0, 1)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    name: str = ""

    @property
    def n_features(self) -> int:
        return self.train[0].shape[1]

    @property
    def sizes(self) -> dict[str, int]:
        """Rows per split: ``{'train': …, 'val': …, 'test': …}``."""
        return {split: len(getattr(self, split)[1]) for split in ("train", "val", "test")}

    def positive_fraction(self, split: str = "train") -> float:
        """The fraction of rows labelled 1 in ``split`` (stratification keeps it equal across splits)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
        labels = getattr(self, split)[1]
        return float(labels.mean()) if len(labels) else float("nan")

    def to(self, device) -> Dataset:
        """The same dataset with every tensor on ``device``."""
        move = lambda pair: tuple(t.to(device) for t in pair)  # noqa: E731
        return Dataset(move(self.train), move(self.val), move(self.test), self.feature_names, self.classes,
                       self.mean, self.std, self.name)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split}={n}" for split, n in self.sizes.items())
        return (f"Dataset({self.name or 'unnamed'}: {self.n_features} features, {sizes}, "
                f"positive fraction {self.positive_fraction():.3f})")


def split_and_scale(features, labels, *, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
                    feature_names=None, classes=(0, 1), name: str = "") -> Dataset:
    """Split ``features`` (n × d) and 0/1 ``labels`` (n,) into a standardized :class:`Dataset`.

    The split is stratified (each split keeps the class balance) and fixed by
    ``seed``; the test split holds round(``test_fraction`` · n) rows and the
    validation split round(``val_fraction`` · n) rows. Means and standard deviations come from
    the training rows only; a constant column keeps std 1 (it is only centred).
    Fractions of 0 give empty splits (shape (0, d)).

    Raises ``ValueError`` naming the row and column of a NaN or infinite
    feature, and naming the class and the split when a class has too few rows
    to be stratified.
    """
    from sklearn.model_selection import train_test_split

    try:
        features = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"features and labels must hold numbers: {error}") from None
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D array (rows × features); got shape {features.shape}")
    if features.shape[0] == 0:
        raise ValueError("features has no rows")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels must have shape ({features.shape[0]},) to match features; got {labels.shape}")
    if not np.all(np.isin(labels, (0.0, 1.0))):
        raise ValueError(f"labels must be 0 or 1; found {sorted(set(labels.tolist()))[:10]}")
    names = tuple(feature_names) if feature_names is not None else tuple(f"x{i + 1}" for i in range(features.shape[1]))
    if len(names) != features.shape[1]:
        raise ValueError(f"feature_names has {len(names)} names for {features.shape[1]} features")
    if not np.all(np.isfinite(features)):
        bad = np.argwhere(~np.isfinite(features))
        row, column = (int(i) for i in bad[0])
        raise ValueError(f"features hold {len(bad)} NaN or infinite value(s), the first {features[row, column]} at "
                         f"row {row}, column {column} ({names[column]!r}); fill or drop them before splitting "
                         "(one would spoil the whole column's mean and standard deviation)")
    for fraction_name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= fraction < 1:
            raise ValueError(f"{fraction_name} must be in [0, 1); got {fraction}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be < 1; got {val_fraction + test_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32 - 1:
        raise ValueError(f"seed must be an integer from 0 to 2**32 - 2; got {seed!r}")

    rows = np.arange(len(labels))
    test_count, val_count = round(test_fraction * len(rows)), round(val_fraction * len(rows))
    rest, test_rows = _split(rows, labels, test_count, seed, train_test_split, "test", "", classes)
    train_rows, val_rows = _split(rest, labels[rest], val_count, seed + 1, train_test_split, "validation",
                                  " left after the test split", classes)

    mean = features[train_rows].mean(axis=0)
    std = features[train_rows].std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def pair(index):
        X = torch.tensor((features[index] - mean) / std, dtype=torch.float32).reshape(len(index), features.shape[1])
        return X, torch.tensor(labels[index], dtype=torch.float32)

    return Dataset(pair(train_rows), pair(val_rows), pair(test_rows), names, tuple(classes), mean, std, name)


def _split(rows, labels, count, seed, train_test_split, split: str, source: str, classes=(0, 1)):
    """``count`` rows split off ``rows``, stratified by ``labels``; ``split``, ``source`` and the class names
    ``classes`` (of labels 0 and 1) make the errors say where.

    A stratified split needs every class to have at least 2 of the rows and
    each side at least one row per class (scikit-learn's rules, checked here so
    that the error can say which class and which split).
    """
    if count == 0:
        return rows, rows[:0]
    present, counts = np.unique(labels, return_counts=True)
    advice = "use more rows, or a smaller val_fraction / test_fraction (0 leaves that split empty)"
    if counts.min() < 2:
        label = int(present[counts.argmin()])
        name = f" ({classes[label]!r})" if len(classes) == 2 and classes[label] != label else ""
        raise ValueError(f"cannot split off the {split} rows stratified by class: class {label}{name} has only "
                         f"{counts.min()} of the {len(rows)} rows{source}, and a stratified split needs at least 2 "
                         f"per class; " + advice)
    if count < len(present) or len(rows) - count < len(present):
        side, size = (split, count) if count < len(present) else ("remaining", len(rows) - count)
        raise ValueError(f"cannot split off {count} {split} rows from the {len(rows)} rows{source} stratified by "
                         f"class: the {side} rows would be {size}, too few to hold each of the {len(present)} "
                         "classes; " + advice)
    return train_test_split(rows, test_size=count, random_state=seed, stratify=labels)


def breast_cancer_table() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """The Wisconsin diagnostic breast cancer table bundled with scikit-learn, whole and unscaled.

    Returns ``(features, labels, feature_names, classes)``: 569 tumours × 30 float features, labels 1 benign
    (357 rows) and 0 malignant (212 rows), scikit-learn's coding, and ``classes = ("malignant", "benign")``.
    The one place the course loads it: :func:`breast_cancer` splits and scales it for training, notebook 03's
    logistic-regression problem (:func:`course_lib.labs.stochastic.breast_cancer`) standardizes all of it. The
    file ships inside scikit-learn, so nothing is downloaded.
    """
    from sklearn.datasets import load_breast_cancer

    table = load_breast_cancer()
    return table.data, table.target, tuple(table.feature_names), tuple(table.target_names)


def breast_cancer(*, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The Wisconsin diagnostic breast cancer table (:func:`breast_cancer_table`) as train/validation/test splits.

    Label 1 is benign (357 rows), 0 malignant (212 rows): scikit-learn's coding.
    With the default fractions the splits hold 341 / 114 / 114 rows.
    """
    features, labels, feature_names, classes = breast_cancer_table()
    return split_and_scale(features, labels, val_fraction=val_fraction, test_fraction=test_fraction,
                           seed=seed, feature_names=feature_names, classes=classes, name="breast cancer")


def synthetic_binary(n: int = 768, features: int = 8, *, seed: int = 0, val_fraction: float = 0.2,
                     test_fraction: float = 0.2) -> Dataset:
    """A synthetic table with the seed article's input shape: ``n`` rows × ``features`` columns.

    Inputs are correlated Gaussians; the label is a Bernoulli draw whose
    log-odds mix a linear term and a product of two features, so a hidden layer
    helps but a linear model already does fairly well (like real tabular data).
    The same ``seed`` gives the same table on every machine.
    """
    if (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or isinstance(features, bool)
            or not isinstance(features, (int, np.integer)) or n < 10 or features < 2):
        raise ValueError(f"synthetic_binary needs n >= 10 and features >= 2; got n={n}, features={features}")
    rng = np.random.default_rng(seed)
    mixing = np.eye(features) + 0.3 * rng.standard_normal((features, features))
    X = rng.standard_normal((n, features)) @ mixing
    weights = rng.standard_normal(features) / math.sqrt(features)
    log_odds = 1.5 * (X @ weights) + 1.0 * X[:, 0] * X[:, 1] - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-log_odds))).astype(float)
    return split_and_scale(X, y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                           name=f"synthetic {n} × {features}")


def load_csv(path, target: str, *, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
             delimiter: str = ",") -> Dataset:
    """Your own binary-classification table from a CSV file with a header row.

    ``path`` is a file path or an open text stream; ``target`` names the label
    column, which must hold exactly two distinct values (0/1, yes/no, 1/2, …:
    the smaller one, numerically when all are numbers, becomes 0). Every other
    column is a numeric feature. The split and the scaling are those of
    :func:`split_and_scale`.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the
    column and the line for a missing or non-numeric value, a row of the wrong
    length, an unknown target column, or a target that is not binary.
    """
    source = _source_name(path)
    if isinstance(path, (str, os.PathLike)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"load_csv: no such file: {os.fspath(path)!r}")
        with open(path, newline="", encoding="utf-8-sig") as stream:
            rows = list(csv.reader(stream, delimiter=delimiter))
    elif isinstance(path, io.TextIOBase) or hasattr(path, "read"):
        rows = list(csv.reader(path, delimiter=delimiter))
    else:
        raise TypeError(f"load_csv: path must be a file path or a text stream; got {type(path).__name__}")

    numbered = [(line, row) for line, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise ValueError(f"{source}: the file is empty (expected a header row and data rows)")
    (_, header), body = numbered[0], numbered[1:]
    header = [name.strip() for name in header]
    if target not in header:
        raise ValueError(f"{source}: no target column {target!r}; the columns are {header}"
                         + _delimiter_hint(header, delimiter))
    if len(set(header)) != len(header):
        duplicated = sorted({name for name in header if header.count(name) > 1})
        raise ValueError(f"{source}: duplicated column names {duplicated}")
    if not body:
        raise ValueError(f"{source}: no data rows after the header")
    target_index = header.index(target)
    feature_columns = [i for i in range(len(header)) if i != target_index]
    if not feature_columns:
        raise ValueError(f"{source}: no feature columns besides the target {target!r}")

    features = np.empty((len(body), len(feature_columns)))
    raw_labels = []
    for row_number, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"{source}, line {line}: {len(row)} fields, but the header has {len(header)}")
        for j, column in enumerate(feature_columns):
            features[row_number, j] = _number(row[column], header[column], line, source)
        label = row[target_index].strip()
        if label.lower() in MISSING_MARKERS:
            raise ValueError(f"{source}, line {line}: missing value in target column {target!r}")
        raw_labels.append(label)

    classes, keys = _two_classes(raw_labels, target, source)
    labels = np.array([classes.index(key) for key in keys], dtype=float)
    name = os.path.basename(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else "csv"
    return split_and_scale(features, labels, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                           feature_names=[header[i] for i in feature_columns], classes=tuple(classes), name=name)


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """A hint when the header split into one column that another delimiter (``;``, tab, ``|``) would split."""
    if len(header) != 1:
        return ""
    for other in (";", "\t", "|"):
        if other != delimiter and other in header[0]:
            return (f" (one column only: the file looks {other!r}-separated, not {delimiter!r}-separated; "
                    f"pass delimiter={other!r})")
    return ""


def _source_name(path) -> str:
    if isinstance(path, (str, os.PathLike)):
        return repr(os.fspath(path))
    name = getattr(path, "name", None)
    return repr(name) if isinstance(name, str) else "the CSV text"


def _number(cell: str, column: str, line: int, source: str) -> float:
    text = cell.strip()
    if text.lower() in MISSING_MARKERS:
        raise ValueError(f"{source}, line {line}: missing value in column {column!r} (found {cell!r}); "
                         "fill it in or drop the row before loading")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{source}, line {line}: column {column!r} is not numeric (found {cell!r}); "
                         "every feature must be a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{source}, line {line}: column {column!r} holds a non-finite value {cell!r}")
    return value


def _label_key(label: str):
    try:
        return float(label)
    except ValueError:
        return label


def _two_classes(raw_labels, target, source):
    keys = [_label_key(label) for label in raw_labels]
    numeric = all(isinstance(key, float) for key in keys)
    if not numeric:
        keys = raw_labels
    distinct = sorted(set(keys))
    if len(distinct) != 2:
        shown = [_plain_label(value) for value in distinct[:10]]
        more = "" if len(distinct) <= 10 else f" … ({len(distinct)} in all)"
        raise ValueError(f"{source}: target column {target!r} must be binary (exactly two distinct values); "
                         f"found {len(distinct)}: {shown}{more}")
    return [_plain_label(value) for value in distinct], [_plain_label(key) for key in keys]


def _plain_label(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


# --------------------------------------------------------------------------------------
# MNIST-1D (Greydanus & Kobak, 2020): ten classes of 1-D signals, generated offline
# --------------------------------------------------------------------------------------
CACHE_ENV = "COURSE_CACHE"
__all__ += ["MulticlassDataset", "cache_dir", "stratified_split", "mnist1d", "CACHE_ENV", "MNIST1D_ARGS"]


@dataclass(frozen=True)
class MulticlassDataset(Dataset):
    """A train / validation / test split with class labels 0, 1, …, C − 1 (int64 tensors of shape (n,)).

    ``train``, ``val`` and ``test`` are ``(X, y)`` pairs: X float32 of shape (n, features), y int64.
    ``classes`` names the C classes; ``mean`` and ``std`` are None when the loader does not rescale.
    Train it with ``training.fit(..., loss="cross_entropy")``.
    """

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def class_counts(self, split: str = "train") -> np.ndarray:
        """How many rows of ``split`` have each class, class 0 first."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
        return np.bincount(getattr(self, split)[1].numpy(), minlength=self.n_classes)

    def positive_fraction(self, split: str = "train") -> float:
        raise ValueError("positive_fraction is for binary labels; use class_counts(split) for class labels")

    def to(self, device) -> MulticlassDataset:
        """The same dataset with every tensor on ``device``."""
        move = lambda pair: tuple(t.to(device) for t in pair)  # noqa: E731
        return MulticlassDataset(move(self.train), move(self.val), move(self.test), self.feature_names,
                                 self.classes, self.mean, self.std, self.name)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split}={n}" for split, n in self.sizes.items())
        return (f"MulticlassDataset({self.name or 'unnamed'}: {self.n_features} features, {self.n_classes} classes, "
                f"{sizes})")


def cache_dir() -> str:
    """Where course_lib caches generated data: ``$COURSE_CACHE``, else ``$XDG_CACHE_HOME/course_lib``, else
    ``~/.cache/course_lib``."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "course_lib")


def _mnist1d_generate(args: dict) -> dict:
    """The package's own ``make_dataset`` on ``args`` (never ``get_dataset``, which downloads), leaving the
    global random generators of Python and NumPy as they were (``make_dataset`` reseeds both)."""
    import random

    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        generated = make_dataset(ObjectView(dict(args)))
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return {name: np.asarray(generated[name]) for name in ("x", "y", "x_test", "y_test")}


#: ``mnist1d.data.get_dataset_args()`` of mnist1d 0.0.2.post1 without its download ``url``: the cache key, so that
#: a cached run need not import the package (which imports matplotlib.pyplot); checked against the package
#: before every generation.
MNIST1D_ARGS = {"num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60], "scale_coeff": 0.4,
                "max_translation": 48, "corr_noise_scale": 0.25, "iid_noise_scale": 2e-2, "shear_scale": 0.75,
                "shuffle_seq": False, "final_seq_length": 40, "seed": 42}


def _mnist1d_default_args() -> dict:
    """The package's default arguments (its download ``url`` left out), which must equal :data:`MNIST1D_ARGS`."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)  # where get_dataset would download from: not an argument of the data
    if args != MNIST1D_ARGS:
        raise RuntimeError(f"this mnist1d's default arguments {args} are not those course_lib was written for "
                           f"({MNIST1D_ARGS}); install the version pinned in requirements.txt")
    return args


def _mnist1d_arrays(cache: bool) -> dict:
    """MNIST-1D's default arrays, from the cache when it holds them (generating takes seconds)."""
    import hashlib
    import tempfile
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("mnist1d")
    except PackageNotFoundError:
        raise ModuleNotFoundError("data.mnist1d() needs the mnist1d package, which course_lib alone does not install: "
                                  "pip install 'course_lib[course]' (or pip install mnist1d==0.0.2.post1)",
                                  name="mnist1d") from None
    key = f"mnist1d {installed} {sorted(MNIST1D_ARGS.items())!r}"
    path = os.path.join(cache_dir(), f"mnist1d-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz")
    if cache and os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["key"]) == key:
                    return {name: stored[name] for name in ("x", "y", "x_test", "y_test")}
        except (OSError, ValueError, KeyError):
            pass  # a damaged or foreign file: generate again and replace it
    arrays = _mnist1d_generate(_mnist1d_default_args())
    if cache:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz")
            os.close(handle)
            np.savez(temporary, key=np.array(key), **arrays)
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only home: the data is still returned, only not cached
    return arrays


def stratified_split(labels, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the rows of ``labels`` into ``(kept, taken)`` index arrays (each sorted), ``count`` rows taken.

    Each class c with n_c of the n rows gives ⌊count · n_c / n⌋ rows, and the rows left over go to the
    classes with the largest remainders (Hamilton's method), so every class keeps its share to within one
    row; which rows of a class are taken is a uniform draw of NumPy's ``default_rng(seed)``. (NumPy only: it
    spares MNIST-1D the second or two of importing scikit-learn.)
    """
    labels = np.asarray(labels)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 <= count <= len(labels):
        raise ValueError(f"count must be an integer from 0 to {len(labels)}; got {count!r}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * count / len(labels)
    take = np.floor(exact).astype(int)
    largest_remainders = np.argsort(-(exact - take), kind="stable")
    take[largest_remainders[:count - int(take.sum())]] += 1
    taken = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)])
    mask = np.zeros(len(labels), dtype=bool)
    mask[taken] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def mnist1d(*, val_fraction: float = 0.2, seed: int = 0, cache: bool = True) -> MulticlassDataset:
    """MNIST-1D with the package's default arguments: 4,000 training and 1,000 test signals of 40 samples,
    10 classes (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", 2020).

    The data is generated offline by the ``mnist1d`` package's own ``make_dataset`` (its seed 42, so the
    same signals everywhere; nothing is downloaded: the package's ``get_dataset`` would fetch a file, and is
    never called). A stratified ``val_fraction`` of the 4,000 training rows (split by ``seed``) becomes the
    validation split: 3,200 / 800 / 1,000 rows by default; the test split is the package's. The package
    already centres the signals and scales them to standard deviation 1, so no further scaling is done.

    Generating takes a few seconds (mostly SciPy's interpolation, 5,000 times), so with ``cache=True`` the
    arrays are stored in :func:`cache_dir` (keyed by the package's version and arguments) and read from
    there afterwards; ``cache=False`` always generates.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32 - 1:
        raise ValueError(f"seed must be an integer from 0 to 2**32 - 2; got {seed!r}")
    arrays = _mnist1d_arrays(cache)
    train_rows, val_rows = stratified_split(arrays["y"], round(val_fraction * len(arrays["y"])), seed)

    def pair(X, y):
        return torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)

    length = arrays["x"].shape[1]
    return MulticlassDataset(pair(arrays["x"][train_rows], arrays["y"][train_rows]),
                             pair(arrays["x"][val_rows], arrays["y"][val_rows]),
                             pair(arrays["x_test"], arrays["y_test"]),
                             tuple(f"t{i + 1}" for i in range(length)), tuple(range(10)), None, None, "MNIST-1D")


# --------------------------------------------------------------------------------------
# A synthetic language for the small transformer of notebook 12: Zipfian tokens, a known best loss
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarkovCorpus:
    r"""Token sequences drawn from a seeded first-order Markov chain with Zipfian token frequencies.

    ``train`` and ``val`` are int64 tensors of shape (chains, length): independent chains, each started from
    the stationary distribution π, so every window of a chain is a sample of the stationary process.
    ``transition`` is the V × V matrix P (row a: the distribution of the token after a), ``stationary`` π
    (π P = π), ``token_counts`` how often each token occurs in ``train``.

    Because the chain is first order, the best possible next-token loss with at least one token of context is
    its entropy rate

    .. math::  H = -\sum_a \pi_a \sum_b P_{ab} \ln P_{ab} \quad\text{(nats per token)},

    ``entropy_rate``: no model can beat it on average, and a model that has learned P reaches it.
    ``unigram_entropy`` H(π) is the loss of the best model that ignores the context.
    """

    train: torch.Tensor
    val: torch.Tensor
    transition: np.ndarray
    stationary: np.ndarray
    token_counts: np.ndarray
    entropy_rate: float
    unigram_entropy: float
    vocab_size: int
    seed: int

    def frequency_bins(self, frequent_fraction: float = 0.1, rare_fraction: float = 0.5) -> dict[str, np.ndarray]:
        """Boolean masks over the vocabulary: the ``frequent_fraction`` most frequent tokens of ``train`` and the
        ``rare_fraction`` least frequent (ties broken by token id)."""
        if not (0 < frequent_fraction and 0 < rare_fraction and frequent_fraction + rare_fraction <= 1):
            raise ValueError("need 0 < frequent_fraction, 0 < rare_fraction and frequent_fraction + rare_fraction <= 1;"
                             f" got {frequent_fraction!r} and {rare_fraction!r}")
        order = np.lexsort((np.arange(self.vocab_size), -self.token_counts))  # most frequent first
        frequent = np.zeros(self.vocab_size, dtype=bool)
        rare = np.zeros(self.vocab_size, dtype=bool)
        frequent[order[: max(1, round(frequent_fraction * self.vocab_size))]] = True
        rare[order[self.vocab_size - max(1, round(rare_fraction * self.vocab_size)):]] = True
        return {"frequent": frequent, "rare": rare}


def zipf_weights(vocab_size: int, exponent: float = 1.0) -> np.ndarray:
    r"""Zipf's law over ranks 1 … V: p_k = k^{−s} / Σ_j j^{−s} (token k − 1 has rank k)."""
    weights = np.arange(1, vocab_size + 1, dtype=np.float64) ** -float(exponent)
    return weights / weights.sum()


def zipf_markov_transition(vocab_size: int = 512, successors: int = 8, *, exponent: float = 1.0, mixing: float = 0.05,
                           seed: int = 0, tol: float = 1e-15, max_iter: int = 10_000) -> np.ndarray:
    r"""The transition matrix P of :func:`zipf_markov_corpus`: sparse rows whose stationary law is Zipf's, exactly.

    1. Row a of a mask M: ``successors`` distinct tokens drawn without replacement with probabilities ∝ Zipf's
       law z (the Gumbel-top-k trick on NumPy's PCG64 stream, so the same seed gives the same matrix on every
       NumPy), weighted by e_b ~ Exp(1) and normalized; then M_a ← (1 − α) M_a + α z, α = ``mixing`` (so every
       token can follow every token: the chain is irreducible and aperiodic).
    2. Sinkhorn scaling: F = diag(r) M diag(c) with row sums and column sums both equal to z (a joint law of
       consecutive pairs (a, b) whose two marginals are Zipf's).
    3. P_ab = F_ab / z_a. Then Σ_a z_a P_ab = Σ_a F_ab = z_b: z is stationary, π = z.
    """
    if vocab_size < 2 or not 1 <= successors <= vocab_size:
        raise ValueError(f"need vocab_size >= 2 and 1 <= successors <= vocab_size; got {vocab_size}, {successors}")
    if not 0 < mixing <= 1:
        raise ValueError(f"mixing must lie in (0, 1]; got {mixing!r}")
    rng = np.random.default_rng(seed)
    zipf = zipf_weights(vocab_size, exponent)
    gumbel = -np.log(-np.log(rng.random((vocab_size, vocab_size))))
    chosen = np.argsort(-(np.log(zipf) + gumbel), axis=1, kind="stable")[:, :successors]
    mask = np.zeros((vocab_size, vocab_size))
    mask[np.repeat(np.arange(vocab_size), successors), chosen.ravel()] = -np.log(rng.random(vocab_size * successors))
    mask = (1 - mixing) * mask / mask.sum(axis=1, keepdims=True) + mixing * zipf
    joint = mask * zipf[:, None]
    for _ in range(max_iter):
        joint *= (zipf / joint.sum(axis=0))[None, :]
        joint *= (zipf / joint.sum(axis=1))[:, None]
        if np.abs(joint.sum(axis=0) - zipf).max() < tol:
            break
    return joint / joint.sum(axis=1, keepdims=True)


def stationary_distribution(transition: np.ndarray, *, tol: float = 1e-13, max_iter: int = 100_000) -> np.ndarray:
    """π with π P = π, by power iteration from the uniform distribution (P irreducible and aperiodic)."""
    pi = np.full(len(transition), 1.0 / len(transition))
    for _ in range(max_iter):
        new = pi @ transition
        new /= new.sum()
        if np.abs(new - pi).max() < tol:
            return new
        pi = new
    raise RuntimeError("power iteration did not converge: is the chain irreducible and aperiodic?")


def markov_entropy_rate(transition: np.ndarray, stationary: np.ndarray) -> float:
    r"""H = −Σ_a π_a Σ_b P_ab ln P_ab, in nats per token (terms with P_ab = 0 count 0)."""
    logs = np.log(np.where(transition > 0, transition, 1.0))
    return float(-(stationary * (transition * logs).sum(axis=1)).sum())


def sample_markov_chains(transition: np.ndarray, stationary: np.ndarray, chains: int, length: int, *,
                         seed: int = 0) -> np.ndarray:
    """``chains`` independent chains of ``length`` tokens, each started from π: an int64 array (chains, length).

    Inverse-CDF sampling with uniforms from NumPy's PCG64 stream, vectorized over the chains.
    """
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(transition, axis=1)
    cumulative[:, -1] = np.inf
    start = np.cumsum(stationary)
    start[-1] = np.inf
    tokens = np.empty((chains, length), dtype=np.int64)
    tokens[:, 0] = np.searchsorted(start, rng.random(chains), side="right")
    for t in range(1, length):
        uniforms = rng.random(chains)
        tokens[:, t] = (cumulative[tokens[:, t - 1]] <= uniforms[:, None]).sum(axis=1)
    return tokens


def zipf_markov_corpus(vocab_size: int = 512, successors: int = 8, *, exponent: float = 1.0, mixing: float = 0.05,
                       train_chains: int = 256, val_chains: int = 64, length: int = 1024, seed: int = 0
                       ) -> MarkovCorpus:
    r"""A synthetic language: Zipfian token frequencies and a sequential structure with a known best loss.

    The language is a first-order Markov chain over V = ``vocab_size`` tokens (:func:`zipf_markov_transition`:
    each token is mostly followed by one of ``successors`` likely tokens, sometimes by any token), built so that
    its stationary law is Zipf's: token k − 1 has frequency ∝ k^{−s}, s = ``exponent``, heavy-tailed like words
    in text, which is what makes rare tokens slow to learn (Kunstner et al., 2024). Everything is generated
    offline from ``seed``: ``train_chains`` and ``val_chains`` independent chains of ``length`` tokens.
    Returns a :class:`MarkovCorpus` with the entropy rate (the best possible loss) and the training counts.
    """
    transition = zipf_markov_transition(vocab_size, successors, exponent=exponent, mixing=mixing, seed=seed)
    stationary = stationary_distribution(transition)
    tokens = sample_markov_chains(transition, stationary, train_chains + val_chains, length, seed=seed + 1)
    train, val = tokens[:train_chains], tokens[train_chains:]
    counts = np.bincount(train.ravel(), minlength=vocab_size)
    unigram = float(-(stationary * np.log(stationary)).sum())
    return MarkovCorpus(torch.from_numpy(train), torch.from_numpy(val), transition, stationary, counts,
                        markov_entropy_rate(transition, stationary), unigram, vocab_size, seed)


__all__ += ["MarkovCorpus", "zipf_weights", "zipf_markov_transition", "stationary_distribution",
            "markov_entropy_rate", "sample_markov_chains", "zipf_markov_corpus"]
