"""The recipe of docs/pytorch.md: a 20-layer ReLU MLP on digits with PyTorch's default initialization,
diagnosed with il.torch.diagnose, fixed with il.torch.init_, and both trained the same way.

    PYTHONPATH=python python docs/pytorch_recipe.py
"""
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import initlab as il

torch.set_num_threads(1)
X, y = il.datasets.load_digits()
X = X / 16.0                                          # pixels in [0, 1]
order = np.random.default_rng(0).permutation(len(X))
train, test = order[:1400], order[1400:]
X_train, y_train = torch.from_numpy(X[train]), torch.from_numpy(y[train])
X_test, y_test = torch.from_numpy(X[test]), torch.from_numpy(y[test])


def mlp(depth=20, width=64):
    torch.manual_seed(0)                              # PyTorch's default init: kaiming_uniform_(a=sqrt(5))
    layers = [nn.Linear(64, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def train(model, epochs=20, lr=0.01, batch=64, watch_every=None):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    watch = il.torch.watch(model, every=watch_every) if watch_every else None
    curve = []
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            model.train()
            for idx in torch.randperm(len(X_train), generator=gen).split(batch):
                loss = F.cross_entropy(model(X_train[idx]), y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                train_loss = F.cross_entropy(model(X_train), y_train).item()
                acc = (model(X_test).argmax(1) == y_test).float().mean().item()
            curve.append((epoch + 1, train_loss, acc))
    finally:
        if watch is not None:
            watch.close()
    return curve, time.perf_counter() - start, watch


default = mlp()
print("== PyTorch defaults: il.torch.diagnose(model, X, y)")
print(il.torch.diagnose(default, X_train[:256], y_train[:256]))

fixed = il.torch.init_(mlp(), "he_normal", seed=0)
print("== after il.torch.init_(model, 'he_normal', seed=0)")
print(il.torch.diagnose(fixed, X_train[:256], y_train[:256]))

curve_default, t_default, _ = train(default)
curve_fixed, t_fixed, watch = train(fixed, watch_every=10)
print("== training: SGD(lr=0.01, momentum=0.9), batch 64, 1400 train / 397 test digits")
print("epoch  default: train loss  test acc   he_normal: train loss  test acc")
for (e, l0, a0), (_, l1, a1) in zip(curve_default, curve_fixed):
    print(f"{e:5d}  {l0:19.4f} {a0:9.3f}   {l1:21.4f} {a1:9.3f}")
print(f"seconds: default {t_default:.1f}, he_normal (with il.torch.watch every=10) {t_fixed:.1f}")
report = watch.report()
first, last = report.layer_stats[0], report.layer_stats[-1]
print(f"== il.torch.watch: {len(report.layer_stats)} records over {watch.steps} steps; "
      f"grad_norm of layers 0 / 10 / 20 at step {first[0]['step']}: "
      f"{first[0]['grad_norm']:.3g} / {first[10]['grad_norm']:.3g} / {first[20]['grad_norm']:.3g}; "
      f"at step {last[0]['step']}: {last[0]['grad_norm']:.3g} / {last[10]['grad_norm']:.3g} / "
      f"{last[20]['grad_norm']:.3g}")
