"""A small classifier in numpy: P(the trade closes with a profit | its entry features).

Logistic regression (no hidden layer) or a one-hidden-layer ReLU MLP, trained full-batch
with Adam and L2. Inputs are standardised with the training set's mean and spread, and that
standardisation is part of the `.tflite` graph (SUB, MUL before the first layer): the file
takes raw features.
(Folding it into the first layer's weights was tried first: raw-scale weights made LiteRT's
float32 sums differ from numpy's by ~5e-6, over the 1e-6 the two must agree to.)"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for any z
    return out


@dataclass(frozen=True, slots=True)
class Layer:
    weights: FloatArray  # (out, in), as TFLite's FULLY_CONNECTED wants them
    bias: FloatArray  # (out,)


@dataclass(slots=True)
class Network:
    """The function the `.tflite` computes, in float32 like LiteRT: standardise
    (x - mean) × inv_scale, ReLU hidden layers, a logistic output. The standardisation is part
    of the graph, so it can never drift from the weights it belongs to."""

    mean: FloatArray
    inv_scale: FloatArray
    layers: list[Layer]

    @property
    def n_inputs(self) -> int:
        return int(self.layers[0].weights.shape[1])

    def predict(self, x: FloatArray) -> FloatArray:
        """P(win) for each row of raw features."""
        h = np.atleast_2d(x).astype(np.float32)
        h = (h - self.mean.astype(np.float32)) * self.inv_scale.astype(np.float32)
        for i, layer in enumerate(self.layers):
            h = h @ layer.weights.astype(np.float32).T + layer.bias.astype(np.float32)
            if i < len(self.layers) - 1:
                h = np.maximum(h, np.float32(0.0))
        out: FloatArray = sigmoid(h[:, 0].astype(np.float64))
        return out


@dataclass(slots=True)
class Classifier:
    """Weights on standardised inputs, plus the standardisation."""

    mean: FloatArray
    scale: FloatArray
    layers: list[Layer]
    l2: float = 1e-3
    history: list[float] = field(default_factory=list)

    @classmethod
    def from_network(cls, network: Network, l2: float = 1e-3) -> Classifier:
        """The classifier a network was made from (for the online learner)."""
        return cls(network.mean.astype(np.float64), 1.0 / network.inv_scale.astype(np.float64),
                   [Layer(la.weights.copy(), la.bias.copy()) for la in network.layers], l2)

    def network(self) -> Network:
        return Network(self.mean.copy(), 1.0 / self.scale, list(self.layers))

    def predict(self, x: FloatArray) -> FloatArray:
        return self.network().predict(x)

    def _forward(self, z: FloatArray) -> tuple[list[FloatArray], FloatArray]:
        acts = [z]
        h = z
        for i, layer in enumerate(self.layers):
            h = h @ layer.weights.T + layer.bias
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
            acts.append(h)
        return acts, sigmoid(h[:, 0])

    def gradients(self, x: FloatArray, y: FloatArray,
                  w: FloatArray | None = None) -> tuple[float, list[Layer]]:
        """Weighted mean log loss (+ L2) and its gradient, by layer."""
        z = (x - self.mean) / self.scale
        acts, p = self._forward(z)
        weights = np.ones_like(y) if w is None else w
        total = float(weights.sum())
        eps = 1e-12
        loss = -float(np.sum(weights * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))))
        loss = loss / total + 0.5 * self.l2 * sum(float(np.sum(la.weights ** 2))
                                                  for la in self.layers)
        delta = ((p - y) * weights / total)[:, None]
        grads: list[Layer] = []
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            grads.append(Layer(delta.T @ acts[i] + self.l2 * layer.weights, delta.sum(axis=0)))
            if i > 0:
                delta = (delta @ layer.weights) * (acts[i] > 0.0)
        grads.reverse()
        return loss, grads

    def step(self, grads: list[Layer], lr: float) -> None:
        self.layers = [Layer(la.weights - lr * g.weights, la.bias - lr * g.bias)
                       for la, g in zip(self.layers, grads, strict=True)]


def train(x: FloatArray, y: FloatArray, *, hidden: int = 0, epochs: int = 400,
          lr: float = 0.05, l2: float = 0.03, seed: int = 0) -> Classifier:
    """Fit on rows `x` (raw features) and labels `y` (> 0.5 = win). Deterministic for a
    given seed."""
    if x.ndim != 2 or len(x) != len(y) or len(y) < 2:
        raise ValueError(f"need rows of features and one label each, got {x.shape} / {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("training data holds NaN or Inf")
    y = (y > 0.5).astype(np.float64)
    rng = np.random.default_rng(seed)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    n_in = x.shape[1]
    sizes = [n_in, hidden, 1] if hidden > 0 else [n_in, 1]
    layers = [Layer(rng.normal(0.0, math.sqrt(2.0 / a), (b, a)) * (0.1 if b == 1 else 1.0),
                    np.zeros(b)) for a, b in itertools.pairwise(sizes)]
    model = Classifier(mean, scale, layers, l2)
    weights = None  # unweighted log loss: P(win) stays calibrated to the observed win rate
    # Adam, full batch: the data sets here are thousands of rows at most.
    m = [Layer(np.zeros_like(la.weights), np.zeros_like(la.bias)) for la in layers]
    v = [Layer(np.zeros_like(la.weights), np.zeros_like(la.bias)) for la in layers]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        loss, grads = model.gradients(x, y, weights)
        model.history.append(loss)
        new_layers = []
        for i, (la, g) in enumerate(zip(model.layers, grads, strict=True)):
            m[i] = Layer(b1 * m[i].weights + (1 - b1) * g.weights,
                         b1 * m[i].bias + (1 - b1) * g.bias)
            v[i] = Layer(b2 * v[i].weights + (1 - b2) * g.weights ** 2,
                         b2 * v[i].bias + (1 - b2) * g.bias ** 2)
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            new_layers.append(Layer(
                la.weights - lr * (m[i].weights / c1) / (np.sqrt(v[i].weights / c2) + eps),
                la.bias - lr * (m[i].bias / c1) / (np.sqrt(v[i].bias / c2) + eps)))
        model.layers = new_layers
    return model


def auc(scores: FloatArray, labels: FloatArray) -> float:
    """Area under the ROC curve (ties count half); NaN when one class is absent."""
    y = labels > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def calibration(scores: FloatArray, labels: FloatArray, bins: int = 5
                ) -> list[dict[str, float]]:
    """Mean prediction vs observed win rate per score bin (equal-width bins over 0..1)."""
    y = (labels > 0.5).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for lo, hi in itertools.pairwise(edges):
        inside = (scores >= lo) & ((scores < hi) if hi < 1.0 else (scores <= hi))
        if inside.any():
            out.append({"from": round(float(lo), 2), "to": round(float(hi), 2),
                        "n": int(inside.sum()), "predicted": round(float(scores[inside].mean()), 4),
                        "observed": round(float(y[inside].mean()), 4)})
    return out


def brier(scores: FloatArray, labels: FloatArray) -> float:
    y = (labels > 0.5).astype(np.float64)
    return float(np.mean((scores - y) ** 2))
