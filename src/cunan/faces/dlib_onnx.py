"""Convert dlib's face-recognition ResNet (``.dat``) into an equivalent ONNX model."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "Affine",
    "Conv2d",
    "ConvAffine",
    "DlibModelFormatError",
    "DlibResnetWeights",
    "Pool2d",
    "ResidualBlock",
    "build_onnx_model",
    "convert",
    "read_dlib_resnet",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
_T = TypeVar("_T")
_Shape = tuple[int, int, int]  # (channels, rows, cols) of one sample

INPUT_NAME: Final = "chips"
OUTPUT_NAME: Final = "descriptors"

# Opset 17 / IR 8 keeps the model loadable by onnxruntime releases from 2022 onwards.
_OPSET: Final = 17
_IR_VERSION: Final = 8

# dlib's int encoding: 1 header byte (bit 7 = sign, low nibble = byte count), then the
# magnitude little-endian; bits 4-6 are never set by dlib, so they flag corruption.
_INT_SIGN_BIT: Final = 0x80
_INT_SIZE_MASK: Final = 0x0F
_INT_RESERVED_BITS: Final = 0x70
_MAX_INT_BYTES: Final = 8
# Beyond any double's range; dlib's inf/nan markers (exponent ~32000) land here.
_MAX_FLOAT_EXPONENT: Final = 2048
# Chains deeper than this cannot be a real network and would only waste time on garbage.
_MAX_CHAIN_LENGTH: Final = 100_000
_TENSOR_VERSION_RAW_FLOAT32: Final = 2
_ALIAS_TENSOR_VERSION: Final = 1
_LOSS_LAYER_VERSION: Final = 1
_ADD_LAYER_VERSION: Final = 2
_TAG_OR_SKIP_VERSION: Final = 1
_INPUT_ADD_LAYER_LATEST: Final = 3
_INPUT_ADD_LAYER_VERSIONS: Final = (2, _INPUT_ADD_LAYER_LATEST)
_AFFINE_CONV_MODE: Final = 0
_FC_NO_BIAS_MODE: Final = 1
# dlib divides (pixel - channel mean) by this constant in input_rgb_image(_sized).
_INPUT_SCALE: Final = 256.0


class DlibModelFormatError(ValueError):
    """Raised when a ``.dat`` file is not the dlib face-recognition ResNet this module knows."""

    def __init__(self, path: Path, offset: int, message: str) -> None:
        super().__init__(f"{path}: {message} (at byte offset {offset})")
        self.path = path
        self.offset = offset


@dataclass(frozen=True, eq=False)
class Conv2d:
    """A dlib ``con_`` layer; ``weight`` is (out, in, kh, kw) like ONNX's OIHW."""

    weight: FloatArray
    bias: FloatArray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True, eq=False)
class Affine:
    """A dlib ``affine_`` layer in CONV_MODE: ``y = gamma[c] * x + beta[c]``."""

    gamma: FloatArray
    beta: FloatArray


@dataclass(frozen=True, eq=False)
class ConvAffine:
    """A ``con_`` layer directly followed by an ``affine_`` one, as everywhere in this net."""

    conv: Conv2d
    affine: Affine


@dataclass(frozen=True)
class Pool2d:
    window: tuple[int, int]
    stride: tuple[int, int]


@dataclass(frozen=True, eq=False)
class ResidualBlock:
    """dlib's ``ares`` (``shortcut_pool`` is None) or ``ares_down`` residual block.

    Computes ``relu(second(relu(first(x))) + shortcut(x))``; when the two branches differ in
    shape, dlib's ``add_prev`` zero-extends each to the element-wise maximum shape.
    """

    first: ConvAffine
    second: ConvAffine
    shortcut_pool: Pool2d | None


@dataclass(frozen=True, eq=False)
class DlibResnetWeights:
    """Everything inference needs from the ``.dat`` file, input side first."""

    input_mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]
    stem: ConvAffine
    stem_pool: Pool2d
    blocks: tuple[ResidualBlock, ...]
    fc_weight: FloatArray  # (inputs, outputs): dlib computes x @ fc_weight
    loss_margin: float
    loss_distance_threshold: float


# ---------------------------------------------------------------------------------------------
# Reading dlib's serialization


