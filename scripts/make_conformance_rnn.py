#!/usr/bin/python3
"""Writes tests/conformance/rnn.json: what torch.nn.RNN/LSTM/GRU (batch_first, optionally
bidirectional) compute for fixed weights and inputs, for tests/test_conformance_rnn.cpp.

Run with Debian's python3-torch (not a pyenv python):
    /usr/bin/python3 scripts/make_conformance_rnn.py

Each case stores the layer's configuration, its parameters under PyTorch's names, the input and
initial states, the outputs (sequence, last h, last c), fixed random weights w_out, w_h, w_c of
the outputs' shapes, and the gradients of sum(out*w_out) + sum(h_n*w_h) + sum(c_n*w_c) with
respect to the input, the initial states and every parameter, all in float64. Values come from
NumPy RandomState seeded by the case's name, so the file only changes when this script does.
Bidirectional cases carry "bidirectional": true; the others have no such field (it defaults to
false), so that they stay as they were written before bidirectional layers existed.
"""
import json
import os
import zlib

import numpy as np
import torch

from make_conformance import dump_reviewable  # one case a line

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "conformance", "rnn.json")

torch.set_num_threads(1)  # deterministic summation order


def rng_for(name):
    return np.random.RandomState(zlib.crc32(name.encode()))


def arr(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "values": [float(v) for v in a.reshape(-1)]}


# name, module, input_size, hidden_size, num_layers, nonlinearity, bias, initial state, N, T
# (and bidirectional, false unless given)
CASES = [
    ("rnn/tanh_two_layers_state", "RNN", 3, 4, 2, "tanh", True, True, 2, 3),
    ("rnn/relu_no_state", "RNN", 3, 4, 1, "relu", True, False, 2, 4),
    ("rnn/tanh_no_bias", "RNN", 2, 3, 1, "tanh", False, True, 3, 3),
    ("lstm/two_layers_state", "LSTM", 3, 4, 2, "tanh", True, True, 2, 3),
    ("lstm/no_state", "LSTM", 3, 5, 1, "tanh", True, False, 2, 4),
    ("lstm/no_bias_state", "LSTM", 2, 3, 1, "tanh", False, True, 1, 3),
    ("gru/two_layers_state", "GRU", 3, 4, 2, "tanh", True, True, 2, 3),
    ("gru/no_state", "GRU", 3, 5, 1, "tanh", True, False, 2, 4),
    # Bidirectional cases (before gru/no_bias_state, the last line, so that adding them changed no line).
    ("rnn/bidirectional_tanh_two_layers_state", "RNN", 3, 4, 2, "tanh", True, True, 2, 3, True),
    ("rnn/bidirectional_relu_no_bias", "RNN", 2, 3, 1, "relu", False, False, 2, 4, True),
    ("lstm/bidirectional_two_layers_state", "LSTM", 3, 4, 2, "tanh", True, True, 2, 3, True),
    ("lstm/bidirectional_no_state", "LSTM", 3, 5, 1, "tanh", True, False, 2, 4, True),
    ("gru/bidirectional_no_state", "GRU", 3, 4, 1, "tanh", True, False, 2, 4, True),
    ("gru/bidirectional_two_layers_state", "GRU", 2, 3, 2, "tanh", True, True, 1, 3, True),
    ("gru/no_bias_state", "GRU", 2, 3, 1, "tanh", False, True, 1, 3),
]


def make_case(name, kind, input_size, hidden, layers, nonlinearity, bias, with_state, n, t, bidirectional=False):
    r = rng_for(name)
    torch.manual_seed(0)
    common = dict(bias=bias, batch_first=True, bidirectional=bidirectional)
    if kind == "RNN":
        m = torch.nn.RNN(input_size, hidden, layers, nonlinearity=nonlinearity, **common)
    else:
        m = getattr(torch.nn, kind)(input_size, hidden, layers, **common)
    states = layers * (2 if bidirectional else 1)  # entries of h0/c0: layer 0 forward, layer 0 reverse, ...
    m = m.double()
    # Weights wider than PyTorch's default range, so that every gate works away from zero.
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.from_numpy(r.uniform(-0.8, 0.8, size=tuple(p.shape))))
    x = torch.from_numpy(r.standard_normal((n, t, input_size))).requires_grad_()
    h0 = c0 = None
    if with_state:
        h0 = torch.from_numpy(r.standard_normal((states, n, hidden)) * 0.5).requires_grad_()
        if kind == "LSTM":
            c0 = torch.from_numpy(r.standard_normal((states, n, hidden)) * 0.5).requires_grad_()
    state = None if h0 is None else ((h0, c0) if kind == "LSTM" else h0)
    out, hn = m(x, state)
    cn = None
    if kind == "LSTM":
        hn, cn = hn
    w_out = torch.from_numpy(r.standard_normal(tuple(out.shape)))
    w_h = torch.from_numpy(r.standard_normal(tuple(hn.shape)))
    loss = (out * w_out).sum() + (hn * w_h).sum()
    w_c = None
    if cn is not None:
        w_c = torch.from_numpy(r.standard_normal(tuple(cn.shape)))
        loss = loss + (cn * w_c).sum()
    loss.backward()
    opt = lambda v: None if v is None else arr(v.detach().numpy())
    flags = {"bidirectional": True} if bidirectional else {}
    return {
        "name": name, "module": kind, "input_size": input_size, "hidden_size": hidden, "num_layers": layers,
        "nonlinearity": nonlinearity, "bias": bias, **flags,
        "parameters": [{"name": k, **arr(p.detach().numpy())} for k, p in m.named_parameters()],
        "input": arr(x.detach().numpy()), "h0": opt(h0), "c0": opt(c0),
        "output": arr(out.detach().numpy()), "h_n": arr(hn.detach().numpy()), "c_n": opt(cn),
        "w_out": arr(w_out.numpy()), "w_h": arr(w_h.numpy()), "w_c": opt(w_c),
        "grads": {
            "input": arr(x.grad.numpy()),
            "h0": None if h0 is None else arr(h0.grad.numpy()),
            "c0": None if c0 is None else arr(c0.grad.numpy()),
            "parameters": {k: arr(p.grad.numpy()) for k, p in m.named_parameters()},
        },
    }


def main():
    doc = {"generator": "scripts/make_conformance_rnn.py", "torch": torch.__version__, "numpy": np.__version__,
           "cases": [make_case(*c) for c in CASES]}
    with open(OUT, "w") as f:
        dump_reviewable(doc, f)
    print(f"wrote {len(doc['cases'])} cases to {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
