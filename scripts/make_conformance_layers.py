#!/usr/bin/python3
"""Writes tests/conformance/layers.json: what PyTorch computes for the ops and layers of today's
models (normalization, embedding, attention, Transformer encoders, 1-D and transposed
convolution), for tests/test_conformance_layers.cpp.

Run with Debian's python3-torch (not a pyenv python):
    /usr/bin/python3 scripts/make_conformance_layers.py

"cases" are op cases as scripts/make_conformance.py writes them (layer_norm, group_norm,
embedding, scaled_dot_product_attention, conv1d, conv_transpose2d, einsum: values, gradients, one second-order check per op, in
float64 and float32). "modules" are torch.nn.MultiheadAttention, TransformerEncoderLayer,
TransformerEncoder and the mnist example's vision transformer (its logits) in eval mode (dropout off) with fixed random parameters stored under PyTorch's
names, the inputs and masks, the output (and attention weights), a fixed weight w of the
output's shape, and the gradients of sum(output * w) with respect to the inputs and every
parameter, all in float64.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "mnist"))
from vision_transformer import VisionTransformer  # noqa: E402 (the mnist example's model in PyTorch)
from make_conformance import OpCases, const, dump_reviewable, normal, rng_for
from make_conformance import arr as conformance_arr

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "conformance", "layers.json")

torch.set_num_threads(1)  # deterministic summation order


def arr(a):
    return conformance_arr(np.asarray(a, dtype=np.float64), "float64")


def with_nan(*shape):
    def gen(r):
        a = r.standard_normal(shape)
        a.reshape(-1)[1] = math.nan
        return a
    return gen


def sdpa(q, k, v, mask=None, causal=False, scale=None):
    """Scaled dot-product attention written out (torch 1.13 has no public F.scaled_dot_product_attention).
    An integer mask becomes an additive one (-inf where nonzero), as torch.nn.MultiheadAttention
    does with a bool mask: a query with every key forbidden gets NaN values and gradients."""
    s = q @ k.transpose(-2, -1) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if mask is not None:
        if mask.dtype == torch.int64:
            mask = torch.zeros(mask.shape, dtype=q.dtype).masked_fill(mask.bool(), -math.inf)
        s = s + mask
    if causal:
        L, S = s.shape[-2], s.shape[-1]
        s = s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(1), -math.inf)
    return torch.softmax(s, -1) @ v


def op_cases():
    c = OpCases()
    X, Y = True, False
    # layer_norm: x [..., *normalized_shape]
    for name, sx, k, affine in [("last_axis", (3, 5), 1, True), ("two_axes", (2, 3, 4), 2, True),
                                ("batch_seq", (2, 3, 6), 1, True), ("no_affine", (4, 5), 1, False),
                                ("1d", (6,), 1, True), ("empty_batch", (0, 4), 1, True)]:
        ns = list(sx[len(sx) - k:])
        inputs = [("x", normal(*sx), X)]
        if affine:
            inputs += [("weight", normal(*ns), X), ("bias", normal(*ns), X)]
        c.add("layer_norm", name, inputs,
              lambda x, w=None, b=None, ns=ns: F.layer_norm(x, ns, w, b, 1e-5), {"normalized_shape": ns, "eps": 1e-5})
    c.add("layer_norm", "constant_row", [("x", const([[2.0, 2.0, 2.0], [1.0, -1.0, 0.5]]), X),
                                         ("weight", normal(3), X), ("bias", normal(3), X)],
          lambda x, w, b: F.layer_norm(x, [3], w, b, 1e-5), {"normalized_shape": [3], "eps": 1e-5})
    c.add("layer_norm", "nan", [("x", with_nan(2, 4), X), ("weight", normal(4), X), ("bias", normal(4), X)],
          lambda x, w, b: F.layer_norm(x, [4], w, b, 1e-5), {"normalized_shape": [4], "eps": 1e-5})
    c.add("layer_norm", "eps_0.1", [("x", normal(3, 4), X), ("weight", normal(4), X), ("bias", normal(4), X)],
          lambda x, w, b: F.layer_norm(x, [4], w, b, 0.1), {"normalized_shape": [4], "eps": 0.1})
    # group_norm: x [N, C, ...], weight and bias [C]
    for name, sx, g, affine in [("4d", (2, 4, 3, 2), 2, True), ("3d", (3, 6, 4), 3, True),
                                ("one_group", (2, 4, 3), 1, True), ("per_channel", (2, 3, 4), 3, False),
                                ("2d", (3, 4), 2, True)]:
        inputs = [("x", normal(*sx), X)]
        if affine:
            inputs += [("weight", normal(sx[1]), X), ("bias", normal(sx[1]), X)]
        c.add("group_norm", name, inputs, lambda x, w=None, b=None, g=g: F.group_norm(x, g, w, b, 1e-5),
              {"num_groups": g, "eps": 1e-5})
    # embedding: indices int64 [...], weight [V, D]
    c.add("embedding", "repeated", [("indices", const([[1, 3, 1], [0, 3, 3]]), Y), ("weight", normal(5, 3), X)],
          lambda i, w: F.embedding(i, w), {})
    c.add("embedding", "padding_idx", [("indices", const([[1, 0, 2], [0, 4, 0]]), Y), ("weight", normal(5, 3), X)],
          lambda i, w: F.embedding(i, w, padding_idx=0), {"padding_idx": 0})
    c.add("embedding", "negative_padding_idx", [("indices", const([1, 4, 2, 4]), Y), ("weight", normal(5, 2), X)],
          lambda i, w: F.embedding(i, w, padding_idx=-1), {"padding_idx": -1})
    c.add("embedding", "0d_index", [("indices", const(2), Y), ("weight", normal(4, 3), X)],
          lambda i, w: F.embedding(i, w), {})
    c.add("embedding", "empty", [("indices", const(np.zeros((2, 0), dtype=np.int64)), Y), ("weight", normal(4, 3), X)],
          lambda i, w: F.embedding(i, w), {})
    # scaled_dot_product_attention: q [..., L, E], k [..., S, E], v [..., S, Ev]
    qkv = lambda b, l, s, e, ev: [("q", normal(*b, l, e), X), ("k", normal(*b, s, e), X), ("v", normal(*b, s, ev), X)]
    c.add("attention", "plain", qkv((2,), 3, 4, 5, 2), lambda q, k, v: sdpa(q, k, v), {})
    c.add("attention", "heads", qkv((2, 3), 4, 4, 2, 2), lambda q, k, v: sdpa(q, k, v), {})
    c.add("attention", "causal", qkv((2,), 4, 4, 3, 3), lambda q, k, v: sdpa(q, k, v, causal=True), {"is_causal": True})
    c.add("attention", "scale", qkv((1,), 2, 3, 4, 2), lambda q, k, v: sdpa(q, k, v, scale=0.3), {"scale": 0.3})
    c.add("attention", "int_mask", qkv((2,), 3, 4, 2, 3) + [("mask", const([[0, 1, 0, 1], [0, 0, 0, 1], [1, 1, 0, 0]]), Y)],
          lambda q, k, v, m: sdpa(q, k, v, m), {})
    c.add("attention", "float_mask", qkv((2,), 3, 3, 2, 2) + [("mask", normal(3, 3), Y)],
          lambda q, k, v, m: sdpa(q, k, v, m), {})
    c.add("attention", "fully_masked_row", qkv((1,), 2, 3, 2, 2) + [("mask", const([[1, 1, 1], [0, 1, 0]]), Y)],
          lambda q, k, v, m: sdpa(q, k, v, m), {})
    c.add("attention", "empty_keys", qkv((2,), 3, 0, 2, 2), lambda q, k, v: sdpa(q, k, v), {})
    # conv1d: x [N, C_in, L], weight [C_out, C_in/groups, K]
    for name, sx, sw, bias, p in [("basic", (2, 3, 7), (4, 3, 3), True, {}),
                                  ("stride_padding_dilation", (2, 2, 9), (3, 2, 3), True,
                                   {"stride": 2, "padding": 2, "dilation": 2}),
                                  ("groups_no_bias", (1, 4, 6), (6, 2, 2), False, {"groups": 2}),
                                  ("same", (2, 2, 5), (3, 2, 4), True, {"padding": "same"})]:
        params = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **p}
        inputs = [("x", normal(*sx), X), ("weight", normal(*sw), X)] + ([("bias", normal(sw[0]), X)] if bias else [])
        c.add("conv1d", name, inputs,
              lambda x, w, b=None, p=params: F.conv1d(x, w, b, stride=p["stride"], padding=p["padding"],
                                                      dilation=p["dilation"], groups=p["groups"]), params)
    # conv_transpose2d: x [N, C_in, H, W], weight [C_in, C_out/groups, kH, kW]
    for name, sx, sw, bias, p in [("basic", (2, 3, 4, 3), (3, 2, 3, 3), True, {}),
                                  ("stride_2_output_padding", (1, 2, 3, 4), (2, 3, 3, 2), True,
                                   {"stride": [2, 2], "output_padding": [1, 0]}),
                                  ("padding_dilation", (2, 2, 5, 4), (2, 2, 3, 3), True,
                                   {"padding": [1, 2], "dilation": [2, 1]}),
                                  ("groups_no_bias", (1, 4, 3, 3), (4, 1, 2, 2), False, {"groups": 2, "stride": [2, 1]})]:
        params = {"stride": [1, 1], "padding": [0, 0], "output_padding": [0, 0], "dilation": [1, 1], "groups": 1, **p}
        inputs = [("x", normal(*sx), X), ("weight", normal(*sw), X)] + ([("bias", normal(sw[1] * params["groups"]), X)]
                                                                        if bias else [])
        c.add("conv_transpose2d", name, inputs,
              lambda x, w, b=None, p=params: F.conv_transpose2d(x, w, b, stride=p["stride"], padding=p["padding"],
                                                                output_padding=p["output_padding"],
                                                                groups=p["groups"], dilation=p["dilation"]), params)
    # einsum: the common contractions, with the equation as the parameter.
    for name, eq, shapes in [("matmul", "ij,jk->ik", [(2, 3), (3, 4)]),
                             ("batched_matmul", "bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
                             ("attention_scores", "bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
                             ("transpose", "ij->ji", [(3, 4)]),
                             ("sum_all", "ijk->", [(2, 3, 4)]),
                             ("sum_axis", "ij->i", [(3, 4)]),
                             ("outer", "i,j->ij", [(3,), (4,)]),
                             ("dot", "i,i->", [(5,)] * 2),
                             ("rowwise_dot", "bi,bi->b", [(3, 4)] * 2),
                             ("implicit_output", "ij,jk", [(2, 3), (3, 4)]),
                             ("three_operands", "ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
                             ("free_index_summed", "ij,kj->i", [(2, 3), (4, 3)]),
                             ("bilinear", "bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)])]:
        c.add("einsum", name, [(f"x{i}", normal(*sh), X) for i, sh in enumerate(shapes)],
              lambda *xs, eq=eq: torch.einsum(eq, *xs), {"equation": eq})
    return c.cases


def fill(m, r):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.from_numpy(r.uniform(-0.5, 0.5, size=tuple(p.shape))))


def as_torch_mask(t):
    """Stored masks are int64 (nonzero forbids), as tapegrad takes them; PyTorch's layers want bool."""
    return None if t is None else (t.bool() if t.dtype == torch.int64 else t)


