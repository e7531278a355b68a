"""EnCodec's SEANet decoder layers as streaming stages: each fed its input piece by piece.

A stage keeps exactly the input it still needs (a convolution's last `span` samples, the last
input of a transposed convolution, the LSTM's hidden and cell state) and returns
from each `push` only the outputs no later input can change. `flush`, at the end of the stream,
pads the right edge as the one-shot forward does and returns the rest. Chained, the stages
compute the one-shot decode of the whole sequence, each output once.

A stage takes and gives `[B, channels, time]` (CHANNELS, transformers' layout) or `[B, time,
channels]` (TIME): after the LSTM the chain runs time-major, where a transposed convolution's
product comes out in audio order, a convolution is a product per tap on contiguous rows, and
joining a piece to the samples kept from the last one is a contiguous copy. `Chain` converts
between stages that differ, and takes and gives CHANNELS itself. A stage's `state()` is always
channel-major, whatever it holds.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from daemon.models.musicgen.packed_linear import PackedLinear
from daemon.native import residual_unit
from daemon.native.int8_matvec import PackedInt8

State = dict[str, torch.Tensor]

#: Layouts of a stage's inputs and outputs: `[B, channels, time]`, `[B, time, channels]`, or whichever
#: it is given (element-wise stages).
CHANNELS, TIME, ANY = "channels", "time", "any"


def to_layout(x: torch.Tensor, have: str, want: str) -> torch.Tensor:
    """`x` (in layout `have`) in layout `want`, contiguous where it was converted."""
    if have == want or want == ANY:
        return x
    return x.transpose(1, 2).contiguous()


def time_dim(layout: str) -> int:
    return 1 if layout == TIME else -1


def cat_time(a: torch.Tensor, b: torch.Tensor, layout: str) -> torch.Tensor:
    """`a` then `b` along time (either may be empty)."""
    dim = time_dim(layout)
    if not a.shape[dim]:
        return b
    return torch.cat([a, b], dim=dim) if b.shape[dim] else a


def _empty(like: torch.Tensor, batch: int, channels: int, layout: str) -> torch.Tensor:
    return like.new_zeros((batch, 0, channels) if layout == TIME else (batch, channels, 0))


def pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the time axis as transformers' `EncodecConv1d._pad1d` does: where `x` is too short to
    reflect, it is first extended with zeros (which the reflection then sees) and cut back after."""
    if not left and not right:
        return x
    if mode != "reflect":
        return F.pad(x, (left, right), mode)
    extra = max(0, max(left, right) - x.shape[-1] + 1)
    padded = F.pad(F.pad(x, (0, extra)), (left, right), "reflect")
    return padded[..., :padded.shape[-1] - extra]


# -- Specs: one layer's weights and geometry, shared by every stream of a model ------------------


@dataclass(frozen=True, eq=False)
class ConvSpec:
    """A stride-1 `EncodecConv1d`: `weight` `[out, in, kernel]` (weight norm applied once)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    dilation: int
    pad_left: int
    pad_right: int
    pad_mode: str

    @property
    def span(self) -> int:
        """Inputs an output reads beyond its first: (kernel - 1) * dilation."""
        return (self.weight.shape[-1] - 1) * self.dilation

    #: Output channels up to which the convolution runs as one product of every tap and shifted adds
    #: (`taps`): oneDNN's convolution is slow for few outputs (EnCodec's last layer, 64 to 1 channel
    #: over 7 taps: 2.4 against 0.44 ms a 25-frame chunk on 2 cores of an AMD EPYC Zen 4).
    TAPS_MAX_OUT_CHANNELS = 4

    @functools.cached_property
    def tap_weights(self) -> tuple[torch.Tensor, ...]:
        """Per tap `[in, out]`: time-major rows times one tap's weights."""
        return tuple(self.weight[:, :, j].t().contiguous() for j in range(self.weight.shape[-1]))

    @functools.cached_property
    def taps(self) -> torch.Tensor | None:
        """`[kernel * out, in]`, tap-major, for convolutions of few outputs; else None."""
        out, inputs, kernel = self.weight.shape
        if out > self.TAPS_MAX_OUT_CHANNELS:
            return None
        return self.weight.permute(2, 0, 1).reshape(kernel * out, inputs).contiguous()

    @functools.cached_property
    def tap_major(self) -> torch.Tensor | None:
        """`[out, kernel, in]` for riffd's kernel of few outputs (conv_taps.c), where it runs and the
        convolution has few outputs (`taps`); else None."""
        from daemon.native import conv_taps

        if self.taps is None:
            return None
        weights = self.weight.permute(0, 2, 1).contiguous()
        return weights if conv_taps.fits(weights) else None

    @functools.cached_property
    def panels(self) -> torch.Tensor:
        """The weights as riffd's residual-unit kernel takes them (residual_unit.pack), packed once."""
        return residual_unit.pack(self.weight)

    @functools.cached_property
    def unfolded(self) -> PackedLinear:
        """`[out, kernel * in]` (columns tap-major) and the bias, packed once, for a chunk's unfolded
        time-major inputs: EnCodec's first layer (128 to 1024 channels over 7 taps) as one product of
        25 rows ran 0.33-0.40 against PyTorch's convolution's 0.67-0.83 ms (its slow path for few
        samples, then a copy to the LSTM's layout; 2 cores of an AMD EPYC Zen 4)."""
        out, inputs, kernel = self.weight.shape
        return PackedLinear(self.weight.permute(0, 2, 1).reshape(out, kernel * inputs).contiguous(), self.bias)


