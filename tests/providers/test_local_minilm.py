"""Tests for the torch-free all-MiniLM-L6-v2 encoder (providers.local_minilm)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from providers.local_minilm import DIMENSION, MODEL_ID, MiniLMEncoder, _gelu_inplace

REPO_ROOT = Path(__file__).resolve().parents[2]

MIXED_TEXTS = [
    "Hi",
    "Acme Robotics builds autonomous forklifts for warehouses, " * 12,
    "The weather is lovely today.",
    "",
    "Northwind Logistics is a regional freight company based in Ohio that provides same-day delivery.",
    "  leading and trailing whitespace  ",
    "Verdant Energy develops utility-scale solar and battery storage projects across southern Europe, "
    "with a pipeline of 3 GW and offices in Madrid, Lisbon and Milan.",
    "ok",
]


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder.load()


def test_metadata_and_load_is_cached(encoder: MiniLMEncoder) -> None:
    assert encoder.model_id == MODEL_ID == "sentence-transformers/all-MiniLM-L6-v2"
    assert encoder.dimension == DIMENSION == 384
    assert MiniLMEncoder.load() is encoder


def test_reference_similarities(encoder: MiniLMEncoder) -> None:
    # Values printed by sentence-transformers for all-MiniLM-L6-v2 on these sentences.
    emb = encoder.encode(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    sims = emb @ emb.T
    assert round(float(sims[0, 1]), 4) == 0.6660
    assert round(float(sims[0, 2]), 4) == 0.1046
    assert round(float(sims[1, 2]), 4) == 0.1411


def test_shape_dtype_unit_norm(encoder: MiniLMEncoder) -> None:
    emb = encoder.encode(MIXED_TEXTS, batch_size=3)
    assert emb.shape == (len(MIXED_TEXTS), 384)
    assert emb.dtype == np.float32
    assert np.all(np.isfinite(emb))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_order_preserved_with_mixed_lengths(encoder: MiniLMEncoder) -> None:
    together = encoder.encode(MIXED_TEXTS, batch_size=2)  # several packed batches, spread over the pool
    alone = np.stack([encoder.encode([text])[0] for text in MIXED_TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)
    # Distinct texts really land on distinct rows (a permutation bug would fail above, but be explicit).
    assert float(together[0] @ together[1]) < 0.9


def test_batch_size_does_not_change_results(encoder: MiniLMEncoder) -> None:
    np.testing.assert_allclose(
        encoder.encode(MIXED_TEXTS, batch_size=1),
        encoder.encode(MIXED_TEXTS, batch_size=32),
        atol=1e-5,
        rtol=0,
    )


def test_long_text_is_truncated(encoder: MiniLMEncoder) -> None:
    head = " ".join(f"word{i}" for i in range(400))  # far more than 256 tokens on its own
    emb = encoder.encode([head + " apples and pears", head + " a completely different ending", "short"])
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Only the first 256 tokens count, so the different tails are cut off and the vectors coincide.
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-6, rtol=0)


def test_empty_input(encoder: MiniLMEncoder) -> None:
    emb = encoder.encode([])
    assert emb.shape == (0, 384)
    assert emb.dtype == np.float32


def test_same_text_gives_identical_vectors(encoder: MiniLMEncoder) -> None:
    text = "Helios Analytics sells demand forecasting software to retailers."
    emb = encoder.encode([text, "something else", text, f"  {text}\n"])
    np.testing.assert_array_equal(emb[0], emb[2])
    np.testing.assert_array_equal(emb[0], emb[3])  # surrounding whitespace is stripped first
    # Deterministic: the same call again is bit-identical.
    np.testing.assert_array_equal(encoder.encode([text, "something else", text, text]), emb)
    # A different batch shape may pick other BLAS kernels, so alone it only agrees to float32 rounding.
    np.testing.assert_allclose(encoder.encode([text])[0], emb[0], atol=1e-6, rtol=0)


def test_rejects_a_bare_string_and_bad_batch_size(encoder: MiniLMEncoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("not a list")
    with pytest.raises(ValueError):
        encoder.encode(["x"], batch_size=0)


def test_concurrent_encoding_matches_serial(encoder: MiniLMEncoder) -> None:
    inputs = [[f"{text} #{worker}" for text in MIXED_TEXTS] for worker in range(4)]
    serial = [encoder.encode(texts, batch_size=3) for texts in inputs]
    results: list[np.ndarray | None] = [None] * 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for _ in range(2):
                results[worker] = encoder.encode(inputs[worker], batch_size=3)
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for got, expected in zip(results, serial, strict=True):
        assert got is not None
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_gelu_matches_exact_erf() -> None:
    x = np.linspace(-12.0, 12.0, 201_000, dtype=np.float32).reshape(1000, 201)
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2.0)) for v in x.astype(np.float64).ravel()])
    got = x.copy()
    _gelu_inplace(got)
    np.testing.assert_allclose(got.ravel().astype(np.float64), exact, atol=3e-7, rtol=1e-5)


def test_offline_and_torch_free() -> None:
    # Fresh interpreter: sockets are disabled, and the heavy stacks must never be imported.
    script = textwrap.dedent(
        """
        import socket, sys

        def _no_network(*args, **kwargs):
            raise RuntimeError("network access attempted")

        socket.socket.connect = _no_network
        socket.create_connection = _no_network
        socket.getaddrinfo = _no_network

        from providers.local_minilm import MiniLMEncoder

        emb = MiniLMEncoder.load().encode(["offline check"])
        assert emb.shape == (1, 384)
        heavy = sorted(
            m for m in sys.modules
            if m.split(".")[0] in {"torch", "transformers", "sentence_transformers", "huggingface_hub"}
        )
        assert not heavy, heavy
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