class _Reader:
    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.data = data
        self.pos = 0

    def error(self, message: str, offset: int | None = None) -> DlibModelFormatError:
        return DlibModelFormatError(self.path, self.pos if offset is None else offset, message)

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.error(f"unexpected end of file while reading {what}")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def read_int(self, what: str) -> int:
        start = self.pos
        header = self.take(1, what)[0]
        size = header & _INT_SIZE_MASK
        if header & _INT_RESERVED_BITS or size > _MAX_INT_BYTES:
            raise self.error(f"invalid integer header byte 0x{header:02x} for {what}", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if header & _INT_SIGN_BIT else value

    def read_count(self, what: str) -> int:
        start = self.pos
        value = self.read_int(what)
        if value < 0:
            raise self.error(f"negative {what} ({value})", start)
        return value

    def read_float(self, what: str) -> float:
        # dlib writes floats portably as mantissa * 2**exponent; its inf/nan markers use
        # exponents far outside the range of a double, so range-checking rejects them too.
        start = self.pos
        mantissa = self.read_int(what)
        exponent = self.read_int(what)
        try:
            value = math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.error(f"non-finite float for {what}", start) from None
        if not math.isfinite(value) or abs(exponent) > _MAX_FLOAT_EXPONENT:
            raise self.error(f"non-finite float for {what}", start)
        return value

    def read_string(self, what: str) -> str:
        start = self.pos
        length = self.read_count(what)
        raw = self.take(length, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"non-ASCII bytes in {what}", start) from None

    def expect_string(self, expected: str) -> None:
        start = self.pos
        found = self.read_string(f"layer tag {expected!r}")
        if found != expected:
            raise self.error(f"expected {expected!r} but found {found!r}", start)

    def read_bool(self, what: str) -> bool:
        start = self.pos
        char = self.take(1, what)
        if char not in (b"0", b"1"):
            raise self.error(f"invalid bool byte {char!r} for {what}", start)
        return char == b"1"

    def expect_int(self, expected: int, what: str) -> None:
        start = self.pos
        found = self.read_int(what)
        if found != expected:
            raise self.error(f"expected {what} == {expected} but found {found}", start)

    def _tensor_header(self, what: str) -> tuple[tuple[int, int, int, int], int]:
        """Read a tensor's version and dims; return the dims and the offset of its data."""
        start = self.pos
        version = self.read_int(f"{what} version")
        if version != _TENSOR_VERSION_RAW_FLOAT32:
            raise self.error(
                f"unsupported tensor serialization version {version} for {what}", start
            )
        n, k, nr, nc = (self.read_count(f"{what} dimension") for _ in range(4))
        data_offset = self.pos
        self.take(4 * n * k * nr * nc, f"{what} data ({n}x{k}x{nr}x{nc} floats)")
        return (n, k, nr, nc), data_offset

    def read_tensor(self, what: str) -> FloatArray:
        start = self.pos
        dims, data_offset = self._tensor_header(what)
        raw = np.frombuffer(self.data, dtype="<f4", count=math.prod(dims), offset=data_offset)
        values = raw.astype(np.float32).reshape(dims)
        if not np.isfinite(values).all():
            raise self.error(f"non-finite values in {what}", start)
        values.setflags(write=False)
        return values

    def skip_tensor(self, what: str) -> None:
        self._tensor_header(what)

    def read_alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        self.expect_int(_ALIAS_TENSOR_VERSION, f"{what} version")
        n, k, nr, nc = (self.read_count(f"{what} dimension") for _ in range(4))
        return n, k, nr, nc


@dataclass(frozen=True, eq=False)
class _ConvLayer:
    conv: Conv2d


@dataclass(frozen=True, eq=False)
class _AffineLayer:
    affine: Affine


@dataclass(frozen=True)
class _ReluLayer:
    pass


@dataclass(frozen=True)
class _AddPrevLayer:
    pass


@dataclass(frozen=True)
class _PoolLayer:
    kind: str  # "max" or "avg"
    window: tuple[int, int]  # (0, 0) means "the whole input", as in avg_pool_everything
    stride: tuple[int, int]


@dataclass(frozen=True, eq=False)
class _FcLayer:
    weight: FloatArray


@dataclass(frozen=True)
class _TagOrSkip:
    pass


_Layer = _ConvLayer | _AffineLayer | _ReluLayer | _AddPrevLayer | _PoolLayer | _FcLayer


def _read_con(r: _Reader) -> _ConvLayer:
    start = r.pos
    params = r.read_tensor("con_ params")
    num_filters = r.read_count("con_ num_filters")
    kh = r.read_count("con_ nr")
    kw = r.read_count("con_ nc")
    stride = (r.read_count("con_ stride_y"), r.read_count("con_ stride_x"))
    padding = (r.read_count("con_ padding_y"), r.read_count("con_ padding_x"))
    filters = r.read_alias_tensor("con_ filters")
    biases = r.read_alias_tensor("con_ biases")
    for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.read_float(f"con_ {what} multiplier")
    out_ch, in_ch, fh, fw = filters
    n_weights = out_ch * in_ch * fh * fw
    if (
        out_ch != num_filters
        or (fh, fw) != (kh, kw)
        or biases != (1, num_filters, 1, 1)
        or params.size != n_weights + num_filters
        or min(stride) < 1
        or min(out_ch, in_ch, fh, fw) < 1
    ):
        raise r.error(
            f"inconsistent con_ layer: params {params.size}, filters {filters}, biases {biases}, "
            f"kernel {(kh, kw)}, stride {stride}",
            start,
        )
    flat = params.reshape(-1)
    weight = flat[:n_weights].reshape(filters)
    bias = flat[n_weights:]
    return _ConvLayer(Conv2d(weight=weight, bias=bias, stride=stride, padding=padding))


def _read_affine(r: _Reader) -> _AffineLayer:
    start = r.pos
    params = r.read_tensor("affine_ params")
    gamma_shape = r.read_alias_tensor("affine_ gamma")
    beta_shape = r.read_alias_tensor("affine_ beta")
    mode = r.read_int("affine_ mode")
    channels = gamma_shape[1]
    if (
        mode != _AFFINE_CONV_MODE
        or gamma_shape != (1, channels, 1, 1)
        or beta_shape != gamma_shape
        or params.size != 2 * channels
    ):
        raise r.error(
            f"unsupported affine_ layer: mode {mode}, gamma {gamma_shape}, beta {beta_shape}, "
            f"params {params.size}",
            start,
        )
    flat = params.reshape(-1)
    return _AffineLayer(Affine(gamma=flat[:channels], beta=flat[channels:]))


def _read_pool(r: _Reader, kind: str) -> _PoolLayer:
    start = r.pos
    window = (r.read_count(f"{kind}_pool nr"), r.read_count(f"{kind}_pool nc"))
    stride = (r.read_count(f"{kind}_pool stride_y"), r.read_count(f"{kind}_pool stride_x"))
    padding = (r.read_count(f"{kind}_pool padding_y"), r.read_count(f"{kind}_pool padding_x"))
    if padding != (0, 0) or min(stride) < 1:
        # dlib's handling of pooling padding is not reproduced here; this model never uses it.
        raise r.error(f"unsupported {kind}_pool padding {padding} / stride {stride}", start)
    return _PoolLayer(kind=kind, window=window, stride=stride)


def _read_fc(r: _Reader) -> _FcLayer:
    start = r.pos
    num_outputs = r.read_count("fc_ num_outputs")
    num_inputs = r.read_count("fc_ num_inputs")
    params = r.read_tensor("fc_ params")
    weights = r.read_alias_tensor("fc_ weights")
    biases = r.read_alias_tensor("fc_ biases")
    bias_mode = r.read_int("fc_ bias_mode")
    for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.read_float(f"fc_ {what} multiplier")
    if (
        bias_mode != _FC_NO_BIAS_MODE
        or weights != (num_inputs, num_outputs, 1, 1)
        or biases != (0, 0, 0, 0)
        or params.size != num_inputs * num_outputs
    ):
        raise r.error(
            f"unsupported fc_ layer: bias_mode {bias_mode}, weights {weights}, biases {biases}, "
            f"params {params.size}",
            start,
        )
    return _FcLayer(weight=params.reshape(num_inputs, num_outputs))


def _read_layer_details(r: _Reader) -> _Layer:
    start = r.pos
    name = r.read_string("layer tag")
    readers: dict[str, Callable[[], _Layer]] = {
        "con_4": lambda: _read_con(r),
        "affine_": lambda: _read_affine(r),
        "relu_": _ReluLayer,
        "add_prev_": _AddPrevLayer,
        "max_pool_2": lambda: _read_pool(r, "max"),
        "avg_pool_2": lambda: _read_pool(r, "avg"),
        "fc_2": lambda: _read_fc(r),
    }
    reader = readers.get(name)
    if reader is None:
        raise r.error(f"unsupported layer type {name!r}", start)
    return reader()


def _skip_add_layer_state(r: _Reader, version: int, *, on_input: bool) -> None:
    # Training-time bookkeeping (setup flags, cached activations and gradients) that dlib
    # stores after each layer's parameters; none of it affects inference.
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "output_disabled"):
        r.read_bool(what)
    for what in ("x_grad", "cached_output", "grad_final" if on_input else "params_grad"):
        r.skip_tensor(what)
    if on_input and version >= _INPUT_ADD_LAYER_LATEST:
        r.read_count("sample_expansion_factor")


