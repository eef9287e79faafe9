"""The language-model workload's core: the Zipfian Markov corpus (course_lib.data) and TinyTransformerLM
(course_lib.models), against closed forms, the law of large numbers and torch's own TransformerEncoderLayer."""

import math

import numpy as np
import pytest
import torch

from course_lib import data, models


@pytest.fixture(scope="module")
def corpus():
    return data.zipf_markov_corpus(vocab_size=64, successors=4, train_chains=64, val_chains=16, length=256, seed=3)


def test_stationary_law_is_zipf_and_rows_are_distributions(corpus):
    P, pi = corpus.transition, corpus.stationary
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (P > 0).all()
    np.testing.assert_allclose(pi @ P, pi, rtol=0, atol=1e-13)
    np.testing.assert_allclose(pi, data.zipf_weights(64), rtol=1e-10)
    np.testing.assert_allclose(data.zipf_weights(4), np.array([12, 6, 4, 3]) / 25, rtol=1e-14)


def test_entropy_rate_of_a_two_state_chain_is_its_closed_form():
    p, q = 0.3, 0.1  # P(0 → 1) = p, P(1 → 0) = q: π = (q, p)/(p + q)
    P = np.array([[1 - p, p], [q, 1 - q]])
    pi = data.stationary_distribution(P)
    np.testing.assert_allclose(pi, [q / (p + q), p / (p + q)], rtol=1e-12)

    def h(x):
        return -x * math.log(x) - (1 - x) * math.log(1 - x)

    assert data.markov_entropy_rate(P, pi) == pytest.approx((q * h(p) + p * h(q)) / (p + q), rel=1e-12)


def test_entropy_rate_is_the_average_surprise_of_sampled_chains(corpus):
    tokens = corpus.train.numpy()
    surprise = -np.log(corpus.transition[tokens[:, :-1], tokens[:, 1:]])
    standard_error = surprise.std() / math.sqrt(surprise.size / 4)  # chains are correlated over a few steps
    assert abs(surprise.mean() - corpus.entropy_rate) < 4 * standard_error
    assert corpus.entropy_rate < corpus.unigram_entropy < math.log(64)


def test_sampled_bigrams_follow_the_transition_matrix(corpus):
    tokens = corpus.train.numpy()
    counts = np.zeros((64, 64))
    np.add.at(counts, (tokens[:, :-1].ravel(), tokens[:, 1:].ravel()), 1)
    row = counts[0]  # the most frequent token: a few thousand successors
    expected = corpus.transition[0] * row.sum()
    chi2 = ((row - expected) ** 2 / expected).sum()
    assert chi2 < 63 + 6 * math.sqrt(2 * 63)  # χ² with 63 degrees of freedom, 6 standard deviations
    frequencies = np.bincount(tokens.ravel(), minlength=64) / tokens.size
    np.testing.assert_allclose(frequencies[:4], corpus.stationary[:4], rtol=0.1)


def test_corpus_is_seeded_and_pinned():
    a = data.zipf_markov_corpus(vocab_size=32, train_chains=4, val_chains=2, length=16, seed=0)
    b = data.zipf_markov_corpus(vocab_size=32, train_chains=4, val_chains=2, length=16, seed=0)
    c = data.zipf_markov_corpus(vocab_size=32, train_chains=4, val_chains=2, length=16, seed=1)
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)
    assert a.train.dtype == torch.int64 and a.train.shape == (4, 16) and a.val.shape == (2, 16)
    assert int(a.train.sum()) == PINNED_TOKEN_SUM


PINNED_TOKEN_SUM = 400  # NumPy's PCG64 stream is stable across versions: this sum pins the whole construction


def test_frequency_bins(corpus):
    bins = corpus.frequency_bins(0.1, 0.5)
    assert bins["frequent"].sum() == 6 and bins["rare"].sum() == 32
    assert not (bins["frequent"] & bins["rare"]).any()
    assert corpus.token_counts[bins["frequent"]].min() >= corpus.token_counts[~bins["frequent"]].max()
    assert corpus.token_counts[bins["rare"]].max() <= corpus.token_counts[~bins["rare"]].min()
    with pytest.raises(ValueError, match="frequent_fraction"):
        corpus.frequency_bins(0.6, 0.5)


def test_transition_errors():
    with pytest.raises(ValueError, match="successors"):
        data.zipf_markov_transition(8, successors=9)
    with pytest.raises(ValueError, match="mixing"):
        data.zipf_markov_transition(8, mixing=0.0)


# --------------------------------------------------------------------------------------
# TinyTransformerLM
# --------------------------------------------------------------------------------------
def _model(**options):
    torch.manual_seed(0)
    return models.TinyTransformerLM(vocab_size=50, context=12, width=16, depth=2, heads=4, **options).double()


def test_logits_before_a_changed_token_do_not_change(one_thread):
    model = _model()
    tokens = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 50
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert before.shape == (3, 12, 50)
    torch.testing.assert_close(before[:, :7], after[:, :7], rtol=0, atol=1e-12)
    assert (before[:, 7:] - after[:, 7:]).abs().amax(dim=-1).min() > 1e-6  # every later position sees it