@dataclass(frozen=True, eq=False)
class ConvTransposeSpec:
    """An `EncodecConvTranspose1d` as one matrix product per output block. EnCodec's kernels are
    twice the stride, so output block i (`stride` samples) is made by inputs i - 1 and i alone:
    `matrix` `[stride * out, 2 * in]` (the kernel zero-padded to twice the stride) multiplies the
    two inputs side by side, the earlier one first, its rows ordered (tap, out channel). A
    time-major pair of inputs' product row is then a block of time-major audio, whole: no partial
    sums are written and added again."""

    matrix: torch.Tensor
    bias: torch.Tensor | None
    out_channels: int
    stride: int
    tail: int  # kernel - stride: outputs past the last input's block, before trimming
    pad_left: int
    pad_right: int

    @classmethod
    def from_weight(cls, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, pad_left: int,
                    pad_right: int) -> ConvTransposeSpec:
        """`weight` `[in, out, kernel]` as nn.ConvTranspose1d holds it; kernel <= 2 * stride."""
        inputs, out, kernel = weight.shape
        if kernel > 2 * stride:
            raise ValueError(f"transposed convolution kernel {kernel} longer than twice its stride {stride}")
        # [in, out, block, tap]: block 0 is what an input adds to its own block, block 1 to the next one,
        # so the earlier input of a pair reads block 1's taps.
        padded = F.pad(weight, (0, 2 * stride - kernel)).view(inputs, out, 2, stride)
        matrix = padded.flip(2).permute(3, 1, 2, 0).reshape(stride * out, 2 * inputs).contiguous()
        return cls(matrix, bias, out, stride, kernel - stride, pad_left, pad_right)

    @property
    def in_channels(self) -> int:
        return self.matrix.shape[1] // 2

    @functools.cached_property
    def product(self) -> PackedLinear:
        """`matrix` for a chunk's time-major input pairs, packed once (packed_linear.py: the first
        layer's 25 rows by 32 MB of weights ran at 35-45 % of a large product's rate through
        F.linear), the bias on every sample of the block."""
        return PackedLinear(self.matrix, None if self.bias is None else self.bias.repeat(self.stride))


@dataclass(frozen=True, eq=False)
class EluSpec:
    alpha: float


@dataclass(frozen=True, eq=False)
class LstmSpec:
    """`EncodecLSTM`'s weights per layer (PyTorch's gate order i, f, g, o); its output is the
    LSTM's plus its input."""

    lstm: torch.nn.LSTM  # the checkpoint's own, for long pieces
    weight_ih: tuple[torch.Tensor, ...]  # [4H, in]
    weight_hh: tuple[torch.Tensor, ...]  # [4H, H], the checkpoint's own, for riffd's LSTM kernel
    bias: tuple[torch.Tensor, ...]  # [4H]: b_ih + b_hh
    hidden_size: int
    # [4H, H] bfloat16 copies of the recurrent weights for riffd's matmul kernel (`with_bfloat16_recurrence`);
    # empty: float32's own product.
    weight_hh_bf16: tuple[torch.Tensor, ...] = ()
    # The recurrent weights as int8 codes times a scale per row for riffd's int8 kernel
    # (`with_int8_recurrence`); empty: the float32 or bfloat16 weights above.
    weight_hh_int8: tuple[PackedInt8, ...] = ()

    @classmethod
    def from_lstm(cls, lstm: torch.nn.LSTM) -> LstmSpec:
        layers = range(lstm.num_layers)
        zeros = lstm.weight_ih_l0.new_zeros(4 * lstm.hidden_size)
        return cls(
            lstm=lstm,
            weight_ih=tuple(getattr(lstm, f"weight_ih_l{i}").detach() for i in layers),
            weight_hh=tuple(getattr(lstm, f"weight_hh_l{i}").detach().contiguous() for i in layers),
            bias=tuple((getattr(lstm, f"bias_ih_l{i}").detach() + getattr(lstm, f"bias_hh_l{i}").detach())
                       if lstm.bias else zeros for i in layers),
            hidden_size=lstm.hidden_size,
        )

    def with_bfloat16_recurrence(self) -> LstmSpec:
        """This LSTM with its step-by-step recurrent products on bfloat16 weights through riffd's
        LSTM kernel (float32 sums), where the kernel runs: a stream's per-frame product reads
        the recurrent weights (16 MB a layer for EnCodec 32 kHz) once per frame, so half the bytes
        is most of the saving. random/musicgen-small's codec: 90 dB against float32's audio; a 16 MB
        product 0.76 against 1.04 ms with the weights out of cache (AMD EPYC Zen 4, 2 threads)."""
        from daemon.native import f32_matmul

        weights = tuple(w.to(torch.bfloat16).contiguous() for w in self.weight_hh)
        if not f32_matmul.max_rows() or not all(f32_matmul.fits(w) for w in weights):
            return self
        return dataclasses.replace(self, weight_hh_bf16=weights)

    def with_int8_recurrence(self) -> LstmSpec:
        """This LSTM with its step-by-step recurrent products on int8 weights (per-row scales, round to
        nearest) through riffd's LSTM and int8 kernels, where they run; else `with_bfloat16_recurrence`.
        A stream's step reads the recurrent weights once (8 MB a layer as bfloat16 for EnCodec 32 kHz,
        from the L3 cache within a chunk, whose bandwidth bounds it; AVX-512 BF16's dot products did
        not run it faster): int8 halves the bytes again. The LSTM stage as the daemon runs it, 12.2
        against 19.1 ms per second of audio (2 threads of an AMD EPYC Zen 4), at 95.8 dB of float32's
        audio (bfloat16's: 103.2; random/musicgen-small's codec; bar 60 dB,
        tests/musicgen/test_streaming_codec.py)."""
        from daemon.native import NativeUnavailable, int8_matvec
        from daemon.native import lstm as lstm_kernel

        packed = []
        for weight in self.weight_hh:
            scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            codes = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
            try:
                packed.append(int8_matvec.pack(codes, scales))
            except NativeUnavailable:
                return self.with_bfloat16_recurrence()
        if not all(lstm_kernel.fits_int8(w) for w in packed):
            return self.with_bfloat16_recurrence()
        return dataclasses.replace(self, weight_hh_int8=tuple(packed))

    @functools.cached_property
    def input_products(self) -> tuple[PackedLinear, ...]:
        """Each layer's input weights and both biases for a chunk's steps at once, packed once
        (packed_linear.py)."""
        return tuple(PackedLinear(w, b) for w, b in zip(self.weight_ih, self.bias))

    @functools.cached_property
    def weight_hh_t(self) -> tuple[torch.Tensor, ...]:
        """`[H, 4H]` per layer, transposed once for PyTorch's per-step product: made on first use, as
        only `Lstm._torch_steps` reads it (where riffd's LSTM kernel does not run), so a codec on the
        kernel holds no second float32 copy of its recurrent weights (32 MB for EnCodec 32 kHz)."""
        return tuple(w.t().contiguous() for w in self.weight_hh)

    def recurrent_weights(self, layer: int) -> torch.Tensor:
        """The `[4H, H]` weights a layer's per-step products read: bfloat16 where they were made, else float32."""
        return self.weight_hh_bf16[layer] if self.weight_hh_bf16 else self.weight_hh[layer]


