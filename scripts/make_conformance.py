#!/usr/bin/python3
"""Writes tests/conformance/*.json: what PyTorch computes for fixed inputs, for tapegrad's tests.

Run with Debian's python3-torch (scripts/install-deps.sh --bench):
    /usr/bin/python3 scripts/make_conformance.py

Each op case stores its inputs, the forward output, a fixed random weight w of the output's
shape, and the gradients of sum(output * w) with respect to each differentiable input, in
float64 and float32 (float32 cases run in float32 in PyTorch too). The first float64 case of
each op also stores a second-order check ("second_order": fixed v_i and the gradients of
sum_i <d sum(output * w)/d input_i, v_i>), since backward must itself be differentiable.
Inputs come from NumPy RandomState seeded by the case's name, so the files only change when
this script does. Optimizer cases store a parameter, a fixed gradient sequence and the
parameter after each step; scheduler cases the learning rate of each epoch; gradient clipping
cases the gradients before and after (and the total norm).

Dropout is not here: its mask comes from the framework's own generator, so PyTorch's numbers
cannot be reproduced.
"""
import json
import math
import os
import warnings
import zlib

import numpy as np
import torch
import torch.nn.functional as F

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "conformance")
DTYPES = {"float64": (np.float64, torch.float64), "float32": (np.float32, torch.float32)}

torch.set_num_threads(1)  # deterministic summation order
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")


def rng_for(name):
    return np.random.RandomState(zlib.crc32(name.encode()))


def float32_json(v):
    """The shortest decimal that reads back (through double, as the C++ test reads it) as v."""
    short = float(repr(v))
    return short if np.float32(short) == v else float("%.9g" % v)


def non_finite_json(v):
    """JSON has no NaN or infinity: they are written as the strings "nan", "inf" and "-inf"."""
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def values(a, dtype):
    """Flat values as JSON numbers that read back exactly in the case's dtype."""
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        return [int(v) for v in a.reshape(-1)]
    if dtype == "float32":
        return [float32_json(v) if math.isfinite(v) else non_finite_json(v)
                for v in a.astype(np.float32).reshape(-1)]
    return [float(v) if math.isfinite(v) else non_finite_json(v) for v in a.astype(np.float64).reshape(-1)]


def numpy_of(t):
    """t as a NumPy array. PyTorch's lazy zero tensors (some double-backward results) have no
    storage, and their .numpy() reads garbage."""
    t = t.detach()
    return np.zeros(tuple(t.shape)) if t._is_zerotensor() else t.numpy()


def arr(a, dtype):
    a = np.asarray(a)
    return {"shape": list(a.shape), "values": values(a, dtype)}


# ---------------------------------------------------------------- input generators

TIE_SENSITIVE = {"maximum", "minimum", "max", "min", "argmax", "max_pool2d", "sort", "sort_indices", "topk",
                 "topk_indices"}


def quantize(a):
    """Inputs with 4 decimals: exact in both dtypes' files at a third of the size."""
    a = np.asarray(a)
    return np.round(a, 4) if a.dtype.kind == "f" else a


def normal(*shape):
    return lambda r: r.standard_normal(shape)


def away_from_zero(*shape, low=0.3):
    """|x| >= low with random sign: away from kinks (abs, relu) and poles (div)."""
    return lambda r: r.choice([-1.0, 1.0], size=shape) * r.uniform(low, 1.5, size=shape)


def positive(*shape, low=0.3, high=2.0):
    return lambda r: r.uniform(low, high, size=shape)


def ints(high, *shape):
    return lambda r: r.randint(0, high, size=shape).astype(np.int64)


def const(a):
    return lambda r: np.asarray(a)


# ---------------------------------------------------------------- op cases


class OpCases:
    def __init__(self):
        self.cases = []
        self.second_order_done = set()  # ops whose first float64 case got a second-order check

    def add(self, op, variant, inputs, fn, params=None, ties=False):
        """inputs: list of (name, generator, differentiable); fn(*torch_tensors) → output tensor,
        or (output, {name: tensor}) for ops that also update state (batch_norm running stats)."""
        name = f"{op}/{variant}"
        r = rng_for(name)
        raw = [(n, quantize(gen(r)), d) for n, gen, d in inputs]
        if op in TIE_SENSITIVE and not ties:  # ties make the gradient a convention: tested apart
            floats = np.concatenate([np.ravel(a) for _, a, _ in raw if a.dtype.kind == "f"])
            assert len(np.unique(floats)) == len(floats), f"{name}: tied inputs"
        w_raw = None
        for dname, (np_t, torch_t) in DTYPES.items():
            tensors, stored = [], []
            for n, a, d in raw:
                a = np.asarray(a)
                if a.dtype.kind == "f":
                    a = a.astype(np_t)
                    t = torch.tensor(a, dtype=torch_t, requires_grad=d)
                else:
                    t = torch.tensor(a, dtype=torch.int64)
                tensors.append(t)
                stored.append({"name": n, "dtype": dname if a.dtype.kind == "f" else "int64",
                               "requires_grad": bool(d), **arr(a, dname)})
            res = fn(*tensors)
            extras = {}
            if isinstance(res, tuple):
                res, extras = res
            case = {"op": op, "name": name, "dtype": dname, "params": params or {},
                    "inputs": stored}
            out = numpy_of(res)
            case["output"] = arr(out, dname if out.dtype.kind == "f" else "int64")
            if out.dtype.kind != "f" and out.size == 0:  # no value to tell the reader it is int64
                case["output"]["dtype"] = "int64"
            if extras:
                case["extra_outputs"] = {k: arr(numpy_of(v), dname) for k, v in extras.items()}
            if res.requires_grad:
                if w_raw is None:
                    w_raw = quantize(rng_for(name + "/weight").standard_normal(out.shape))
                w = torch.tensor(w_raw.astype(np_t), dtype=torch_t)
                (res * w).sum().backward()
                case["weight"] = arr(w.numpy(), dname)
                # An input the output does not depend on (vector_norm with p = 0) gets no .grad:
                # its gradient is zeros.
                case["grads"] = [arr(numpy_of(t.grad if t.grad is not None else torch.zeros_like(t)), dname)
                                 if d else None for t, (_, _, d) in zip(tensors, raw)]
                if dname == "float64" and op not in self.second_order_done:
                    self.second_order_done.add(op)
                    case["second_order"] = second_order(name, fn, tensors, w)
            self.cases.append(case)


def second_order(name, fn, tensors, w):
    """Double backward: with h = d sum(out*w)/d inputs (create_graph), the gradients of
    sum_i sum(h_i * v_i) for fixed random v_i; inputs h does not depend on get zeros."""
    inputs = [t.detach().clone().requires_grad_(t.requires_grad) for t in tensors]
    diff = [t for t in inputs if t.requires_grad]
    res = fn(*inputs)
    res = res[0] if isinstance(res, tuple) else res
    hs = torch.autograd.grad((res * w).sum(), diff, create_graph=True, allow_unused=True)
    r = rng_for(name + "/second_order")
    vs = [torch.tensor(quantize(r.standard_normal(t.shape)), dtype=t.dtype) for t in diff]
    terms = [(h * v).sum() for h, v in zip(hs, vs) if h is not None and h.requires_grad]
    grads = [None] * len(diff)
    if terms:
        grads = torch.autograd.grad(sum(terms), diff, allow_unused=True)
    return {"v": [arr(v.numpy(), "float64") for v in vs],
            "grads": [arr(numpy_of(g if g is not None else torch.zeros_like(t)), "float64")
                      for g, t in zip(grads, diff)]}


