"""dlib's face-recognition ResNet, read from its own model file into numpy arrays.

``dlib_face_recognition_resnet_model_v1.dat`` (shipped by face_recognition_models) is a
dlib network serialised by dlib itself. dlib writes a network as nested objects, each
layer serialising the layers below it *before* its own parameters, so the file holds:
the loss layer, then one version number per layer from the top down, then the input
layer, then each layer's parameters from the bottom up. This module reads that file
(following dlib/dnn/core.h, layers.h, input.h, loss.h, cuda/tensor.h and serialize.h of
dlib 19.x/20.x) against the network definition in dlib's
tools/python/src/face_recognition.cpp, and offers a plain numpy forward pass that is the
reference for the faster engine in :mod:`organizer.embedding`.

The network (``anet_type``): input 150x150 RGB, ``(pixel - mean) / 256``; conv 7x7/32
stride 2, affine, relu, max-pool 3x3 stride 2; residual levels of 32 (3 blocks),
64 (1 down + 3), 128 (1 down + 2), 256 (1 down + 2) and 256 (1 down); global average
pool; fc 128 without bias. A block is conv 3x3 (stride 1, or 2 and no padding when it
downsamples), affine, relu, conv 3x3, affine; a down block adds the block to a 2x2
average pool of its input. The two sides of a down block may differ in size (8x8 in:
3x3 out of the convolution, 4x4 out of the pool) and in channels; dlib then adds them
zero-padded at the bottom/right/high-channel end, and so do we.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np


class ModelFormatError(ValueError):
    """The file is not the dlib network this module knows how to read."""


@dataclass(frozen=True)
class Conv:
    weight: np.ndarray      # (out, in, kh, kw) float32
    bias: np.ndarray        # (out,) float32
    stride: int
    padding: int


@dataclass(frozen=True)
class Affine:
    """dlib's inference-time batch norm: ``x * gamma + beta`` per channel."""
    gamma: np.ndarray       # (channels,) float32
    beta: np.ndarray


@dataclass(frozen=True)
class Block:
    conv_a: Conv
    affine_a: Affine
    conv_b: Conv
    affine_b: Affine
    downsample: bool        # add a 2x2/2 average pool of the input instead of the input


@dataclass(frozen=True)
class FaceResNet:
    mean_rgb: np.ndarray    # (3,) float32, subtracted from the 0..255 pixels
    stem_conv: Conv
    stem_affine: Affine
    pool_size: int
    pool_stride: int
    blocks: tuple[Block, ...]
    fc: np.ndarray          # (256, 128) float32: descriptor = pooled @ fc


# ---------------------------------------------------------------- the layer list

_BLOCK = ["affine", "con", "relu", "affine", "con"]
_RES = ["relu", "add_prev1", *_BLOCK, "tag1"]
_RES_DOWN = ["relu", "add_prev2", "avg_pool", "skip1", "tag2", *_BLOCK, "tag1"]
#: residual blocks from the top of the network down (alevel0 .. alevel4)
_LEVELS = [(256, "D"), (256, "RRD"), (128, "RRD"), (64, "RRRD"), (32, "RRR")]


def layer_kinds() -> list[str]:
    """dlib's layers of ``anet_type`` from the output down to (not including) the input."""
    kinds = ["fc", "avg_pool"]
    for _, pattern in _LEVELS:
        for b in pattern:
            kinds += _RES if b == "R" else _RES_DOWN
    return [*kinds, "max_pool", "relu", "affine", "con"]


# ---------------------------------------------------------------- dlib's primitives

