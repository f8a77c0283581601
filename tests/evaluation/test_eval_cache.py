"""`eval`'s embedding cache: the same encoder on the same texts embeds once; a damaged file is re-embedded."""

import numpy as np

from labelrouter.evaluation.protocols import cached_embeddings, embedding_cache_path


class CountingEncoder:
    version, dim = "enc@1", 3

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return np.arange(len(texts) * 3, dtype=np.float32).reshape(len(texts), 3)


def test_vectors_are_embedded_once_and_rewritten_when_damaged(tmp_path):
    encoder = CountingEncoder()
    first = cached_embeddings(encoder, ["a", "b"], tmp_path)
    again = cached_embeddings(encoder, ["a", "b"], tmp_path)
    assert encoder.calls == 1 and np.array_equal(first, again)
    assert not embedding_cache_path(encoder, ["a", "c"], tmp_path).exists()  # other texts, other file
    embedding_cache_path(encoder, ["a", "b"], tmp_path).write_bytes(b"not an array")
    assert np.array_equal(cached_embeddings(encoder, ["a", "b"], tmp_path), first) and encoder.calls == 2
    assert cached_embeddings(encoder, ["a"], None).shape == (1, 3) and encoder.calls == 3  # no cache: always