def core_cases():
    c = OpCases()
    X, Y = True, False  # differentiable or not

    # Elementwise, with broadcasting over size-1 and missing dims.
    binary = {
        "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
        "maximum": torch.maximum, "minimum": torch.minimum,
    }
    for op, f in binary.items():
        b_gen = away_from_zero if op == "div" else normal
        c.add(op, "same_shape", [("a", normal(3, 4), X), ("b", b_gen(3, 4), X)], f)
        c.add(op, "broadcast_row", [("a", normal(3, 4), X), ("b", b_gen(4), X)], f)
        c.add(op, "broadcast_both", [("a", normal(2, 1, 3), X), ("b", b_gen(4, 1), X)], f)
        c.add(op, "scalar_tensor", [("a", normal(2, 3), X), ("b", b_gen(), X)], f)
    c.add("pow", "tensor_exponent", [("a", positive(3, 4), X), ("b", normal(3, 4), X)], torch.pow)
    c.add("pow", "broadcast", [("a", positive(2, 3), X), ("b", normal(3), X)], torch.pow)
    # A zero or negative base: PyTorch's gradients are 0 where b == 0 (d/da) and where a == 0 with
    # b >= 0 (d/db), not 0 * inf; what is really infinite or undefined stays so.
    c.add("pow", "zero_base", [("a", const([0.0, 0.0, 0.0, 0.0, 0.0, 1.5, -2.0]), X),
                               ("b", const([2.0, 0.0, 0.5, 3.0, -1.0, 0.0, 2.0]), X)], torch.pow)
    for e in [2.0, 3.0, 0.5, -1.5]:
        gen = normal(3, 4) if e in (2.0, 3.0) else positive(3, 4)
        c.add("pow_scalar", f"exponent_{e:g}", [("x", gen, X)], lambda x, e=e: torch.pow(x, e),
              {"exponent": e})
    unary = {
        "neg": (torch.neg, normal(3, 4)),
        "exp": (torch.exp, normal(3, 4)),
        "log": (torch.log, positive(3, 4)),
        "sqrt": (torch.sqrt, positive(3, 4)),
        "abs": (torch.abs, away_from_zero(3, 4)),
        "relu": (torch.relu, away_from_zero(3, 4)),
        "sigmoid": (torch.sigmoid, normal(3, 4)),
        "tanh": (torch.tanh, normal(3, 4)),
    }
    for op, (f, gen) in unary.items():
        c.add(op, "3x4", [("x", gen, X)], f)
    c.add("exp", "0d", [("x", normal(), X)], torch.exp)
    for slope in [0.01, 0.2]:
        c.add("leaky_relu", f"slope_{slope:g}", [("x", away_from_zero(3, 4), X)],
              lambda x, s=slope: F.leaky_relu(x, s), {"negative_slope": slope})
    # Values kept away from the bounds, where the gradient is undefined.
    clamp_x = const([[-2.0, -0.6, -0.4, 0.0], [0.3, 0.6, 0.8, 2.0], [-1.0, 0.1, -0.2, 1.5]])
    c.add("clamp", "inside_and_outside", [("x", clamp_x, X)],
          lambda x: torch.clamp(x, -0.5, 0.7), {"low": -0.5, "high": 0.7})
    c.add("where", "broadcast", [("cond", ints(2, 3, 4), Y), ("a", normal(3, 4), X),
                                 ("b", normal(4), X)],
          lambda cond, a, b: torch.where(cond != 0, a, b))
    scalar_forms = {  # x op s, or s op x for the r- forms
        "add_scalar": (lambda x, s: x + s, 1.5), "sub_scalar": (lambda x, s: x - s, 1.5),
        "mul_scalar": (lambda x, s: x * s, -2.5), "div_scalar": (lambda x, s: x / s, -2.5),
        "rsub_scalar": (lambda x, s: s - x, 1.5), "rdiv_scalar": (lambda x, s: s / x, 2.0),
    }
    for op, (f, scalar) in scalar_forms.items():
        gen = away_from_zero(3, 4) if op == "rdiv_scalar" else normal(3, 4)
        c.add(op, "3x4", [("x", gen, X)], lambda x, f=f, s=scalar: f(x, s), {"scalar": scalar})

    # Reductions (normal inputs have no ties).
    x234 = normal(2, 3, 4)
    for op, f in {"sum": torch.sum, "mean": torch.mean}.items():
        c.add(op, "all", [("x", x234, X)], f, {"axes": None, "keepdims": False})
        for axes, keep in [([1], False), ([0, 2], True), ([-1], False), ([0, 1, 2], False)]:
            c.add(op, f"axes_{'_'.join(map(str, axes))}{'_keepdims' if keep else ''}",
                  [("x", x234, X)], lambda x, a=axes, k=keep: f(x, dim=a, keepdim=k),
                  {"axes": axes, "keepdims": keep})
    for op, (f_all, f_axes) in {"max": (torch.max, torch.amax), "min": (torch.min, torch.amin)}.items():
        c.add(op, "all", [("x", x234, X)], f_all, {"axes": None, "keepdims": False})
        for axes, keep in [([1], False), ([0, 2], True), ([-1], True)]:
            c.add(op, f"axes_{'_'.join(map(str, axes))}{'_keepdims' if keep else ''}",
                  [("x", x234, X)], lambda x, a=axes, k=keep, f=f_axes: f(x, dim=a, keepdim=k),
                  {"axes": axes, "keepdims": keep})
    # Empty tensors: the mean of nothing is NaN; a sum is 0; max and min over a non-empty axis of
    # an empty tensor give an empty result.
    empty = const(np.zeros((0, 3)))
    c.add("mean", "empty_all", [("x", empty, X)], torch.mean, {"axes": None, "keepdims": False})
    c.add("mean", "empty_axis_0", [("x", empty, X)], lambda x: torch.mean(x, dim=[0]),
          {"axes": [0], "keepdims": False})
    c.add("sum", "empty_axis_0", [("x", empty, X)], lambda x: torch.sum(x, dim=[0]),
          {"axes": [0], "keepdims": False})
    for op, f in {"max": torch.amax, "min": torch.amin}.items():
        c.add(op, "empty_axis_1", [("x", empty, X)], lambda x, f=f: f(x, dim=[1]),
              {"axes": [1], "keepdims": False})
    c.add("argmax", "all", [("x", x234, Y)], torch.argmax, {"axis": None, "keepdims": False})
    for axis, keep in [(1, False), (-1, True), (0, False)]:
        c.add("argmax", f"axis_{axis}{'_keepdims' if keep else ''}", [("x", x234, Y)],
              lambda x, a=axis, k=keep: torch.argmax(x, dim=a, keepdim=k),
              {"axis": axis, "keepdims": keep})

    # PyTorch's conventions at kinks and ties (a subgradient is a choice; these are PyTorch's).
    kinks = const([[-1.0, 0.0, 2.0], [0.0, -0.5, 0.7]])
    c.add("relu", "at_zero", [("x", kinks, X)], torch.relu)
    c.add("abs", "at_zero", [("x", kinks, X)], torch.abs)
    c.add("leaky_relu", "at_zero", [("x", kinks, X)], lambda x: F.leaky_relu(x, 0.1),
          {"negative_slope": 0.1})
    c.add("clamp", "at_bounds", [("x", kinks, X)], lambda x: torch.clamp(x, -0.5, 0.7),
          {"low": -0.5, "high": 0.7})
    tied = const([[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, -1.0, -1.0], [2.0, 2.0, 2.0, 2.0]])
    for op, f in {"maximum": torch.maximum, "minimum": torch.minimum}.items():
        c.add(op, "ties", [("a", tied, X), ("b", const([1.0, 0.5, 2.0, -1.0]), X)], f, ties=True)
    for op, f_all, f_axes in [("max", torch.max, torch.amax), ("min", torch.min, torch.amin)]:
        c.add(op, "ties_all", [("x", const([[1.0, 3.0, 3.0], [-2.0, 3.0, -2.0]]), X)], f_all,
              {"axes": None, "keepdims": False}, ties=True)
        c.add(op, "ties_axis_1", [("x", tied, X)], lambda x, f=f_axes: f(x, dim=[1]),
              {"axes": [1], "keepdims": False}, ties=True)
    c.add("argmax", "ties_axis_1", [("x", tied, Y)], lambda x: torch.argmax(x, dim=1),
          {"axis": 1, "keepdims": False}, ties=True)

    # NaN propagates (it is the maximum of anything), and so do infinities, as in PyTorch. Over
    # an axis (amax) a NaN maximum makes its slice's gradient NaN; over everything (torch.max) the
    # NaNs share it.
    nan, inf = float("nan"), float("inf")
    nan_inf = const([[1.0, nan, -2.0, 0.5], [nan, 0.0, inf, -inf]])
    for op, f in {"relu": torch.relu, "abs": torch.abs, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                  "exp": torch.exp, "neg": torch.neg, "sqrt": torch.sqrt, "log": torch.log}.items():
        c.add(op, "nan_inf", [("x", nan_inf, X)], f)
    c.add("leaky_relu", "nan_inf", [("x", nan_inf, X)], lambda x: F.leaky_relu(x, 0.1),
          {"negative_slope": 0.1})
    c.add("clamp", "nan_inf", [("x", nan_inf, X)], lambda x: torch.clamp(x, -0.5, 0.7),
          {"low": -0.5, "high": 0.7})
    nan_a = const([[1.0, nan, -2.0, 0.5], [nan, 0.0, 3.0, -1.0]])
    for op, f in {"maximum": torch.maximum, "minimum": torch.minimum}.items():
        c.add(op, "nan", [("a", nan_a, X), ("b", const([0.0, 0.0, nan, nan]), X)], f, ties=True)
    nan_x = const([[1.0, nan, nan], [-2.0, 3.0, 0.0]])
    for op, f_all, f_axes in [("max", torch.max, torch.amax), ("min", torch.min, torch.amin)]:
        c.add(op, "nan_all", [("x", nan_x, X)], f_all, {"axes": None, "keepdims": False}, ties=True)
        c.add(op, "nan_axis_1", [("x", nan_x, X)], lambda x, f=f_axes: f(x, dim=[1]),
              {"axes": [1], "keepdims": False}, ties=True)
        c.add(op, "inf_axis_0", [("x", const([[1.0, -inf], [inf, 2.0]]), X)],
              lambda x, f=f_axes: f(x, dim=[0]), {"axes": [0], "keepdims": False}, ties=True)
    c.add("argmax", "nan_all", [("x", nan_x, Y)], torch.argmax, {"axis": None, "keepdims": False},
          ties=True)
    c.add("argmax", "nan_axis_1", [("x", nan_x, Y)], lambda x: torch.argmax(x, dim=1),
          {"axis": 1, "keepdims": False}, ties=True)
    c.add("argmax", "nan_axis_0", [("x", const([[1.0, 2.0], [nan, 5.0], [nan, nan]]), Y)],
          lambda x: torch.argmax(x, dim=0), {"axis": 0, "keepdims": False}, ties=True)

    # Shape ops.
    c.add("reshape", "infer", [("x", x234, X)], lambda x: x.reshape(4, -1), {"shape": [4, -1]})
    c.add("flatten", "1_to_end", [("x", x234, X)], lambda x: torch.flatten(x, 1, -1),
          {"start_axis": 1, "end_axis": -1})
    c.add("permute", "2_0_1", [("x", x234, X)], lambda x: x.permute(2, 0, 1), {"perm": [2, 0, 1]})
    c.add("transpose", "0_2", [("x", x234, X)], lambda x: x.transpose(0, 2), {"axis0": 0, "axis1": 2})
    c.add("transpose", "last_two", [("x", x234, X)], lambda x: x.transpose(-2, -1),
          {"axis0": -2, "axis1": -1})
    x_sq = normal(2, 1, 3, 1)
    c.add("squeeze", "all", [("x", x_sq, X)], torch.squeeze, {"axis": None})
    c.add("squeeze", "axis_1", [("x", x_sq, X)], lambda x: x.squeeze(1), {"axis": 1})
    c.add("squeeze", "axis_-1", [("x", x_sq, X)], lambda x: x.squeeze(-1), {"axis": -1})
    c.add("unsqueeze", "axis_0", [("x", normal(2, 3), X)], lambda x: x.unsqueeze(0), {"axis": 0})
    c.add("unsqueeze", "axis_-1", [("x", normal(2, 3), X)], lambda x: x.unsqueeze(-1), {"axis": -1})
    c.add("broadcast_to", "size1_and_new_dims", [("x", normal(3, 1), X)],
          lambda x: torch.broadcast_to(x, (2, 3, 4)), {"shape": [2, 3, 4]})
    for axis in [0, 1, -1]:
        shapes = {0: [(1, 3, 2), (2, 3, 2), (3, 3, 2)], 1: [(2, 1, 2), (2, 2, 2), (2, 3, 2)],
                  -1: [(2, 3, 1), (2, 3, 3), (2, 3, 2)]}[axis]
        c.add("concat", f"axis_{axis}", [(f"x{i}", normal(*s), X) for i, s in enumerate(shapes)],
              lambda *xs, a=axis: torch.cat(xs, dim=a), {"axis": axis})
        c.add("stack", f"axis_{axis}", [(f"x{i}", normal(2, 3), X) for i in range(3)],
              lambda *xs, a=axis: torch.stack(xs, dim=a), {"axis": axis})
    x56 = normal(5, 6)
    for axis, start, stop, step in [(0, 1, 4, 1), (1, 0, 6, 2), (1, -4, -1, 1), (0, -5, 5, 3)]:
        sl = slice(start, stop, step)
        c.add("slice", f"axis{axis}_{start}_{stop}_{step}", [("x", x56, X)],
              lambda x, a=axis, s=sl: x[s] if a == 0 else x[:, s],
              {"axis": axis, "start": start, "stop": stop, "step": step})
    c.add("index_select", "axis_0_repeated", [("x", x56, X), ("index", const([4, 0, 4, 2]), Y)],
          lambda x, i: torch.index_select(x, 0, i), {"axis": 0})
    c.add("index_select", "axis_1", [("x", x56, X), ("index", const([5, 1, 3]), Y)],
          lambda x, i: torch.index_select(x, 1, i), {"axis": 1})
    c.add("gather", "axis_1", [("x", x56, X), ("index", ints(6, 5, 3), Y)],
          lambda x, i: torch.gather(x, 1, i), {"axis": 1})
    c.add("gather", "axis_0_repeated", [("x", x56, X), ("index", ints(5, 7, 6), Y)],
          lambda x, i: torch.gather(x, 0, i), {"axis": 0})

    # matmul and linear.
    mm = [("2d", (3, 4), (4, 5)), ("batched", (2, 3, 4), (2, 4, 5)),
          ("broadcast_batch", (2, 1, 3, 4), (3, 4, 5)), ("matrix_times_batch", (3, 4), (2, 4, 5)),
          ("vector_matrix", (4,), (4, 5)), ("matrix_vector", (3, 4), (4,)),
          ("single_row", (1, 4), (4, 1))]
    for name, sa, sb in mm:
        c.add("matmul", name, [("a", normal(*sa), X), ("b", normal(*sb), X)], torch.matmul)
    c.add("linear", "bias", [("x", normal(5, 4), X), ("weight", normal(3, 4), X),
                             ("bias", normal(3), X)], F.linear)
    c.add("linear", "no_bias", [("x", normal(5, 4), X), ("weight", normal(3, 4), X)], F.linear)
    c.add("linear", "batch_1", [("x", normal(1, 6), X), ("weight", normal(2, 6), X),
                                ("bias", normal(2), X)], F.linear)
    return c.cases


