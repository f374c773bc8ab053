"""dlib's face-embedding network on onnxruntime: the same weights, the same numbers, faster.

dlib-bin is built without BLAS, and its ResNet descriptor was 88% of a scan's time. This
module turns the network read by :mod:`organizer.dlib_resnet` into an ONNX graph once,
keeps that file in the user's data folder (next to the default library; it is rebuilt
when the model file or this builder changes, and never comes from the network), and runs
batches of aligned face chips through onnxruntime.

Why onnxruntime and not numpy: the numpy forward pass (im2col + OpenBLAS) is the
reference but is slower than dlib itself on small batches (the im2col copies dominate);
onnxruntime's convolutions run straight on the weights, with each affine layer folded
into the convolution before it, and the per-face time is what bench/embed.py measures.

The two engines give the same vectors to ~1e-6 (float32); :func:`load_engine` refuses
an engine that does not reproduce dlib's descriptors of the committed face chips.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from organizer.dlib_resnet import (
    Affine,
    Conv,
    FaceResNet,
    ModelFormatError,
    chips_to_tensor,
    default_model_path,
    read_face_resnet,
)
from organizer.reference_chip import reference_chip

if TYPE_CHECKING:
    from onnx import NodeProto, TensorProto

#: bump when the graph built from the same weights changes, so cached files are rebuilt
BUILDER_VERSION = 1

#: largest difference per value from dlib's descriptor accepted at start-up
SELF_CHECK_TOLERANCE = 1e-4

CHIP_SIZE = 150

#: what faces embedded by this engine record (Face.embedding_engine); dlib's own
#: descriptor records "dlib". The same name as long as the graph computes the same function
#: of the same weights (a rebuild for a new onnxruntime keeps it; another model would not).
ENGINE_ID = "onnx-dlib-resnet-v1"


class EngineUnavailable(RuntimeError):
    """The fast engine cannot be used here (missing package, bad build, failed check)."""


# ---------------------------------------------------------------- the ONNX graph

def _fold(conv: Conv, affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Convolution followed by dlib's affine layer, as one convolution."""
    g = affine.gamma.astype(np.float64)
    w = conv.weight.astype(np.float64) * g[:, None, None, None]
    b = conv.bias.astype(np.float64) * g + affine.beta
    return w.astype(np.float32), b.astype(np.float32)


class _Graph:
    """A tiny builder that tracks each tensor's static (channels, height, width)."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[NodeProto] = []
        self.inits: list[TensorProto] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}{self.count}"

    def const(self, value: np.ndarray, base: str) -> str:
        n = self.name(base)
        self.inits.append(self.numpy_helper.from_array(value, n))
        return n

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...], **attrs: Any) -> str:
        """``attrs`` are the node's ONNX attributes, passed on as onnx's make_node takes them."""
        out = self.name(op.lower())
        self.nodes.append(self.helper.make_node(op, inputs, [out], **attrs))
        self.shapes[out] = shape
        return out

    def conv(self, x: str, conv: Conv, affine: Affine, relu: bool) -> str:
        w, b = _fold(conv, affine)
        _, h, wd = self.shapes[x]
        k, s, p = w.shape[2], conv.stride, conv.padding
        shape = (w.shape[0], (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1)
        y = self.node("Conv", [x, self.const(w, "w"), self.const(b, "b")], shape,
                      kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        return self.node("Relu", [y], shape) if relu else y

    def pool(self, op: str, x: str, size: int, stride: int) -> str:
        c, h, w = self.shapes[x]
        shape = (c, (h - size) // stride + 1, (w - size) // stride + 1)
        return self.node(op, [x], shape, kernel_shape=[size, size], strides=[stride, stride])

    def pad_to(self, x: str, shape: tuple[int, ...]) -> str:
        """Zero-extend at the high end of channels/rows/columns, as dlib's add_prev does."""
        have = self.shapes[x]
        if have == shape:
            return x
        ends = [0, *(t - h for t, h in zip(shape, have, strict=True))]
        pads = self.const(np.array([0, 0, 0, 0, *ends], dtype=np.int64), "pads")
        return self.node("Pad", [x, pads], shape, mode="constant")


def build_onnx(net: FaceResNet) -> bytes:
    """The network as a serialised ONNX model: input ``chips`` (n, 150, 150, 3) float32
    pixel values 0..255, output ``descriptors`` (n, 128) float32."""
    from onnx import TensorProto, checker, helper

    g = _Graph()
    scale = np.float32(1 / 256)
    g.shapes["chips_nchw"] = (3, CHIP_SIZE, CHIP_SIZE)
    g.nodes.append(helper.make_node("Transpose", ["chips"], ["chips_t"], perm=[0, 3, 1, 2]))
    mean = g.const(net.mean_rgb.reshape(1, 3, 1, 1), "mean")
    g.nodes.append(helper.make_node("Sub", ["chips_t", mean], ["centred"]))
    g.nodes.append(helper.make_node("Mul", ["centred", g.const(np.array(scale), "scale")], ["chips_nchw"]))
    x = g.conv("chips_nchw", net.stem_conv, net.stem_affine, relu=True)
    x = g.pool("MaxPool", x, net.pool_size, net.pool_stride)
    for b in net.blocks:
        y = g.conv(x, b.conv_a, b.affine_a, relu=True)
        y = g.conv(y, b.conv_b, b.affine_b, relu=False)
        skip = g.pool("AveragePool", x, 2, 2) if b.downsample else x
        shape = tuple(max(i, j) for i, j in zip(g.shapes[y], g.shapes[skip], strict=True))
        x = g.node("Relu", [g.node("Add", [g.pad_to(y, shape), g.pad_to(skip, shape)], shape)], shape)
    c = g.shapes[x][0]
    pooled = g.node("Flatten", [g.node("GlobalAveragePool", [x], (c, 1, 1))], (c, 1, 1))
    g.nodes.append(helper.make_node("MatMul", [pooled, g.const(net.fc, "fc")], ["descriptors"]))
    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["n", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["n", net.fc.shape[1]])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="organizer")
    model.ir_version = 8
    checker.check_model(model)
    return model.SerializeToString()


