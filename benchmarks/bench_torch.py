#!/usr/bin/python3
"""The benchmark workloads in PyTorch (Debian's python3-torch), the reference for tapegrad's
numbers. Prints one JSON object per line: workload, impl, threads, seconds (per unit), unit."""
import argparse
import gzip
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "mnist"))
from vision_transformer import VisionTransformer  # noqa: E402 (the example's model, in PyTorch)


def emit(workload, seconds, unit, threads, **extra):
    rec = {"workload": workload, "impl": "pytorch", "threads": threads, "seconds": seconds, "unit": unit}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def best_of(fn, repeats, inner):
    """Smallest mean time per call over `repeats` runs of `inner` calls (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(data_dir):
    x_train = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    y_train = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
    x_test = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    y_test = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"))
    return x_train, y_train, x_test, y_test


def tutorial_model():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(5408, 10))


def deep_model():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10))


class LstmModel(nn.Module):
    """LSTM(128) over an image's 28 rows (28 steps of 28 pixels), Linear(10) on the last output."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def train_epoch(model, x_u8, y, batch_size, steps, sequence=False):
    """One epoch as Keras runs it: 48,000 training images (validation_split 0.2), shuffled.
    sequence: images as [B, 28, 28] (rows as time steps) instead of [B, 1, 28, 28]."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    n = 48000
    perm = torch.randperm(n)
    x_all = torch.from_numpy(np.ascontiguousarray(x_u8[:n]).copy())
    y_all = torch.from_numpy(y[:n].astype(np.int64))
    model.train()
    t0 = time.perf_counter()
    count = 0
    for start in range(0, n, batch_size):
        if steps and count >= steps:
            break
        idx = perm[start:start + batch_size]
        xb = x_all[idx] if sequence else x_all[idx].unsqueeze(1)
        xb = xb.float().div_(255.0)
        yb = y_all[idx]
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        count += 1
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=os.environ.get("TG_MNIST_DIR", ""))
    ap.add_argument("--only", default="", help="comma-separated workload prefixes")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    th = args.threads
    want = [w for w in args.only.split(",") if w]
    sel = lambda name: not want or any(name.startswith(w) for w in want)
    reps = 3 if args.quick else 5

    if sel("engine_overhead"):
        x = torch.ones(16, requires_grad=True)
        chain = 100

        def run():
            y = x
            for _ in range(chain):
                y = y * 1.0001 + 0.0001
            y.sum().backward()
        # Two ops (mul, add) per link, forward + backward.
        emit("engine_overhead_per_op", best_of(run, reps, 20) / (2 * chain), "op", th)

    for n in (256, 1024):
        if sel(f"matmul_{n}"):
            a = torch.randn(n, n)
            b = torch.randn(n, n)
            t = best_of(lambda: torch.mm(a, b), reps, 10 if n == 256 else 2)
            emit(f"matmul_{n}", t, "call", th, gflops=2 * n ** 3 / t / 1e9)

    convs = {"conv2d_mnist": (32, 1, 32, 28), "conv2d_wide": (32, 32, 64, 13)}
    for name, (n, cin, cout, hw) in convs.items():
        if not sel(name):
            continue
        x = torch.randn(n, cin, hw, hw, requires_grad=(cin > 1))
        w = torch.randn(cout, cin, 3, 3, requires_grad=True)
        b = torch.randn(cout, requires_grad=True)
        emit(name + "_forward", best_of(lambda: F.conv2d(x, w, b), reps, 20), "call", th)
        y = F.conv2d(x, w, b)
        g = torch.randn_like(y)
        y = F.conv2d(x, w, b)

        def fwd_bwd():
            out = F.conv2d(x, w, b)
            out.backward(g)
        emit(name + "_forward_backward", best_of(fwd_bwd, reps, 20), "call", th)

    if sel("max_pool2d"):
        x = torch.randn(32, 32, 26, 26, requires_grad=True)
        g = torch.randn(32, 32, 13, 13)
        emit("max_pool2d_forward", best_of(lambda: F.max_pool2d(x, 2), reps, 50), "call", th)
        emit("max_pool2d_forward_backward", best_of(lambda: F.max_pool2d(x, 2).backward(g), reps, 50), "call", th)

    if sel("cross_entropy"):
        logits = torch.randn(32, 10, requires_grad=True)
        labels = torch.randint(0, 10, (32,))
        emit("log_softmax_cross_entropy_forward_backward",
             best_of(lambda: F.cross_entropy(logits, labels).backward(), reps, 200), "call", th)

    if sel("elementwise_chain"):
        x = torch.randn(32, 5408, requires_grad=True)

        def chain():
            y = torch.tanh(x * 0.5 + 0.1)
            y = torch.relu(y) * torch.sigmoid(x)
            y.sum().backward()
        emit("elementwise_chain_forward_backward", best_of(chain, reps, 20), "call", th)

    if sel("multihead_attention"):
        mha = nn.MultiheadAttention(64, 4, batch_first=True)
        x = torch.randn(32, 16, 64, requires_grad=True)
        g = torch.randn(32, 16, 64)
        emit("multihead_attention_forward_backward",
             best_of(lambda: mha(x, x, x, need_weights=False)[0].backward(g), reps, 50), "call", th)

    if args.data and any(sel(w) for w in ("train_tutorial", "train_deep", "train_lstm", "train_transformer",
                                          "inference")):
        x_train, y_train, x_test, y_test = load_mnist(args.data)
        steps = 200 if args.quick else 0
        if sel("train_tutorial_b32"):
            t = train_epoch(tutorial_model(), x_train, y_train, 32, steps)
            emit("train_tutorial_b32_epoch", t * (1500 / steps if steps else 1), "epoch", th)
        if sel("train_tutorial_b128"):
            t = train_epoch(tutorial_model(), x_train, y_train, 128, steps)
            emit("train_tutorial_b128_epoch", t * (375 / steps if steps and steps < 375 else 1), "epoch", th)
        if sel("inference"):
            model = tutorial_model().eval()
            xt = torch.from_numpy(np.array(x_test)).unsqueeze(1).float().div_(255.0)  # a writable copy

            def infer():
                with torch.no_grad():
                    for s in range(0, 10000, 1000):
                        model(xt[s:s + 1000]).argmax(1)
            emit("inference_test_set", best_of(infer, 3, 1), "10000 images", th)
        if sel("train_deep_b32"):
            t = train_epoch(deep_model(), x_train, y_train, 32, steps)
            emit("train_deep_b32_epoch", t * (1500 / steps if steps else 1), "epoch", th)
        if sel("train_transformer_b32"):
            t = train_epoch(VisionTransformer(), x_train, y_train, 32, steps)
            emit("train_transformer_b32_epoch", t * (1500 / steps if steps else 1), "epoch", th)
        if sel("train_lstm_b32"):
            # CPU time too: on a loaded machine it compares more steadily than wall time.
            c0 = time.process_time()
            t = train_epoch(LstmModel(), x_train, y_train, 32, steps, sequence=True)
            scale = 1500 / steps if steps else 1
            emit("train_lstm_b32_epoch", t * scale, "epoch", th, cpu_seconds=(time.process_time() - c0) * scale)

    emit("peak_rss", 0.0, "MiB", th, peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