@dataclass(frozen=True, eq=False)
class ResidualSpec:
    """`EncodecResnetBlock`: shortcut(x) + main(x); an empty shortcut is the identity."""

    main: tuple
    shortcut: tuple


# -- Stages: one stream's state for one layer ------------------------------------------------------


class Stage:
    """One layer of one stream. `push`: new inputs in, final outputs out; `flush`: the tail.

    Inputs in layout `takes`, outputs in layout `gives` (ANY: the inputs'), n possibly 0 (so a
    chain never special-cases).
    """

    takes = CHANNELS
    gives = CHANNELS

    def __init__(self, like: torch.Tensor, batch: int, out_channels: int) -> None:
        self.batch, self.out_channels = batch, out_channels
        self._like = like  # dtype and device of what the stage makes

    def empty(self, layout: str | None = None) -> torch.Tensor:
        """No outputs, in `layout` (default: the one the stage gives)."""
        layout = layout or (self.gives if self.gives != ANY else CHANNELS)
        return _empty(self._like, self.batch, self.out_channels, layout)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def flush(self) -> torch.Tensor:
        return self.empty()

    def final_outputs(self, inputs: int) -> int:
        """Outputs `push` has returned once `inputs` inputs have been pushed (before the flush)."""
        return inputs

    def state(self) -> State:
        return {}

    def load_state(self, state: State) -> None:
        pass


def _count(value: int) -> torch.Tensor:
    return torch.tensor(int(value), dtype=torch.int64)


def _tail(x: torch.Tensor, n: int) -> torch.Tensor:
    """The last `n` samples as their own small tensor (a view would keep the whole input alive)."""
    return x[..., x.shape[-1] - n:].clone()