def module_case(name, kind, config, make, inputs, call):
    """inputs: {name: (array, differentiable)}; call(module, tensors) → output (or (output, weights))."""
    r = rng_for(name)
    torch.manual_seed(0)
    m = make().double()
    fill(m, r)
    m.eval()
    ts = {}
    for k, (a, d) in inputs.items():
        a = np.asarray(a)
        ts[k] = torch.from_numpy(a).requires_grad_(d) if a.dtype.kind == "f" else torch.from_numpy(a)
    res = call(m, ts)
    out, weights = res if isinstance(res, tuple) else (res, None)
    w = torch.from_numpy(r.standard_normal(tuple(out.shape)))
    (out * w).sum().backward()
    return {
        "name": name, "module": kind, "config": config,
        "parameters": [{"name": k, **arr(p.detach().numpy())} for k, p in m.named_parameters()],
        "inputs": {k: {"dtype": "float64" if t.dtype == torch.float64 else "int64", **arr(t.detach().numpy())}
                   for k, t in ts.items()},
        "output": arr(out.detach().numpy()), "weights": None if weights is None else arr(weights.detach().numpy()),
        "w": arr(w.numpy()),
        "grads": {"inputs": {k: arr(t.grad.numpy()) for k, t in ts.items() if t.requires_grad},
                  "parameters": {k: arr(p.grad.numpy()) for k, p in m.named_parameters()}},
    }