def nn_op_cases():
    c = OpCases()
    X, Y = True, False

    # conv2d: x [N,C_in,H,W], weight [C_out,C_in/groups,kH,kW].
    conv = [
        ("basic", (2, 2, 5, 4), (3, 2, 3, 3), True, {}),
        ("stride_2", (2, 2, 7, 6), (3, 2, 3, 3), True, {"stride": [2, 2]}),
        ("padding_1", (2, 2, 5, 4), (3, 2, 3, 3), True, {"padding": [1, 1]}),
        ("dilation_2", (1, 2, 7, 6), (3, 2, 3, 3), True, {"dilation": [2, 2]}),
        ("groups_2", (2, 4, 5, 4), (4, 2, 3, 3), True, {"groups": 2}),
        ("non_square_kernel", (2, 2, 6, 5), (3, 2, 2, 3), True,
         {"stride": [2, 1], "padding": [1, 0]}),
        ("no_bias", (2, 2, 4, 4), (3, 2, 3, 3), False, {"padding": [1, 1]}),
        ("same", (1, 2, 5, 4), (3, 2, 3, 3), True, {"padding": "same"}),
        ("same_even_kernel", (1, 2, 4, 5), (2, 2, 2, 4), True, {"padding": "same"}),
        ("valid", (1, 2, 5, 4), (3, 2, 3, 2), True, {"padding": "valid"}),
        ("batch_1_odd", (1, 1, 7, 7), (2, 1, 3, 3), True, {"stride": [2, 3], "padding": [1, 2]}),
        ("all_options", (2, 4, 7, 6), (4, 2, 3, 2), True,
         {"stride": [2, 1], "padding": [2, 1], "dilation": [2, 1], "groups": 2}),
    ]
    for name, sx, sw, bias, p in conv:
        params = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1,
                  "bias": bias, **p}
        inputs = [("x", normal(*sx), X), ("weight", normal(*sw), X)]
        if bias:
            inputs.append(("bias", normal(sw[0]), X))

        def f(x, w, b=None, p=params):
            return F.conv2d(x, w, b, stride=p["stride"], padding=p["padding"],
                            dilation=p["dilation"], groups=p["groups"])
        c.add("conv2d", name, inputs, f, params)

    pools = [
        ("kernel_2", (2, 3, 6, 6), {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}),
        ("kernel_3_stride_2_pad_1", (2, 2, 7, 7),
         {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1]}),
        ("non_square", (1, 2, 6, 7), {"kernel_size": [2, 3], "stride": [1, 2], "padding": [0, 1]}),
        ("overlapping", (1, 1, 5, 5), {"kernel_size": [3, 3], "stride": [1, 1], "padding": [0, 0]}),
    ]
    for name, sx, p in pools:
        c.add("max_pool2d", name, [("x", normal(*sx), X)],
              lambda x, p=p: F.max_pool2d(x, p["kernel_size"], p["stride"], p["padding"]), p)
        for include in ([True, False] if p["padding"] != [0, 0] else [True]):
            q = {**p, "count_include_pad": include}
            variant = name + ("" if p["padding"] == [0, 0] else
                              ("_count_pad" if include else "_exclude_pad"))
            c.add("avg_pool2d", variant, [("x", normal(*sx), X)],
                  lambda x, q=q: F.avg_pool2d(x, q["kernel_size"], q["stride"], q["padding"],
                                              count_include_pad=q["count_include_pad"]), q)
    # Keras's GlobalAveragePooling2D shape: [N,C].
    # Ties within a window: PyTorch routes the gradient to the first maximum in scan order.
    c.add("max_pool2d", "ties", [("x", const(np.array([[1.0, 1.0, 0.0, 2.0], [1.0, 0.5, 2.0, 2.0],
                                                       [3.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0]]
                                                      ).reshape(1, 1, 4, 4)), X)],
          lambda x: F.max_pool2d(x, 2), {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]},
          ties=True)
    c.add("max_pool2d", "overlapping_ties", [("x", const(np.array([[0.0, 2.0, 0.0], [2.0, 2.0, 1.0],
                                                                   [0.0, 1.0, 2.0]]
                                                                  ).reshape(1, 1, 3, 3)), X)],
          lambda x: F.max_pool2d(x, 2, 1), {"kernel_size": [2, 2], "stride": [1, 1], "padding": [0, 0]},
          ties=True)
    # A NaN is a window's maximum and takes its gradient; infinities stay.
    nan, inf = float("nan"), float("inf")
    c.add("max_pool2d", "nan_inf", [("x", const(np.array([[1.0, nan, 0.0, 2.0], [nan, 0.5, -inf, -inf],
                                                          [inf, 3.0, nan, nan], [3.0, nan, -1.0, 0.0]]
                                                         ).reshape(1, 1, 4, 4)), X)],
          lambda x: F.max_pool2d(x, 2), {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]},
          ties=True)
    c.add("global_avg_pool2d", "2x3x5x4", [("x", normal(2, 3, 5, 4), X)],
          lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1))

    # batch_norm: training uses batch statistics and updates the running ones in place
    # (PyTorch: running_var takes the unbiased batch variance).
    for name, sx in [("2d_input", (6, 3)), ("4d_input", (2, 3, 4, 3))]:
        for training in [True, False]:
            C = sx[1]
            p = {"training": training, "momentum": 0.1, "eps": 1e-5, "affine": True}

            def f(x, w, b, rm, rv, p=p):
                rm, rv = rm.clone(), rv.clone()
                out = F.batch_norm(x, rm, rv, w, b, training=p["training"],
                                   momentum=p["momentum"], eps=p["eps"])
                return out, {"running_mean": rm, "running_var": rv}
            c.add("batch_norm", f"{name}_{'train' if training else 'eval'}",
                  [("x", lambda r, s=sx: r.standard_normal(s) * 2.0 + 0.5, X),
                   ("weight", positive(C, low=0.5, high=1.5), X), ("bias", normal(C), X),
                   ("running_mean", normal(C), Y), ("running_var", positive(C), Y)], f, p)

    def f_plain(x, rm, rv):
        rm, rv = rm.clone(), rv.clone()
        out = F.batch_norm(x, rm, rv, None, None, training=True, momentum=0.2, eps=1e-3)
        return out, {"running_mean": rm, "running_var": rv}
    c.add("batch_norm", "4d_input_train_no_affine",
          [("x", normal(3, 2, 3, 2), X), ("running_mean", normal(2), Y),
           ("running_var", positive(2), Y)], f_plain,
          {"training": True, "momentum": 0.2, "eps": 1e-3, "affine": False})

    big_logits = const([[1e4, -1e4, 0.0, 5e3], [-1e4, -1e4, -1e4 + 1.0, -1e4 + 2.0]])
    for op, f in {"softmax": F.softmax, "log_softmax": F.log_softmax}.items():
        c.add(op, "axis_-1", [("x", normal(4, 5), X)], lambda x, f=f: f(x, dim=-1), {"axis": -1})
        c.add(op, "axis_1_of_3d", [("x", normal(2, 4, 3), X)], lambda x, f=f: f(x, dim=1),
              {"axis": 1})
        c.add(op, "logits_1e4", [("x", big_logits, X)], lambda x, f=f: f(x, dim=-1), {"axis": -1})

    N, K = 5, 4
    logits = normal(N, K)
    target = const([0, 3, 1, 3, 2])
    for red in ["mean", "sum", "none"]:
        c.add("cross_entropy", f"indices_{red}", [("logits", logits, X), ("target", target, Y)],
              lambda x, t, red=red: F.cross_entropy(x, t, reduction=red),
              {"reduction": red, "label_smoothing": 0.0})
        c.add("cross_entropy", f"indices_smoothing_{red}",
              [("logits", logits, X), ("target", target, Y)],
              lambda x, t, red=red: F.cross_entropy(x, t, reduction=red, label_smoothing=0.1),
              {"reduction": red, "label_smoothing": 0.1})
        c.add("cross_entropy_probs", f"soft_{red}",
              [("logits", logits, X), ("target", lambda r: r.dirichlet(np.ones(K), N), Y)],
              lambda x, t, red=red: F.cross_entropy(x, t, reduction=red),
              {"reduction": red, "label_smoothing": 0.0})
        c.add("nll_loss", red, [("log_probs", lambda r: np.log(r.dirichlet(np.ones(K), N)), X),
                                ("target", target, Y)],
              lambda x, t, red=red: F.nll_loss(x, t, reduction=red), {"reduction": red})
        c.add("mse_loss", red, [("input", normal(3, 4), X), ("target", normal(3, 4), Y)],
              lambda x, t, red=red: F.mse_loss(x, t, reduction=red), {"reduction": red})
        c.add("binary_cross_entropy_with_logits", red,
              [("logits", lambda r: r.standard_normal((3, 4)) * 3, X),
               ("target", lambda r: r.uniform(0, 1, (3, 4)), Y)],
              lambda x, t, red=red: F.binary_cross_entropy_with_logits(x, t, reduction=red),
              {"reduction": red})
    onehot = np.eye(K)[[0, 3, 1, 3, 2]]
    c.add("cross_entropy_probs", "one_hot_mean", [("logits", logits, X), ("target", const(onehot), Y)],
          lambda x, t: F.cross_entropy(x, t), {"reduction": "mean", "label_smoothing": 0.0})
    c.add("cross_entropy_probs", "one_hot_smoothing_mean",
          [("logits", logits, X), ("target", const(onehot), Y)],
          lambda x, t: F.cross_entropy(x, t, label_smoothing=0.2),
          {"reduction": "mean", "label_smoothing": 0.2})
    c.add("cross_entropy", "logits_1e4", [("logits", big_logits, X), ("target", const([1, 0]), Y)],
          lambda x, t: F.cross_entropy(x, t), {"reduction": "mean", "label_smoothing": 0.0})
    # Large logits whose losses are small: float32 keeps them only if lse is never formed as
    # one number near 1e4 (its rounding, 1e-3, would swamp a loss of 0.4).
    c.add("cross_entropy", "logits_1e4_small_loss",
          [("logits", const([[-1e4, -1e4 + 1.0, -1e4 + 2.0], [1e4 - 3.0, 1e4, 1e4 - 1.0]]), X),
           ("target", const([2, 1]), Y)],
          lambda x, t: F.cross_entropy(x, t, reduction="none"),
          {"reduction": "none", "label_smoothing": 0.0})
    c.add("cross_entropy", "batch_1", [("logits", normal(1, 3), X), ("target", const([2]), Y)],
          lambda x, t: F.cross_entropy(x, t), {"reduction": "mean", "label_smoothing": 0.0})
    c.add("binary_cross_entropy_with_logits", "logits_1e2",
          [("logits", const([[100.0, -100.0, 30.0], [-30.0, 0.0, 1.0]]), X),
           ("target", const([[0.0, 1.0, 1.0], [0.0, 0.5, 1.0]]), Y)],
          lambda x, t: F.binary_cross_entropy_with_logits(x, t), {"reduction": "mean"})
    return c.cases


