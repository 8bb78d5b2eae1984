#!/usr/bin/python3
"""Test accuracy of the Keras tutorial's model after its 2 epochs, over several seeds, for tapegrad
(the examples/mnist program) and for PyTorch (Debian's python3-torch) with the same model and
settings: Conv2D(32, 3x3, relu) -> MaxPool 2x2 -> Flatten -> Dense(10, softmax), Glorot-uniform
weights and zero biases (Keras's defaults; --init torch keeps PyTorch's own), Keras's Adam (lr 1e-3,
eps 1e-7 added to the uncorrected sqrt(v)), batch 32, the last 20% held out, reshuffled each epoch.

A single run's accuracy moves by a few tenths of a percent with the seed; this prints each run and
the mean and standard deviation, so that the two frameworks can be compared as distributions.
Usage: benchmarks/accuracy.py --mnist build/examples/mnist/mnist [--seeds 8] [--dataset fashion-mnist]
"""
import argparse
import os
import re
import statistics
import subprocess
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_torch import load_mnist


class KerasAdam(torch.optim.Optimizer):
    """Keras's Adam: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); p -= lr_t * m / (sqrt(v) + eps)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                t = st["t"]
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                lr_t = group["lr"] * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
                p.addcdiv_(st["m"], st["v"].sqrt().add_(group["eps"]), value=-lr_t)


def torch_run(data, seed, init, epochs=2, batch=32):
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(5408, 10))
    if init == "keras":
        for m in model:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
    opt = KerasAdam(model.parameters())
    n = int(len(x_train) * 0.8)  # validation_split 0.2: the last fifth is held out
    x = torch.from_numpy(x_train[:n].copy()).unsqueeze(1).float().div_(255.0)
    y = torch.from_numpy(y_train[:n].astype(np.int64))
    for _ in range(epochs):
        perm = torch.randperm(n)
        model.train()
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        xt = torch.from_numpy(x_test.copy()).unsqueeze(1).float().div_(255.0)
        pred = torch.cat([model(xt[i:i + 1000]).argmax(1) for i in range(0, len(xt), 1000)])
    return (pred.numpy() == y_test).mean()


def tapegrad_run(program, dataset, seed, data_dir):
    env = dict(os.environ)
    if dataset == "mnist":
        env["TG_MNIST_DIR"] = data_dir
    with tempfile.TemporaryDirectory() as out_dir:  # the run's history, plot and model are not kept
        out = subprocess.run([program, "--dataset", dataset, "--seed", str(seed), "--threads", "1", "--verbose", "0",
                              "--out", out_dir], env=env, capture_output=True, text=True, check=True).stdout
    return float(re.findall(r"Test accuracy: ([0-9.]+)", out)[-1])


def summary(name, values):
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    runs = " ".join(f"{v:.4f}" for v in values)
    print(f"{name:<24} mean {mean:.4f}  sd {sd:.4f}  min {min(values):.4f}  max {max(values):.4f}  runs: {runs}",
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist", help="tapegrad's examples/mnist program (omit to run PyTorch only)")
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    ap.add_argument("--data", default=os.environ.get("TG_MNIST_DIR", "../shared/data/mnist"))
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--init", default="keras", choices=["keras", "torch"])
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data_dir = args.data if args.dataset == "mnist" else "/usr/share/datasets/fashion-mnist"
    seeds = range(args.seeds)
    if args.mnist:
        summary(f"tapegrad ({args.dataset})", [tapegrad_run(args.mnist, args.dataset, s, args.data) for s in seeds])
    if not args.skip_torch:
        data = load_mnist(data_dir)
        summary(f"pytorch {args.init} init", [torch_run(data, s, args.init) for s in seeds])


if __name__ == "__main__":
    main()
