"""course_lib.data: splits, scaling (against scikit-learn's StandardScaler), CSV loading and its errors."""

import io

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from course_lib import data


@pytest.fixture(scope="module")
def cancer():
    return data.breast_cancer()


def _raw_rows(dataset, split):
    """Undo the standardization: the original feature values of a split."""
    X, _ = getattr(dataset, split)
    return X.double().numpy() * dataset.std + dataset.mean


def _match_rows(rows, table):
    """Index of each row in ``table`` (rows are unique in the breast-cancer table)."""
    distances = np.abs(rows[:, None, :] - table[None, :, :]).max(axis=-1)
    index = distances.argmin(axis=1)
    assert np.all(distances[np.arange(len(rows)), index] < 1e-3)
    return index


def test_breast_cancer_shapes_types_and_labels(cancer):
    assert cancer.sizes == {"train": 341, "val": 114, "test": 114}
    assert cancer.n_features == 30 and len(cancer.feature_names) == 30
    assert cancer.feature_names[0] == "mean radius"
    assert cancer.classes == ("malignant", "benign")
    for split in ("train", "val", "test"):
        X, y = getattr(cancer, split)
        assert X.dtype == torch.float32 and y.dtype == torch.float32
        assert y.shape == (X.shape[0],)
        assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    assert "breast cancer" in repr(cancer) and "train=341" in repr(cancer)


def test_breast_cancer_table_is_scikit_learns_and_the_one_both_problems_load():
    features, labels, names, classes = data.breast_cancer_table()
    reference = load_breast_cancer()
    np.testing.assert_array_equal(features, reference.data)
    np.testing.assert_array_equal(labels, reference.target)
    assert names == tuple(reference.feature_names) and classes == ("malignant", "benign")
    assert (labels == 1).sum() == 357 and features.shape == (569, 30)
    from course_lib.labs import stochastic  # notebook 03's problem: the whole table, standardized, labels ±1

    problem = stochastic.breast_cancer()
    standardized = (reference.data - reference.data.mean(0)) / reference.data.std(0)
    np.testing.assert_array_equal(problem.design[:, :-1], standardized)
    np.testing.assert_array_equal(problem.labels, 2.0 * reference.target - 1.0)


def test_breast_cancer_is_stratified_and_the_splits_partition_the_table(cancer):
    table = load_breast_cancer()
    overall = table.target.mean()  # 357 / 569 benign
    for split in ("train", "val", "test"):
        assert abs(cancer.positive_fraction(split) - overall) < 0.01
    indices = np.concatenate([_match_rows(_raw_rows(cancer, split), table.data) for split in ("train", "val", "test")])
    assert sorted(indices.tolist()) == list(range(569))  # disjoint, and nothing left out
    # labels travel with their rows
    train_index = _match_rows(_raw_rows(cancer, "train"), table.data)
    assert np.array_equal(cancer.train[1].numpy(), table.target[train_index])


def test_scaling_uses_training_statistics_only(cancer):
    table = load_breast_cancer()
    scaler = StandardScaler().fit(table.data[_match_rows(_raw_rows(cancer, "train"), table.data)])
    for split in ("train", "val", "test"):
        rows = table.data[_match_rows(_raw_rows(cancer, split), table.data)]
        np.testing.assert_allclose(getattr(cancer, split)[0].numpy(), scaler.transform(rows), atol=1e-5)
    X_train = cancer.train[0].double()
    assert X_train.mean(0).abs().max() < 1e-5 and (X_train.std(0, unbiased=False) - 1).abs().max() < 1e-5
    assert cancer.val[0].double().mean(0).abs().max() > 0.05  # validation is not re-centred on itself


def test_same_seed_same_split_other_seed_other_split(cancer):
    again = data.breast_cancer()
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(again, split)[0], getattr(cancer, split)[0])
    other = data.breast_cancer(seed=1)
    assert not torch.equal(other.test[1], cancer.test[1]) or not torch.equal(other.test[0], cancer.test[0])


def test_fractions_and_empty_splits():
    dataset = data.synthetic_binary(100, 8, val_fraction=0, test_fraction=0)
    assert dataset.sizes == {"train": 100, "val": 0, "test": 0}
    assert dataset.val[0].shape == (0, 8)
    dataset = data.synthetic_binary(200, 8, val_fraction=0.1, test_fraction=0.3)
    assert dataset.sizes == {"train": 120, "val": 20, "test": 60}


