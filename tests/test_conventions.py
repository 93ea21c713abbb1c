"""What Keras and scikit-learn users expect of a Network: predict_proba, score, summary, count_params,
lr schedules, class and sample weights, labels of any type (API.md, "More of what Keras and
scikit-learn users expect"). Weighted training is compared step by step with PyTorch in float64."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import initlab as il


def blobs(n=48, d=4, k=3, seed=0):
    gen = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = gen.standard_normal((n, d)) + 2.0 * np.eye(k, d)[y]
    return X, y.astype(np.int64)


# ---- predict_proba, score, summary, count_params -------------------------------------------------

def test_predict_proba_is_forward_for_classifiers():
    X, y = blobs()
    for output, width in (("softmax", 3), ("sigmoid", 2)):
        net = il.Network([4, 5, width], output=output, seed=1)
        np.testing.assert_array_equal(net.predict_proba(X), net.forward(X))
    net = il.Network([4, 5, 1], output="linear", seed=1)
    with pytest.raises(AttributeError, match=r"predict_proba.*softmax or sigmoid.*linear"):
        net.predict_proba(X)


def test_score_is_accuracy_for_classifiers():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    X, y = blobs()
    net = il.Network([4, 8, 3], seed=2)
    net.fit(X, y, epochs=3, progress=False)
    assert net.score(X, y) == net.evaluate(X, y)["accuracy"]
    assert net.score(X, y) == pytest.approx(sklearn_metrics.accuracy_score(y, net.predict(X)), abs=1e-15)
    Y = (np.random.default_rng(3).random((48, 2)) > 0.5).astype(np.int64)  # sigmoid: per element
    net = il.Network([4, 6, 2], output="sigmoid", seed=3)
    assert net.score(X, Y) == pytest.approx(np.mean(net.predict(X) == Y), abs=1e-15)


@pytest.mark.parametrize("k", [1, 3])
def test_score_is_r2_for_a_linear_output_as_scikit_learn(k):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    gen = np.random.default_rng(4)
    X = gen.standard_normal((40, 5))
    Y = X[:, :k] * 2 + 0.1 * gen.standard_normal((40, k))
    net = il.Network([5, 16, k], output="linear", seed=4, dtype="float64")
    net.fit(X, Y, epochs=5, lr=0.05, progress=False)
    pred = net.predict(X)
    y_true = Y[:, 0] if k == 1 else Y
    expected = sklearn_metrics.r2_score(y_true, pred[:, 0] if k == 1 else pred)
    assert net.score(X, y_true) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert net.score(X, y_true) < 1.0
    # constant targets: scikit-learn's convention (1 when predicted exactly, else 0)
    const = np.ones((40, k))
    assert net.score(X, const) == sklearn_metrics.r2_score(const, pred) == 0.0


def test_summary_and_count_params():
    net = il.Network([64, 128, 10], activation="tanh", seed=0)
    assert net.count_params() == 64 * 128 + 128 + 128 * 10 + 10
    assert net.count_params() == sum(a.size for a in net.get_weights())
    s = net.summary()
    text = str(s)
    assert repr(s) == text
    lines = text.splitlines()
    assert any("Dense" in line and "(None, 128)" in line and "8,320" in line and "tanh" in line for line in lines)
    assert any("Dense" in line and "(None, 10)" in line and "1,290" in line and "softmax" in line for line in lines)
    assert "Total params: 9,610" in text
    assert [row["params"] for row in s.rows] == [8320, 1290]
    assert [row["output_shape"] for row in s.rows] == [(None, 128), (None, 10)]
    assert s.total_params == 9610


# ---- labels of any type -------------------------------------------------------------------------

def test_string_labels_round_trip():
    X, yi = blobs(60)
    names = np.array(["setosa", "versicolor", "virginica"])
    y = names[yi][::-1].copy()  # another order in the file than in classes_
    X = X[::-1].copy()
    net = il.Network([4, 16, 3], seed=5)
    np.testing.assert_array_equal(net.classes_, [0, 1, 2])
    net.fit(X, y, epochs=30, lr=0.1, progress=False)
    assert net.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    pred = net.predict(X)
    assert pred.dtype.kind == "U" and set(pred.tolist()) <= set(names.tolist())
    assert net.score(X, y) == pytest.approx(np.mean(pred == y))
    assert net.score(X, y) > 0.8
    assert net.evaluate(X, list(y))["loss"] == net.loss(X, y)
    with pytest.raises(ValueError, match=r"y: label 'rose' was not seen in fit"):
        net.evaluate(X[:2], ["setosa", "rose"])
    with pytest.raises(ValueError, match=r"was not seen in fit"):
        net.score(X[:1], [0])
    net.fit(X[:5], y[:5], epochs=1, progress=False)  # a later fit maps through classes_
    with pytest.raises(ValueError, match=r"label 'rose' was not seen in fit"):
        net.fit(X[:2], ["rose", "setosa"], epochs=1, progress=False)
    assert net.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    # a fit on numbers: they are column indices again, classes_ = arange(K)
    net.fit(X, yi[::-1].copy(), epochs=1, progress=False)
    np.testing.assert_array_equal(net.classes_, [0, 1, 2])
    assert net.predict(X).dtype == np.int64


def test_integer_labels_keep_their_meaning():
    X, y = blobs()
    net = il.Network([4, 6, 5], seed=6)  # 5 outputs, only 3 classes occur
    net.fit(X, y, epochs=1, progress=False)
    np.testing.assert_array_equal(net.classes_, np.arange(5))
    assert net.predict(X).dtype == np.int64
    with pytest.raises(ValueError, match=r"distinct labels"):
        il.Network([4, 6, 5], seed=6).fit(X, np.array(["a", "b", "c"])[y], epochs=1, progress=False)


# ---- torch, float64: class weights, sample weights, schedules ------------------------------------

def torch_mlp_run(X, y, weights, *, loss_kind, activation, epochs, batch_size, lr, momentum,
                  schedule=None, class_weight=None, net=None):
    """The same steps in torch (no shuffling): returns (weights after, lr per epoch)."""
    torch = pytest.importorskip("torch")
    params = [torch.tensor(a, requires_grad=True) for a in net.get_weights()]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    scheduler = schedule(opt) if schedule else None
    act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
    X_t = torch.tensor(X)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        for lo in range(0, len(X), batch_size):
            xb = X_t[lo:lo + batch_size]
            h = xb
            for i in range(0, len(params) - 2, 2):
                h = act(h @ params[i] + params[i + 1])
            out = h @ params[-2] + params[-1]
            opt.zero_grad()
            if loss_kind == "ce":
                loss = torch.nn.CrossEntropyLoss(weight=None if class_weight is None
                                                 else torch.tensor(np.asarray(class_weight, np.float64)))(out, torch.tensor(y[lo:lo + batch_size]))
            else:
                yb = torch.tensor(y[lo:lo + batch_size])
                wb = torch.tensor(weights[lo:lo + batch_size])
                if loss_kind == "bce":
                    rows = torch.nn.functional.binary_cross_entropy_with_logits(out, yb, reduction="none").mean(1)
                else:
                    rows = ((out - yb) ** 2).mean(1)
                loss = (wb * rows).sum() / wb.sum()
            loss.backward()
            opt.step()
        if scheduler is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scheduler.step()
    return [p.detach().numpy() for p in params], lrs


@pytest.mark.parametrize("labels", ["int", "str"])
def test_fit_with_class_weight_equals_torch_cross_entropy_weight(labels):
    torch = pytest.importorskip("torch")
    X, y = blobs(40, 4, 3, seed=7)
    net = il.Network([4, 7, 6, 3], activation="tanh", seed=7, dtype="float64")
    start = net.get_weights()
    cw = {0: 0.5, 1: 3.0, 2: 1.25}
    y_fit = y
    if labels == "str":
        names = np.array(["ant", "bee", "cat"])
        y_fit, cw = names[y], {names[k]: v for k, v in cw.items()}
    sched = ("cosine", {"T_max": 3, "eta_min": 0.01})
    report = net.fit(X, y_fit, epochs=4, batch_size=16, lr=0.1, momentum=0.9, shuffle=False,
                     class_weight=cw, lr_schedule=sched, stats_every=0, progress=False)
    after = net.get_weights()
    net.set_weights(start)
    expected, lrs = torch_mlp_run(
        X, y, None, loss_kind="ce", activation="tanh", epochs=4, batch_size=16, lr=0.1, momentum=0.9,
        class_weight=[0.5, 3.0, 1.25], net=net,
        schedule=lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 3, eta_min=0.01))
    for ours, theirs in zip(after, expected):
        np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-13)
    assert [row["lr"] for row in report.history] == lrs


def test_balanced_class_weight_and_sample_weight_multiply():
    torch = pytest.importorskip("torch")
    X, y = blobs(30, 4, 3, seed=8)
    y = y.copy()
    y[:6] = 0  # unbalanced
    sw = np.random.default_rng(8).random(30) * 2
    net = il.Network([4, 5, 3], activation="relu", seed=8, dtype="float64")
    start = net.get_weights()
    net.fit(X, y, epochs=2, batch_size=10, lr=0.2, shuffle=False, class_weight="balanced",
            sample_weight=sw, stats_every=0, progress=False)
    after = net.get_weights()
    counts = np.bincount(y, minlength=3)
    balanced = 30 / (3 * counts)
    # torch: per-row weights balanced[y] * sw, reduced as sum(w l)/sum(w)
    params = [torch.tensor(a, requires_grad=True) for a in start]
    opt = torch.optim.SGD(params, lr=0.2)
    w = torch.tensor(balanced[y] * sw)
    for _ in range(2):
        for lo in range(0, 30, 10):
            h = torch.relu(torch.tensor(X[lo:lo + 10]) @ params[0] + params[1])
            rows = torch.nn.functional.cross_entropy(h @ params[2] + params[3], torch.tensor(y[lo:lo + 10]),
                                                     reduction="none")
            opt.zero_grad()
            ((w[lo:lo + 10] * rows).sum() / w[lo:lo + 10].sum()).backward()
            opt.step()
    for ours, theirs in zip(after, params):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("output", ["linear", "sigmoid"])
def test_sample_weight_for_mse_and_bce_equals_torch(output):
    pytest.importorskip("torch")
    gen = np.random.default_rng(9)
    X = gen.standard_normal((24, 3))
    Y = gen.random((24, 2)) if output == "sigmoid" else gen.standard_normal((24, 2))
    sw = gen.random(24) * 3
    net = il.Network([3, 6, 2], activation="tanh", output=output, seed=9, dtype="float64")
    start = net.get_weights()
    report = net.fit(X, Y, epochs=3, batch_size=8, lr=0.1, momentum=0.5, shuffle=False, sample_weight=sw,
                     lr_schedule=("step", {"step_size": 2, "gamma": 0.5}), stats_every=0, progress=False)
    after = net.get_weights()
    net.set_weights(start)
    import torch
    expected, lrs = torch_mlp_run(
        X, Y, sw, loss_kind="bce" if output == "sigmoid" else "mse", activation="tanh", epochs=3,
        batch_size=8, lr=0.1, momentum=0.5, net=net,
        schedule=lambda o: torch.optim.lr_scheduler.StepLR(o, 2, gamma=0.5))
    for ours, theirs in zip(after, expected):
        np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-13)
    assert [row["lr"] for row in report.history] == lrs == [0.1, 0.1, 0.05]


def test_epoch_loss_is_the_weighted_mean():
    X, y = blobs(20, 4, 3, seed=10)
    sw = np.linspace(0.1, 2.0, 20)
    net = il.Network([4, 5, 3], seed=10, dtype="float64")
    report = net.fit(X, y, epochs=1, batch_size=20, lr=0.0, sample_weight=sw, stats_every=0, progress=False)
    P = net.forward(X)
    rows = -np.log(P[np.arange(20), y])
    assert report.history[0]["loss"] == pytest.approx((sw * rows).sum() / sw.sum(), rel=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_batch_whose_weights_sum_to_zero_makes_no_update(optimizer):
    X, y = blobs(30, 4, 3, seed=11)
    sw = np.ones(30)
    sw[10:20] = 0.0  # the second batch of 10 weighs nothing
    kw = dict(epochs=1, batch_size=10, lr=0.05, momentum=0.9 if optimizer == "sgd" else 0.0, weight_decay=0.01,
              optimizer=optimizer, shuffle=False, stats_every=0, progress=False)
    net = il.Network([4, 5, 3], seed=11, dtype="float64")
    net.fit(X, y, sample_weight=sw, **kw)
    # the same as training on the two batches that weigh something (momentum, decay, Adam's step too)
    twin = il.Network([4, 5, 3], seed=11, dtype="float64")
    keep = np.r_[0:10, 20:30]
    twin.fit(X[keep], y[keep], **kw)
    for a, b in zip(net.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unweighted_fit_is_bitwise_unchanged_by_unit_defaults():
    X, y = blobs(40, 4, 3, seed=12)
    a = il.Network([4, 8, 3], seed=12)
    b = il.Network([4, 8, 3], seed=12)
    ra = a.fit(X, y, epochs=3, progress=False, stats_every=0)
    rb = b.fit(X, y, epochs=3, progress=False, stats_every=0, lr_schedule="constant", class_weight=None,
               sample_weight=None)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert [r["loss"] for r in ra.history] == [r["loss"] for r in rb.history]
    assert [r["lr"] for r in ra.history] == [0.01] * 3


def test_schedule_restarts_at_each_fit_and_lr_reaches_the_report():
    X, y = blobs()
    net = il.Network([4, 5, 3], seed=13)
    r1 = net.fit(X, y, epochs=3, lr=0.1, lr_schedule=("warmup", {"epochs": 2}), progress=False)
    r2 = net.fit(X, y, epochs=2, lr=0.1, lr_schedule=lambda e: 0.1 / (e + 1), progress=False)
    assert [h["lr"] for h in r1.history] == [0.05, 0.1, 0.1]
    assert [h["lr"] for h in r2.history] == [0.1, 0.05]
    assert [h["epoch"] for h in r2.history] == [4, 5]


# ---- bad input: errors name the argument, before any weight changes --------------------------------

BAD_FIT = [
    (dict(lr_schedule="cosinus"), ValueError, r"lr_schedule: unknown schedule 'cosinus'"),
    (dict(lr_schedule=("step", {})), ValueError, r"lr_schedule 'step': parameter 'step_size' is required"),
    (dict(lr_schedule=("exponential", {"gamma": -1})), ValueError, r"'gamma' must be finite and >= 0"),
    (dict(lr_schedule=lambda e: -1.0 if e == 2 else 0.1), ValueError, r"lr_schedule: the callable returned -1.0 for epoch 2"),
    (dict(lr_schedule=lambda e: float("nan")), ValueError, r"lr_schedule: the callable returned nan"),
    (dict(lr_schedule=lambda e: "fast"), TypeError, r"lr_schedule: the callable returned str"),
    (dict(class_weight="balancedd"), ValueError, r"class_weight must be None, 'balanced' or a dict"),
    (dict(class_weight={0: -1.0}), ValueError, r"class_weight: the weight of class 0 must be finite and >= 0"),
    (dict(class_weight={0: float("nan")}), ValueError, r"class_weight: the weight of class 0 must be finite"),
    (dict(class_weight={7: 1.0}), ValueError, r"class_weight: key 7 is not a label of this problem"),
    (dict(class_weight={"a": 1.0}), ValueError, r"class_weight: key 'a' is not a label"),
    (dict(class_weight=[1.0, 2.0]), TypeError, r"class_weight must be None, 'balanced' or a dict"),
    (dict(sample_weight=np.ones(5)), ValueError, r"sample_weight must have shape \(48,\)"),
    (dict(sample_weight=-np.ones(48)), ValueError, r"sample_weight must be finite and >= 0, got -1.0 at index 0"),
    (dict(sample_weight=np.r_[np.ones(47), np.nan]), ValueError, r"sample_weight must be finite and >= 0, got nan"),
    (dict(sample_weight=np.zeros(48)), ValueError, r"sample_weight: the weights of all 48 rows sum to 0"),
    (dict(class_weight={0: 0.0, 1: 0.0, 2: 0.0}), ValueError, r"class_weight: the weights of all 48 rows sum to 0"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD_FIT, ids=[f"bad{i}" for i in range(len(BAD_FIT))])
def test_bad_fit_arguments_fail_before_any_weight_changes(kwargs, error, match):
    X, y = blobs()
    net = il.Network([4, 5, 3], seed=14)
    net.fit(X, y, epochs=1, momentum=0.9, progress=False)  # optimizer state exists
    before = net.get_weights()
    with pytest.raises(error, match=match):
        net.fit(X, y, epochs=3, momentum=0.9, progress=False, **kwargs)
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(net.classes_, [0, 1, 2])
    again = net.fit(X, y, epochs=1, momentum=0.9, progress=False)  # and training carries on
    assert again.history[0]["epoch"] == 2


def test_class_weight_needs_a_softmax_output():
    X = np.zeros((4, 2))
    net = il.Network([2, 3, 1], output="sigmoid", seed=0)
    with pytest.raises(ValueError, match=r"class_weight applies to softmax outputs only.*sigmoid"):
        net.fit(X, np.array([0, 1, 1, 0]), class_weight={0: 1.0, 1: 2.0}, progress=False)


def test_balanced_with_a_class_absent_from_y():
    X, y = blobs()
    net = il.Network([4, 5, 4], seed=15)  # class 3 never occurs
    with pytest.raises(ValueError, match=r"class_weight='balanced': class 3 does not occur in y"):
        net.fit(X, y, class_weight="balanced", progress=False)


def test_experiments_take_string_labels_from_files():
    from initlab.experiments.runs import prepare_data
    X, y = blobs(30)
    data = prepare_data((X, np.array(["x", "y", "z"])[y]), seed=0)
    assert data.classes == 3 and data.y_train.dtype.kind == "U"
    assert prepare_data((X, y), seed=0).y_train.dtype == np.int64


def test_string_classes_survive_save_and_load(tmp_path):
    X, yi = blobs(30)
    y = np.array(["b", "a", "c"])[yi]
    net = il.Network([4, 6, 3], seed=16)
    net.fit(X, y, epochs=2, progress=False)
    path = net.save(tmp_path / "m.npz")
    back = il.Network.load(path)
    assert back.classes_.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert back.score(X, y) == net.score(X, y)
    # integer labels: classes_ comes back as the default 0..K-1
    plain = il.Network([4, 6, 3], seed=16)
    back = il.Network.load(plain.save(tmp_path / "p.npz"))
    np.testing.assert_array_equal(back.classes_, [0, 1, 2])
    assert back.classes_.dtype == np.int64 and back.predict(X).dtype == np.int64
    # a classes_ entry that is not K distinct sorted labels is refused (checksum recomputed)
    from initlab.nn import persistence
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    for bad, message in ((np.array(["a", "a", "c"]), "distinct and sorted"),
                         (np.array(["a", "b"]), "must be the integers 0..2 or 3 strings"),
                         (np.array([0, 1, 5]), "must be the integers 0..2 or 3 strings")):
        arrays["classes_"] = bad
        arrays["checksum"] = np.array(persistence.checksum(arrays))
        np.savez(tmp_path / "t.npz", **arrays)
        with pytest.raises(ValueError, match=message):
            il.Network.load(tmp_path / "t.npz")


def test_numbers_held_as_objects_are_numbers():
    X, y = blobs()
    net = il.Network([4, 5, 3], seed=17)
    net.fit(X, np.array(y.tolist(), dtype=object), epochs=1, progress=False)
    np.testing.assert_array_equal(net.classes_, [0, 1, 2])
    assert net.predict(X).dtype == np.int64


def test_sample_weight_is_split_with_validation_split():
    X, y = blobs(40, 4, 3, seed=18)
    sw = np.random.default_rng(18).random(40) + 0.1
    kw = dict(epochs=2, batch_size=8, lr=0.1, stats_every=0, progress=False)
    a = il.Network([4, 5, 3], seed=18, dtype="float64")
    ra = a.fit(X, y, sample_weight=sw, validation_split=0.25, **kw)
    b = il.Network([4, 5, 3], seed=18, dtype="float64")
    rb = b.fit(X[:30], y[:30], sample_weight=sw[:30], validation_data=(X[30:], y[30:]), **kw)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert [h["loss"] for h in ra.history] == [h["loss"] for h in rb.history]
    assert [h["val_loss"] for h in ra.history] == [h["val_loss"] for h in rb.history]
    assert ra.history[-1]["val_loss"] == pytest.approx(a.loss(X[30:], y[30:]), rel=1e-12)  # unweighted


def test_lr_reaches_the_report_table_and_csv(tmp_path):
    X, y = blobs()
    report = il.Network([4, 5, 3], seed=19).fit(X, y, epochs=2, lr=0.5, progress=False,
                                                 lr_schedule=("exponential", {"gamma": 0.5}))
    assert "lr" in str(report).splitlines()[0] and "0.2500" in str(report).splitlines()[2]
    lines = open(report.to_csv(tmp_path / "h.csv")).read().splitlines()
    assert "lr" in lines[0].split(",")
    column = lines[0].split(",").index("lr")
    assert [float(line.split(",")[column]) for line in lines[1:]] == [0.5, 0.25]
    assert report.config["lr_schedule"] == "exponential(gamma=0.5)"


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
def test_score_with_sample_weight_equals_scikit_learn(output):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    X, y = blobs(36, 4, 3, seed=20)
    sw = np.random.default_rng(20).random(36) * 2
    sw[:3] = 0
    if output == "softmax":
        net, target = il.Network([4, 6, 3], seed=20), y
    elif output == "sigmoid":
        net, target = il.Network([4, 6, 3], output="sigmoid", seed=20), np.eye(3)[y]
    else:
        net, target = il.Network([4, 6, 2], output="linear", seed=20, dtype="float64"), X[:, :2] * 1.5
    net.fit(X, target, epochs=3, lr=0.05, progress=False)
    pred = net.predict(X)
    if output == "softmax":
        expected = sklearn_metrics.accuracy_score(target, pred, sample_weight=sw)
    elif output == "sigmoid":  # per element: each row's 3 decisions, weighted by its row weight
        expected = np.average((pred == target).mean(axis=1), weights=sw)
    else:
        expected = sklearn_metrics.r2_score(target, pred, sample_weight=sw)
    assert net.score(X, target, sample_weight=sw) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert net.score(X, target, sample_weight=np.ones(36)) == pytest.approx(net.score(X, target), rel=1e-12)
    with pytest.raises(ValueError, match=r"sample_weight must be finite and >= 0"):
        net.score(X, target, sample_weight=-sw)
    with pytest.raises(ValueError, match=r"sample_weight: the weights of all 36 rows sum to 0"):
        net.score(X, target, sample_weight=np.zeros(36))
