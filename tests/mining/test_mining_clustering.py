import random
import time

import pytest
from conftest import IDEAS, ONE_SHOT, PLANTED, planted_sequences
from sklearn.metrics import adjusted_rand_score

from skill_pipeline.mining.clustering import cluster_sequences, collapse_repeats, reduce_sequence, sequence_id
from skill_pipeline.mining.synthetic import generate_synthetic_sequences


def test_collapse_repeats_exact_and_noisy():
    assert collapse_repeats(list("abxbxbxc")) == (list("abxc"), [(1, 3, 3)])
    assert collapse_repeats(list("abc")) == (list("abc"), [])
    # a second copy of a 5-token block missing one step still collapses
    red, spans = collapse_repeats(list("aEFXCREFCRz"))
    assert red == list("aEFXCRz") and spans == [(1, 6, 2)]
    # a copy bringing a step the block lacks does not swallow it (the step survives outside the collapsed copy)
    assert collapse_repeats(list("aEFXCREFqXCRz")) == (list("aEFXCREFqXCRz"), [])
    assert collapse_repeats(list("aEFXCREFXCqz")) == (list("aEFXCRqz"), [(1, 6, 2)])


def test_retry_and_installer_variants_reduce_close_to_clean_run():
    clean = ["agent_call:engineer", "agent_call:executor", "code_exec:executor:ok", "agent_call:control"]
    retry = (["agent_call:engineer", "agent_call:executor", "code_exec:executor:fail", "error:executor"] * 3
             + clean)
    assert reduce_sequence(retry) == reduce_sequence(clean)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_three_planted_templates(seed):
    seqs, labels = planted_sequences(600, PLANTED, noise=0.05, seed=seed)
    res = cluster_sequences(seqs)
    assert len(res.cluster_ids) == 3
    assert adjusted_rand_score(labels, res.labels) >= 0.95
    assert sum(res.sizes.values()) == 600 and res.silhouette is not None and res.silhouette > 0.5


@pytest.mark.parametrize("template", [ONE_SHOT, IDEAS])
def test_single_template_gives_one_cluster(template):
    seqs, _ = planted_sequences(300, [template], noise=0.05, seed=3)
    res = cluster_sequences(seqs)
    assert len(res.cluster_ids) == 1 and res.silhouette is None


def test_identical_cached_runs():
    seqs = [list(ONE_SHOT[0][1] + ONE_SHOT[1][1])] * 10
    res = cluster_sequences(seqs)
    assert len(res.cluster_ids) == 1 and res.distances == [0.0] * 10


def test_deterministic_content_ids_independent_of_input_order():
    seqs, _labels = planted_sequences(300, PLANTED, noise=0.05, seed=5)
    a = cluster_sequences(seqs)
    perm = list(range(len(seqs)))
    random.Random(1).shuffle(perm)
    b = cluster_sequences([seqs[i] for i in perm])
    assert [b.labels[perm.index(i)] for i in range(len(seqs))] == a.labels
    assert a.cluster_ids == b.cluster_ids
    assert all(c == sequence_id(a.medoids[c]) for c in a.cluster_ids)


def test_thirty_templates_sampled():
    seqs, labels = generate_synthetic_sequences(6000, 30, noise=0.1, seed=3)
    res = cluster_sequences(seqs, sample_size=1500)
    assert adjusted_rand_score(labels, res.labels) >= 0.85
    assert 25 <= len(res.cluster_ids) <= 35


def test_empty_input():
    assert cluster_sequences([]).labels == []


@pytest.mark.slow
def test_scale_100k():
    seqs, labels = generate_synthetic_sequences(100_000, 30, noise=0.1, seed=3)
    t = time.perf_counter()
    res = cluster_sequences(seqs)
    elapsed = time.perf_counter() - t
    assert elapsed < 120
    assert len(res.labels) == 100_000
    assert adjusted_rand_score(labels, res.labels) >= 0.9