class _Reader:
    """dlib's serialize.h encodings: compact ints, '0'/'1' bools, mantissa/exponent
    floats, length-prefixed strings, and tensors of raw little-endian float32."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ModelFormatError("unexpected end of the model file")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def read_int(self) -> int:
        head = self._take(1)[0]
        size = head & 0x0F
        if size == 0 or size > 8 or head & 0x70:
            raise ModelFormatError(f"bad integer control byte {head:#x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if head & 0x80 else value

    def read_bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise ModelFormatError(f"bad bool {ch!r} at {self.pos - 1}")
        return ch == b"1"

    def read_float(self) -> float:
        """float_details: value = mantissa * 2**exponent (exponent 32000.. = inf/-inf/nan)."""
        if self.data[self.pos] & 0x70:
            raise ModelFormatError("old ASCII float encoding is not supported")
        mantissa, exponent = self.read_int(), self.read_int()
        special = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}
        if exponent in special:
            return special[exponent]
        return float(np.ldexp(np.float64(mantissa), exponent))

    def read_str(self) -> str:
        return self._take(self.read_int()).decode("latin-1")

    def read_tensor(self) -> np.ndarray:
        if (version := self.read_int()) != 2:
            raise ModelFormatError(f"tensor version {version}, expected 2")
        shape = tuple(self.read_int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias(self) -> tuple[int, ...]:
        if (version := self.read_int()) != 1:
            raise ModelFormatError(f"alias_tensor version {version}, expected 1")
        return tuple(self.read_int() for _ in range(4))

    def expect(self, *names: str) -> str:
        name = self.read_str()
        if name not in names:
            raise ModelFormatError(f"found {name!r} where {' or '.join(names)} was expected")
        return name


# ---------------------------------------------------------------- one reader per layer type

def _read_con(r: _Reader) -> Conv:
    version = r.expect("con_4", "con_5", "con_6")
    params = r.read_tensor().ravel()
    num_filters, nr, nc = r.read_int(), r.read_int(), r.read_int()
    stride_y, stride_x, pad_y, pad_x = r.read_int(), r.read_int(), r.read_int(), r.read_int()
    filters, biases = r.read_alias(), r.read_alias()
    for _ in range(4):                      # learning-rate and weight-decay multipliers
        r.read_float()
    use_bias = r.read_bool() if version in ("con_5", "con_6") else True
    use_relu = r.read_bool() if version == "con_6" else False
    if stride_y != stride_x or pad_y != pad_x or nr != nc or use_relu:
        raise ModelFormatError("unsupported convolution (non-square or fused relu)")
    n_w = int(np.prod(filters))
    weight = params[:n_w].reshape(filters)
    if weight.shape[0] != num_filters or weight.shape[2:] != (nr, nc):
        raise ModelFormatError("convolution filters do not match their declared shape")
    bias = params[n_w:n_w + num_filters] if use_bias and biases[1] else np.zeros(num_filters, np.float32)
    return Conv(np.ascontiguousarray(weight), np.ascontiguousarray(bias), stride_y, pad_y)


def _read_affine(r: _Reader) -> Affine:
    version = r.expect("affine_", "affine_2", "bn_con2")
    if version == "bn_con2":
        return _read_bn_as_affine(r)
    params = r.read_tensor().ravel()
    gamma = r.read_alias()
    r.read_alias()                        # beta: same shape, right after gamma in params
    r.read_int()                                 # mode (conv / fc): per channel either way here
    if version == "affine_2" and r.read_bool():
        raise ModelFormatError("disabled affine layer")
    n = int(np.prod(gamma))
    return Affine(params[:n].copy(), params[n:2 * n].copy())


def _read_bn_as_affine(r: _Reader) -> Affine:
    """A batch-norm layer saved mid-training; dlib folds it into an affine layer on load
    (layers.h, affine_(const bn_&)) with its running statistics, in float32."""
    params = r.read_tensor().ravel()
    gamma = r.read_alias()
    r.read_alias()
    r.read_tensor(), r.read_tensor()                  # batch means / invstds (training only)
    running_means, running_vars = r.read_tensor().ravel(), r.read_tensor().ravel()
    r.read_int(), r.read_float()                      # num_updates, running_stats_window_size
    for _ in range(4):
        r.read_float()
    eps = np.float32(r.read_float())
    n = int(np.prod(gamma))
    g = params[:n] / np.sqrt(running_vars + eps)
    return Affine(g.astype(np.float32), (params[n:2 * n] - g * running_means).astype(np.float32))


def _read_pool(r: _Reader, name: str) -> tuple[int, int, int]:
    """(window, stride, padding); window 0 means the whole input (avg_pool_everything)."""
    r.expect(f"{name}_2")
    nr, nc, stride_y, stride_x, pad_y, pad_x = (r.read_int() for _ in range(6))
    if nr != nc or stride_y != stride_x or pad_y or pad_x:
        raise ModelFormatError(f"unsupported {name} ({nr}x{nc}/{stride_y}, padding {pad_y})")
    return nr, stride_y, pad_y


def _read_relu(r: _Reader) -> None:
    if r.expect("relu_", "relu_2") == "relu_2" and r.read_bool():
        raise ModelFormatError("disabled relu layer")


def _read_fc(r: _Reader) -> np.ndarray:
    version = r.expect("fc_2", "fc_3")
    num_outputs, num_inputs = r.read_int(), r.read_int()
    params = r.read_tensor()
    r.read_alias(), r.read_alias()      # weights, biases
    if r.read_int() != 1:                        # fc_bias_mode: FC_NO_BIAS
        raise ModelFormatError("expected fc_no_bias")
    for _ in range(4):
        r.read_float()
    if version == "fc_3":
        r.read_bool()
    return params.reshape(num_inputs, num_outputs).copy()


#: what one layer's parameters are read as: a convolution, an affine layer, a pool's
#: (window, stride, padding), the fc matrix, or nothing (relu, add_prev, tag and skip layers)
LayerDetails = Conv | Affine | tuple[int, int, int] | np.ndarray | None

_D = TypeVar("_D", Conv, Affine, tuple, np.ndarray)


def _read_details(r: _Reader, kind: str) -> LayerDetails:
    if kind == "con":
        return _read_con(r)
    if kind == "affine":
        return _read_affine(r)
    if kind == "relu":
        _read_relu(r)
        return None
    if kind in ("max_pool", "avg_pool"):
        return _read_pool(r, kind)
    if kind == "fc":
        return _read_fc(r)
    r.expect("add_prev_")
    return None


# ---------------------------------------------------------------- the whole file

def read_face_resnet(path: str | Path) -> FaceResNet:
    """The weights of ``dlib_face_recognition_resnet_model_v1.dat``, checked against the
    layer list of dlib's ``anet_type`` (a different network raises ModelFormatError)."""
    r = _Reader(Path(path).read_bytes())
    if r.read_int() != 1:
        raise ModelFormatError("not a dlib network with a loss layer")
    if r.expect("loss_metric_", "loss_metric_2") == "loss_metric_2":
        r.read_float(), r.read_float()                # margin, distance threshold (training only)
    kinds = layer_kinds()
    versions = [r.read_int() for _ in kinds]     # one per layer, top down
    for kind, version in zip(kinds, versions, strict=True):
        tag_like = kind.startswith(("tag", "skip"))
        if (tag_like and version != 1) or (not tag_like and version not in (1, 2, 3)):
            raise ModelFormatError(f"unexpected version {version} of a {kind} layer")
    r.expect("input_rgb_image_sized")
    mean_rgb = np.array([r.read_float(), r.read_float(), r.read_float()], dtype=np.float32)
    if (r.read_int(), r.read_int()) != (150, 150):
        raise ModelFormatError("expected a 150x150 input")
    details: list[LayerDetails] = []
    for i in range(len(kinds) - 1, -1, -1):  # bottom up
        kind = kinds[i]
        if kind.startswith(("tag", "skip")):
            details.append(None)
            continue
        details.append(_read_details(r, kind))
        r.read_bool(), r.read_bool(), r.read_bool()        # setup called, gradient stale, output disabled
        r.read_tensor(), r.read_tensor()              # x_grad, cached_output
        if i == len(kinds) - 1:             # the layer on the input: grad_final, expansion
            r.read_tensor()
            if versions[i] >= 3:
                r.read_int()
        elif versions[i] == 2:
            r.read_tensor()                      # params_grad
    if r.pos != len(r.data):
        raise ModelFormatError(f"{len(r.data) - r.pos} bytes left over after the network")
    return _assemble(list(zip(reversed(kinds), details, strict=True)), mean_rgb)