def activation_cases():
    """sin, cos, erf and the smooth activations: random inputs, 0-d and empty tensors, and NaN,
    infinities and signed zeros (in the first 32 elements, where PyTorch's vectorized kernels,
    not its scalar tails, compute them: the two differ for elu's gradient at NaN)."""
    c = OpCases()
    X = True

    def scaled(s, *shape):
        return lambda r: s * r.standard_normal(shape)

    def with_specials(*specials):
        """[4, 8]: the special values first, then normal ones."""
        def gen(r):
            a = r.standard_normal(32) * 3
            a[:len(specials)] = specials
            return a.reshape(4, 8)
        return gen
    non_finite = with_specials(math.nan, math.inf, -math.inf, 0.0, -0.0, 25.0, -30.0, 19.0, -8.0)
    ops = {  # op: [(variant suffix, fn, params)]
        "sin": [("", torch.sin, {})],
        "cos": [("", torch.cos, {})],
        "erf": [("", torch.erf, {})],
        "silu": [("", F.silu, {})],
        "softplus": [("", F.softplus, {"beta": 1.0, "threshold": 20.0}),
                     ("_beta_0.5", lambda x: F.softplus(x, beta=0.5), {"beta": 0.5, "threshold": 20.0}),
                     ("_beta_-1", lambda x: F.softplus(x, beta=-1.0), {"beta": -1.0, "threshold": 20.0})],
        "gelu": [("", F.gelu, {"approximate": "none"}),
                 ("_tanh", lambda x: F.gelu(x, approximate="tanh"), {"approximate": "tanh"})],
        "elu": [("", F.elu, {"alpha": 1.0}),
                ("_alpha_0.5", lambda x: F.elu(x, alpha=0.5), {"alpha": 0.5}),
                ("_alpha_-2", lambda x: F.elu(x, alpha=-2.0), {"alpha": -2.0})],
    }
    for op, variants in ops.items():
        for suffix, f, params in variants:
            c.add(op, "3x4" + suffix, [("x", scaled(3.0, 3, 4), X)], f, params)
        for suffix, f, params in variants:
            c.add(op, "0d" + suffix, [("x", normal(), X)], f, params)
            c.add(op, "empty" + suffix, [("x", const(np.zeros((0, 3))), X)], f, params)
            c.add(op, "non_finite" + suffix, [("x", non_finite, X)], f, params)
    # Around the threshold with beta != 1: linear only where beta * x > threshold, so 2.5 (beta *
    # x == 5, exact in both dtypes) still takes the log1p branch.
    c.add("softplus", "beta_2_threshold_5",
          [("x", const([[-3.0, 0.0, 2.4, 2.5], [2.6, 3.0, 10.0, -10.0]]), X)],
          lambda x: F.softplus(x, beta=2.0, threshold=5.0), {"beta": 2.0, "threshold": 5.0})
    return c.cases