def _read_input_layer(r: _Reader) -> tuple[tuple[float, float, float], tuple[int, int]]:
    r.expect_string("input_rgb_image_sized")
    mean = (r.read_float("avg_red"), r.read_float("avg_green"), r.read_float("avg_blue"))
    size = (r.read_count("input rows"), r.read_count("input columns"))
    if min(size) < 1:
        raise r.error(f"invalid input size {size}")
    return mean, size


_Item = tuple[int, _Layer | _TagOrSkip]  # (byte offset where the layer is described, layer)


@dataclass(frozen=True, eq=False)
class _Stream:
    mean: tuple[float, float, float]
    size: tuple[int, int]
    sequence: list[_Item]  # input to output
    margin: float
    distance_threshold: float


def _read_stream(r: _Reader) -> _Stream:
    r.expect_int(_LOSS_LAYER_VERSION, "add_loss_layer version")
    r.expect_string("loss_metric_2")
    margin = r.read_float("loss_metric margin")
    distance_threshold = r.read_float("loss_metric distance threshold")

    # Each wrapper writes its version before recursing into the layers below it, so the file
    # starts with the versions of all wrappers from the output down to the input. Tag and
    # skip wrappers (version 1) carry nothing else; add_layer (version 2, or 2..3 for the one
    # sitting on the input layer) later writes its parameters, input side first.
    versions: list[tuple[int, int]] = []
    while True:
        mark = r.pos
        value = r.read_int("layer wrapper version")
        if value not in (_TAG_OR_SKIP_VERSION, _ADD_LAYER_VERSION, _INPUT_ADD_LAYER_LATEST):
            # The input layer's name string follows; its length prefix ends the chain.
            r.pos = mark
            break
        versions.append((mark, value))
        if len(versions) > _MAX_CHAIN_LENGTH:
            raise r.error("implausibly deep layer chain")
    if not versions or versions[-1][1] not in _INPUT_ADD_LAYER_VERSIONS:
        raise r.error("the layer chain does not end in an add_layer on the input layer")
    if any(version == _INPUT_ADD_LAYER_LATEST for _, version in versions[:-1]):
        raise r.error("add_layer version 3 found away from the input layer")

    mean, size = _read_input_layer(r)

    sequence: list[_Item] = []
    innermost = len(versions) - 1
    for index in range(innermost, -1, -1):
        mark, version = versions[index]
        if version == _TAG_OR_SKIP_VERSION:
            sequence.append((mark, _TagOrSkip()))
            continue
        start = r.pos
        sequence.append((start, _read_layer_details(r)))
        _skip_add_layer_state(r, version, on_input=index == innermost)
    if r.pos != len(r.data):
        raise r.error(f"{len(r.data) - r.pos} unexpected trailing bytes")
    return _Stream(mean, size, sequence, margin, distance_threshold)


