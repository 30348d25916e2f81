#!/usr/bin/env python3
"""Convert a PyTorch checkpoint (legacy pre-1.6 format or the zip format) to safetensors with
the standard library only, keeping the original tensor names.

A checkpoint is a pickle, and unpickling runs code: this reader resolves only an allowlist of
the few globals a state dict needs (tensor rebuild functions, storage types, OrderedDict and
numpy scalars) and refuses everything else, naming the refused global. Nothing from torch or
numpy is imported.

    torch2safetensors.py IN.pth OUT.safetensors [--expect-count N] [--expect-sha256 HEX]

Nested dicts are flattened with "." (``{"generator": {"conv_pre.weight_g": t}}`` becomes
``generator.conv_pre.weight_g``); tuple/list positions add no name. Non-tensor leaves (e.g.
aisfx's label table) go into the safetensors metadata as JSON under "checkpoint_extra".
"""
import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import zipfile

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# storage class name -> (safetensors dtype, bytes per element, struct code)
STORAGES = {
    "FloatStorage": ("F32", 4, "f"),
    "DoubleStorage": ("F64", 8, "d"),
    "HalfStorage": ("F16", 2, "e"),
    "BFloat16Storage": ("BF16", 2, None),
    "LongStorage": ("I64", 8, "q"),
    "IntStorage": ("I32", 4, "i"),
    "ShortStorage": ("I16", 2, "h"),
    "CharStorage": ("I8", 1, "b"),
    "ByteStorage": ("U8", 1, "B"),
    "BoolStorage": ("BOOL", 1, "?"),
}


class RefusedGlobal(pickle.UnpicklingError):
    pass


class StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype, self.itemsize, self.code = STORAGES[name]


class StorageRef:
    """A storage named in the pickle; its bytes are attached after unpickling."""

    def __init__(self, stype, key, numel):
        self.stype, self.key, self.numel = stype, key, numel
        self.data = None


class TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    @property
    def numel(self):
        n = 1
        for s in self.size:
            n *= s
        return n

    def contiguous_bytes(self):
        es = self.storage.stype.itemsize
        data = self.storage.data
        if data is None:
            raise ValueError(f"storage {self.storage.key} has no data")
        expected, acc = [], 1
        for s in reversed(self.size):
            expected.append(acc)
            acc *= s
        expected = tuple(reversed(expected))
        n = self.numel
        if n == 0:
            return b""
        if all(st == ex or sz == 1 for st, ex, sz in zip(self.stride, expected, self.size)):
            start = self.offset * es
            return bytes(data[start:start + n * es])
        out = bytearray(n * es)  # strided view: gather element by element
        for flat in range(n):
            rem, src = flat, self.offset
            for dim in range(len(self.size) - 1, -1, -1):
                src += (rem % self.size[dim]) * self.stride[dim]
                rem //= self.size[dim]
            out[flat * es:(flat + 1) * es] = data[src * es:(src + 1) * es]
        return bytes(out)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *_):
    return TensorRef(storage, storage_offset, size, stride)


def rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_):
    return data


class NumpyDtype:
    def __init__(self, spec, align=False, copy=True):
        self.spec = spec
        self.order = "<"

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in "<>|=":
            self.order = "<" if state[1] in "|=" else state[1]


def numpy_scalar(dtype, data=b""):
    codes = {"i8": "q", "i4": "i", "i2": "h", "i1": "b", "u8": "Q", "u4": "I", "u2": "H", "u1": "B",
             "f8": "d", "f4": "f", "f2": "e", "b1": "?"}
    code = codes.get(dtype.spec.lstrip("<>|="))
    if code is None:
        raise RefusedGlobal(f"numpy scalar of dtype {dtype.spec!r} is not supported")
    return struct.unpack(dtype.order + code, data)[0]


