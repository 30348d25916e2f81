"""Tests of scripts/torch2safetensors.py on small synthetic checkpoints written here in the
legacy (pre-zip) and zip formats, byte-compatible with torch.save, without torch; and a
crafted pickle that would run a command, which must be refused."""
import io
import json
import os
import pickle
import struct
import sys
import tempfile
import types
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import torch2safetensors as conv  # noqa: E402


def fake_torch():
    """Stand-in module objects so pickle writes GLOBAL 'torch._utils _rebuild_tensor_v2' etc."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class FloatStorage:
        pass

    class LongStorage:
        pass

    for cls in (FloatStorage, LongStorage):
        cls.__module__ = "torch"
        cls.__qualname__ = cls.__name__
        setattr(torch, cls.__name__, cls)
    torch._utils = utils
    return torch, utils


class FakeTensor:
    def __init__(self, storage_key, stype, values, size, stride=None, offset=0):
        self.key, self.stype, self.values, self.size, self.offset = storage_key, stype, values, size, offset
        if stride is None:
            stride, acc = [], 1
            for s in reversed(size):
                stride.append(acc)
                acc *= s
            stride = list(reversed(stride))
        self.stride = stride

    def __reduce__(self):
        torch = sys.modules["torch"]
        return (torch._utils._rebuild_tensor_v2,
                (StorageMarker(self), self.offset, tuple(self.size), tuple(self.stride), False,
                 __import__("collections").OrderedDict()))

    def raw(self):
        code = "<f" if self.stype.__name__ == "FloatStorage" else "<q"
        return b"".join(struct.pack(code, v) for v in self.values)


class StorageMarker:
    def __init__(self, tensor):
        self.tensor = tensor


class Writer(pickle.Pickler):
    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy
        self.storages = {}

    def persistent_id(self, obj):
        if isinstance(obj, StorageMarker):
            t = obj.tensor
            self.storages[t.key] = t
            if self.legacy:
                return ("storage", t.stype, t.key, "cpu", len(t.values), None)
            return ("storage", t.stype, t.key, "cpu", len(t.values))
        return None


def state_dict(torch):
    import collections
    sd = collections.OrderedDict()
    sd["conv.weight"] = FakeTensor("0", torch.FloatStorage, [float(i) for i in range(6)], [2, 3])
    # a transposed (strided) view of storage "1"
    sd["conv.weight_t"] = FakeTensor("1", torch.FloatStorage, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2], stride=[1, 3])
    sd["bn.num_batches_tracked"] = FakeTensor("2", torch.LongStorage, [7], [])
    return sd


def write_legacy(path, obj):
    with open(path, "wb") as f:
        for header in (conv.LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        w = Writer(f, legacy=True)
        w.dump(obj)
        keys = sorted(w.storages)
        pickle.dump(keys, f, protocol=2)
        for k in keys:
            t = w.storages[k]
            f.write(struct.pack("<q", len(t.values)))
            f.write(t.raw())


def write_zip(path, obj):
    buf = io.BytesIO()
    w = Writer(buf, legacy=False)
    w.dump(obj)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        for k, t in w.storages.items():
            z.writestr(f"archive/data/{k}", t.raw())
        z.writestr("archive/version", "3\n")


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        code = {"F32": "<f", "I64": "<q"}[info["dtype"]]
        size = struct.calcsize(code)
        out[name] = (info["shape"], [struct.unpack(code, data[i:i + size])[0] for i in range(a, b, size)])
    return out, header.get("__metadata__", {})


class ConverterTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
        torch, utils = fake_torch()
        sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
        self.torch = torch

    def tearDown(self):
        for k, v in self.saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v

    def check(self, writer, wrap):
        src = os.path.join(self.tmp, "ckpt.pth")
        dst = os.path.join(self.tmp, "out.safetensors")
        writer(src, wrap(state_dict(self.torch)))
        sys.modules.pop("torch"), sys.modules.pop("torch._utils")  # the reader must not need them
        conv.convert(src, dst)
        tensors, meta = read_safetensors(dst)
        return tensors, meta

    def test_legacy_format_nested_dict_keeps_names(self):
        tensors, _ = self.check(write_legacy, lambda sd: {"generator": sd})
        self.assertEqual(sorted(tensors), ["generator.bn.num_batches_tracked", "generator.conv.weight", "generator.conv.weight_t"])
        self.assertEqual(tensors["generator.conv.weight"], ([2, 3], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))
        # the strided view is written contiguous: rows of the transpose
        self.assertEqual(tensors["generator.conv.weight_t"], ([3, 2], [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]))
        self.assertEqual(tensors["generator.bn.num_batches_tracked"], ([], [7]))

    def test_zip_format_tuple_with_extra(self):
        tensors, meta = self.check(write_zip, lambda sd: (sd, {"classes": 3}))
        self.assertEqual(sorted(tensors), ["bn.num_batches_tracked", "conv.weight", "conv.weight_t"])
        self.assertEqual(json.loads(meta["checkpoint_extra"]), {"classes": 3})

    def test_crafted_pickle_that_runs_a_command_is_refused(self):
        marker = os.path.join(self.tmp, "pwned")

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        src = os.path.join(self.tmp, "evil.pth")
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
        with self.assertRaises(conv.RefusedGlobal) as cm:
            conv.convert(src, os.path.join(self.tmp, "evil.safetensors"))
        self.assertIn("system", str(cm.exception))
        self.assertFalse(os.path.exists(marker), "the command ran")
        legacy = os.path.join(self.tmp, "evil_legacy.pth")
        with open(legacy, "wb") as f:
            for header in (conv.LEGACY_MAGIC, 1001, {}):
                pickle.dump(header, f, protocol=2)
            pickle.dump({"w": Evil()}, f, protocol=2)
        with self.assertRaises(conv.RefusedGlobal):
            conv.convert(legacy, os.path.join(self.tmp, "evil2.safetensors"))
        self.assertFalse(os.path.exists(marker), "the command ran")

    def test_not_a_checkpoint(self):
        src = os.path.join(self.tmp, "junk.pth")
        with open(src, "wb") as f:
            pickle.dump("hello", f, protocol=2)
        with self.assertRaises(ValueError):
            conv.convert(src, os.path.join(self.tmp, "junk.safetensors"))


if __name__ == "__main__":
    unittest.main()
