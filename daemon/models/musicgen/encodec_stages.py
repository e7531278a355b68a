"""EnCodec's SEANet decoder layers as streaming stages: each fed its input piece by piece.

A stage keeps exactly the input it still needs (a convolution's last `span` samples, the input
a transposed convolution's next outputs overlap, the LSTM's hidden and cell state) and returns
from each `push` only the outputs no later input can change. `flush`, at the end of the stream,
pads the right edge as the one-shot forward does and returns the rest. Chained, the stages
compute the one-shot decode of the whole sequence, each output once.

Tensors are `[B, channels, time]` throughout, as in transformers' EnCodec.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from daemon.models.musicgen.packed_linear import PackedLinear

State = dict[str, torch.Tensor]


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
    def taps(self) -> torch.Tensor | None:
        """`[kernel * out, in]`, tap-major, for convolutions of few outputs; else None."""
        out, inputs, kernel = self.weight.shape
        if out > self.TAPS_MAX_OUT_CHANNELS:
            return None
        return self.weight.permute(2, 0, 1).reshape(kernel * out, inputs).contiguous()


@dataclass(frozen=True, eq=False)
class ConvTransposeSpec:
    """An `EncodecConvTranspose1d` as one matrix product and an overlap-add. EnCodec's kernels are
    twice the stride, so an input's outputs are two blocks of `stride`: its own block and the next
    one. `matrix` `[2 * out * stride, in]` holds the kernel (zero-padded to twice the stride),
    rows ordered (block, out channel, tap)."""

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
        kernel = weight.shape[-1]
        if kernel > 2 * stride:
            raise ValueError(f"transposed convolution kernel {kernel} longer than twice its stride {stride}")
        padded = F.pad(weight, (0, 2 * stride - kernel)).view(weight.shape[0], weight.shape[1], 2, stride)
        matrix = padded.permute(2, 1, 3, 0).reshape(-1, weight.shape[0]).contiguous()
        return cls(matrix, bias, weight.shape[1], stride, kernel - stride, pad_left, pad_right)

    @functools.cached_property
    def product(self) -> PackedLinear:
        """`matrix` for a chunk's time-major inputs, packed once (packed_linear.py: the first layer's
        25 rows by 32 MB of weights ran at 35-45 % of a large product's rate through F.linear)."""
        return PackedLinear(self.matrix)


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

    Outputs are `[batch, out_channels, n]`, n possibly 0 (so a chain never special-cases).
    """

    def __init__(self, like: torch.Tensor, batch: int, out_channels: int) -> None:
        self.batch, self.out_channels = batch, out_channels
        self._like = like  # dtype and device of what the stage makes

    def empty(self) -> torch.Tensor:
        return self._like.new_zeros((self.batch, self.out_channels, 0))

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


def _elu(x: torch.Tensor, alpha: float, *, in_place: bool = False) -> torch.Tensor:
    """ELU of `x` (into `x` itself if `in_place`): riffd's vector ELU where it runs, else PyTorch's
    (a scalar expm1 an element, on one thread)."""
    from daemon.native import elu

    if elu.fits(x):
        return elu.elu(x, alpha, out=x) if in_place else elu.elu(x, alpha)
    return F.elu(x, alpha, inplace=in_place)


def _cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if not a.shape[-1]:
        return b
    return torch.cat([a, b], dim=-1) if b.shape[-1] else a


class PaddedInput(Stage):
    """A stage whose inputs a convolution (`padding`) reads: keeps the inputs `_run` leaves in
    `buffer`, applies the left edge padding once there is enough input to reflect, and the right
    edge padding at the flush. Subclasses give `_run(padded)`: outputs from padded inputs, and the
    buffer to keep."""

    def __init__(self, padding: ConvSpec, like: torch.Tensor, batch: int, out_channels: int) -> None:
        super().__init__(like, batch, out_channels)
        self.padding = padding
        self.buffer = like.new_zeros((batch, padding.weight.shape[1], 0))
        self.started = False  # the left padding is in the buffer

    def _run(self, padded: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if not x.shape[-1]:
            return self.empty()
        pad = self.padding
        held = _cat(self.buffer, x)
        if not self.started:
            # The one-shot forward reflects the first samples: wait until there are enough of them.
            if held.shape[-1] <= max(pad.pad_left, pad.pad_right):
                self.buffer = held
                return self.empty()
            held = pad1d(held, pad.pad_left, 0, pad.pad_mode)
            self.started = True
        return self._run(held)

    def flush(self) -> torch.Tensor:
        pad = self.padding
        if not self.started:
            if not self.buffer.shape[-1]:
                return self.empty()
            # The whole stream was shorter than the padding: pad it exactly as the one-shot does.
            self.started = True
            return self._run(pad1d(self.buffer, pad.pad_left, pad.pad_right, pad.pad_mode))
        return self._run(pad1d(self.buffer, 0, pad.pad_right, pad.pad_mode))

    def final_outputs(self, inputs: int) -> int:
        pad = self.padding
        return inputs - pad.pad_right if inputs > max(pad.pad_left, pad.pad_right) else 0

    def state(self) -> State:
        return {"buffer": self.buffer, "started": _count(self.started)}

    def load_state(self, state: State) -> None:
        self.buffer, self.started = state["buffer"], bool(state["started"])


class Conv(PaddedInput):
    """A convolution: keeps the last `span` inputs (`PaddedInput` pads them)."""

    def __init__(self, spec: ConvSpec, batch: int) -> None:
        super().__init__(spec, spec.weight, batch, spec.weight.shape[0])
        self.spec = spec

    def _run(self, padded: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if padded.shape[-1] <= spec.span:
            self.buffer = padded
            return self.empty()
        y = F.conv1d(padded, spec.weight, spec.bias, dilation=spec.dilation) if spec.taps is None \
            else self._by_taps(padded)
        self.buffer = _tail(padded, spec.span)
        return y

    def _by_taps(self, padded: torch.Tensor) -> torch.Tensor:
        """The convolution as one product of every tap with the input, then each tap's outputs added
        in at its shift."""
        spec = self.spec
        out, n = self.out_channels, padded.shape[-1] - spec.span
        products = torch.matmul(spec.taps, padded)  # [B, kernel * out, length]
        y = products[:, :out, :n].clone() if spec.bias is None else products[:, :out, :n] + spec.bias[:, None]
        for tap in range(1, spec.weight.shape[-1]):
            shift = tap * spec.dilation
            y += products[:, tap * out:(tap + 1) * out, shift:shift + n]
        return y

class ConvTranspose(Stage):
    """Carries the partial sums of the block after the last input (`overlap`, without the bias)
    and how much of the left trim is still to drop; the right trim falls on the flushed tail.

    PyTorch's own transposed convolution takes a slow path for a few samples on the CPU (its
    oneDNN kernel only for large inputs), so the product and the overlap-add are written out.
    """

    def __init__(self, spec: ConvTransposeSpec, batch: int) -> None:
        super().__init__(spec.matrix, batch, spec.out_channels)
        self.spec = spec
        self.overlap = spec.matrix.new_zeros((batch, spec.out_channels, spec.stride))
        self.skip = spec.pad_left  # left-trim outputs not yet dropped
        self.started = False

    def _drop_left(self, y: torch.Tensor) -> torch.Tensor:
        drop = min(self.skip, y.shape[-1])
        self.skip -= drop
        return y[..., drop:]

    def _out(self, blocks: torch.Tensor) -> torch.Tensor:
        """`[B, n, out, stride]` blocks plus the bias as audio-layout `[B, out, n * stride]`, in one pass."""
        batch, n = blocks.shape[:2]
        blocks = blocks.permute(0, 2, 1, 3)
        blocks = blocks + self.spec.bias[:, None, None] if self.spec.bias is not None else blocks.contiguous()
        return blocks.reshape(batch, self.spec.out_channels, n * self.spec.stride)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if not x.shape[-1]:
            return self.empty()
        spec, batch, n = self.spec, x.shape[0], x.shape[-1]
        # Time-major, the layout in which BLAS streams the weights once for a few inputs (weights-
        # major, it packs all 32 MB of the first layer's on every call): [B, n, 2, out, stride].
        # The inputs time-major as their own tensor: PyTorch multiplies a transposed view through a
        # batched product, up to 1.6 times slower here.
        rows = x.transpose(1, 2).reshape(batch * n, x.shape[1])
        cols = spec.product(rows).view(batch, n, 2, spec.out_channels, spec.stride)
        own, spill = cols[:, :, 0], cols[:, :, 1]  # an input's own block, and what it adds to the next
        blocks = torch.empty_like(own)
        torch.add(own[:, 1:], spill[:, :-1], out=blocks[:, 1:])
        torch.add(own[:, 0], self.overlap, out=blocks[:, 0])
        self.overlap = spill[:, -1].clone()
        self.started = True
        return self._drop_left(self._out(blocks))

    def flush(self) -> torch.Tensor:
        spec = self.spec
        if not self.started:
            return self.empty()
        self.started = False
        return self._drop_left(self._out(self.overlap[:, None])[..., :spec.tail - spec.pad_right])

    def final_outputs(self, inputs: int) -> int:
        return max(0, inputs * self.spec.stride - self.spec.pad_left)

    def state(self) -> State:
        return {"overlap": self.overlap, "skip": _count(self.skip), "started": _count(self.started)}

    def load_state(self, state: State) -> None:
        self.overlap, self.skip, self.started = state["overlap"], int(state["skip"]), bool(state["started"])


class Elu(Stage):
    def __init__(self, spec: EluSpec, like: torch.Tensor, batch: int, channels: int) -> None:
        super().__init__(like, batch, channels)
        self.alpha = spec.alpha

    def push(self, x: torch.Tensor) -> torch.Tensor:
        return _elu(x, self.alpha)


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

    def __init__(self, spec: LstmSpec, batch: int) -> None:
        like = spec.weight_hh[0]
        super().__init__(like, batch, spec.hidden_size)
        self.spec = spec
        self.h = like.new_zeros((len(spec.weight_ih), batch, spec.hidden_size))
        self.c = like.new_zeros((len(spec.weight_ih), batch, spec.hidden_size))

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if not x.shape[-1]:
            return self.empty()
        # [T, B, C], the layout EncodecLSTM feeds its LSTM, as its own tensor: PyTorch multiplies a
        # permuted view by the input weights through a batched product 4 times slower (11 against
        # 2.8 ms a 25-frame chunk on 2 cores of an AMD EPYC Zen 4).
        steps = x.permute(2, 0, 1).contiguous()
        if steps.shape[0] > self.LOOP_MAX_STEPS:
            out, (self.h, self.c) = self.spec.lstm(steps, (self.h, self.c))
        else:
            out = self._loop(steps)
        return (out + steps).permute(1, 2, 0)

    def _loop(self, steps: torch.Tensor) -> torch.Tensor:
        from daemon.native import lstm as lstm_kernel

        spec = self.spec
        layer_in = steps
        hs, cs = [], []
        for layer, product in enumerate(spec.input_products):
            gates_in = product(layer_in)  # [T, B, 4H]
            weights = spec.recurrent_weights(layer)
            if lstm_kernel.fits(weights):
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
        super().__init__(like, batch, channels)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage.push(x)
        return x

    def flush(self) -> torch.Tensor:
        carry = None  # what the stages so far still had, for the next one
        for stage in self.stages:
            carry = _cat(stage.push(carry) if carry is not None else stage.empty(), stage.flush())
        return carry if carry is not None else self.empty()

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
        main, shortcut = _cat(self.pending_main, main), _cat(self.pending_shortcut, shortcut)
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
    stage: one buffer of raw inputs (the wide convolution's left context) serves the ELU, the
    convolution and the shortcut, the second ELU runs in place and the 1x1 convolution is one matrix
    product that adds onto the shortcut. `Residual` over a chain of four stages made ten tensor
    passes of a chunk's activations (4 MB at the last unit for a 25-frame chunk of EnCodec 32 kHz),
    this six. Padding `x` and then taking the ELU equals padding the ELU's output: the ELU is
    applied element by element, and EnCodec pads by reflecting, replicating or with zeros
    (ELU(0) = 0).
    """

    def __init__(self, spec: ResidualSpec, like: torch.Tensor, batch: int, channels: int) -> None:
        first_elu, conv, second_elu, pointwise = spec.main
        super().__init__(conv, like, batch, channels)  # the wide convolution pads the unit's inputs
        self.conv, self.pointwise = conv, pointwise
        self.alphas = (first_elu.alpha, second_elu.alpha)
        self.pointwise_weight = pointwise.weight[:, :, 0]  # [out, in]: a 1x1 convolution is a product

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

    def _run(self, padded: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        n = padded.shape[-1] - conv.span
        if n <= 0:
            self.buffer = padded
            return self.empty()
        hidden = F.conv1d(_elu(padded, self.alphas[0], in_place=False), conv.weight, conv.bias,
                          dilation=conv.dilation)
        hidden = _elu(hidden, self.alphas[1], in_place=True)
        # An output's own input sits `pad_left` after the first sample its window reads.
        shortcut = padded[..., conv.pad_left:conv.pad_left + n]
        if padded.shape[0] == 1:
            y = torch.addmm(shortcut[0], self.pointwise_weight, hidden[0])[None]
        else:
            y = torch.matmul(self.pointwise_weight, hidden).add_(shortcut)
        if self.pointwise.bias is not None:
            y += self.pointwise.bias[:, None]
        self.buffer = _tail(padded, conv.span)
        return y


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
