"""Label encoding and per-row weights (nn/labels.py): scikit-learn's classes_ and class_weight."""
from __future__ import annotations

import numpy as np
import pytest

from initlab.nn.labels import (check_sample_weight, class_weights, decode_labels, default_classes,
                               encode_fit_labels, encode_labels, row_weights)


def test_string_labels_are_sorted_classes():
    y = np.array(["dog", "cat", "emu", "cat", "dog"])
    classes, codes = encode_fit_labels(y, 3, default_classes(3))
    assert classes.tolist() == ["cat", "dog", "emu"]
    assert codes.tolist() == [1, 0, 2, 0, 1] and codes.dtype == np.int64
    np.testing.assert_array_equal(decode_labels(codes, classes), y)
    # a list and an object array of strings give the same; later calls map through classes_
    assert encode_fit_labels(list(y), 3, default_classes(3))[1].tolist() == codes.tolist()
    assert encode_labels(np.array(["emu", "cat"], dtype=object), classes).tolist() == [2, 0]
    assert encode_fit_labels(["emu"], 3, classes)[1].tolist() == [2]  # a later fit: one class is fine


def test_numeric_labels_keep_their_index_meaning():
    classes = default_classes(4)
    assert classes.tolist() == [0, 1, 2, 3] and classes.dtype == np.int64
    for y in ([0, 3, 1], np.array([0.0, 2.0]), np.array([True, False])):
        found, codes = encode_fit_labels(y, 4, classes)
        assert found.tolist() == [0, 1, 2, 3] and codes is None  # checked as indices by the caller
        assert encode_labels(y, classes) is None
    assert encode_fit_labels(np.eye(4)[[0, 1]], 4, classes)[1] is None  # one-hot
    # after string classes, a fit on numbers goes back to column indices
    back, codes = encode_fit_labels([0, 2], 3, np.array(["a", "b", "c"]))
    assert back.tolist() == [0, 1, 2] and back.dtype == np.int64 and codes is None
    assert decode_labels(np.array([3, 0]), classes).tolist() == [3, 0]


def test_unseen_and_mismatched_labels_are_value_errors():
    classes = np.array(["a", "b"])
    with pytest.raises(ValueError, match=r"y: label 'c' was not seen in fit; known classes_: \['a', 'b'\]"):
        encode_labels(np.array(["a", "c"]), classes)
    with pytest.raises(ValueError, match=r"label 1 was not seen in fit"):
        encode_labels(np.array([1, 0]), classes)
    with pytest.raises(ValueError, match=r"y: label 'a' was not seen in fit; this network's classes_ are the "
                                         r"integers 0..2"):
        encode_labels(["a"], default_classes(3))
    with pytest.raises(ValueError, match=r"y has 2 distinct labels \['a', 'b'\] but the softmax output has 3 units"):
        encode_fit_labels(["a", "b", "a"], 3, default_classes(3))
    with pytest.raises(TypeError, match=r"y: labels must be numbers or values of one sortable type.*int, str"):
        encode_fit_labels(np.array([1, "a"], dtype=object), 2, default_classes(2))
    with pytest.raises(ValueError, match=r"y contains a missing label \(None\)"):
        encode_fit_labels(np.array(["a", None], dtype=object), 2, default_classes(2))
    with pytest.raises(ValueError, match=r"y_val: label 'z'"):
        encode_labels(["z"], classes, "y_val")


def test_balanced_class_weight_equals_scikit_learn():
    sklearn_cw = pytest.importorskip("sklearn.utils.class_weight")
    y = np.array(["b", "a", "c", "a", "a", "b", "c", "c", "c"])
    classes, codes = encode_fit_labels(y, 3, default_classes(3))
    expected = sklearn_cw.compute_class_weight("balanced", classes=classes, y=y)
    np.testing.assert_allclose(class_weights("balanced", codes, classes), expected, rtol=1e-15)
    # integer labels, and one-hot targets counted by their columns
    yi = np.array([0, 2, 2, 1, 2, 0])
    expected_i = sklearn_cw.compute_class_weight("balanced", classes=np.arange(3), y=yi)
    np.testing.assert_allclose(class_weights("balanced", yi, default_classes(3)), expected_i, rtol=1e-15)
    np.testing.assert_allclose(class_weights("balanced", np.eye(3)[yi], default_classes(3)), expected_i,
                               rtol=1e-15)