def _layer(details: LayerDetails, kind: type[_D]) -> _D:
    """``details`` as the ``kind`` of layer the checked layer list puts at its place."""
    if not isinstance(details, kind):
        raise ModelFormatError(f"expected a {kind.__name__} layer, found {type(details).__name__}")
    return details


def _assemble(layers: list[tuple[str, LayerDetails]], mean_rgb: np.ndarray) -> FaceResNet:
    """Group the bottom-up layer list into the stem, the residual blocks and the fc."""
    (_, stem_conv), (_, stem_affine), _, (_, pool) = layers[:4]
    blocks: list[Block] = []
    i = 4
    while layers[i][0] == "tag1":
        c_a, a_a, _, c_b, a_b = (d for _, d in layers[i + 1:i + 6])
        down = layers[i + 6][0] == "tag2"
        if down and layers[i + 8][1] != (2, 2, 0):
            raise ModelFormatError("expected a 2x2/2 average pool in a down block")
        blocks.append(Block(_layer(c_a, Conv), _layer(a_a, Affine), _layer(c_b, Conv), _layer(a_b, Affine), down))
        i += 6 + (3 if down else 0) + 2                 # tag2 skip1 avg_pool; add_prev relu
    (_, fc), = [layer for layer in layers[i:] if layer[0] == "fc"]
    size, stride, _ = _layer(pool, tuple)
    return FaceResNet(mean_rgb, _layer(stem_conv, Conv), _layer(stem_affine, Affine), size, stride, tuple(blocks),
                      _layer(fc, np.ndarray))


