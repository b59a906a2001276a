"""Checkpoints written before the input contract was stored (main e7f29e9, `tests/fixtures/`) load with today's
contract (`InputSpec.legacy`) and predict exactly what they predicted then."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ifcn import Predictor
from ifcn.trainer.core.checkpoint import load_model
from ifcn.trainer.core.input_spec import InputSpec

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_checkpoint_without_input_spec_reads_with_the_legacy_contract() -> None:
    loaded = load_model(FIXTURES / "legacy_interactive.pt")
    assert "input_spec" not in loaded.state["model_config"]
    assert loaded.spec == InputSpec.legacy(5) == InputSpec()
    assert loaded.spec.click_encoding == "distance" and loaded.spec.clip == 255 and not loaded.spec.prev_mask


def test_a_legacy_checkpoint_predicts_the_same_probabilities_and_masks() -> None:
    expected = np.load(FIXTURES / "legacy_interactive_expected.npz")
    predictor = Predictor.from_checkpoint(FIXTURES / "legacy_interactive.pt", device="cpu")
    clicks = [tuple(int(v) for v in c) for c in expected["clicks"]]
    probability = predictor.predict(expected["image"], clicks)
    np.testing.assert_allclose(probability, expected["probability"], rtol=0, atol=1e-6)
    threshold = float(np.median(expected["probability"]))
    mask = predictor.predict(expected["image"], clicks, threshold=threshold)
    np.testing.assert_array_equal(mask, expected["probability"] > threshold)
