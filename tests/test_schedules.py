"""Learning-rate schedules (nn/schedules.py): torch's StepLR / ExponentialLR / CosineAnnealingLR values,
the warmup and callable forms, the command-line parser and every bad input."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from initlab.nn.schedules import describe_schedule, parse_schedule, schedule_values


def torch_lrs(make_scheduler, lr, epochs):
    """The lr torch uses in each epoch: read before the epoch, scheduler.step() once after it."""
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(opt)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            values.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
    return values


TORCH_CASES = [
    (("step", {"step_size": 3}), lambda o: __import__("torch").optim.lr_scheduler.StepLR(o, 3)),
    (("step", {"step_size": 2, "gamma": 0.5}),
     lambda o: __import__("torch").optim.lr_scheduler.StepLR(o, 2, gamma=0.5)),
    (("step", {"step_size": 1, "gamma": 0.7}),
     lambda o: __import__("torch").optim.lr_scheduler.StepLR(o, 1, gamma=0.7)),
    (("exponential", {"gamma": 0.9}),
     lambda o: __import__("torch").optim.lr_scheduler.ExponentialLR(o, 0.9)),
    (("exponential", {"gamma": 1.03}),
     lambda o: __import__("torch").optim.lr_scheduler.ExponentialLR(o, 1.03)),
    (("cosine", {"T_max": 7}), lambda o: __import__("torch").optim.lr_scheduler.CosineAnnealingLR(o, 7)),
    (("cosine", {"T_max": 5, "eta_min": 0.001}),  # runs past T_max: torch's cosine turns back up
     lambda o: __import__("torch").optim.lr_scheduler.CosineAnnealingLR(o, 5, eta_min=0.001)),
    (("cosine", {"T_max": 1}), lambda o: __import__("torch").optim.lr_scheduler.CosineAnnealingLR(o, 1)),
    ("step(step_size=4,gamma=0.25)",
     lambda o: __import__("torch").optim.lr_scheduler.StepLR(o, 4, gamma=0.25)),
    ("cosine(T_max=6, eta_min=0.01)",
     lambda o: __import__("torch").optim.lr_scheduler.CosineAnnealingLR(o, 6, eta_min=0.01)),
]


@pytest.mark.parametrize("lr", [0.1, 0.037])
@pytest.mark.parametrize("spec,make", TORCH_CASES, ids=[str(c[0]) for c in TORCH_CASES])
def test_named_schedules_equal_torch_bit_for_bit(spec, make, lr):
    epochs = 23
    ours = schedule_values(spec, lr, epochs)
    expected = torch_lrs(make, lr, epochs)
    assert ours == expected  # exact: the same recurrences in float64


def test_cosine_defaults_to_the_fits_epochs():
    lr, epochs = 0.2, 9
    expected = torch_lrs(lambda o: __import__("torch").optim.lr_scheduler.CosineAnnealingLR(o, epochs),
                         lr, epochs)
    assert schedule_values("cosine", lr, epochs) == expected
    assert schedule_values(("cosine", {}), lr, epochs) == expected
    # and the closed form: eta_min + (lr - eta_min)(1 + cos(pi e / T))/2
    np.testing.assert_allclose(expected, [lr * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)],
                               rtol=1e-14, atol=1e-16)


def test_constant_warmup_and_callable():
    assert schedule_values(None, 0.05, 3) == [0.05] * 3
    assert schedule_values("constant", 0.05, 3) == [0.05] * 3
    assert schedule_values(("warmup", {"epochs": 4}), 0.2, 6) == [0.2 * (e + 1) / 4 for e in range(4)] + [0.2] * 2
    assert schedule_values("warmup(epochs=1)", 0.2, 2) == [0.2, 0.2]
    seen = []

    def halve(epoch):
        seen.append(epoch)
        return np.float32(0.5) ** epoch  # numpy numbers are numbers

    assert schedule_values(halve, 99.0, 4) == [1.0, 0.5, 0.25, 0.125]
    assert seen == [0, 1, 2, 3] and all(type(e) is int for e in seen)
    assert schedule_values(lambda e: 0, 0.1, 2) == [0.0, 0.0]  # lr 0 is allowed


def test_parse_schedule():
    assert parse_schedule("cosine(T_max=30)") == ("cosine", {"T_max": 30})
    assert parse_schedule("step(step_size=10,gamma=0.5)") == ("step", {"step_size": 10, "gamma": 0.5})
    assert parse_schedule(" step( step_size = 10 , gamma=5e-1 ) ") == ("step", {"step_size": 10, "gamma": 0.5})
    assert parse_schedule("constant") == "constant"
    assert parse_schedule("cosine") == "cosine"
    assert parse_schedule("cosine()") == ("cosine", {})
    assert type(parse_schedule("step(step_size=10)")[1]["step_size"]) is int
    assert describe_schedule(("step", {"step_size": 10, "gamma": 0.5})) == "step(step_size=10,gamma=0.5)"
    assert parse_schedule(describe_schedule(("cosine", {"T_max": 3, "eta_min": 0.25}))) == \
        ("cosine", {"T_max": 3, "eta_min": 0.25})


BAD = [
    ("cosinus", ValueError, r"lr_schedule: unknown schedule 'cosinus'; valid: constant, step, exponential"),
    (("linear", {}), ValueError, r"unknown schedule 'linear'"),
    ("step", ValueError, r"lr_schedule 'step': parameter 'step_size' is required"),
    (("step", {"gamma": 0.5}), ValueError, r"'step_size' is required"),
    (("exponential", {}), ValueError, r"'gamma' is required"),
    ("warmup", ValueError, r"'epochs' is required"),
    (("step", {"step_size": 0}), ValueError, r"'step_size' must be an integer >= 1, got 0"),
    (("step", {"step_size": -2}), ValueError, r"'step_size' must be an integer >= 1, got -2"),
    (("step", {"step_size": 2.5}), ValueError, r"'step_size' must be an integer >= 1, got 2.5"),
    (("step", {"step_size": 2, "gamma": -0.1}), ValueError, r"'gamma' must be finite and >= 0.0, got -0.1"),
    (("exponential", {"gamma": float("nan")}), ValueError, r"'gamma' must be finite and >= 0.0, got nan"),
    (("cosine", {"T_max": -1}), ValueError, r"'T_max' must be an integer >= 1"),
    (("cosine", {"T_max": 10, "eta_min": -0.1}), ValueError, r"'eta_min' must be finite and >= 0.0"),
    (("warmup", {"epochs": 0}), ValueError, r"'epochs' must be an integer >= 1"),
    (("step", {"step_size": 2, "gama": 0.5}), ValueError, r"unknown parameter 'gama'; valid: step_size, gamma"),
    (("constant", {"x": 1}), ValueError, r"unknown parameter 'x'; valid: none"),
    (("step", {"step_size": "10"}), TypeError, r"'step_size' must be a number, got str '10'"),
    (("step", {"step_size": True}), TypeError, r"'step_size' must be a number, got bool"),
    (3, TypeError, r"lr_schedule must be one of None, 'constant'.*got int 3"),
    ({"step_size": 3}, TypeError, r"lr_schedule must be one of"),
    (("step", 3), TypeError, r"lr_schedule must be one of"),
    ("step(step_size=ten)", ValueError, r"lr_schedule: parameter 'step_size' must be a number, got 'ten'"),
    ("step(step_size)", ValueError, r"lr_schedule: cannot read 'step_size'"),
    ("step(step_size=2", ValueError, r"lr_schedule: cannot read 'step\(step_size=2'"),
    ("step(step_size=2,step_size=3)", ValueError, r"'step_size' given twice"),
    (lambda e: -0.1, ValueError, r"lr_schedule: the callable returned -0.1 for epoch 0; a learning rate "
                                 r"must be finite and >= 0"),
    (lambda e: 0.1 if e < 2 else float("nan"), ValueError, r"returned nan for epoch 2"),
    (lambda e: float("inf"), ValueError, r"returned inf for epoch 0"),
    (lambda e: "0.1", TypeError, r"the callable returned str '0.1' for epoch 0; it must return a number"),
    (lambda e: None, TypeError, r"returned NoneType None"),
    (lambda e: True, TypeError, r"returned bool True"),
    (lambda e: 1j, TypeError, r"returned complex"),
]


@pytest.mark.parametrize("spec,error,match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_schedules_name_the_argument(spec, error, match):
    with pytest.raises(error, match=match):
        schedule_values(spec, 0.1, 5)


def test_parse_errors_name_the_given_argument():
    with pytest.raises(ValueError, match=r"--lr-schedule: unknown schedule 'cos'"):
        parse_schedule("cos(T_max=3)", "--lr-schedule")
    with pytest.raises(TypeError, match=r"--lr-schedule must be a string"):
        parse_schedule(3, "--lr-schedule")


def test_the_cli_reads_the_one_registry_and_checks_values():
    from initlab import cli
    from initlab.nn.schedules import SCHEDULES
    for name, (_, params) in SCHEDULES.items():  # every registry entry reads on the command line
        text = f"{name}({','.join(f'{key}=2' for key in params)})" if params else name
        assert cli._lr_schedule(text) == ("constant" if name == "constant" else (name, {k: 2 for k in params}))
    for bad, message in (("step(step_size=2,gamma=-1)", r"'step': parameter 'gamma' must be finite"),
                         ("cosine(T_max=0)", r"'cosine': parameter 'T_max' must be an integer >= 1")):
        with pytest.raises(Exception, match=message):  # argparse puts "argument --lr-schedule: " first
            cli._lr_schedule(bad)
        with pytest.raises(ValueError, match="--lr-schedule " + message):
            parse_schedule(bad, "--lr-schedule")
