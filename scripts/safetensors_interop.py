"""The safetensors side of cairn's interop tests, with the real package.

  write DIR   write DIR/model.safetensors with safetensors.numpy.save_file
              (every dtype cairn shares with numpy, a zero-size tensor and
              metadata), and beside it expected.json and one raw dump per
              tensor (NAME.bin) for the Rust side to compare against
  check FILE DIR
              load FILE with safetensors.numpy.load_file and safe_open and
              compare with DIR/expected.json and the dumps the Rust side
              wrote; exit 1 naming the first difference
"""
import json
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

DTYPES = {
    "F16": np.float16, "F32": np.float32, "F64": np.float64,
    "I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64,
    "U8": np.uint8, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64,
    "BOOL": np.bool_,
}


def write(out):
    rng = np.random.default_rng(7)
    tensors = {
        "layer.0.weight": rng.normal(0, 0.02, (8, 16)).astype(np.float32),
        "layer.0.bias": rng.normal(0, 1, (16,)).astype(np.float16),
        "double": rng.normal(0, 1, (3, 3)).astype(np.float64),
        "i8": np.arange(-5, 5, dtype=np.int8),
        "i16": np.arange(-300, 300, 7, dtype=np.int16),
        "i32": np.arange(12, dtype=np.int32).reshape(3, 4),
        "i64": np.array([-(2**62), 0, 2**62], dtype=np.int64),
        "u8": np.arange(256, dtype=np.uint8),
        "u16": np.array([0, 65535], dtype=np.uint16),
        "u32": np.array([1, 2**32 - 1], dtype=np.uint32),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "mask": np.array([True, False, True]),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    metadata = {"format": "np", "note": "written by safetensors " + __import__("safetensors").__version__}
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata=metadata)
    names = {np.dtype(v): k for k, v in DTYPES.items()}
    expected = {"tensors": {}, "metadata": metadata}
    for name, t in tensors.items():
        expected["tensors"][name] = {"dtype": names[t.dtype], "shape": list(t.shape)}
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(t.tobytes())
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def check(path, expected_dir):
    with open(os.path.join(expected_dir, "expected.json")) as f:
        expected = json.load(f)
    loaded = load_file(path)
    if sorted(loaded) != sorted(expected["tensors"]):
        sys.exit(f"tensors {sorted(loaded)} != {sorted(expected['tensors'])}")
    for name, want in expected["tensors"].items():
        t = loaded[name]
        if t.dtype != np.dtype(DTYPES[want["dtype"]]) or list(t.shape) != want["shape"]:
            sys.exit(f"{name}: {t.dtype} {list(t.shape)} != {want}")
        with open(os.path.join(expected_dir, name + ".bin"), "rb") as f:
            if t.tobytes() != f.read():
                sys.exit(f"{name}: the values differ")
    with safe_open(path, framework="np") as f:
        if (f.metadata() or {}) != expected["metadata"]:
            sys.exit(f"metadata {f.metadata()} != {expected['metadata']}")
    print("ok", len(loaded), "tensors")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        check(sys.argv[2], sys.argv[3])