class _Matcher:
    """Walks the input-to-output layer sequence checking it has dlib's ``anet_type`` shape.

    Also tracks the (channels, rows, cols) activation shape so that weights which do not fit
    together are reported at the layer where they stop fitting.
    """

    def __init__(self, r: _Reader, sequence: list[_Item], shape: _Shape) -> None:
        self.r = r
        self.sequence = sequence
        self.index = 0
        self.offset = sequence[0][0] if sequence else r.pos
        self.shape = shape

    def error(self, message: str) -> DlibModelFormatError:
        return self.r.error(f"layer {self.index} (counting from the input): {message}", self.offset)

    def at_end(self) -> bool:
        return self.index >= len(self.sequence)

    def at_tag(self) -> bool:
        return not self.at_end() and isinstance(self.sequence[self.index][1], _TagOrSkip)

    def next_of(self, kind: type[_T], what: str) -> _T:
        if self.at_end():
            raise self.error(f"expected {what}, found the end of the network")
        self.offset, item = self.sequence[self.index]
        if not isinstance(item, kind):
            raise self.error(f"expected {what}, found {type(item).__name__.strip('_')}")
        self.index += 1
        return item

    def shape_after(self, step: Callable[[_Shape], _Shape], shape: _Shape) -> _Shape:
        try:
            return step(shape)
        except ValueError as exc:
            raise self.error(str(exc)) from None

    def conv_affine(self, shape: _Shape) -> tuple[ConvAffine, _Shape]:
        conv = self.next_of(_ConvLayer, "con").conv
        out = self.shape_after(lambda s: _conv_shape(s, conv), shape)
        affine = self.next_of(_AffineLayer, "affine").affine
        if affine.gamma.shape[0] != out[0]:
            raise self.error("affine channel count differs from the preceding convolution")
        return ConvAffine(conv=conv, affine=affine), out

    def pool(self, kind: str) -> _PoolLayer:
        layer = self.next_of(_PoolLayer, f"{kind}_pool")
        if layer.kind != kind:
            raise self.error(f"expected {kind}_pool, found {layer.kind}_pool")
        return layer

    def fixed_pool(self, kind: str, shape: _Shape) -> tuple[Pool2d, _Shape]:
        layer = self.pool(kind)
        if min(layer.window) < 1:
            raise self.error(f"{kind}_pool here must have a fixed window, not {layer.window}")
        pool = Pool2d(window=layer.window, stride=layer.stride)
        return pool, self.shape_after(lambda s: _pool_shape(s, pool), shape)

    def stem(self) -> tuple[ConvAffine, Pool2d]:
        stem, shape = self.conv_affine(self.shape)
        self.next_of(_ReluLayer, "relu")
        pool, self.shape = self.fixed_pool("max", shape)
        return stem, pool

    def block(self) -> ResidualBlock:
        self.next_of(_TagOrSkip, "tag1")
        first, shape = self.conv_affine(self.shape)
        self.next_of(_ReluLayer, "relu")
        second, shape = self.conv_affine(shape)
        shortcut_pool: Pool2d | None = None
        if self.at_tag():
            self.next_of(_TagOrSkip, "tag2")
            self.next_of(_TagOrSkip, "skip1")
            shortcut_pool, _ = self.fixed_pool("avg", self.shape)
        self.next_of(_AddPrevLayer, "add_prev")
        self.next_of(_ReluLayer, "relu")
        block = ResidualBlock(first=first, second=second, shortcut_pool=shortcut_pool)
        self.shape = _block_shapes(self.shape, block)[2]
        return block

    def head(self) -> FloatArray:
        layer = self.pool("avg")
        if layer.window != (0, 0) or layer.stride != (1, 1):
            raise self.error(f"expected avg_pool_everything, found window {layer.window}")
        weight = self.next_of(_FcLayer, "fc").weight
        if weight.shape[0] != self.shape[0]:
            raise self.error(f"fc expects {weight.shape[0]} inputs but gets {self.shape[0]}")
        if not self.at_end():
            self.offset = self.sequence[self.index][0]
            raise self.error("unexpected layers after the fc layer")
        return weight


