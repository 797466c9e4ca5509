"""Training losses: one small module per loss, each stating its formula and the layout of its inputs.

Conventions shared by every loss here, so trainers can swap them:

- scores are raw model outputs (logits or similarities), float, shaped ``(batch, group)`` or flat
  ``(batch * group,)`` with each group's entries contiguous; a flat input needs ``group``;
- inside a group, index 0 is the positive (or the example a target distribution is defined for);
- every loss returns a scalar: the mean over groups (over the groups of THIS process's batch; the
  trainer averages across processes through the gradient all-reduce);
- scores are upcast to float32 before any softmax, so bf16/fp16 autocast does not change the loss.

Teacher-driven losses (KL on softmax distributions, MarginMSE on score margins) for the bi-encoder take
``(scores, teacher_scores)`` of the same layout and follow the same conventions. The pointwise losses
of task sts (BCE, MSE, CoSENT) take one prediction per example, ``(batch,)``, and a target of the same
shape (the teacher's label of that pair).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def as_groups(scores: torch.Tensor, group: int | None = None) -> torch.Tensor:
    """View scores as ``(batch, group)``: a 2-D input as is, a flat one split into rows of `group`."""
    if scores.dim() == 2 and scores.shape[-1] == 1 and group is not None and group != 1:
        scores = scores.view(-1)  # (batch * group, 1) logits of a 1-label model
    if scores.dim() == 2:
        if group is not None and scores.shape[1] != group:
            raise ValueError(f"scores have groups of {scores.shape[1]}, expected {group}")
        return scores
    if scores.dim() != 1:
        raise ValueError(f"scores must be (batch, group) or (batch * group,), got shape {tuple(scores.shape)}")
    if group is None or group < 1:
        raise ValueError("flat scores need the group size")
    if scores.numel() % group:
        raise ValueError(f"{scores.numel()} scores do not split into groups of {group}")
    return scores.view(-1, group)


class GroupSoftmaxCE(torch.nn.Module):
    """Group-wise softmax cross-entropy ("LCE" in FlagEmbedding's reranker, Gao et al. 2021).

    Input: scores ``(batch, group)`` or ``(batch * group,)``; in every group the positive is at index 0
    and the other ``group - 1`` entries are its negatives. With ``s_{b,j}`` the score of entry j of
    group b and an optional temperature ``t``::

        loss = (1 / batch) * sum_b  -log( exp(s_{b,0} / t) / sum_j exp(s_{b,j} / t) )

    i.e. the mean over groups of ``-log softmax(scores / t)[0]``.
    """

    def __init__(self, group_size: int | None = None, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.group_size = group_size
        self.temperature = temperature

    def forward(self, scores: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
        groups = as_groups(scores, group_size or self.group_size).float() / self.temperature
        return -F.log_softmax(groups, dim=-1)[:, 0].mean()


class DistillKL(torch.nn.Module):
    """Listwise distillation: KL divergence from the teacher's to the student's softmax over a group.

    Input: student and teacher scores, both ``(batch, group)`` (or flat with ``group``). With
    temperatures ``T_t`` (teacher) and ``T_s`` (student)::

        p = softmax(teacher / T_t),  log q = log_softmax(student / T_s)
        loss = (1 / batch) * sum_b sum_j p_{b,j} * (log p_{b,j} - log q_{b,j})

    i.e. ``F.kl_div(log q, p, reduction="batchmean")``: summed over a group, averaged over groups.
    """

    def __init__(self, teacher_temperature: float = 1.0, student_temperature: float = 1.0):
        super().__init__()
        if teacher_temperature <= 0 or student_temperature <= 0:
            raise ValueError("temperatures must be > 0")
        self.teacher_temperature = teacher_temperature
        self.student_temperature = student_temperature

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
        s = as_groups(student, group_size).float() / self.student_temperature
        t = as_groups(teacher, group_size).float() / self.teacher_temperature
        return F.kl_div(F.log_softmax(s, dim=-1), F.softmax(t, dim=-1), reduction="batchmean")


class MarginMSE(torch.nn.Module):
    """MarginMSE (Hofstaetter et al. 2020): match the student's positive-negative margins to the teacher's.

    Input: student and teacher scores ``(batch, group)``, positive at index 0. With the student's
    scores multiplied by ``scale`` (cosines live in [-1, 1], teacher logits do not)::

        loss = mean_{b, j >= 1} ((scale * (s_{b,0} - s_{b,j})) - (t_{b,0} - t_{b,j}))^2
    """

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
        s = as_groups(student, group_size).float() * self.scale
        t = as_groups(teacher, group_size).float()
        return F.mse_loss(s[:, :1] - s[:, 1:], t[:, :1] - t[:, 1:])


class InBatchCE(torch.nn.Module):
    """In-batch negatives cross-entropy (InfoNCE) for a bi-encoder.

    Input: query embeddings ``(batch, dim)`` and document embeddings ``(batch * group, dim)``, the
    documents of query b at rows ``b * group .. b * group + group - 1`` with its positive first. Every
    document of the batch is a candidate for every query; with temperature ``T``::

        loss = (1 / batch) * sum_b -log softmax(q_b . D^T / T)[b * group]
    """

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, queries: torch.Tensor, docs: torch.Tensor, group_size: int) -> torch.Tensor:
        scores = queries.float() @ docs.float().T / self.temperature
        target = torch.arange(queries.shape[0], device=scores.device) * group_size
        return F.cross_entropy(scores, target)


class PairBCE(torch.nn.Module):
    """Binary cross-entropy on logits against soft labels in [0, 1] (a cross-encoder learning a score).

    Input: logits ``(batch,)`` and labels ``(batch,)``; with ``sigma`` the logistic function::

        loss = -(1 / batch) * sum_i [ y_i * log sigma(x_i) + (1 - y_i) * log(1 - sigma(x_i)) ]

    sentence-transformers' CrossEncoder with one label trains with this loss (BCEWithLogitsLoss).
    """

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float().view(-1), labels.float().view(-1))


class PairMSE(torch.nn.Module):
    """Mean squared error between a prediction and its label (regression on a teacher's score).

    Input: predictions ``(batch,)`` (a cosine, or sigmoid of a logit) and labels ``(batch,)``::

        loss = (1 / batch) * sum_i (p_i - y_i)^2

    On cosines this is sentence-transformers' CosineSimilarityLoss (Reimers and Gurevych 2019).
    """

    def forward(self, predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(predictions.float().view(-1), labels.float().view(-1))


class CoSENT(torch.nn.Module):
    """CoSENT (Su 2022): rank the batch's predictions like their labels, whatever the labels' scale.

    Input: predictions ``(batch,)`` (cosines, or sigmoid of logits) and labels ``(batch,)``; with a
    scale ``lambda`` (20 in the paper and in sentence-transformers' CoSENTLoss)::

        loss = log(1 + sum over pairs (i, j) with y_i > y_j of exp(lambda * (p_j - p_i)))

    Zero gradient once the predictions rank like the labels by a margin; ties in the labels add no term.
    """

    def __init__(self, scale: float = 20.0):
        super().__init__()
        self.scale = float(scale)

    def forward(self, predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        p = predictions.float().view(-1)
        diff = self.scale * (p[None, :] - p[:, None])  # [i, j] = lambda * (p_j - p_i)
        wrong_way = labels.view(-1)[:, None] > labels.view(-1)[None, :]
        diff = diff.masked_fill(~wrong_way, float("-inf"))
        return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.flatten()]), dim=0)