def statistics_cases():
    """Masking (masked_fill, tril, triu), logsumexp, var, std, the vector norm, cumsum, sort and
    topk: random inputs, 0-d and empty tensors, NaN and ±inf. Masks are int64 0/1 (tapegrad has no
    bool dtype), turned into bool for PyTorch. Sorting uses distinct values except in the cases
    named "ties", which compare values (and stable sort's indices) but no gradients."""
    c = OpCases()
    X, Y = True, False
    nan, inf = math.nan, math.inf

    def num(v):
        return v if math.isfinite(v) else non_finite_json(v)

    def specials(shape, *values):
        """Normal values with `values` first (row-major)."""
        def gen(r):
            a = r.standard_normal(int(np.prod(shape)))
            a[:len(values)] = values
            return a.reshape(shape)
        return gen

    # masked_fill: a mask of x's shape, broadcast masks, a broadcast x, -inf as the value.
    for variant, x, m, value in [("3x4", normal(3, 4), ints(2, 3, 4), -1.5),
                                 ("mask_row", normal(3, 4), ints(2, 4), 0.0),
                                 ("mask_column", normal(3, 4), ints(2, 3, 1), 2.5),
                                 ("broadcast_x", normal(4), ints(2, 3, 1), 2.0),
                                 ("0d", normal(), const(np.int64(1)), 3.0),
                                 ("empty", const(np.zeros((0, 3))), ints(2, 3), 1.0),
                                 ("minus_inf", normal(3, 4), ints(2, 3, 4), -inf),
                                 ("non_finite", specials((2, 4), nan, inf, -inf, nan, 1.0, inf),
                                  const(np.array([[1, 0, 1, 0], [0, 1, 0, 1]])), 0.5)]:
        c.add("masked_fill", variant, [("x", x, X), ("mask", m, Y)],
              lambda x, m, v=value: x.masked_fill(m != 0, v), {"value": num(value)})
    for op, f in {"tril": torch.tril, "triu": torch.triu}.items():
        for variant, x, d in [("3x4", normal(3, 4), 0), ("3x4_diagonal_1", normal(3, 4), 1),
                              ("4x3_diagonal_-1", normal(4, 3), -1), ("batched", normal(2, 3, 3), 0),
                              ("diagonal_5", normal(3, 4), 5), ("empty", const(np.zeros((2, 0, 3))), 0),
                              ("non_finite", specials((3, 3), 1.0, nan, inf, -inf, 2.0, nan), 0)]:
            c.add(op, variant, [("x", x, X)], lambda x, f=f, d=d: f(x, d), {"diagonal": d})

    # logsumexp; torch takes dim 0 of a 0-d tensor for what tapegrad writes as no axes.
    x234 = normal(2, 3, 4)
    lse_inf = const([[-inf, -inf, -inf], [inf, 1.0, 2.0], [nan, 1.0, 0.0], [inf, -inf, 0.5],
                     [-inf, 0.5, 1.5], [1000.0, 1000.0, -1000.0]])
    for variant, x, axes, keep in [("axis_1", x234, [1], False), ("axes_0_2_keepdims", x234, [0, 2], True),
                                   ("axis_-1", x234, [-1], False), ("all", x234, [0, 1, 2], False),
                                   ("empty_axis_0", const(np.zeros((0, 3))), [0], False),
                                   ("non_finite", lse_inf, [1], False)]:
        c.add("logsumexp", variant, [("x", x, X)], lambda x, a=axes, k=keep: torch.logsumexp(x, a, k),
              {"axes": axes, "keepdims": keep})
    c.add("logsumexp", "0d", [("x", normal(), X)], lambda x: torch.logsumexp(x, 0), {"axes": [], "keepdims": False})

    # var and std: corrections, all elements, dof <= 0 (inf or NaN), empty slices, NaN and inf.
    var_inf = const([[1.0, nan, 2.0], [inf, 1.0, 0.0], [3.0, 3.0, 3.0]])
    for op, f in {"var": torch.var, "std": torch.std}.items():
        for variant, x, axes, corr, keep in [("axis_1", x234, [1], 1, False),
                                             ("axes_0_2_keepdims", x234, [0, 2], 1, True),
                                             ("axis_-1_correction_0", x234, [-1], 0, False),
                                             ("axis_2_correction_3", x234, [2], 3, False),
                                             ("all", x234, None, 1, False), ("all_correction_0", x234, None, 0, False),
                                             ("dof_0", normal(3, 2), [1], 2, False),
                                             ("dof_negative", normal(3, 2), [1], 5, False),
                                             ("empty_axis_0", const(np.zeros((0, 3))), [0], 1, False),
                                             ("constant_rows", const([[2.0, 2.0, 2.0], [1.0, -1.0, 0.5]]), [1], 1,
                                              False),
                                             ("non_finite", var_inf, [1], 1, False)]:
            c.add(op, variant, [("x", x, X)], lambda x, a=axes, k=keep, cr=corr, f=f: f(x, a, correction=cr, keepdim=k),
                  {"axes": axes, "correction": corr, "keepdims": keep})
        c.add(op, "0d", [("x", normal(), X)], lambda x, f=f: f(x, None, correction=0),
              {"axes": [], "correction": 0, "keepdims": False})

    # The vector norm for each p, over all elements and over axes; zero slices (p = 2's gradient
    # there is 0), empty tensors, NaN and inf.
    vn = torch.linalg.vector_norm
    for p in [2.0, 1.0, inf, -inf, 3.0, 1.5, 0.5, 0.0]:
        tag = f"p_{p:g}"
        c.add("norm", f"{tag}_axis_1", [("x", away_from_zero(3, 4), X)],
              lambda x, p=p: vn(x, p, [1]), {"p": num(p), "axes": [1], "keepdims": False})
        c.add("norm", f"{tag}_all", [("x", away_from_zero(2, 3, 2), X)], lambda x, p=p: vn(x, p),
              {"p": num(p), "axes": [], "keepdims": False})
        c.add("norm", f"{tag}_zero_rows", [("x", const([[0.0, 0.0, 0.0], [0.5, 0.0, -2.0]]), X)],
              lambda x, p=p: vn(x, p, [1], True), {"p": num(p), "axes": [1], "keepdims": True})
        c.add("norm", f"{tag}_non_finite", [("x", const([[1.0, nan, -2.0], [inf, 0.5, -1.0], [-inf, 1.0, 2.0]]), X)],
              lambda x, p=p: vn(x, p, [1]), {"p": num(p), "axes": [1], "keepdims": False})
    c.add("norm", "p_2_axes_0_2_keepdims", [("x", x234, X)], lambda x: vn(x, 2.0, [0, 2], True),
          {"p": 2.0, "axes": [0, 2], "keepdims": True})
    c.add("norm", "p_2_0d", [("x", normal(), X)], lambda x: vn(x, 2.0), {"p": 2.0, "axes": [], "keepdims": False})
    c.add("norm", "p_2_empty", [("x", const(np.zeros((0, 3))), X)], lambda x: vn(x, 2.0),
          {"p": 2.0, "axes": [], "keepdims": False})
    c.add("norm", "p_inf_ties", [("x", const([[-2.0, 2.0, 1.0], [0.5, -0.5, 0.5]]), X)],
          lambda x: vn(x, inf, [1]), {"p": "inf", "axes": [1], "keepdims": False})

    # cumsum of floats and of int64 (no gradient).
    for variant, x, axis in [("axis_1", normal(3, 4), 1), ("axis_0", x234, 0), ("axis_-1", x234, -1),
                             ("0d", normal(), 0), ("empty", const(np.zeros((0, 3))), 1),
                             ("non_finite", specials((2, 4), 1.0, nan, inf, 2.0, -inf, inf), 1)]:
        c.add("cumsum", variant, [("x", x, X)], lambda x, a=axis: torch.cumsum(x, a), {"axis": axis})
    c.add("cumsum", "int64", [("x", ints(5, 3, 4), Y)], lambda x: torch.cumsum(x, 1), {"axis": 1})

    # sort and topk, values and indices; distinct inputs except for the "ties" cases.
    sort_nan = specials((3, 4), nan, 1.5, -inf, inf, 0.25, nan, 7.0, -3.0, inf, 0.125, -inf, 2.0)
    sort_ties = const([[1.0, 3.0, 1.0, 2.0, 3.0], [0.0, -0.0, 0.0, 5.0, -1.0]])
    for variant, x, axis, desc, ties in [("axis_-1", normal(3, 5), -1, False, False),
                                         ("axis_0_descending", normal(4, 3), 0, True, False),
                                         ("axis_1_3d", x234, 1, False, False), ("0d", normal(), 0, False, False),
                                         ("empty", const(np.zeros((2, 0))), -1, False, False),
                                         ("non_finite", sort_nan, -1, False, True),
                                         ("non_finite_descending", sort_nan, -1, True, True)]:
        params = {"axis": axis, "descending": desc}
        c.add("sort", variant, [("x", x, X)], lambda x, a=axis, d=desc: torch.sort(x, stable=True, dim=a, descending=d)[0],
              params, ties=ties)
        c.add("sort_indices", variant, [("x", x, Y)], lambda x, a=axis, d=desc: torch.sort(x, stable=True, dim=a, descending=d)[1],
              params, ties=ties)
    for desc in [False, True]:
        params = {"axis": 1, "descending": desc}
        c.add("sort", f"ties{'_descending' if desc else ''}", [("x", sort_ties, Y)],
              lambda x, d=desc: torch.sort(x, stable=True, dim=1, descending=d)[0], params, ties=True)
        c.add("sort_indices", f"ties{'_descending' if desc else ''}", [("x", sort_ties, Y)],
              lambda x, d=desc: torch.sort(x, stable=True, dim=1, descending=d)[1], params, ties=True)
    for variant, x, k, axis, largest, ties in [("k_2", normal(3, 5), 2, -1, True, False),
                                               ("k_3_smallest", normal(3, 5), 3, 1, False, False),
                                               ("k_1_axis_0", normal(4, 3), 1, 0, True, False),
                                               ("k_all", normal(2, 4), 4, -1, False, False),
                                               ("k_0", normal(2, 4), 0, -1, True, False),
                                               ("0d", normal(), 1, 0, True, False),
                                               ("non_finite", sort_nan, 2, -1, True, True),
                                               ("non_finite_smallest", sort_nan, 2, -1, False, True)]:
        params = {"k": k, "axis": axis, "largest": largest}
        c.add("topk", variant, [("x", x, X)], lambda x, k=k, a=axis, l=largest: torch.topk(x, k, a, l)[0],
              params, ties=ties)
        c.add("topk_indices", variant, [("x", x, Y)], lambda x, k=k, a=axis, l=largest: torch.topk(x, k, a, l)[1],
              params, ties=ties)
    # Ties: which of equal elements topk takes is PyTorch's choice, so only the values count.
    c.add("topk", "ties", [("x", sort_ties, Y)], lambda x: torch.topk(x, 3, 1)[0],
          {"k": 3, "axis": 1, "largest": True}, ties=True)
    return c.cases


