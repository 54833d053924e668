"""The benchmark's layer sets and the arithmetic of their implicit GEMMs (pure Python: no torch needed).

A layer is a `Conv`: the arguments of one torch.nn.Conv{1,2,3}d or ConvTranspose{1,2,3}d call at a given batch.
`gemm_shapes(layer)` gives, per pass, the (groups, M, N, K) of the plain GEMM the pass amounts to; the benchmark times
torch.matmul/bmm of exactly that shape as the pass's "GEMM floor".
"""

from collections import namedtuple
from typing import Dict, List, Optional, Sequence, Tuple

PASSES = ("forward", "backward_data", "backward_weight")

_Conv = namedtuple("Conv", "name c k size kernel stride pad groups dilation transposed output_padding")


class Conv(_Conv):
    """One convolution at batch 1 (the batch is given where it is used). `size`, `kernel`, `stride`, `pad`,
    `dilation` and `output_padding` are tuples of the spatial rank (1, 2 or 3). For a transposed convolution `c`
    is its input's channels and `k` its output's, as in torch.nn.ConvTranspose2d(c, k, ...)."""

    @property
    def dims(self) -> int:
        return len(self.size)

    @property
    def taps(self) -> int:
        return _prod(self.kernel)

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.c == self.k

    def out_size(self) -> Tuple[int, ...]:
        return output_size(self)

    def describe(self, batch: int) -> str:
        x = "x".join(str(v) for v in self.size)
        kern = "x".join(str(v) for v in self.kernel)
        parts = ["N{} C{} K{} {} k{}".format(batch, self.c, self.k, x, kern)]
        if any(s != 1 for s in self.stride):
            parts.append("s" + "x".join(str(v) for v in self.stride) if len(set(self.stride)) > 1
                         else "s{}".format(self.stride[0]))
        if any(d != 1 for d in self.dilation):
            parts.append("d{}".format(self.dilation[0] if len(set(self.dilation)) == 1 else self.dilation))
        if self.groups > 1:
            parts.append("g{}".format(self.groups))
        if self.transposed:
            parts.append("transposed")
        return " ".join(parts)


def _tup(v, dims: int) -> Tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * dims
    v = tuple(int(x) for x in v)
    if len(v) != dims:
        raise ValueError("expected {} values, got {}".format(dims, v))
    return v


def conv(name: str, c: int, k: int, size, kernel, stride=1, pad=0, groups=1, dilation=1, transposed=False,
         output_padding=0, dims: Optional[int] = None) -> Conv:
    """A Conv with scalars broadcast to the spatial rank (taken from `size` when it is a tuple, else `dims`)."""
    if dims is None:
        dims = len(size) if not isinstance(size, int) else 2
    if c % groups or k % groups:
        raise ValueError("{}: channels {} and {} are not divisible by groups {}".format(name, c, k, groups))
    return Conv(name, c, k, _tup(size, dims), _tup(kernel, dims), _tup(stride, dims), _tup(pad, dims), groups,
                _tup(dilation, dims), bool(transposed), _tup(output_padding, dims))


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def output_size(layer: Conv) -> Tuple[int, ...]:
    """Spatial size of the output, with PyTorch's formulas (direct and transposed)."""
    out = []
    for i, n in enumerate(layer.size):
        k, s, p, d = layer.kernel[i], layer.stride[i], layer.pad[i], layer.dilation[i]
        if layer.transposed:
            o = (n - 1) * s - 2 * p + d * (k - 1) + layer.output_padding[i] + 1
        else:
            o = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if o < 1:
            raise ValueError("{}: empty output size {} in dimension {}".format(layer.name, o, i))
        out.append(o)
    return tuple(out)