def test_loss_at_initialization_is_about_log_vocabulary(one_thread):
    model = _model()
    tokens = torch.randint(0, 50, (8, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        loss = models.next_token_loss(model(tokens[:, :-1]), tokens[:, 1:])
    assert abs(loss.item() - math.log(50)) < 0.02


def test_block_equals_torch_transformer_encoder_layer(one_thread):
    torch.manual_seed(0)
    block = models.Block(16, heads=4).double()
    for p in block.parameters():  # random biases and norms too, so every parameter is checked
        torch.nn.init.normal_(p, 0.0, 0.3)
    reference = torch.nn.TransformerEncoderLayer(16, 4, dim_feedforward=64, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=True).double().eval()
    with torch.no_grad():
        reference.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
        reference.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        reference.self_attn.out_proj.weight.copy_(block.attn.proj.weight)
        reference.self_attn.out_proj.bias.copy_(block.attn.proj.bias)
        for mine, theirs in ((block.mlp[0], reference.linear1), (block.mlp[2], reference.linear2),
                             (block.norm1, reference.norm1), (block.norm2, reference.norm2)):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
        x = torch.randn(2, 9, 16, dtype=torch.float64)
        mask = torch.nn.Transformer.generate_square_subsequent_mask(9, dtype=torch.float64)
        torch.testing.assert_close(block(x), reference(x, src_mask=mask, is_causal=True), rtol=1e-12, atol=1e-12)


def test_tied_and_untied_heads():
    tied, untied = _model(), _model(tied=False)
    count = sum(p.numel() for p in tied.parameters())
    assert sum(p.numel() for p in untied.parameters()) == count + 50 * 16
    tokens = torch.zeros(1, 5, dtype=torch.long)
    with torch.no_grad():
        hidden = tied.norm(tied.blocks[1](tied.blocks[0](tied.token_embedding(tokens)
                                                        + tied.position_embedding.weight[:5])))
        torch.testing.assert_close(tied(tokens), hidden @ tied.token_embedding.weight.T)
    with pytest.raises(ValueError, match="longer than the model's context"):
        tied(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="multiple of heads"):
        models.CausalSelfAttention(10, 4)


def test_initialization_is_gpt2_s_as_documented():
    """The docstring: weights N(0, 0.02²), biases 0, the projections into the residual stream (attention's ``proj``,
    the MLP's second layer) N(0, (0.02/√(2·depth))²); LayerNorms at weight 1, bias 0; an untied head like the rest."""
    depth, width = 3, 64
    torch.manual_seed(0)
    model = models.TinyTransformerLM(vocab_size=256, context=64, width=width, depth=depth, heads=4, tied=False)
    residual = 0.02 / math.sqrt(2 * depth)
    checked = set()
    for name, p in model.named_parameters():
        values = p.detach().double()
        if name.endswith("bias"):
            assert torch.count_nonzero(values) == 0, name
        elif "norm" in name:
            assert torch.all(values == 1), name
        else:
            expected = residual if name.endswith(("attn.proj.weight", "mlp.2.weight")) else 0.02
            # the sample standard deviation of n ≥ 4096 normal draws is within 5 % of σ (more than 4 standard errors)
            assert p.numel() >= 4096 and abs(values.std().item() / expected - 1) < 0.05, (name, values.std().item())
            assert abs(values.mean().item()) < 4 * expected / math.sqrt(p.numel()), name
        checked.add(name)
    assert "head.weight" in checked and "blocks.2.mlp.2.weight" in checked and "blocks.0.attn.qkv.bias" in checked


def test_the_untied_head_is_the_one_used():
    untied = _model(tied=False)
    tokens = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        x = untied.token_embedding(tokens) + untied.position_embedding.weight[:6]
        for block in untied.blocks:
            x = block(x)
        torch.testing.assert_close(untied(tokens), untied.norm(x) @ untied.head.weight.T, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(untied.head.weight, untied.token_embedding.weight)   # a head of its own
    models.next_token_loss(untied(tokens[:, :-1]), tokens[:, 1:]).backward()
    assert untied.head.weight.grad is not None and untied.head.weight.grad.abs().sum() > 0


def test_the_corpus_splits_into_independent_chains_as_documented():
    """The docstring: ``train_chains`` and ``val_chains`` independent chains, drawn offline from ``seed``; the counts
    are the training set's. Train and validation share no chain, and together they are the documented sample."""
    corpus = data.zipf_markov_corpus(vocab_size=64, successors=4, train_chains=12, val_chains=5, length=128, seed=3)
    assert corpus.train.shape == (12, 128) and corpus.val.shape == (5, 128)
    sample = data.sample_markov_chains(corpus.transition, corpus.stationary, 12 + 5, 128, seed=3 + 1)
    np.testing.assert_array_equal(torch.cat([corpus.train, corpus.val]).numpy(), sample)
    train_rows = {tuple(row.tolist()) for row in corpus.train}
    assert len(train_rows) == 12 and not train_rows & {tuple(row.tolist()) for row in corpus.val}
    # no training chain holds a validation chain's first 32 tokens anywhere (a window cut from the same stream)
    for row in corpus.val:
        head = row[:32]
        windows = corpus.train.unfold(1, 32, 1)
        assert not (windows == head).all(dim=-1).any()
    np.testing.assert_array_equal(corpus.token_counts, np.bincount(corpus.train.numpy().ravel(), minlength=64))
