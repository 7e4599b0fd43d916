"""SequenceSpec round trip, SequenceClassifier shapes and padding masks, training on a planted pattern."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from libs.ml.device import pick_device
from libs.ml.metrics import label_metrics
from libs.ml.petastorm_io import memory_loader
from libs.ml.seqmodel import SequenceClassifier, positive_weights, predict, train_epochs
from libs.ml.sequences import SequenceSpec, check_lengths, stack_flat

CPU = torch.device("cpu")


def test_spec_round_trips_through_a_dict_and_validates(seq_spec):
    d = seq_spec.to_dict()
    assert d["label_names"] == ["low_effort", "piracy", "matrix"] and d["max_len"] == 12
    assert SequenceSpec.from_dict(d) == seq_spec
    assert seq_spec.flat_len == 48 and seq_spec.n_labels == 3
    with pytest.raises(ValueError, match="feature names"):
        SequenceSpec(4, 3, ("a",), feature_names=("x", "y"))
    with pytest.raises(ValueError, match="48"):
        stack_flat([[0.0] * 47], seq_spec)
    with pytest.raises(ValueError, match="1..12"):
        check_lengths(np.array([3, 0, 13]), 12)


def test_pick_device_is_cpu_here_or_the_accelerator_and_refuses_absent_ones():
    device = pick_device()
    assert device.type == ("cuda" if torch.cuda.is_available() else device.type)
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            pick_device("cuda")


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_output_shape_and_padding_does_not_change_the_output(kind, seq_data):
    torch.manual_seed(0)
    model = SequenceClassifier(4, 3, hidden=16, kind=kind, layers=2, dropout=0.1, max_len=12, heads=2).eval()
    seq = torch.as_tensor(seq_data["seq"][:16])
    lengths = torch.as_tensor(seq_data["seq_len"][:16]).long()
    out = model(seq, lengths)
    assert out.shape == (16, 3)
    noisy = seq.clone()
    pad = torch.arange(12)[None, :] >= lengths[:, None]
    assert pad.any(), "the sample must contain padded steps for this test to mean anything"
    noisy[pad] = torch.randn(int(pad.sum()), 4) * 100.0
    torch.testing.assert_close(model(noisy, lengths), out, rtol=1e-5, atol=1e-5)
    # ... while a change on a real step does change it (the test above is not vacuous).
    real = seq.clone()
    real[0, 0, :] += 5.0
    assert not torch.allclose(model(real, lengths)[0], out[0])


def test_positive_weights_are_negatives_over_positives_capped():
    y = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]] * 50, dtype=np.float32)   # 50 pos / 150 neg
    w = positive_weights(y, cap=100.0)
    np.testing.assert_allclose(w, [3.0, 1.0, 1.0])
    assert positive_weights(np.array([[1.0]] + [[0.0]] * 999), cap=20.0)[0] == 20.0


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_training_reduces_loss_and_learns_the_planted_pattern(kind, seq_data, seq_spec):
    torch.manual_seed(0)
    model = SequenceClassifier(4, 3, hidden=16, kind=kind, dropout=0.0, max_len=12, heads=2)
    before = predict(model, seq_data["seq"], seq_data["seq_len"], CPU)
    history = train_epochs(
        model, lambda epoch: memory_loader(seq_data["seq"], seq_data["seq_len"], seq_data["labels"], 32,
                                           shuffle=True, seed=epoch),
        epochs=12, lr=2e-2, pos_weight=positive_weights(seq_data["labels"]), device=CPU)
    assert [h["epoch"] for h in history] == list(range(12)) and all(h["rows"] == 64 for h in history)
    assert all(h["rows_per_s"] > 0 and h["seconds"] > 0 for h in history)
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    probs = predict(model, seq_data["seq"].reshape(64, -1), seq_data["seq_len"], CPU, batch_size=10)  # flat input
    assert probs.shape == (64, 3) and ((probs >= 0) & (probs <= 1)).all()
    aucs = {k: m["roc_auc"] for k, m in label_metrics(seq_data["labels"], probs, seq_spec.label_names).items()}
    assert min(aucs.values()) > 0.9, aucs
    assert not np.allclose(before, probs)


def test_prior_correction_undoes_positive_weighting_in_eval_only():
    import math

    import torch

    from libs.ml.seqmodel import SequenceClassifier

    torch.manual_seed(0)
    model = SequenceClassifier(n_features=3, n_labels=2, hidden=8)
    seq, lengths = torch.randn(4, 5, 3), torch.tensor([5, 3, 1, 2])
    model.eval()
    raw = model(seq, lengths)
    model.set_prior_correction([4.0, 1.0])
    corrected = model(seq, lengths)
    # odds divided by the weight: logit shifted by -log(4) for label 0, untouched for label 1
    assert torch.allclose(corrected[:, 0], raw[:, 0] - math.log(4.0), atol=1e-6)
    assert torch.allclose(corrected[:, 1], raw[:, 1], atol=1e-6)
    model.train()
    model.drop.p = 0.0
    assert torch.allclose(model(seq, lengths), raw, atol=1e-6)        # training loss sees the raw logits
    state = model.state_dict()
    assert torch.allclose(state["prior_correction"], torch.tensor([-math.log(4.0), 0.0]))
    with pytest.raises(ValueError):
        model.set_prior_correction([1.0, 0.0])