def test_synthetic_binary_shape_balance_and_determinism():
    dataset = data.synthetic_binary(768, 8, seed=3)
    assert sum(dataset.sizes.values()) == 768 and dataset.n_features == 8
    assert 0.25 < dataset.positive_fraction() < 0.75
    assert torch.equal(dataset.train[0], data.synthetic_binary(768, 8, seed=3).train[0])
    assert not torch.equal(dataset.train[0], data.synthetic_binary(768, 8, seed=4).train[0])
    with pytest.raises(ValueError, match="n >= 10"):
        data.synthetic_binary(5)


def test_to_device_keeps_everything():
    original = data.synthetic_binary(50, 4)
    dataset = original.to("cpu")
    assert dataset.train[0].device.type == "cpu" and dataset.n_features == 4
    for split in ("train", "val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(getattr(dataset, split), getattr(original, split)))
    assert np.array_equal(dataset.mean, original.mean) and np.array_equal(dataset.std, original.std)
    assert (dataset.feature_names, dataset.classes, dataset.name) == (original.feature_names, original.classes,
                                                                      original.name)


def test_positive_fraction_counts_the_labels_of_the_split_asked_for():
    """5 positives in 10 rows split in halves: one half holds 2, the other 3, so a mix-up of splits shows."""
    features = np.arange(10.0)[:, None]
    dataset = data.split_and_scale(features, np.array([1] * 5 + [0] * 5), val_fraction=0, test_fraction=0.5)
    for split in ("train", "val", "test"):
        labels = getattr(dataset, split)[1]
        if len(labels):
            assert dataset.positive_fraction(split) == pytest.approx(float(labels.sum()) / len(labels))
    fractions = sorted([dataset.positive_fraction("train"), dataset.positive_fraction("test")])
    assert fractions == pytest.approx([0.4, 0.6])
    assert np.isnan(dataset.positive_fraction("val"))


@pytest.mark.parametrize("bad, words", [
    (dict(labels=np.array([0, 1, 2] * 10)), "labels must be 0 or 1"),
    (dict(labels=np.zeros(29)), "labels must have shape"),
    (dict(features=np.zeros(30)), "2-D"),
    (dict(val_fraction=1.2), "val_fraction"),
    (dict(test_fraction=-0.1), "test_fraction"),
    (dict(val_fraction=0.5, test_fraction=0.5), "< 1"),
    (dict(feature_names=["a"]), "feature_names"),
    (dict(features=np.zeros((0, 3)), labels=np.zeros(0)), "no rows"),
    (dict(features=np.full((30, 3), "a")), "must hold numbers"),
    (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"),
])
def test_split_and_scale_rejects_bad_arguments(bad, words):
    arguments = dict(features=np.random.default_rng(0).normal(size=(30, 3)), labels=np.array([0, 1] * 15))
    arguments.update(bad)
    with pytest.raises(ValueError, match=words):
        data.split_and_scale(arguments.pop("features"), arguments.pop("labels"), **arguments)


def test_a_nan_or_infinite_feature_is_named_by_row_and_column_before_it_spoils_its_column():
    features = np.random.default_rng(0).normal(size=(30, 3))
    features[7, 2] = np.nan
    features[9, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 NaN or infinite value\(s\), the first nan at row 7, column 2 \('x3'\)"):
        data.split_and_scale(features, np.array([0, 1] * 15))
    features[7, 2] = 0.0
    with pytest.raises(ValueError, match=r"the first inf at row 9, column 0 \('glucose'\)"):
        data.split_and_scale(features, np.array([0, 1] * 15), feature_names=["glucose", "b", "c"])


def test_classes_too_small_to_stratify_name_the_class_and_the_split():
    """scikit-learn's own errors ("The least populated class in y has only 1 member") said neither."""
    features = np.random.default_rng(0).normal(size=(20, 2))
    one_positive = np.array([0] * 19 + [1])
    with pytest.raises(ValueError, match=r"test rows stratified by class: class 1 \('yes'\) has only 1 of the 20"):
        data.split_and_scale(features, one_positive, classes=("no", "yes"))
    # a test split of half the rows takes one of the two positives; the validation split then finds one left
    two_positives = np.array([0] * 18 + [1] * 2)
    with pytest.raises(ValueError, match=r"validation rows .* class 1 has only 1 of the 10 rows left after the test"):
        data.split_and_scale(features, two_positives, test_fraction=0.5)
    with pytest.raises(ValueError, match=r"the test rows would be 1, too few to hold each of the 2 classes"):
        data.split_and_scale(features[:5], np.array([0, 0, 1, 1, 1]), val_fraction=0.1)
    with pytest.raises(ValueError, match=r"the remaining rows would be 1"):
        data.split_and_scale(features[:4], np.array([0, 0, 1, 1]), val_fraction=0, test_fraction=0.75)
    # with that split left empty the same rows are fine
    halves = data.split_and_scale(features, two_positives, val_fraction=0, test_fraction=0.5)
    assert halves.sizes == {"train": 10, "val": 0, "test": 10} and halves.test[1].sum() == 1


def test_unknown_split_is_named():
    with pytest.raises(ValueError, match="unknown split 'training'"):
        data.synthetic_binary(50, 4).positive_fraction("training")


def test_synthetic_binary_needs_integer_sizes():
    with pytest.raises(ValueError, match="n >= 10"):
        data.synthetic_binary(100.5, 8)


def test_constant_column_is_centred_not_divided_by_zero():
    features = np.column_stack([np.arange(40.0), np.full(40, 7.0)])
    dataset = data.split_and_scale(features, np.array([0, 1] * 20))
    assert torch.all(dataset.train[0][:, 1] == 0) and torch.isfinite(dataset.test[0]).all()


# ------------------------------------------------------------------------------------------
# load_csv
# ------------------------------------------------------------------------------------------
def _diabetes_like(rows=60, seed=0):
    """A CSV shaped like the Pima diabetes table (8 features, 'Outcome' 0/1)."""
    rng = np.random.default_rng(seed)
    names = ["Pregnancies", "Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI",
             "DiabetesPedigreeFunction", "Age"]
    X = rng.normal(size=(rows, 8)).round(3)
    y = (X[:, 1] + 0.5 * rng.normal(size=rows) > 0).astype(int)
    lines = [",".join(names + ["Outcome"])]
    lines += [",".join([f"{v:g}" for v in row] + [str(label)]) for row, label in zip(X, y)]
    return "\n".join(lines) + "\n", X, y, names


def test_load_csv_matches_split_and_scale(tmp_path):
    text, X, y, names = _diabetes_like()
    path = tmp_path / "diabetes.csv"
    path.write_text(text)
    loaded = data.load_csv(path, target="Outcome")
    direct = data.split_and_scale(X, y, feature_names=names)
    for split in ("train", "val", "test"):
        assert torch.allclose(getattr(loaded, split)[0], getattr(direct, split)[0])
        assert torch.equal(getattr(loaded, split)[1], getattr(direct, split)[1])
    assert loaded.feature_names == tuple(names) and loaded.classes == (0, 1) and loaded.name == "diabetes.csv"
    # a text stream works the same, and so does the target in any column position
    streamed = data.load_csv(io.StringIO(text), target="Outcome")
    assert torch.equal(streamed.train[0], loaded.train[0])


def test_load_csv_target_anywhere_and_two_labels_of_any_kind():
    csv_text = "label,a,b\n" + "".join(f"{'yes' if i % 3 else 'no'},{i},{i * i}\n" for i in range(30))
    dataset = data.load_csv(io.StringIO(csv_text), target="label")
    assert dataset.classes == ("no", "yes") and dataset.feature_names == ("a", "b")
    assert abs(dataset.positive_fraction() - 2 / 3) < 0.05
    numeric = "a,b,Outcome\n" + "".join(f"{i},{-i},{1 + (i % 2)}\n" for i in range(30))
    assert data.load_csv(io.StringIO(numeric), target="Outcome").classes == (1, 2)  # 1 → 0, 2 → 1
    numeric = "a,b,y\n" + "".join(f"{i},{-i},{[10, 9][i % 2]}\n" for i in range(30))
    assert data.load_csv(io.StringIO(numeric), target="y").classes == (9, 10)  # numeric order, not text order


def test_load_csv_missing_file_says_which(tmp_path):
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        data.load_csv(missing, target="Outcome")


@pytest.mark.parametrize("delimiter, shown", [(";", "';'"), ("\t", "'\\\\t'")])
def test_load_csv_of_another_delimiter_says_which_to_pass(delimiter, shown):
    text, *_ = _diabetes_like(rows=20)
    other = io.StringIO(text.replace(",", delimiter))
    with pytest.raises(ValueError, match=rf"no target column 'Outcome'.*one column only: the file looks {shown}-"
                                         rf"separated, not ','-separated; pass delimiter={shown}"):
        data.load_csv(other, target="Outcome")
    other.seek(0)
    assert data.load_csv(other, target="Outcome", delimiter=delimiter).n_features == 8


def _csv_with(cell, line=4, column="Glucose"):
    text, *_ = _diabetes_like(rows=20)
    lines = text.splitlines()
    header = lines[0].split(",")
    fields = lines[line - 1].split(",")
    fields[header.index(column)] = cell
    lines[line - 1] = ",".join(fields)
    return io.StringIO("\n".join(lines) + "\n")


@pytest.mark.parametrize("cell", ["abc", "12,5".replace(",", ";"), "1e"])
def test_load_csv_non_numeric_column_says_column_and_line(cell):
    with pytest.raises(ValueError, match=r"line 4: column 'Glucose' is not numeric"):
        data.load_csv(_csv_with(cell), target="Outcome")


@pytest.mark.parametrize("cell", ["", "NA", "nan", "?", " "])
def test_load_csv_missing_value_says_column_and_line(cell):
    with pytest.raises(ValueError, match=r"line 4: missing value in column 'Glucose'"):
        data.load_csv(_csv_with(cell), target="Outcome")


def test_load_csv_missing_or_infinite_target_and_features():
    with pytest.raises(ValueError, match=r"line 6: missing value in target column 'Outcome'"):
        data.load_csv(_csv_with("", line=6, column="Outcome"), target="Outcome")
    with pytest.raises(ValueError, match="non-finite"):
        data.load_csv(_csv_with("inf"), target="Outcome")


def test_load_csv_non_binary_target():
    three = "a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30))
    with pytest.raises(ValueError, match=r"target column 'y' must be binary .* found 3: \[0, 1, 2\]"):
        data.load_csv(io.StringIO(three), target="y")
    one = "a,y\n" + "".join(f"{i},1\n" for i in range(30))
    with pytest.raises(ValueError, match="found 1"):
        data.load_csv(io.StringIO(one), target="y")
    continuous = "a,y\n" + "".join(f"{i},{i / 7:.3f}\n" for i in range(30))
    with pytest.raises(ValueError, match=r"found 30: .* \(30 in all\)"):
        data.load_csv(io.StringIO(continuous), target="y")


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("a,b,y\n", "no data rows"),
    ("a,b,label\n1,2,0\n", "no target column 'y'"),
    ("a,a,y\n1,2,0\n", "duplicated"),
    ("y\n0\n1\n", "no feature columns"),
    ("a,b,y\n1,2,0\n1,2\n", "line 3: 2 fields, but the header has 3"),
])
def test_load_csv_structural_errors(text, words):
    with pytest.raises(ValueError, match=words):
        data.load_csv(io.StringIO(text), target="y")


def test_load_csv_names_a_text_stream_in_its_errors():
    with pytest.raises(ValueError, match="^the CSV text, line 4: missing value"):
        data.load_csv(_csv_with(""), target="Outcome")


def test_load_csv_rejects_other_inputs():
    with pytest.raises(TypeError, match="file path or a text stream"):
        data.load_csv(42, target="y")


# ------------------------------------------------------------------------------------------
# MNIST-1D: the package's own make_dataset, offline, cached
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist1d_reference():
    """The package's default dataset, straight from its make_dataset (what data.mnist1d must hold)."""
    from mnist1d.data import get_dataset_args, make_dataset

    return make_dataset(get_dataset_args())


@pytest.fixture
def no_network(monkeypatch):
    """Sockets, urllib and requests raise, and every attempt is recorded; a test that leaves one fails."""
    import socket
    import urllib.request

    import requests

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("MNIST-1D tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)
    yield attempts
    assert attempts == [], "a network access was attempted (mnist1d's get_dataset swallows the error)"


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def quick_generation(monkeypatch, mnist1d_reference):
    """Generation replaced by the reference arrays (generating takes seconds), counting its calls."""
    calls = []

    def generate(args):
        calls.append(args)
        return {name: mnist1d_reference[name] for name in ("x", "y", "x_test", "y_test")}

    monkeypatch.setattr(data, "_mnist1d_generate", generate)
    return calls


def test_mnist1d_holds_the_packages_default_dataset(fresh_cache, mnist1d_reference):
    dataset = data.mnist1d(cache=False)
    assert dataset.sizes == {"train": 3200, "val": 800, "test": 1000}
    assert dataset.n_features == 40 and dataset.n_classes == 10 and dataset.classes == tuple(range(10))
    for split in ("train", "val", "test"):
        X, y = getattr(dataset, split)
        assert X.dtype == torch.float32 and y.dtype == torch.int64 and X.shape[1] == 40 and y.ndim == 1
    # train and val are the package's 4,000 training rows, test its 1,000 test rows, as float32
    X_train = np.concatenate([dataset.train[0].numpy(), dataset.val[0].numpy()])
    y_train = np.concatenate([dataset.train[1].numpy(), dataset.val[1].numpy()])
    order = np.lexsort(X_train.T[::-1])
    reference_order = np.lexsort(mnist1d_reference["x"].astype(np.float32).T[::-1])
    assert np.array_equal(X_train[order], mnist1d_reference["x"].astype(np.float32)[reference_order])
    assert np.array_equal(y_train[order], mnist1d_reference["y"][reference_order])
    assert np.array_equal(dataset.test[0].numpy(), mnist1d_reference["x_test"].astype(np.float32))
    assert np.array_equal(dataset.test[1].numpy(), mnist1d_reference["y_test"])
    assert "MNIST-1D: 40 features, 10 classes, train=3200, val=800, test=1000" in repr(dataset)
    assert not any(fresh_cache.glob("*")) if fresh_cache.exists() else True  # cache=False writes nothing


def test_mnist1d_uses_the_packages_default_arguments():
    from mnist1d.data import get_dataset_args

    defaults = get_dataset_args(as_dict=True)
    assert defaults.pop("url").startswith("https://")  # get_dataset's download: never used
    assert data.MNIST1D_ARGS == defaults
    assert defaults["num_samples"] * defaults["train_split"] == 4000 and defaults["final_seq_length"] == 40


def test_mnist1d_validation_split_is_stratified_and_seeded(quick_generation, fresh_cache):
    dataset = data.mnist1d()
    train_counts, val_counts = dataset.class_counts("train"), dataset.class_counts("val")
    assert np.all(np.abs(val_counts - 0.2 * (train_counts + val_counts)) < 1)
    assert val_counts.sum() == 800
    again = data.mnist1d()
    assert all(torch.equal(a, b) for a, b in zip(again.val + again.train, dataset.val + dataset.train))
    other = data.mnist1d(seed=1)
    assert not torch.equal(other.val[0], dataset.val[0])
    assert data.mnist1d(val_fraction=0.1).sizes == {"train": 3600, "val": 400, "test": 1000}
    with pytest.raises(ValueError, match="val_fraction"):
        data.mnist1d(val_fraction=0.0)
    with pytest.raises(ValueError, match="positive_fraction is for binary labels"):
        dataset.positive_fraction()


def test_mnist1d_makes_no_network_access(no_network, fresh_cache):
    """Generation works with every way out closed (sockets, urllib, requests); the trap itself catches each."""
    import socket
    import urllib.request

    import requests

    dataset = data.mnist1d(cache=False)
    assert dataset.sizes["test"] == 1000 and no_network == []
    for reach in (lambda: requests.get("https://example.org"), lambda: urllib.request.urlopen("https://example.org"),
                  lambda: socket.socket().connect(("192.0.2.1", 80))):
        with pytest.raises(AssertionError, match="network"):
            reach()
    assert len(no_network) == 3
    no_network.clear()


def test_mnist1d_generation_leaves_the_global_generators_alone(fresh_cache):
    """make_dataset reseeds Python's and NumPy's global generators; data.mnist1d puts them back."""
    import random

    np.random.seed(123)
    random.seed(7)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(7)
    data.mnist1d(cache=False)
    assert (np.random.rand(), random.random()) == expected


def test_mnist1d_cache_is_written_once_and_read_afterwards(quick_generation, fresh_cache):
    first = data.mnist1d()
    files = list(fresh_cache.glob("mnist1d-*.npz"))
    assert len(files) == 1 and len(quick_generation) == 1
    assert quick_generation[0] == data.MNIST1D_ARGS
    second = data.mnist1d()
    assert len(quick_generation) == 1  # read from the cache, not generated
    assert all(torch.equal(a, b) for a, b in zip(first.train + first.val + first.test,
                                                 second.train + second.val + second.test))
    files[0].write_bytes(b"not an npz file")  # a damaged cache is generated again and replaced
    third = data.mnist1d()
    assert len(quick_generation) == 2 and torch.equal(third.test[0], first.test[0])
    assert data.mnist1d(cache=False) and len(quick_generation) == 3


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "mine"))
    assert data.cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv("COURSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == str(tmp_path / "xdg" / "course_lib")


def test_stratified_split_keeps_every_class_share():
    labels = np.repeat([0, 1, 2], [50, 30, 7])
    kept, taken = data.stratified_split(labels, 20, seed=3)
    assert len(taken) == 20 and len(kept) == 67 and set(kept).isdisjoint(taken)
    assert sorted(np.concatenate([kept, taken])) == list(range(87))
    share = np.bincount(labels[taken], minlength=3)
    assert np.all(np.abs(share - 20 * np.array([50, 30, 7]) / 87) < 1)
    assert np.array_equal(data.stratified_split(labels, 20, seed=3)[1], taken)
    assert not np.array_equal(data.stratified_split(labels, 20, seed=4)[1], taken)
    with pytest.raises(ValueError, match="count"):
        data.stratified_split(labels, 88)