def module_cases():
    cases = []
    R = np.random.RandomState(7)
    x = lambda *s: R.standard_normal(s)

    def mha(name, e, h, call_cfg, bf=True, kdim=None, vdim=None, bias=True, shapes=None, masks=None):
        L, S, N = 3, 4, 2
        q_shape, k_shape, v_shape = shapes or ((N, L, e), (N, S, kdim or e), (N, S, vdim or e))
        inputs = {"query": (x(*q_shape), True)}
        self_attn = call_cfg.get("self", False)
        if not self_attn:
            inputs["key"] = (x(*k_shape), True)
            inputs["value"] = (x(*v_shape), True)
        for k, v in (masks or {}).items():
            inputs[k] = (v, False)
        cfg = {"embed_dim": e, "num_heads": h, "batch_first": bf, "kdim": kdim or 0, "vdim": vdim or 0, "bias": bias,
               **call_cfg}

        def call(m, t):
            q = t["query"]
            k = q if self_attn else t["key"]
            v = q if self_attn else t["value"]
            return m(q, k, v, key_padding_mask=as_torch_mask(t.get("key_padding_mask")),
                     attn_mask=as_torch_mask(t.get("attn_mask")),
                     need_weights=True, average_attn_weights=call_cfg.get("average_attn_weights", True))
        cases.append(module_case(name, "MultiheadAttention", cfg,
                                 lambda: torch.nn.MultiheadAttention(e, h, bias=bias, kdim=kdim, vdim=vdim,
                                                                     batch_first=bf), inputs, call))

    mha("mha/self", 6, 2, {"self": True})
    mha("mha/cross", 6, 3, {})
    mha("mha/seq_first", 4, 2, {}, bf=False, shapes=((3, 2, 4), (4, 2, 4), (4, 2, 4)))
    mha("mha/kdim_vdim", 4, 2, {}, kdim=3, vdim=5)
    mha("mha/no_bias_per_head_weights", 4, 2, {"average_attn_weights": False}, bias=False)
    mha("mha/masks_int", 4, 2, {}, masks={"key_padding_mask": np.array([[0, 0, 1, 0], [0, 0, 0, 1]]),
                                         "attn_mask": np.array([[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])})
    mha("mha/masks_float_per_head", 4, 2, {}, masks={"attn_mask": R.standard_normal((4, 3, 4)),
                                                     "key_padding_mask": np.array([[0, 1, 0, 0], [0, 0, 0, 0]])})
    mha("mha/unbatched", 4, 2, {}, shapes=((3, 4), (4, 4), (4, 4)))

    def encoder(name, cfg, n, s, layers=0, final_norm=False, masks=None):
        e, h = cfg["d_model"], cfg["nhead"]
        kw = dict(dim_feedforward=cfg["dim_feedforward"], dropout=0.1, activation=cfg["activation"],
                  batch_first=True, norm_first=cfg["norm_first"])
        inputs = {"src": (x(n, s, e), True)}
        for k, v in (masks or {}).items():
            inputs[k] = (v, False)

        def call(m, t):  # the layer calls the mask src_mask, the stack mask
            mask_name = "mask" if layers else "src_mask"
            return m(t["src"], **{mask_name: as_torch_mask(t.get("mask"))},
                     src_key_padding_mask=as_torch_mask(t.get("src_key_padding_mask")))
        if layers:
            make = lambda: torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(e, h, **kw), layers,
                                                       norm=torch.nn.LayerNorm(e) if final_norm else None,
                                                       enable_nested_tensor=False)
            cases.append(module_case(name, "TransformerEncoder", {**cfg, "num_layers": layers, "final_norm": final_norm},
                                     make, inputs, call))
        else:
            cases.append(module_case(name, "TransformerEncoderLayer", cfg,
                                     lambda: torch.nn.TransformerEncoderLayer(e, h, **kw), inputs, call))

    base = {"d_model": 4, "nhead": 2, "dim_feedforward": 6, "activation": "relu", "norm_first": False}
    encoder("encoder_layer/post_norm", base, 2, 3)
    encoder("encoder_layer/pre_norm_gelu", {**base, "norm_first": True, "activation": "gelu"}, 2, 3)
    encoder("encoder_layer/masks", base, 2, 4,
            masks={"mask": np.array([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]),
                   "src_key_padding_mask": np.array([[0, 0, 0, 1], [0, 0, 0, 0]])})
    encoder("encoder/two_layers", base, 2, 3, layers=2)
    encoder("encoder/pre_norm_final_norm", {**base, "norm_first": True}, 2, 3, layers=2, final_norm=True)
    # The mnist example's vision transformer (narrower, to keep the file small), in evaluation mode,
    # on two images.
    vit = {"d_model": 8, "nhead": 2, "num_layers": 2, "dim_feedforward": 12}
    cases.append(module_case("vision_transformer/mnist_example", "VisionTransformer", vit,
                             lambda: VisionTransformer(d=8, heads=2, layers=2, ff=12),
                             {"x": (R.uniform(0, 1, (2, 1, 28, 28)), True)},
                             lambda m, t: m(t["x"])))
    return cases


def main():
    doc = {"generator": "scripts/make_conformance_layers.py", "torch": torch.__version__,
           "numpy": np.__version__, "cases": op_cases(), "modules": module_cases()}
    with open(OUT, "w") as f:
        dump_reviewable(doc, f)
    print(f"wrote {len(doc['cases'])} op cases and {len(doc['modules'])} module cases to "
          f"{os.path.normpath(OUT)} ({os.path.getsize(OUT) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
