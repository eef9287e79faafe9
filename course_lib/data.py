"""Binary-classification data for the course's network: real, your own, or synthetic.

Every loader returns a :class:`Dataset`: a stratified train / validation / test
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
    """A train / validation / test split of a binary-classification table.

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
        raise ValueError(f"{source}: no target column {target!r}; the columns are {header}")
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
