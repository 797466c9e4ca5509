"""task: sts, the Trans-Encoder regime: unlabelled sentence pairs, no qrels.

bi -> cross: bi-encoder k-1's cosine on every training pair (both orders) is a soft label for
cross-encoder k; cross -> bi: cross-encoder k's symmetric score is a regression target for bi-encoder
k. Training only ever reads `data/pairs/unlabelled.parquet` (pair_id, text_a, text_b): gold scores are
dropped before it is written, so they cannot reach a training step.
"""