# ---------------------------------------------------------------- the cached engine file

def default_engine_dir() -> Path:
    """``engines/`` next to the default library file (the user's data folder), so the
    engine is built once per user rather than once per library or per process."""
    from organizer.config import default_db_url

    url = default_db_url()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        return Path(url.removeprefix("sqlite:///")).expanduser().parent / "engines"
    return Path(tempfile.gettempdir()) / "organizer-engines"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def engine_file(model_path: Path | None = None, engine_dir: Path | None = None) -> Path:
    """The ONNX file for ``model_path``, built now if it is not there yet.

    Written to a temporary name and renamed, so two workers building at once never see
    half a file. If the folder is not writable the file goes to the temp folder."""
    model_path = model_path or default_model_path()
    name = f"{model_path.stem}-{_file_digest(model_path)}-b{BUILDER_VERSION}.onnx"
    for folder in (engine_dir or default_engine_dir(), Path(tempfile.gettempdir()) / "organizer-engines"):
        target = folder / name
        if target.is_file():
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            data = build_onnx(read_face_resnet(model_path))
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
            return target
        except OSError:
            continue
    raise EngineUnavailable("cannot write the embedding engine file anywhere")


# ---------------------------------------------------------------- running it

class _Session(Protocol):
    """What OnnxEmbedder uses of an onnxruntime InferenceSession (onnxruntime is untyped)."""

    def run(self, output_names: list[str], input_feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


@dataclass
class OnnxEmbedder:
    """Descriptors of aligned chips with onnxruntime; one call for any number of chips."""

    session: _Session
    path: Path
    name: str = "onnx"
    engine_id: str = ENGINE_ID
    #: largest difference from dlib's descriptor on the reference chip, set by load_engine
    check_difference: float | None = None

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"expected (n, {CHIP_SIZE}, {CHIP_SIZE}, 3) chips, got {chips.shape}")
        if len(chips) == 0:
            return np.empty((0, 128), np.float32)
        return self.session.run(["descriptors"], {"chips": chips.astype(np.float32)})[0]


@dataclass
class NumpyEmbedder:
    """The reference forward pass (numpy + its BLAS), for the benchmark and as a check."""

    net: FaceResNet
    name: str = "numpy"

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        from organizer.dlib_resnet import forward_numpy

        return forward_numpy(self.net, np.asarray(chips))


def _ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception types (they derive from Exception directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
             "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def onnx_embedder(path: Path | None = None, *, threads: int = 1) -> OnnxEmbedder:
    """An onnxruntime session on the engine file. One thread by default: the scanner
    already runs one worker per core, and more threads per worker only fight them."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EngineUnavailable(f"onnxruntime is not installed ({exc})") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    path = path or engine_file()
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return OnnxEmbedder(session, path)


def load_engine(reference: Callable[[np.ndarray], np.ndarray], *, path: Path | None = None,
                threads: int = 1) -> OnnxEmbedder:
    """The fast engine, once it has built, loaded and reproduced ``reference`` (dlib's own
    descriptor) on the reference chip to within SELF_CHECK_TOLERANCE.

    A cached engine file that does not load (a half-written disk, a newer onnxruntime
    that rejects it) is deleted and built again once. Every failure is raised as
    EngineUnavailable with the reason, for the caller's one-line notice."""
    try:
        errors: tuple[type[BaseException], ...] = (ImportError, OSError, ValueError, ModelFormatError, *_ort_errors())
    except ImportError as exc:
        raise EngineUnavailable(f"onnxruntime is not installed ({exc})") from exc
    try:
        try:
            embedder = onnx_embedder(path, threads=threads)
        except errors:
            if path is not None:
                raise
            engine_file().unlink(missing_ok=True)
            embedder = onnx_embedder(threads=threads)
        chips = reference_chip()[None]
        diff = float(np.abs(embedder(chips) - np.asarray(reference(chips), dtype=np.float64)).max())
    except EngineUnavailable:
        raise
    except errors as exc:
        raise EngineUnavailable(f"{type(exc).__name__}: {exc}") from exc
    if not diff <= SELF_CHECK_TOLERANCE:
        raise EngineUnavailable(f"differs from dlib's descriptor by {diff:.2g} on the reference chip")
    embedder.check_difference = diff
    return embedder


__all__ = ["BUILDER_VERSION", "ENGINE_ID", "SELF_CHECK_TOLERANCE", "EngineUnavailable", "NumpyEmbedder", "OnnxEmbedder",
           "build_onnx", "chips_to_tensor", "default_engine_dir", "engine_file", "load_engine", "onnx_embedder"]