# ---------------------------------------------------------------- optimizers and schedulers

STEPS = 5


def optimizer_cases():
    cases = []
    shape = (2, 3)

    def add(kind, variant, make, params):
        name = f"{kind}/{variant}"
        r = rng_for(name)
        p0 = r.standard_normal(shape)
        # Gradients of changing size and sign, so momentum, AMSGrad's max and RMS all matter.
        scales = [3.0, 0.5, 1.0, 0.1, 2.0]
        grads = [r.standard_normal(shape) * s for s in scales[:STEPS]]
        for dname, (np_t, torch_t) in DTYPES.items():
            p = torch.tensor(p0.astype(np_t), dtype=torch_t, requires_grad=True)
            opt = make([p])
            after = []
            for g in grads:
                p.grad = torch.tensor(g.astype(np_t), dtype=torch_t)
                opt.step()
                after.append(arr(p.detach().numpy(), dname))
            cases.append({"optimizer": kind, "name": name, "dtype": dname, "params": params,
                          "initial": arr(p0.astype(np_t), dname),
                          "grads": [arr(g.astype(np_t), dname) for g in grads], "expected": after})

    sgd = [("plain", {"lr": 0.1}), ("momentum", {"lr": 0.1, "momentum": 0.9}),
           ("dampening", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
           ("nesterov", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
           ("weight_decay", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
           ("nesterov_weight_decay", {"lr": 0.05, "momentum": 0.8, "nesterov": True,
                                      "weight_decay": 0.1})]
    for v, kw in sgd:
        full = {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0, **kw}
        add("sgd", v, lambda ps, kw=kw: torch.optim.SGD(ps, **kw), full)
    adam = [("default", {"lr": 0.01}), ("betas", {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-6}),
            ("weight_decay", {"lr": 0.01, "weight_decay": 0.1}),
            ("amsgrad", {"lr": 0.1, "amsgrad": True})]
    for kind, cls, default_wd in [("adam", torch.optim.Adam, 0.0), ("adamw", torch.optim.AdamW, 0.01)]:
        for v, kw in adam:
            full = {"betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": default_wd,
                    "amsgrad": False, **kw}
            full["betas"] = list(full["betas"])
            add(kind, v, lambda ps, kw=kw, cls=cls: cls(ps, **kw), full)
    rms = [("default", {"lr": 0.01}), ("momentum", {"lr": 0.01, "momentum": 0.9}),
           ("centered", {"lr": 0.01, "centered": True, "alpha": 0.9}),
           ("weight_decay", {"lr": 0.01, "weight_decay": 0.1, "momentum": 0.5, "centered": True})]
    for v, kw in rms:
        full = {"alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                "centered": False, **kw}
        add("rmsprop", v, lambda ps, kw=kw: torch.optim.RMSprop(ps, **kw), full)

    # Keras's Adam, by hand: bias correction folded into the rate, eps added to sqrt(v).
    for v, (lr, b1, b2, eps) in [("default", (0.001, 0.9, 0.999, 1e-7)),
                                 ("lr_0.1", (0.1, 0.9, 0.999, 1e-7))]:
        class KerasAdam:
            def __init__(self, ps, lr=lr, b1=b1, b2=b2, eps=eps):
                self.p, self.t = ps[0], 0
                self.m = torch.zeros_like(self.p)
                self.v = torch.zeros_like(self.p)
                self.hp = (lr, b1, b2, eps)

            @torch.no_grad()
            def step(self):
                lr, b1, b2, eps = self.hp
                self.t += 1
                g = self.p.grad
                self.m = b1 * self.m + (1 - b1) * g
                self.v = b2 * self.v + (1 - b2) * g * g
                lr_t = lr * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
                self.p -= lr_t * self.m / (self.v.sqrt() + eps)
        add("keras_adam", v, KerasAdam, {"lr": lr, "betas": [b1, b2], "eps": eps})
    return cases


def scheduler_cases():
    cases = []
    epochs = 12

    def add(kind, variant, make, params, metrics=None):
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1)
        sched = make(opt)
        lrs = []
        for e in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step(metrics[e]) if metrics else sched.step()
        case = {"scheduler": kind, "name": f"{kind}/{variant}", "base_lr": 0.1, "params": params,
                "lrs": lrs}
        if metrics:
            case["metrics"] = metrics
        cases.append(case)

    S = torch.optim.lr_scheduler
    add("step_lr", "step_3", lambda o: S.StepLR(o, step_size=3, gamma=0.5),
        {"step_size": 3, "gamma": 0.5})
    add("exponential_lr", "gamma_0.9", lambda o: S.ExponentialLR(o, gamma=0.9), {"gamma": 0.9})
    add("cosine_annealing_lr", "t_max_5", lambda o: S.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
        {"T_max": 5, "eta_min": 0.01})
    add("cosine_annealing_lr", "t_max_12", lambda o: S.CosineAnnealingLR(o, T_max=12),
        {"T_max": 12, "eta_min": 0.0})
    add("linear_lr", "warmup_4", lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0,
                                                      total_iters=4),
        {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 4})
    metrics = [1.0, 0.9, 0.91, 0.92, 0.93, 0.85, 0.86, 0.85, 0.87, 0.88, 0.8, 0.81]
    add("reduce_lr_on_plateau", "patience_2",
        lambda o: S.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=2),
        {"mode": "min", "factor": 0.5, "patience": 2, "threshold": 1e-4, "cooldown": 0,
         "min_lr": 0.0}, metrics)
    add("reduce_lr_on_plateau", "patience_1_cooldown_1_min_lr",
        lambda o: S.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=1, cooldown=1,
                                      min_lr=0.02),
        {"mode": "min", "factor": 0.5, "patience": 1, "threshold": 1e-4, "cooldown": 1,
         "min_lr": 0.02}, metrics)
    add("reduce_lr_on_plateau", "max_mode",
        lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.1, patience=1),
        {"mode": "max", "factor": 0.1, "patience": 1, "threshold": 1e-4, "cooldown": 0,
         "min_lr": 0.0}, [-m for m in metrics])
    return cases