def _assemble(r: _Reader, stream: _Stream) -> DlibResnetWeights:
    m = _Matcher(r, stream.sequence, (3, *stream.size))
    stem, stem_pool = m.stem()
    blocks: list[ResidualBlock] = []
    while m.at_tag():
        blocks.append(m.block())
    fc_weight = m.head()
    return DlibResnetWeights(
        input_mean_rgb=stream.mean,
        input_size=stream.size,
        stem=stem,
        stem_pool=stem_pool,
        blocks=tuple(blocks),
        fc_weight=fc_weight,
        loss_margin=stream.margin,
        loss_distance_threshold=stream.distance_threshold,
    )


def read_dlib_resnet(path: Path) -> DlibResnetWeights:
    """Parse dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (``anet_type``) weights."""
    path = Path(path)
    r = _Reader(path, path.read_bytes())
    weights = _assemble(r, _read_stream(r))
    logger.debug("read %s: %d residual blocks", path, len(weights.blocks))
    return weights


# ---------------------------------------------------------------------------------------------
# Shapes (dlib's size arithmetic: out = 1 + (in + 2 * pad - window) // stride)


def _window_output(size: int, window: int, stride: int, pad: int) -> int:
    if size + 2 * pad < window:
        raise ValueError(f"window {window} larger than padded input {size + 2 * pad}")
    return 1 + (size + 2 * pad - window) // stride