def _elu(x: torch.Tensor, alpha: float, *, in_place: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """ELU of `x` (into `x` itself if `in_place`, into `out` if given): riffd's vector ELU where it
    runs, else PyTorch's (a scalar expm1 an element, on one thread)."""
    from daemon.native import elu

    out = x if in_place else out
    if elu.fits(x) and (out is None or elu.fits(out)):
        return elu.elu(x, alpha) if out is None else elu.elu(x, alpha, out=out)
    if out is None:
        return F.elu(x, alpha)
    return out.copy_(F.elu(x, alpha)) if out is not x else F.elu(x, alpha, inplace=True)


class PaddedInput(Stage):
    """A stage whose inputs a convolution (`padding`) reads: keeps the inputs `_run` leaves in
    `buffer`, applies the left edge padding once there is enough input to reflect, and the right
    edge padding at the flush. Subclasses give `_run(padded)`: outputs from padded inputs, and the
    buffer to keep. `layout` is the one it takes and gives (and holds `buffer` in)."""

    def __init__(self, padding: ConvSpec, like: torch.Tensor, batch: int, out_channels: int,
                 layout: str = CHANNELS) -> None:
        super().__init__(like, batch, out_channels)
        self.padding = padding
        self.takes = self.gives = layout
        self.buffer = _empty(like, batch, padding.weight.shape[1], layout)
        self.started = False  # the left padding is in the buffer

    def _run(self, padded: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _pad(self, x: torch.Tensor, left: int, right: int) -> torch.Tensor:
        if self.takes != TIME:
            return pad1d(x, left, right, self.padding.pad_mode)
        # Only at a stream's two ends: through the channel-major padding.
        return pad1d(x.transpose(1, 2), left, right, self.padding.pad_mode).transpose(1, 2).contiguous()

    def push(self, x: torch.Tensor) -> torch.Tensor:
        dim = time_dim(self.takes)
        if not x.shape[dim]:
            return self.empty()
        pad = self.padding
        held = cat_time(self.buffer, x, self.takes)
        if not self.started:
            # The one-shot forward reflects the first samples: wait until there are enough of them.
            if held.shape[dim] <= max(pad.pad_left, pad.pad_right):
                self.buffer = held
                return self.empty()
            held = self._pad(held, pad.pad_left, 0)
            self.started = True
        return self._run(held)

    def flush(self) -> torch.Tensor:
        pad = self.padding
        if not self.started:
            if not self.buffer.shape[time_dim(self.takes)]:
                return self.empty()
            # The whole stream was shorter than the padding: pad it exactly as the one-shot does.
            self.started = True
            return self._run(self._pad(self.buffer, pad.pad_left, pad.pad_right))
        return self._run(self._pad(self.buffer, 0, pad.pad_right))

    def final_outputs(self, inputs: int) -> int:
        pad = self.padding
        return inputs - pad.pad_right if inputs > max(pad.pad_left, pad.pad_right) else 0

    def state(self) -> State:
        return {"buffer": to_layout(self.buffer, self.takes, CHANNELS), "started": _count(self.started)}

    def load_state(self, state: State) -> None:
        self.buffer = to_layout(state["buffer"], CHANNELS, self.takes)
        self.started = bool(state["started"])


class Conv(PaddedInput):
    """A convolution, time-major: keeps the last `span` inputs (`PaddedInput` pads them). One of few
    outputs (`ConvSpec.taps`) is one product of every tap and shifted sums; the others one product
    of the inputs unfolded (each output's window of inputs side by side)."""

    def __init__(self, spec: ConvSpec, batch: int) -> None:
        super().__init__(spec, spec.weight, batch, spec.weight.shape[0], TIME)
        self.spec = spec

    def _run(self, padded: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if padded.shape[1] <= spec.span:
            self.buffer = padded
            return self.empty()
        n = padded.shape[1] - spec.span
        if spec.tap_major is not None:
            y = _conv_taps(padded, spec)
        elif spec.taps is None:
            y = spec.unfolded(_unfold(padded.contiguous(), spec, n))
        else:
            y = self._by_taps(self._tap_products(padded), n)
        self.buffer = _own(padded[:, n:])
        return y

    def push(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if spec.taps is None or not self.started or self.buffer.shape[1] != spec.span or not x.shape[1]:
            return super().push(x)
        if spec.tap_major is not None:
            # Steady state: the first outputs read kept inputs (a few rows joined to the new ones'
            # first), the rest the new inputs alone, in place.
            m, span = x.shape[1], spec.span
            head = _conv_taps(torch.cat([self.buffer, x[:, :span]], dim=1), spec)
            y = head if m <= span else torch.cat([head, _conv_taps(x, spec)], dim=1)
            self.buffer = _tail_rows(x, self.buffer, span)
            return y
        # Steady state: the products of the kept inputs and of the new ones, joined (kernel * out
        # values a sample), not the inputs (in values a sample, 64 for EnCodec's last layer).
        products = torch.cat([self._tap_products(self.buffer), self._tap_products(x)], dim=2)
        y = self._by_taps(products, x.shape[1])
        self.buffer = _tail_rows(x, self.buffer, spec.span)
        return y

    def _tap_products(self, rows: torch.Tensor) -> torch.Tensor:
        """Every tap's products with time-major inputs `[B, m, in]`, weights-major: `[B, kernel * out,
        m]`. The weights are the product's few rows, the samples its many columns: a product of 7
        columns per sample ran 0.55 against 0.79 ms with the shifted sums, a 25-frame chunk of EnCodec's
        last layer (2 cores of an AMD EPYC Zen 4)."""
        return torch.matmul(self.spec.taps, rows.transpose(1, 2))

    def _by_taps(self, products: torch.Tensor, n: int) -> torch.Tensor:
        """Outputs `[B, n, out]` (a view of `[B, out, n]`) from every tap's products with the padded
        inputs `[B, kernel * out, n + span]`: output t adds tap j's product at input t + j * dilation."""
        spec = self.spec
        out, kernel = self.out_channels, spec.weight.shape[-1]
        products = products.contiguous()
        length = products.shape[2]
        # Tap j's row for output channel o is j * out + o; its product for output t sits j * dilation on.
        shifted = products.as_strided((products.shape[0], out, n, kernel),
                                      (products.stride(0), length, 1, out * length + spec.dilation),
                                      products.storage_offset())
        y = shifted.sum(dim=3)
        if spec.bias is not None:
            y.add_(spec.bias[:, None])
        return y.transpose(1, 2)


def _conv_taps(padded: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
    """Outputs `[B, n, out]` of time-major padded inputs `[B, n + span, in]` through riffd's kernel of
    few outputs (`spec.tap_major` set), on riffd's pool: EnCodec's last layer (64 channels to 1 over 7
    taps) 2.6 -> 1.0 ms per second of audio as the daemon runs it (2 threads of an AMD EPYC Zen 4,
    load ~1.8), where the products of every tap and their shifted sums in PyTorch ran at ~8 % of a
    large product's rate."""
    from daemon.native import conv_taps

    assert spec.tap_major is not None
    return conv_taps.conv(padded, spec.tap_major, spec.bias, spec.dilation)


def _unfold(padded: torch.Tensor, spec: ConvSpec, n: int) -> torch.Tensor:
    """`[B, n, kernel * in]`: output t's row is the inputs its taps read (t + j * dilation), from
    contiguous time-major padded inputs `[B, n + span, in]`."""
    batch, _, inputs = padded.shape
    kernel = spec.weight.shape[-1]
    if kernel == 1:
        return padded
    windows = padded.as_strided((batch, n, kernel, inputs), (padded.stride(0), inputs, spec.dilation * inputs, 1))
    return windows.reshape(batch, n, kernel * inputs)


def _tail_rows(x: torch.Tensor, before: torch.Tensor, n: int) -> torch.Tensor:
    """The last `n` time-major samples of `before` then `x`, as their own tensor."""
    return _own(x[:, x.shape[1] - n:] if x.shape[1] >= n else torch.cat([before, x], dim=1)[:, -n:])


def _own(x: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of `x` with the strides a fresh tensor has: a kept piece must be the same
    tensor to BLAS whether it was cut from a chunk or restored from a snapshot (MKL's product of a
    [1, 6, 4] piece with batch stride 25600 and of the same values with batch stride 24 differ in
    the last bit)."""
    return x.clone(memory_format=torch.contiguous_format)


class ConvTranspose(Stage):
    """Carries the last input (`last`: zeros before the first, which adds nothing to the first block)
    and how much of the left trim is still to drop; the right trim falls on the flushed tail.

    Time-major: each new input is paired with the one before it (a copy of the inputs, which are
    fewer values than the outputs) and one product makes the audio in order. PyTorch's own
    transposed convolution takes a slow path for a few samples on the CPU (its oneDNN kernel only
    for large inputs), so the product is written out.
    """

    takes = gives = TIME

    def __init__(self, spec: ConvTransposeSpec, batch: int) -> None:
        super().__init__(spec.matrix, batch, spec.out_channels)
        self.spec = spec
        self.last = spec.matrix.new_zeros((batch, 1, spec.in_channels))  # time-major
        self.skip = spec.pad_left  # left-trim outputs not yet dropped
        self.started = False
        # The ELU before this layer, taken here as the input pairs are made (`Chain` sets it where the
        # Elu stage before passes its inputs on): `last` is then that ELU's output, as without it.
        self.elu_alpha: float | None = None

    def _drop_left(self, y: torch.Tensor) -> torch.Tensor:
        drop = min(self.skip, y.shape[1])
        self.skip -= drop
        return y[:, drop:]

    def _blocks(self, pairs: torch.Tensor) -> torch.Tensor:
        """Audio `[B, n * stride, out]` from input pairs `[B, n, 2 * in]`."""
        # Time-major is the layout in which BLAS streams the weights once for a few inputs
        # (weights-major, it packs all 32 MB of the first layer's on every call).
        spec = self.spec
        return spec.product(pairs).view(pairs.shape[0], pairs.shape[1] * spec.stride, spec.out_channels)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if not x.shape[1]:
            return self.empty()
        batch, n, inputs = x.shape
        if self.elu_alpha is not None:
            from daemon.native import elu

            if elu.fits(x) and inputs % elu.PAIRS_COL_MULTIPLE == 0:
                # One pass on riffd's pool: the ELU's outputs written straight into the pairs (the
                # same bits), not an ELU pass and then three copies on PyTorch's threads.
                pairs = elu.elu_pairs(x, self.last, self.elu_alpha)
                self.last = _own(pairs[:, n - 1:, inputs:])
                self.started = True
                return self._drop_left(self._blocks(pairs))
            x = _elu(x, self.elu_alpha)
        pairs = x.new_empty((batch, n, 2 * inputs))
        pairs[:, :1, :inputs] = self.last
        pairs[:, 1:, :inputs] = x[:, :n - 1]
        pairs[:, :, inputs:] = x
        self.last = _own(x[:, n - 1:])
        self.started = True
        return self._drop_left(self._blocks(pairs))

    def flush(self) -> torch.Tensor:
        spec = self.spec
        if not self.started:
            return self.empty()
        self.started = False
        # The block after the last input: its pair is the last input and nothing.
        tail = self._blocks(torch.cat([self.last, torch.zeros_like(self.last)], dim=2))
        return self._drop_left(tail[:, :spec.tail - spec.pad_right])

    def final_outputs(self, inputs: int) -> int:
        return max(0, inputs * self.spec.stride - self.spec.pad_left)

    def state(self) -> State:
        return {"last": to_layout(self.last, TIME, CHANNELS), "skip": _count(self.skip),
                "started": _count(self.started)}

    def load_state(self, state: State) -> None:
        self.last = _own(to_layout(state["last"], CHANNELS, TIME))
        self.skip, self.started = int(state["skip"]), bool(state["started"])


class Elu(Stage):
    takes = gives = ANY

    def __init__(self, spec: EluSpec, like: torch.Tensor, batch: int, channels: int) -> None:
        super().__init__(like, batch, channels)
        self.alpha = spec.alpha
        self.passes_on = False  # the next stage takes this ELU itself (ConvTranspose.elu_alpha)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.passes_on else _elu(x, self.alpha)


class Lstm(Stage):
    """Carries each layer's hidden and cell state from piece to piece.

    Long pieces (a continuation's prompt) go through the checkpoint's nn.LSTM: on the CPU its oneDNN
    kernel runs the whole sequence in one call. Short pieces, a stream's chunks, go step by step
    here: that kernel lays the weights out anew on every call, a cost that does not shrink with
    the piece. Each layer's input product runs over the whole piece at once, then the recurrence
    runs in one call of riffd's LSTM kernel (daemon/native/lstm.c), or PyTorch's calls step by step
    where that kernel does not run.
    """

    #: Steps up to which the step-by-step loop runs (measured on the CPU: see bench/codec_stream).
    LOOP_MAX_STEPS = 32

    takes = gives = TIME

    def __init__(self, spec: LstmSpec, batch: int) -> None:
        like = spec.weight_hh[0]
        super().__init__(like, batch, spec.hidden_size)
        self.spec = spec
        self.h = like.new_zeros((len(spec.weight_ih), batch, spec.hidden_size))
        self.c = like.new_zeros((len(spec.weight_ih), batch, spec.hidden_size))

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if not x.shape[1]:
            return self.empty()
        # [T, B, C], the layout EncodecLSTM feeds its LSTM, as its own tensor (a view of a mono
        # stream's [1, T, C]): PyTorch multiplies a permuted view by the input weights through a
        # batched product 4 times slower (11 against 2.8 ms a 25-frame chunk on 2 cores of an AMD
        # EPYC Zen 4).
        steps = x.transpose(0, 1).contiguous()
        # On a GPU every piece takes the checkpoint's nn.LSTM (cuDNN, one call): the step-by-step
        # loop is ~8 launches a frame and layer, which on an H100 made the codec 0.09 s of a 4 s
        # job's 0.49 s; cuDNN's recurrence is also what transformers' one-shot decode runs there.
        if steps.shape[0] > self.LOOP_MAX_STEPS or steps.device.type != "cpu":
            out, (self.h, self.c) = self.spec.lstm(steps, (self.h, self.c))
        else:
            out = self._loop(steps)
        return (out + steps).transpose(0, 1).contiguous()

    def _loop(self, steps: torch.Tensor) -> torch.Tensor:
        from daemon.native import lstm as lstm_kernel

        spec = self.spec
        layer_in = steps
        hs, cs = [], []
        for layer, product in enumerate(spec.input_products):
            gates_in = product(layer_in)  # [T, B, 4H]
            weights = spec.recurrent_weights(layer)
            if spec.weight_hh_int8:
                outs, c = lstm_kernel.lstm_steps_int8(gates_in, spec.weight_hh_int8[layer], self.h[layer], self.c[layer])
                h = outs[-1]
            elif lstm_kernel.fits(weights):
                # One native call for the whole piece (lstm.c): PyTorch's per-step calls cost more
                # in dispatch than the product itself.
                outs, c = lstm_kernel.lstm_steps(gates_in, weights, self.h[layer], self.c[layer])
                h = outs[-1]
            else:
                outs, h, c = self._torch_steps(layer, gates_in)
            hs.append(h)
            cs.append(c)
            layer_in = outs
        self.h, self.c = torch.stack(hs), torch.stack(cs)
        return layer_in

    def _torch_steps(self, layer: int, gates_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The recurrence step by step in PyTorch's calls, where riffd's kernel does not run:
        hidden states `[T, B, H]`, the last hidden and cell states."""
        from daemon.native.f32_matmul import matmul

        spec, size = self.spec, self.spec.hidden_size
        h, c = self.h[layer], self.c[layer]
        outs = gates_in.new_empty((gates_in.shape[0], gates_in.shape[1], size))
        fast = spec.weight_hh_bf16[layer] if spec.weight_hh_bf16 else None
        for t in range(gates_in.shape[0]):
            gates = torch.addmm(gates_in[t], h, spec.weight_hh_t[layer]) if fast is None else matmul(h, fast).add_(gates_in[t])
            sig = torch.sigmoid(gates)
            c = torch.addcmul(sig[:, size:2 * size] * c, sig[:, :size], torch.tanh(gates[:, 2 * size:3 * size]))
            h = torch.mul(sig[:, 3 * size:], torch.tanh(c), out=outs[t])
        return outs, h, c

    def state(self) -> State:
        return {"h": self.h, "c": self.c}

    def load_state(self, state: State) -> None:
        self.h, self.c = state["h"], state["c"]


class Chain(Stage):
    """Stages one after another (none: the identity)."""

    def __init__(self, specs: tuple, like: torch.Tensor, batch: int, channels: int) -> None:
        self.stages: list[Stage] = []
        for spec in specs:
            self.stages.append(make_stage(spec, like, batch, channels))
            channels = self.stages[-1].out_channels
        # An ELU right before a transposed convolution is taken as its input pairs are made: the stages
        # stay as they are (their indices name the snapshot's tensors; an ELU has none), the ELU's
        # passing its inputs on. Every range of stages a chain runs (push_stages) holds both or neither.
        for before, stage in zip(self.stages, self.stages[1:]):
            if isinstance(before, Elu) and isinstance(stage, ConvTranspose):
                before.passes_on, stage.elu_alpha = True, before.alpha
        super().__init__(like, batch, channels)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        x, layout = self.push_stages(x, CHANNELS, 0, len(self.stages))
        return to_layout(x, layout, CHANNELS)

    def push_stages(self, x: torch.Tensor, layout: str, start: int, end: int) -> tuple[torch.Tensor, str]:
        """`x` in `layout` through stages `start` to `end`: the outputs and their layout."""
        for stage in self.stages[start:end]:
            x, layout = stage.push(to_layout(x, layout, stage.takes)), _gives(stage, layout)
        return x, layout

    def flush(self) -> torch.Tensor:
        carry, layout = None, CHANNELS  # what the stages so far still had, for the next one
        for stage in self.stages:
            gives = _gives(stage, layout)
            pushed = stage.push(to_layout(carry, layout, stage.takes)) if carry is not None else stage.empty(gives)
            tail = stage.flush()
            carry, layout = (cat_time(pushed, tail, gives) if tail.numel() else pushed), gives
        return to_layout(carry, layout, CHANNELS) if carry is not None else self.empty()

    def final_outputs(self, inputs: int) -> int:
        for stage in self.stages:
            inputs = stage.final_outputs(inputs)
        return inputs

    def state(self) -> State:
        return {f"{i}.{name}": value for i, stage in enumerate(self.stages) for name, value in stage.state().items()}

    def load_state(self, state: State) -> None:
        for i, stage in enumerate(self.stages):
            stage.load_state(_under(state, f"{i}."))


class Residual(Stage):
    """shortcut(x) + main(x), each side's outputs held until the other side has the same ones
    (the main branch's convolutions wait for right context; the identity does not)."""

    def __init__(self, spec: ResidualSpec, like: torch.Tensor, batch: int, channels: int) -> None:
        super().__init__(like, batch, channels)
        self.main = Chain(spec.main, like, batch, channels)
        self.shortcut = Chain(spec.shortcut, like, batch, channels)
        self.pending_main = self.empty()
        self.pending_shortcut = self.empty()

    def _join(self, main: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        main, shortcut = cat_time(self.pending_main, main, CHANNELS), cat_time(self.pending_shortcut, shortcut, CHANNELS)
        n = min(main.shape[-1], shortcut.shape[-1])
        self.pending_main, self.pending_shortcut = _tail(main, main.shape[-1] - n), _tail(shortcut, shortcut.shape[-1] - n)
        # transformers adds shortcut(residual) + hidden_states.
        return shortcut[..., :n] + main[..., :n]

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if not x.shape[-1]:
            return self.empty()
        return self._join(self.main.push(x), self.shortcut.push(x))

    def flush(self) -> torch.Tensor:
        return self._join(self.main.flush(), self.shortcut.flush())

    def final_outputs(self, inputs: int) -> int:
        return min(self.main.final_outputs(inputs), self.shortcut.final_outputs(inputs))

    def state(self) -> State:
        state = {f"main.{k}": v for k, v in self.main.state().items()}
        state.update({f"shortcut.{k}": v for k, v in self.shortcut.state().items()})
        state.update(pending_main=self.pending_main, pending_shortcut=self.pending_shortcut)
        return state

    def load_state(self, state: State) -> None:
        self.main.load_state(_under(state, "main."))
        self.shortcut.load_state(_under(state, "shortcut."))
        self.pending_main, self.pending_shortcut = state["pending_main"], state["pending_shortcut"]


class ResidualUnit(PaddedInput):
    """SEANet's residual unit with an identity shortcut, `x + conv_1x1(elu(conv_k(elu(x))))`, as one
    time-major stage: one buffer of raw inputs (the wide convolution's left context) serves the ELU,
    the convolution and the shortcut. Where riffd's kernel takes the unit (residual_unit.c), the whole
    unit is one call on the kept inputs and the new ones; otherwise the wide convolution is one
    product per tap over contiguous rows of the ELU's outputs, summed in place; the second ELU runs in
    place; the 1x1 convolution is one product added onto the shortcut (its bias added as the shortcut
    is copied in). In the steady state the ELU writes the kept inputs and the new ones side by side,
    so the inputs are never joined first. Padding `x` and then taking the ELU equals padding the
    ELU's output: the ELU is applied element by element, and EnCodec pads by reflecting,
    replicating or with zeros (ELU(0) = 0).
    """

    def __init__(self, spec: ResidualSpec, like: torch.Tensor, batch: int, channels: int) -> None:
        first_elu, conv, second_elu, pointwise = spec.main
        super().__init__(conv, like, batch, channels, TIME)  # the wide convolution pads the unit's inputs
        self.conv, self.pointwise = conv, pointwise
        self.alphas = (first_elu.alpha, second_elu.alpha)
        # The whole unit, both ELUs, both convolutions and the shortcut, in one call of riffd's kernel
        # (residual_unit.c) where it runs: EnCodec 32 kHz's four units as the daemon runs them took 22.6 ms
        # per second of audio through PyTorch's per-tap products, 15.7 with the convolutions alone in the
        # kernel, and (another run) 14.6 against those 16.7 with the whole unit in it (AVX2 capped: 26.1,
        # 18.4; 14.8 against 17.3; 2 threads of an AMD EPYC Zen 4).
        self.native = residual_unit.fits(conv.weight, pointwise.weight, conv.dilation) and all(
            b is None or (b.dtype == torch.float32 and b.is_contiguous()) for b in (conv.bias, pointwise.bias))

    @staticmethod
    def fits(spec: ResidualSpec) -> bool:
        """Whether `spec` is ELU, a stride-1 convolution, ELU, a 1x1 convolution, around an identity."""
        if spec.shortcut or len(spec.main) != 4:
            return False
        first_elu, conv, second_elu, pointwise = spec.main
        return (isinstance(first_elu, EluSpec) and isinstance(second_elu, EluSpec) and isinstance(conv, ConvSpec)
                and isinstance(pointwise, ConvSpec) and pointwise.span == 0 and not pointwise.pad_left
                and not pointwise.pad_right and conv.pad_mode in ("reflect", "replicate", "constant")
                and pointwise.weight.shape[0] == conv.weight.shape[1])

    def push(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        span, n = conv.span, x.shape[1]
        if self.native and self.started and self.buffer.shape[1] == span and n and x.is_contiguous():
            # Steady state: the kept inputs and the new ones as the kernel's two pieces.
            y = self._native((self.buffer, x))
            self.buffer = _tail_rows(x, self.buffer, span)
            return y
        if not self.started or self.buffer.shape[1] != span or n < span or not n or not x.is_contiguous():
            return super().push(x)
        # Steady state: the ELU of the kept inputs and of the new ones, side by side.
        act = x.new_empty((x.shape[0], span + n, x.shape[2]))
        for b in range(x.shape[0]):
            _elu(self.buffer[b], self.alphas[0], out=act[b, :span])
            _elu(x[b], self.alphas[0], out=act[b, span:])
        kept = span - conv.pad_left  # the first outputs' own inputs are the last kept ones
        y = self._unit(act, (self.buffer[:, conv.pad_left:], x[:, :n - kept]))
        self.buffer = _own(x[:, n - span:])
        return y

    def _run(self, padded: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        n = padded.shape[1] - conv.span
        if n <= 0:
            self.buffer = padded
            return self.empty()
        padded = padded.contiguous()
        if self.native:
            y = self._native((padded,))
            self.buffer = _own(padded[:, n:])
            return y
        # An output's own input sits `pad_left` after the first sample its window reads.
        y = self._unit(_elu(padded, self.alphas[0]), (padded[:, conv.pad_left:conv.pad_left + n],))
        self.buffer = _own(padded[:, n:])
        return y

    def _native(self, pieces: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Outputs `[B, n, C]` from the padded raw inputs (riffd's kernel: residual_unit.unit); an
        output's own input sits `pad_left` after the first sample its window reads."""
        conv, pointwise = self.conv, self.pointwise
        return residual_unit.unit(pieces, conv.panels, conv.bias, conv.dilation, conv.pad_left, self.alphas[0],
                                  pointwise.panels, pointwise.bias, self.alphas[1])

    def _unit(self, act: torch.Tensor, shortcut: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Outputs `[B, n, C]` from the first ELU's outputs `[B, span + n, C]` and the shortcut's
        inputs, in pieces of rows."""
        conv, pointwise = self.conv, self.pointwise
        batch, n = act.shape[0], act.shape[1] - conv.span
        y = act.new_empty((batch, n, self.out_channels))
        row = 0
        for piece in shortcut:
            rows = y[:, row:row + piece.shape[1]]
            if pointwise.bias is None:
                rows.copy_(piece)
            else:
                torch.add(piece, pointwise.bias, out=rows)
            row += piece.shape[1]
        taps, (project,) = conv.tap_weights, pointwise.tap_weights
        for b in range(batch):
            hidden = torch.mm(act[b, :n], taps[0]) if conv.bias is None else torch.addmm(conv.bias, act[b, :n], taps[0])
            for j in range(1, len(taps)):
                shift = j * conv.dilation
                hidden.addmm_(act[b, shift:shift + n], taps[j])
            y[b].addmm_(_elu(hidden, self.alphas[1], in_place=True), project)
        return y


def _gives(stage: Stage, given: str) -> str:
    """The layout of `stage`'s outputs when its inputs come in `given`."""
    return given if stage.gives == ANY else stage.gives


def _under(state: State, prefix: str) -> State:
    return {name[len(prefix):]: value for name, value in state.items() if name.startswith(prefix)}


def make_stage(spec: object, like: torch.Tensor, batch: int, channels: int) -> Stage:
    """A fresh stage for `spec`, taking `channels` inputs."""
    if isinstance(spec, ConvSpec):
        return Conv(spec, batch)
    if isinstance(spec, ConvTransposeSpec):
        return ConvTranspose(spec, batch)
    if isinstance(spec, EluSpec):
        return Elu(spec, like, batch, channels)
    if isinstance(spec, LstmSpec):
        return Lstm(spec, batch)
    if isinstance(spec, ResidualSpec):
        return ResidualUnit(spec, like, batch, channels) if ResidualUnit.fits(spec) else Residual(spec, like, batch, channels)
    raise TypeError(f"no streaming stage for {type(spec).__name__}")