def default_model_path() -> Path:
    """The model file face_recognition uses, from the installed face_recognition_models."""
    import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location())


# ---------------------------------------------------------------- numpy forward pass

def _conv(x: np.ndarray, conv: Conv) -> np.ndarray:
    """Cross-correlation as dlib computes it, by im2col and one matrix product."""
    n, c, h, w = x.shape
    out_c, _, k, _ = conv.weight.shape
    p, s = conv.padding, conv.stride
    if p:
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    cols = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s][:, :, :oh, :ow]
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)
    out = cols @ conv.weight.reshape(out_c, -1).T + conv.bias
    return out.reshape(n, oh, ow, out_c).transpose(0, 3, 1, 2)


def _affine(x: np.ndarray, a: Affine) -> np.ndarray:
    return x * a.gamma[None, :, None, None] + a.beta[None, :, None, None]


def _pool(x: np.ndarray, size: int, stride: int, reduce: str) -> np.ndarray:
    h, w = x.shape[2:]
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))
    win = win[:, :, ::stride, ::stride][:, :, :oh, :ow]
    return win.max(axis=(4, 5)) if reduce == "max" else win.mean(axis=(4, 5), dtype=np.float32)


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's add_prev: the sum over the larger shape, the smaller one zero-extended."""
    shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape, np.float32)
    out[tuple(slice(0, d) for d in a.shape)] += a
    out[tuple(slice(0, d) for d in b.shape)] += b
    return out


def chips_to_tensor(chips: np.ndarray, mean_rgb: np.ndarray) -> np.ndarray:
    """(n, 150, 150, 3) uint8 chips -> (n, 3, 150, 150) float32 as dlib's input layer
    makes it; dividing by 256 is exact, so this is bit-identical to dlib's tensor."""
    x = np.asarray(chips, dtype=np.float32) - mean_rgb
    return np.ascontiguousarray((x / np.float32(256)).transpose(0, 3, 1, 2))


def forward_numpy(net: FaceResNet, chips: np.ndarray) -> np.ndarray:
    """128-d descriptors (float32) of aligned 150x150 RGB chips, layer by layer as dlib."""
    x = chips_to_tensor(chips, net.mean_rgb)
    x = np.maximum(_affine(_conv(x, net.stem_conv), net.stem_affine), 0)
    x = _pool(x, net.pool_size, net.pool_stride, "max")
    for b in net.blocks:
        y = np.maximum(_affine(_conv(x, b.conv_a), b.affine_a), 0)
        y = _affine(_conv(y, b.conv_b), b.affine_b)
        x = np.maximum(_add_padded(y, _pool(x, 2, 2, "avg") if b.downsample else x), 0)
    return x.mean(axis=(2, 3), dtype=np.float32) @ net.fc


__all__ = ["Affine", "Block", "Conv", "FaceResNet", "ModelFormatError", "chips_to_tensor",
           "default_model_path", "forward_numpy", "layer_kinds", "read_face_resnet"]