def clip_grad_cases():
    """torch.nn.utils.clip_grad_norm_ / clip_grad_value_ over two parameters' gradients."""
    cases = []
    r = rng_for("clip_grad")
    g0 = quantize(r.standard_normal((2, 3)))
    g1 = quantize(r.standard_normal(4) * 2)
    variants = [("norm_2", "norm", {"max_norm": 1.0, "norm_type": 2.0}),
                ("norm_1", "norm", {"max_norm": 2.0, "norm_type": 1.0}),
                ("norm_inf", "norm", {"max_norm": 0.5, "norm_type": "inf"}),
                ("norm_below_max", "norm", {"max_norm": 100.0, "norm_type": 2.0}),
                ("value", "value", {"clip_value": 0.5})]
    for variant, kind, params in variants:
        for dname, (np_t, torch_t) in DTYPES.items():
            ps = [torch.zeros(g.shape, dtype=torch_t, requires_grad=True) for g in (g0, g1)]
            for p, g in zip(ps, (g0, g1)):
                p.grad = torch.tensor(g.astype(np_t), dtype=torch_t)
            case = {"clip": kind, "name": f"clip_grad_{kind}/{variant}", "dtype": dname,
                    "params": params, "grads": [arr(g.astype(np_t), dname) for g in (g0, g1)]}
            if kind == "norm":
                total = torch.nn.utils.clip_grad_norm_(ps, params["max_norm"],
                                                       float(params["norm_type"]))
                case["total_norm"] = float(total)
            else:
                torch.nn.utils.clip_grad_value_(ps, params["clip_value"])
            case["expected"] = [arr(p.grad.numpy(), dname) for p in ps]
            cases.append(case)
    return cases


