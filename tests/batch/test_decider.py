"""The batch decider scores a chunk in one call: ONNX Runtime batches give exactly the PDs serving's
one-row calls give (bit for bit), native CatBoost batches agree within 1e-6, and a decider run with
the native scorer falls back to ONNX if they do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.batch.decider import TOLERANCE, BatchDecider, Undecided, package_for
from engine.bench.data import applications
from engine.models.scoring import NativeScorer, OnnxScorer
from engine.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "policies" / "consumer_loan" / "policy.yaml")
PACKAGE = package_for(POLICY, ROOT / "models")


def features(count: int) -> list[dict[str, object]]:
    assert POLICY.score is not None
    out = []
    for application in applications(count, seed=31):
        fact = POLICY.validate(application)
        POLICY.derive(fact)
        out.append(POLICY.score.features(fact))
    return out


def test_onnx_batches_are_bit_identical_to_serving_one_row_calls() -> None:
    assert PACKAGE is not None
    scorer = OnnxScorer(PACKAGE)
    rows = features(400)
    batch = scorer.pd_matrix(scorer.encoder.encode_rows(rows))
    one_by_one = np.array([scorer.pd(row) for row in rows])
    assert batch.tobytes() == one_by_one.tobytes()


def test_native_batches_agree_with_onnx_within_the_tolerance() -> None:
    assert PACKAGE is not None
    native, onnx = NativeScorer(PACKAGE), OnnxScorer(PACKAGE)
    matrix = native.encoder.encode_rows(features(400))
    assert float(abs(native.pd_matrix(matrix) - onnx.pd_matrix(matrix)).max()) <= TOLERANCE


def test_the_onnx_decider_gives_serving_pds_and_the_pd_multiplier_raises_them() -> None:
    apps = applications(200, seed=37)
    plain = BatchDecider(POLICY, PACKAGE).decide(apps)
    stressed = BatchDecider(POLICY, PACKAGE, pd_multiplier=2.0).decide(apps)
    pairs = [
        (a.score.pd, b.score.pd)
        for a, b in zip(plain, stressed, strict=True)
        if not isinstance(a, Undecided) and not isinstance(b, Undecided) and a.score and b.score
    ]
    assert len(pairs) > 50
    assert all(b >= a for a, b in pairs) and sum(b > a for a, b in pairs) > 50


def test_deciding_a_chunk_leaves_the_garbage_collector_as_it_was() -> None:
    """The decider pauses the cyclic collector for a chunk (see BatchDecider.decide); it must come
    back on after every chunk, also when chunks are decided on several threads at once, and stay off
    when the caller had turned it off."""
    import gc
    from concurrent.futures import ThreadPoolExecutor

    decider = BatchDecider(POLICY, PACKAGE)
    apps = applications(40, seed=41)
    assert gc.isenabled()
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(decider.decide, [apps[i : i + 10] for i in range(0, 40, 10)] * 3))
    assert len(done) == 12 and gc.isenabled()
    gc.disable()
    try:
        decider.decide(apps[:5])
        assert not gc.isenabled()
    finally:
        gc.enable()