def _conv_shape(shape: _Shape, conv: Conv2d) -> _Shape:
    out_ch, in_ch, kh, kw = conv.weight.shape
    if in_ch != shape[0]:
        raise ValueError(f"convolution expects {in_ch} channels but gets {shape[0]}")
    return (
        out_ch,
        _window_output(shape[1], kh, conv.stride[0], conv.padding[0]),
        _window_output(shape[2], kw, conv.stride[1], conv.padding[1]),
    )


def _pool_shape(shape: _Shape, pool: Pool2d) -> _Shape:
    return (
        shape[0],
        _window_output(shape[1], pool.window[0], pool.stride[0], 0),
        _window_output(shape[2], pool.window[1], pool.stride[1], 0),
    )


def _block_shapes(shape: _Shape, block: ResidualBlock) -> tuple[_Shape, _Shape, _Shape]:
    """Return (residual branch, shortcut branch, block output) shapes."""
    branch = _conv_shape(_conv_shape(shape, block.first.conv), block.second.conv)
    shortcut = shape if block.shortcut_pool is None else _pool_shape(shape, block.shortcut_pool)
    merged = (
        max(branch[0], shortcut[0]),
        max(branch[1], shortcut[1]),
        max(branch[2], shortcut[2]),
    )
    return branch, shortcut, merged


# ---------------------------------------------------------------------------------------------
# ONNX graph


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counter = 0

    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def constant(self, prefix: str, value: npt.NDArray[np.generic]) -> str:
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(
        self, op_type: str, inputs: list[str], output: str | None = None, **attrs: object
    ) -> str:
        out = output or self.fresh(op_type.lower())
        node = helper.make_node(op_type, inputs, [out], name=out)
        node.attribute.extend(helper.make_attribute(key, value) for key, value in attrs.items())
        self.nodes.append(node)
        return out


def _conv_affine(g: _GraphBuilder, x: str, layer: ConvAffine, *, fold_affine: bool) -> str:
    conv = layer.conv
    pads = [conv.padding[0], conv.padding[1], conv.padding[0], conv.padding[1]]
    if fold_affine:
        # Exact in real arithmetic and ~1e-7 relative in float32, far inside the 1e-4 budget.
        # onnxruntime performs the same fusion itself, but only when graph optimisation is on;
        # folding here keeps the file smaller and fast under any session settings.
        gamma = layer.affine.gamma.astype(np.float64)
        beta = layer.affine.beta.astype(np.float64)
        weight = (conv.weight.astype(np.float64) * gamma[:, None, None, None]).astype(np.float32)
        bias = (conv.bias.astype(np.float64) * gamma + beta).astype(np.float32)
        return g.op(
            "Conv",
            [x, g.constant("w", weight), g.constant("b", bias)],
            strides=list(conv.stride),
            pads=pads,
            kernel_shape=list(conv.weight.shape[2:]),
        )
    y = g.op(
        "Conv",
        [x, g.constant("w", conv.weight), g.constant("b", conv.bias)],
        strides=list(conv.stride),
        pads=pads,
        kernel_shape=list(conv.weight.shape[2:]),
    )
    y = g.op("Mul", [y, g.constant("gamma", layer.affine.gamma.reshape(1, -1, 1, 1))])
    return g.op("Add", [y, g.constant("beta", layer.affine.beta.reshape(1, -1, 1, 1))])