def _direct_shapes(n: int, c: int, k: int, x: int, y: int, taps: int, g: int) -> Dict[str, Tuple[int, int, int, int]]:
    """(groups, M, N, K) per pass of a direct convolution with input pixels x, output pixels y."""
    return {
        "forward": (g, n * y, k // g, c // g * taps),
        "backward_data": (g, n * x, c // g, k // g * taps),
        "backward_weight": (g, k // g, c // g * taps, n * y),
    }


def gemm_shapes(layer: Conv, batch: int) -> Dict[str, Tuple[int, int, int, int]]:
    """The implicit GEMM of each pass as (batch_of_groups, M, N, K):

    forward          M = N*P*Q,  N = K/g,       K = C/g*R*S
    backward_data    M = N*H*W,  N = C/g,       K = K/g*R*S
    backward_weight  M = K/g,    N = C/g*R*S,   K = N*P*Q

    (H*W input pixels, P*Q output pixels, over every spatial dimension.) A transposed convolution is the data
    gradient of the direct convolution that maps its output back to its input (C and K swapped, input and output
    sizes swapped), so its forward pass is that convolution's backward_data GEMM and its backward_data pass that
    convolution's forward GEMM; the weight gradient is the same GEMM."""
    out = output_size(layer)
    if layer.transposed:
        eq = _direct_shapes(batch, layer.k, layer.c, _prod(out), _prod(layer.size), layer.taps, layer.groups)
        return {"forward": eq["backward_data"], "backward_data": eq["forward"],
                "backward_weight": eq["backward_weight"]}
    return _direct_shapes(batch, layer.c, layer.k, _prod(layer.size), _prod(out), layer.taps, layer.groups)


def conv_flops(layer: Conv, batch: int) -> int:
    """FLOPs of one pass: 2*N*K*P*Q*(C/groups)*R*S (output pixels of the direct convolution; for a transposed one
    its input pixels)."""
    pixels = _prod(layer.size) if layer.transposed else _prod(output_size(layer))
    return 2 * batch * layer.k * pixels * (layer.c // layer.groups) * layer.taps


def gemm_flops(shape: Tuple[int, int, int, int]) -> int:
    g, m, n, k = shape
    return 2 * g * m * n * k


def problem_key(layer: Conv, batch: int, dtype: str) -> tuple:
    """Identity of a convolution problem (what a per-problem cache or perf database would key on)."""
    return (layer.transposed, layer.size, layer.kernel, layer.stride, layer.pad, layer.dilation,
            layer.output_padding, layer.groups, batch, layer.c, layer.k, dtype)


# ----------------------------------------------------------------------------------------------------------------
# The sets


def _resnet50() -> List[Conv]:
    return [
        conv("stem_7x7_s2", 3, 64, 224, 7, 2, 3),
        conv("s1_1x1_64_64", 64, 64, 56, 1),
        conv("s1_3x3_64", 64, 64, 56, 3, 1, 1),
        conv("s1_1x1_64_256", 64, 256, 56, 1),
        conv("s1_1x1_256_64", 256, 64, 56, 1),
        conv("s2_3x3_128_s2", 128, 128, 56, 3, 2, 1),
        conv("s2_3x3_128", 128, 128, 28, 3, 1, 1),
        conv("s2_1x1_128_512", 128, 512, 28, 1),
        conv("s2_1x1_512_128", 512, 128, 28, 1),
        conv("s3_3x3_256", 256, 256, 14, 3, 1, 1),
        conv("s3_1x1_256_1024", 256, 1024, 14, 1),
        conv("s3_1x1_1024_256", 1024, 256, 14, 1),
        conv("s4_3x3_512", 512, 512, 7, 3, 1, 1),
        conv("s4_1x1_512_2048", 512, 2048, 7, 1),
        conv("s4_1x1_2048_512", 2048, 512, 7, 1),
        conv("grouped_3x3_256_g32", 256, 256, 28, 3, 1, 1, groups=32),
        conv("depthwise_3x3_256", 256, 256, 28, 3, 1, 1, groups=256),
    ]


def _mobilenetv2() -> List[Conv]:
    # torchvision's mobilenet_v2 at 224x224: stem, then one expand (1x1) / depthwise (3x3) / project (1x1) of
    # several blocks, and the last 1x1.
    return [
        conv("stem_3x3_s2_32", 3, 32, 224, 3, 2, 1),
        conv("b1_dw_3x3_32", 32, 32, 112, 3, 1, 1, groups=32),
        conv("b1_pw_32_16", 32, 16, 112, 1),
        conv("b2_exp_16_96", 16, 96, 112, 1),
        conv("b2_dw_3x3_96_s2", 96, 96, 112, 3, 2, 1, groups=96),
        conv("b2_pw_96_24", 96, 24, 56, 1),
        conv("b3_exp_24_144", 24, 144, 56, 1),
        conv("b3_dw_3x3_144", 144, 144, 56, 3, 1, 1, groups=144),
        conv("b3_pw_144_24", 144, 24, 56, 1),
        conv("b5_dw_3x3_192", 192, 192, 28, 3, 1, 1, groups=192),
        conv("b8_exp_64_384", 64, 384, 14, 1),
        conv("b8_dw_3x3_384", 384, 384, 14, 3, 1, 1, groups=384),
        conv("b8_pw_384_64", 384, 64, 14, 1),
        conv("b15_dw_3x3_960", 960, 960, 7, 3, 1, 1, groups=960),
        conv("b15_pw_960_160", 960, 160, 7, 1),
        conv("last_1x1_320_1280", 320, 1280, 7, 1),
    ]


def _resnext() -> List[Conv]:
    # ResNeXt-50 32x4d: the grouped 3x3 of each stage (and the strided one), plus a 1x1 reduction.
    return [
        conv("c2_1x1_256_128", 256, 128, 56, 1),
        conv("c2_3x3_128_g32", 128, 128, 56, 3, 1, 1, groups=32),
        conv("c3_3x3_256_g32_s2", 256, 256, 56, 3, 2, 1, groups=32),
        conv("c3_3x3_256_g32", 256, 256, 28, 3, 1, 1, groups=32),
        conv("c4_3x3_512_g32", 512, 512, 14, 3, 1, 1, groups=32),
        conv("c5_3x3_1024_g32", 1024, 1024, 7, 3, 1, 1, groups=32),
    ]


def _vgg() -> List[Conv]:
    # VGG-16's 3x3 convolutions, one per resolution plus the first.
    return [
        conv("conv1_1_3_64", 3, 64, 224, 3, 1, 1),
        conv("conv1_2_64_64", 64, 64, 224, 3, 1, 1),
        conv("conv2_2_128_128", 128, 128, 112, 3, 1, 1),
        conv("conv3_2_256_256", 256, 256, 56, 3, 1, 1),
        conv("conv4_2_512_512", 512, 512, 28, 3, 1, 1),
        conv("conv5_2_512_512", 512, 512, 14, 3, 1, 1),
    ]


def _audio1d() -> List[Conv]:
    # Conv1d: wav2letter-like (40 mel features, 1600 frames), WaveNet-like dilated causal layers on raw samples, and
    # a QuartzNet-like depthwise-separable pair.
    return [
        conv("w2l_in_40_250_k48_s2", 40, 250, (1600,), 48, 2, 23),
        conv("w2l_250_250_k7", 250, 250, (800,), 7, 1, 3),
        conv("w2l_250_2000_k32", 250, 2000, (800,), 32, 1, 16),
        conv("w2l_2000_2000_k1", 2000, 2000, (801,), 1),
        conv("wavenet_dil_64_128_k2_d8", 64, 128, (16000,), 2, 1, 0, dilation=8),
        conv("wavenet_res_64_64_k1", 64, 64, (16000,), 1),
        conv("qnet_dw_256_k33", 256, 256, (800,), 33, 1, 16, groups=256),
        conv("qnet_pw_256_256", 256, 256, (800,), 1),
    ]


def _video3d() -> List[Conv]:
    # Conv3d: C3D (16x112x112 clips) and R(2+1)D factorised (1,3,3) spatial / (3,1,1) temporal layers.
    return [
        conv("c3d_conv1a_3_64", 3, 64, (16, 112, 112), 3, 1, 1),
        conv("c3d_conv2a_64_128", 64, 128, (16, 56, 56), 3, 1, 1),
        conv("c3d_conv3b_256_256", 256, 256, (8, 28, 28), 3, 1, 1),
        conv("c3d_conv5b_512_512", 512, 512, (2, 7, 7), 3, 1, 1),
        conv("r21d_spatial_64_144", 64, 144, (8, 56, 56), (1, 3, 3), 1, (0, 1, 1)),
        conv("r21d_temporal_144_64", 144, 64, (8, 56, 56), (3, 1, 1), 1, (1, 0, 0)),
        conv("r3d_3x3x3_128_256_s2", 128, 256, (8, 28, 28), 3, 2, 1),
    ]


def _unet() -> List[Conv]:
    # The transposed (up-sampling) convolutions of a UNet decoder, and one of its 3x3 convolutions.
    return [
        conv("up_256_128_k2_s2", 256, 128, 16, 2, 2, transposed=True),
        conv("up_128_64_k2_s2", 128, 64, 32, 2, 2, transposed=True),
        conv("up_64_32_k4_s2", 64, 32, 64, 4, 2, 1, transposed=True),
        conv("dec_3x3_128_64", 128, 64, 64, 3, 1, 1),
    ]


# name -> (description, batch on a GPU, layers, layers of --quick)
LAYER_SETS = {
    "resnet50": ("ResNet-50 (with a ResNeXt grouped and a MobileNet depthwise layer)", 32, _resnet50(),
                 ["s1_3x3_64", "s2_1x1_512_128", "grouped_3x3_256_g32", "depthwise_3x3_256"]),
    "mobilenetv2": ("MobileNetV2: depthwise and pointwise", 32, _mobilenetv2(),
                    ["b3_dw_3x3_144", "b3_exp_24_144"]),
    "resnext": ("ResNeXt-50 32x4d: grouped", 32, _resnext(), ["c3_3x3_256_g32"]),
    "vgg": ("VGG-16: 3x3, big channels", 32, _vgg(), ["conv4_2_512_512"]),
    "audio1d": ("1-D audio (Conv1d): wav2letter, WaveNet, QuartzNet shapes", 32, _audio1d(),
                ["w2l_250_250_k7", "qnet_dw_256_k33"]),
    "video3d": ("3-D video (Conv3d): C3D and R(2+1)D shapes", 8, _video3d(), ["c3d_conv3b_256_256"]),
    "unet": ("UNet decoder: transposed convolutions", 32, _unet(), ["up_128_64_k2_s2"]),
}
DEFAULT_SETS = ("resnet50", "mobilenetv2", "resnext", "vgg", "audio1d", "video3d", "unet")


def set_names() -> List[str]:
    return list(LAYER_SETS)


def parse_sets(text: Optional[str]) -> List[str]:
    """Comma-separated set names -> list; ValueError naming the unknown ones and listing the valid ones."""
    if text is None:
        return list(DEFAULT_SETS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError("--sets is empty; valid sets: {}".format(", ".join(LAYER_SETS)))
    unknown = [n for n in names if n not in LAYER_SETS]
    if unknown:
        raise ValueError("unknown layer set(s): {}; valid sets: {}".format(", ".join(unknown), ", ".join(LAYER_SETS)))
    return list(dict.fromkeys(names))


def select_layers(sets: Sequence[str], names: Optional[str], quick: bool) -> List[Tuple[str, Conv]]:
    """(set, layer) pairs to run. `names` (comma-separated) picks layers within `sets`; ValueError on a name that no
    selected set has, listing the valid ones."""
    pool = [(s, layer) for s in sets for layer in LAYER_SETS[s][2]]
    if names is not None:
        wanted = [t.strip() for t in names.split(",") if t.strip()]
        valid = [layer.name for _, layer in pool]
        unknown = [n for n in wanted if n not in valid]
        if not wanted or unknown:
            raise ValueError("unknown layer(s): {}; valid layers of set(s) {}: {}".format(
                ", ".join(unknown) or "(none given)", ",".join(sets), ", ".join(valid)))
        return [(s, layer) for s, layer in pool if layer.name in wanted]
    if quick:
        return [(s, layer) for s, layer in pool if layer.name in LAYER_SETS[s][3]]
    return pool


def scaled(layer: Conv, factor: int) -> Conv:
    """A smaller layer of the same kind (the CPU smoke run): channels and sizes divided by `factor`, kernel, stride,
    padding, dilation and the depthwise/grouped nature kept."""
    if factor <= 1:
        return layer
    depthwise = layer.depthwise
    c = layer.c if layer.c <= 3 else max(1, layer.c // factor)
    k = max(1, layer.k // factor)
    if depthwise:
        c = k = max(1, layer.c // factor)
        groups = c
    else:
        groups = max(1, layer.groups // factor)
        while c % groups or k % groups:
            groups -= 1
    size = tuple(max(d * (kk - 1) + 1, n // factor) for n, kk, d in zip(layer.size, layer.kernel, layer.dilation))
    return layer._replace(c=c, k=k, groups=groups, size=size)