def test_dict_class_weight():
    classes = np.array(["a", "b", "c"])
    np.testing.assert_array_equal(class_weights({"c": 2.5, "a": 0}, np.array([0, 1, 2]), classes), [0, 1, 2.5])
    np.testing.assert_array_equal(class_weights({np.int64(1): 3, 2: 0.5}, np.array([0]), default_classes(3)),
                                  [1, 3, 0.5])


@pytest.mark.parametrize("class_weight,classes,error,match", [
    ("balancedd", None, ValueError, r"class_weight must be None, 'balanced' or a dict \{label: weight\}, got 'balancedd'"),
    ({"d": 1.0}, ["a", "b", "c"], ValueError, r"class_weight: key 'd' is not a label of this problem; the labels "
                                              r"are \['a', 'b', 'c'\]"),
    ({3: 1.0}, None, ValueError, r"key 3 is not a label"),
    ({-1: 1.0}, None, ValueError, r"key -1 is not a label"),
    ({True: 1.0}, None, ValueError, r"key True is not a label"),
    ({1.5: 1.0}, None, ValueError, r"key 1.5 is not a label"),
    ({0: 1.0}, ["a", "b", "c"], ValueError, r"key 0 is not a label"),
    ({"0": 1.0}, None, ValueError, r"key '0' is not a label"),
    ({1: -0.5}, None, ValueError, r"class_weight: the weight of class 1 must be finite and >= 0, got -0.5"),
    ({1: float("nan")}, None, ValueError, r"the weight of class 1 must be finite and >= 0, got nan"),
    ({1: float("inf")}, None, ValueError, r"must be finite and >= 0, got inf"),
    ({1: "2"}, None, TypeError, r"the weight of class 1 must be a number, got str '2'"),
    ([1.0, 2.0, 3.0], None, TypeError, r"class_weight must be None, 'balanced' or a dict.*got list"),
])
def test_bad_class_weight(class_weight, classes, error, match):
    classes = default_classes(3) if classes is None else np.array(classes)
    with pytest.raises(error, match=match):
        class_weights(class_weight, np.array([0, 1, 2]), classes)


def test_balanced_with_an_absent_class_is_a_value_error():
    with pytest.raises(ValueError, match=r"class_weight='balanced': class 1 does not occur in y"):
        class_weights("balanced", np.array([0, 2, 2]), default_classes(3))
    with pytest.raises(ValueError, match=r"class 'b' does not occur"):
        class_weights("balanced", np.array([0, 2]), np.array(["a", "b", "c"]))


def test_sample_weight_checks():
    np.testing.assert_array_equal(check_sample_weight([1, 0, 2.5], 3), [1, 0, 2.5])
    assert check_sample_weight(np.ones(3, np.float32), 3).dtype == np.float64
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(3,\) \(one weight per sample of X\), "
                                         r"got \(2,\)"):
        check_sample_weight([1.0, 2.0], 3)
    with pytest.raises(ValueError, match=r"got \(3, 1\)"):
        check_sample_weight(np.ones((3, 1)), 3)
    with pytest.raises(ValueError, match=r"sample_weight must be finite and >= 0, got -1.0 at index 1"):
        check_sample_weight([1.0, -1.0, 1.0], 3)
    with pytest.raises(ValueError, match=r"got nan at index 2"):
        check_sample_weight([1.0, 1.0, np.nan], 3)
    with pytest.raises(TypeError, match=r"sample_weight must hold numbers, got dtype <U1"):
        check_sample_weight(["a", "b", "c"], 3)
    with pytest.raises(TypeError, match=r"sample_weight must hold numbers, got dtype bool"):
        check_sample_weight(np.ones(3, bool), 3)


def test_row_weights_multiply_and_reject_an_all_zero_total():
    codes = np.array([0, 1, 1, 2])
    cw = np.array([2.0, 0.5, 4.0])
    sw = np.array([1.0, 3.0, 0.0, 0.25])
    assert row_weights(codes, None, None) is None
    np.testing.assert_array_equal(row_weights(codes, cw, None), [2.0, 0.5, 0.5, 4.0])
    np.testing.assert_array_equal(row_weights(codes, None, sw), sw)
    np.testing.assert_array_equal(row_weights(codes, cw, sw), [2.0, 1.5, 0.0, 1.0])
    np.testing.assert_allclose(row_weights(np.eye(3)[codes], cw, sw), [2.0, 1.5, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"sample_weight: the weights of all 4 rows sum to 0"):
        row_weights(codes, None, np.zeros(4))
    with pytest.raises(ValueError, match=r"class_weight \* sample_weight: the weights of all 4 rows sum to 0"):
        row_weights(codes, np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"class_weight: the weights"):
        row_weights(codes, np.zeros(3), None)