def _zero_extend(g: _GraphBuilder, x: str, shape: _Shape, target: _Shape) -> str:
    # dlib's add_prev adds tensors of different sizes by treating missing trailing channels,
    # rows and columns as zeros, so pad only at the end of each axis.
    grow = [t - s for s, t in zip(shape, target, strict=True)]
    if not any(grow):
        return x
    pads = np.array([0, 0, 0, 0, 0, *grow], dtype=np.int64)
    return g.op("Pad", [x, g.constant("pads", pads)], mode="constant")


def build_onnx_model(weights: DlibResnetWeights, *, fold_affine: bool = True) -> onnx.ModelProto:
    """Build an ONNX model computing dlib's descriptors from uint8 NHWC RGB chips.

    Input ``chips``: uint8 [N, rows, cols, 3] (150x150 for the shipped model), RGB order as
    ``dlib.get_face_chip`` returns it. Output ``descriptors``: float32 [N, 128], unnormalised,
    like ``face_recognition_model_v1.compute_face_descriptor``. ``fold_affine=False`` keeps
    dlib's affine layers as separate Mul/Add nodes (useful only for debugging).
    """
    rows, cols = weights.input_size
    g = _GraphBuilder()

    x = g.op("Transpose", [INPUT_NAME], perm=[0, 3, 1, 2])
    x = g.op("Cast", [x], to=TensorProto.FLOAT)
    mean = np.array(weights.input_mean_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    x = g.op("Sub", [x, g.constant("mean", mean)])
    # Multiplying by 1/256 is bit-identical to dlib's division since 256 is a power of two.
    x = g.op("Mul", [x, g.constant("scale", np.array(1.0 / _INPUT_SCALE, dtype=np.float32))])

    x = g.op("Relu", [_conv_affine(g, x, weights.stem, fold_affine=fold_affine)])
    pool = weights.stem_pool
    x = g.op("MaxPool", [x], kernel_shape=list(pool.window), strides=list(pool.stride))
    shape = _pool_shape(_conv_shape((3, rows, cols), weights.stem.conv), pool)

    for block in weights.blocks:
        branch_shape, shortcut_shape, shape_out = _block_shapes(shape, block)
        y = g.op("Relu", [_conv_affine(g, x, block.first, fold_affine=fold_affine)])
        y = _conv_affine(g, y, block.second, fold_affine=fold_affine)
        shortcut = x
        if block.shortcut_pool is not None:
            shortcut = g.op(
                "AveragePool",
                [x],
                kernel_shape=list(block.shortcut_pool.window),
                strides=list(block.shortcut_pool.stride),
            )
        y = _zero_extend(g, y, branch_shape, shape_out)
        shortcut = _zero_extend(g, shortcut, shortcut_shape, shape_out)
        x = g.op("Relu", [g.op("Add", [y, shortcut])])
        shape = shape_out

    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    g.op("MatMul", [x, g.constant("fc", weights.fc_weight)], output=OUTPUT_NAME)

    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", rows, cols, 3])],
        [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, ["N", weights.fc_weight.shape[1]]
            )
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="cunan.faces.dlib_onnx",
    )
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


def convert(dat_path: Path, onnx_path: Path) -> None:
    """Convert a dlib face-recognition ``.dat`` into an ONNX file, replacing it atomically."""
    onnx_path = Path(onnx_path)
    model = build_onnx_model(read_dlib_resnet(Path(dat_path)))
    payload = model.SerializeToString()
    fd, tmp_name = tempfile.mkstemp(
        dir=onnx_path.parent, prefix=f".{onnx_path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp creates the file owner-only; a model file is meant to be readable.
            os.fchmod(handle.fileno(), 0o644)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        # Path.replace is os.replace: readers see either the old file or the complete new one.
        Path(tmp_name).replace(onnx_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    logger.info("wrote %s (%d bytes) from %s", onnx_path, len(payload), dat_path)