# ---------------------------------------------------------------- type promotion

PROMOTION_INPUTS = {  # (dtype, shape) pairs of the two operands; "0d" ones have no axes
    "float32_float64": (("float32", (3, 4)), ("float64", (3, 4))),
    "float64_float32": (("float64", (3, 4)), ("float32", (4,))),
    "int64_float32": (("int64", (3, 4)), ("float32", (3, 4))),
    "float32_int64": (("float32", (3, 4)), ("int64", (4,))),
    "int64_float64": (("int64", (3, 4)), ("float64", (3, 4))),
    "int64_int64": (("int64", (3, 4)), ("int64", (3, 4))),
    "float32_float64_0d": (("float32", (3, 4)), ("float64", ())),
    "int64_float64_0d": (("int64", (3, 4)), ("float64", ())),
    "int64_0d_float32": (("int64", ()), ("float32", (4,))),
    "float32_0d_float64_0d": (("float32", ()), ("float64", ())),
}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


def promotion_cases():
    """Binary ops on operands of different dtypes and kinds (with axes, 0-d, Python scalars): the
    result's dtype and values as PyTorch's type promotion gives them, and the gradient of
    sum(output * w) for each floating operand, in that operand's dtype."""
    cases = []

    def operand(name, dtype, shape, r, positive=False):
        if dtype == "int64":
            low = 1 if positive else -3
            return torch.tensor(r.randint(low, 4, size=shape), dtype=torch.int64)
        a = quantize(r.uniform(0.5, 2.0, size=shape) if positive else r.standard_normal(shape))
        return torch.tensor(a, dtype=TORCH_DTYPES[dtype], requires_grad=True)

    def add_case(op, variant, tensors, fn, params=None):
        name = f"{op}/{variant}"
        out = fn(*tensors)
        out_dtype = str(out.dtype).replace("torch.", "")
        case = {"op": op, "name": name, "params": params or {},
                "inputs": [{"name": f"x{i}", "dtype": str(t.dtype).replace("torch.", ""),
                            "requires_grad": t.requires_grad, **arr(t.detach().numpy(), "float64")}
                           for i, t in enumerate(tensors)],
                "output": {"dtype": out_dtype, **arr(out.detach().numpy(), out_dtype)}}
        if out.requires_grad:
            w = torch.tensor(quantize(rng_for(name + "/weight").standard_normal(out.shape)),
                             dtype=out.dtype)
            (out * w).sum().backward()
            case["weight"] = arr(w.numpy(), out_dtype)
            case["grads"] = [{"dtype": str(t.dtype).replace("torch.", ""),
                              **arr(t.grad.numpy(), str(t.dtype).replace("torch.", ""))}
                             if t.requires_grad else None for t in tensors]
        cases.append(case)

    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
              "pow": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum,
              "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt,
              "ge": torch.ge}
    for op, f in binary.items():
        for variant, ((da, sa), (db, sb)) in PROMOTION_INPUTS.items():
            r = rng_for(f"promotion/{op}/{variant}")
            a = operand("a", da, sa, r, positive=op == "pow")
            # Integer exponents stay non-negative (PyTorch refuses negative ones); integer
            # divisors include 0 (true division gives inf and nan).
            b = operand("b", db, sb, r, positive=op == "pow" and db == "int64")
            if op in ("eq", "ne", "lt", "le", "gt", "ge"):  # ties, so that == and <= differ
                b = b.detach().clone()
                flat_b, flat_a = b.view(-1), a.detach().view(-1)
                if flat_b.numel() and flat_a.numel():
                    flat_b[0] = flat_a[0].to(b.dtype)
                    b = b.requires_grad_(b.is_floating_point())
            fn = (lambda x, y, f=f: f(x, y).to(torch.int64)) if op in ("eq", "ne", "lt", "le", "gt", "ge") else f
            add_case(op, variant, [a, b], fn)
    for variant, ((da, sa), (db, sb)) in list(PROMOTION_INPUTS.items())[:6]:
        r = rng_for(f"promotion/where/{variant}")
        cond = torch.tensor(r.randint(0, 2, size=(3, 4)), dtype=torch.int64)
        add_case("where", variant, [cond, operand("a", da, sa, r), operand("b", db, sb, r)],
                 lambda c, x, y: torch.where(c != 0, x, y))
    scalar_ops = {  # x op s, or s op x for the r- forms
        "add_scalar": lambda x, s: x + s, "sub_scalar": lambda x, s: x - s,
        "rsub_scalar": lambda x, s: s - x, "mul_scalar": lambda x, s: x * s,
        "div_scalar": lambda x, s: x / s, "rdiv_scalar": lambda x, s: s / x,
        "pow_scalar": lambda x, s: x ** s,
    }
    for op, f in scalar_ops.items():
        for dtype, shape in [("int64", (3, 4)), ("float32", (3, 4)), ("float64", (3, 4)), ("int64", ())]:
            for scalar in [2, -2.5]:
                if op == "pow_scalar" and dtype == "int64" and scalar == 2:
                    scalar = 3
                variant = f"{dtype}{'_0d' if not shape else ''}_{'int' if isinstance(scalar, int) else 'float'}"
                r = rng_for(f"promotion/{op}/{variant}")
                x = operand("x", dtype, shape, r, positive=op == "pow_scalar")
                add_case(op, variant, [x], lambda x, f=f, s=scalar: f(x, s),
                         {"scalar": scalar, "integral": isinstance(scalar, int)})
    # True division of integers, by zero too.
    add_case("div", "int64_by_zero", [torch.tensor([3, -3, 0, 7], dtype=torch.int64),
                                      torch.tensor([0, 0, 0, 2], dtype=torch.int64)], torch.div)
    # Ops defined on floats only take int64 as float32.
    for op, f in {"exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "sigmoid": torch.sigmoid,
                  "tanh": torch.tanh}.items():
        add_case(op, "int64", [torch.tensor([[1, 2], [3, 0]], dtype=torch.int64)], f)
    return cases


def dump_reviewable(doc, f):
    """The document with each case (each entry of a top-level list) on a line of its own, so that a
    regeneration's diff shows the cases that changed; a case stays one compact line."""
    items = list(doc.items())
    f.write("{\n")
    for n, (key, value) in enumerate(items):
        end = ",\n" if n + 1 < len(items) else "\n"
        if isinstance(value, list):
            f.write(f" {json.dumps(key)}: [\n")
            for i, case in enumerate(value):
                f.write("  " + json.dumps(case, separators=(",", ":")) + (",\n" if i + 1 < len(value) else "\n"))
            f.write(" ]" + end)
        else:
            f.write(f" {json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}" + end)
    f.write("}\n")

def write(name, payload):
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        dump_reviewable(payload, f)
    print(f"{os.path.relpath(path)}: {os.path.getsize(path) / 1024:.0f} KiB")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    meta = {"generator": "scripts/make_conformance.py", "torch": torch.__version__,
            "numpy": np.__version__}
    write("core.json", {**meta, "cases": core_cases()})
    write("nn_ops.json", {**meta, "cases": nn_op_cases()})
    write("activation.json", {**meta, "cases": activation_cases()})
    write("statistics.json", {**meta, "cases": statistics_cases()})
    write("promotion.json", {**meta, "cases": promotion_cases()})
    write("optim.json", {**meta, "optimizers": optimizer_cases(), "schedulers": scheduler_cases(),
                         "clip_grad": clip_grad_cases()})


if __name__ == "__main__":
    main()
