#!/usr/bin/python3
"""The mnist example's vision transformer (vision_transformer.hpp) in PyTorch, parameter for
parameter under the same names, and a check that a model trained by the C++ example gives the same
predictions here:

    mnist --model transformer --epochs 5 --out runs/vit
    /usr/bin/python3 examples/mnist/vision_transformer.py runs/vit/model.safetensors --data DIR

loads runs/vit/model.safetensors (tapegrad writes safetensors) into the PyTorch module and prints
its test accuracy and confusion matrix, which the C++ run printed too. benchmarks/bench_torch.py
and scripts/make_conformance_layers.py use the class.
"""
import argparse
import gzip
import json
import os
import struct

import numpy as np
import torch
from torch import nn


class VisionTransformer(nn.Module):
    """x [N, 1, 28, 28] → logits [N, classes]: 7x7 patches as 16 tokens, Linear(49, d) plus learned
    positions, a pre-norm encoder (gelu, final LayerNorm), the mean token, Linear(d, classes)."""

    def __init__(self, d=64, heads=4, layers=2, ff=128, dropout=0.0, classes=10):
        super().__init__()
        self.patch_embed = nn.Linear(49, d)
        self.pos_embed = nn.Parameter(torch.randn(1, 16, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        n = x.shape[0]
        patches = x.reshape(n, 4, 7, 4, 7).permute(0, 1, 3, 2, 4).reshape(n, 16, 49)
        return self.head(self.encoder(self.patch_embed(patches) + self.pos_embed).mean(1))


def read_safetensors(path):
    """{name: float tensor} from a safetensors file (8-byte header length, JSON header, data)."""
    dtypes = {"F32": np.float32, "F64": np.float64}
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        a = np.frombuffer(data[begin:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out


def load_into(model, path):
    """Every parameter of the model from the file, by name; the names must match exactly."""
    state = read_safetensors(path)
    expected = dict(model.named_parameters())
    missing, extra = set(expected) - set(state), set(state) - set(expected)
    if missing or extra:
        raise SystemExit(f"{path}: names differ from the PyTorch model: missing {sorted(missing)}, "
                         f"unexpected {sorted(extra)}")
    model.load_state_dict(state, strict=False)  # strict on parameters above; it has no buffers


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model.safetensors written by mnist --model transformer")
    ap.add_argument("--data", default=os.environ.get("TG_MNIST_DIR", ""), help="directory of the MNIST IDX files")
    args = ap.parse_args()
    model = VisionTransformer().eval()
    load_into(model, args.model)
    x = torch.from_numpy(read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")).copy()).float() / 255.0
    y = torch.from_numpy(read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    with torch.no_grad():
        predicted = torch.cat([model(x[s:s + 1000].unsqueeze(1)).argmax(1) for s in range(0, len(x), 1000)])
    accuracy = (predicted == y).double().mean().item()
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (y.numpy(), predicted.numpy()), 1)
    print(f"PyTorch {torch.__version__}, {args.model}")
    print("confusion matrix (rows: true class, columns: predicted)")
    print(confusion)
    print(f"Test accuracy: {accuracy:.4f} ({int((predicted == y).sum())} of {len(y)})")


if __name__ == "__main__":
    main()