def codecs_encode(text, encoding="utf-8"):
    if encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise RefusedGlobal(f"_codecs.encode with encoding {encoding!r} refused")
    return text.encode(encoding)


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("numpy", "dtype"): NumpyDtype,
    ("numpy.core.multiarray", "scalar"): numpy_scalar,
    ("numpy._core.multiarray", "scalar"): numpy_scalar,
    ("_codecs", "encode"): codecs_encode,
}
ALLOWED.update({("torch", name): StorageType(name) for name in STORAGES})


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves allowlisted globals only."""

    def __init__(self, f, persistent_load):
        super().__init__(f)
        self._persistent = persistent_load

    def find_class(self, module, name):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"refusing to unpickle global '{module}.{name}': not in the allowlist of a state dict "
                "(a checkpoint that needs it could run arbitrary code)") from None

    def persistent_load(self, pid):
        return self._persistent(pid)


def load_zip(path):
    z = zipfile.ZipFile(path)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise ValueError(f"{path}: zip checkpoint without exactly one data.pkl")
    root = pkl[0][: -len("data.pkl")]
    storages = {}

    def persistent(pid):
        typename, stype, key, _location, numel = pid[:5]
        if typename != "storage" or not isinstance(stype, StorageType):
            raise RefusedGlobal(f"unexpected persistent id {pid!r}")
        ref = storages.get(key)
        if ref is None:
            ref = storages[key] = StorageRef(stype, key, numel)
            ref.data = z.read(f"{root}data/{key}")
        return ref

    return SafeUnpickler(io.BytesIO(z.read(pkl[0])), persistent).load()


def load_legacy(path):
    with open(path, "rb") as f:
        def plain(name):
            return SafeUnpickler(f, lambda pid: (_ for _ in ()).throw(RefusedGlobal(f"persistent id in {name}"))).load()

        magic = plain("magic number")
        if magic != LEGACY_MAGIC:
            raise ValueError(f"{path}: not a PyTorch checkpoint (bad magic number)")
        plain("protocol version")
        plain("system info")
        storages = {}

        def persistent(pid):
            if pid[0] != "storage":
                raise RefusedGlobal(f"unexpected persistent id {pid[0]!r}")
            stype, key, _location, numel, view = pid[1:6]
            if not isinstance(stype, StorageType):
                raise RefusedGlobal(f"unexpected storage type {stype!r}")
            if view is not None:
                raise ValueError("storage views in legacy checkpoints are not supported")
            if key not in storages:
                storages[key] = StorageRef(stype, key, numel)
            return storages[key]

        result = SafeUnpickler(f, persistent).load()
        keys = plain("storage keys")
        for key in keys:
            ref = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * ref.stype.itemsize
            ref.data = f.read(nbytes)
            if len(ref.data) != nbytes:
                raise ValueError(f"{path}: storage {key} truncated")
    return result


def load_checkpoint(path):
    return load_zip(path) if zipfile.is_zipfile(path) else load_legacy(path)


def flatten(obj, prefix="", tensors=None, extra=None):
    tensors = {} if tensors is None else tensors
    extra = {} if extra is None else extra
    if isinstance(obj, TensorRef):
        if prefix in tensors:
            raise ValueError(f"duplicate tensor name {prefix!r}")
        tensors[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), tensors, extra)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            flatten(v, prefix, tensors, extra)
    else:
        key = prefix or "value"
        extra.setdefault(key, []).append(obj if isinstance(obj, (int, float, str, bool)) or obj is None else repr(obj))
    return tensors, extra


def write_safetensors(path, tensors, metadata):
    header, offset, chunks = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name]
        data = t.contiguous_bytes()
        header[name] = {"dtype": t.storage.stype.dtype, "shape": list(t.size), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        chunks.append(data)
    if metadata:
        header["__metadata__"] = metadata
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def convert(src, dst):
    obj = load_checkpoint(src)
    tensors, extra = flatten(obj)
    if not tensors:
        raise ValueError(f"{src}: no tensors found")
    meta = {"source": os.path.basename(src), "converter": "scripts/torch2safetensors.py"}
    # Integers that were numpy scalars are kept; everything stays JSON.
    meta_extra = {k: (v[0] if len(v) == 1 else v) for k, v in extra.items()}
    if meta_extra:
        meta["checkpoint_extra"] = json.dumps(meta_extra, sort_keys=True)
    write_safetensors(dst, tensors, meta)
    return tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--expect-count", type=int)
    ap.add_argument("--expect-sha256")
    args = ap.parse_args()
    try:
        tensors = convert(args.src, args.dst)
    except (RefusedGlobal, ValueError, pickle.UnpicklingError, OSError) as e:
        print(f"error: {args.src}: {e}", file=sys.stderr)
        sys.exit(1)
    sha = hashlib.sha256(open(args.dst, "rb").read()).hexdigest()
    n = len(tensors)
    params = sum(t.numel for t in tensors.values())
    print(f"{args.dst}: {n} tensors, {params:,} values, sha256 {sha}")
    problems = []
    if args.expect_count is not None and n != args.expect_count:
        problems.append(f"expected {args.expect_count} tensors, got {n}")
    if args.expect_sha256 and sha != args.expect_sha256:
        problems.append(f"expected sha256 {args.expect_sha256}, got {sha}")
    if problems:
        os.remove(args.dst)
        print(f"error: {args.dst}: " + "; ".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
