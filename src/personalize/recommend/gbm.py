"""Gradient-boosted trees as plain arrays: trained with LightGBM (or scikit-learn), served with numpy.

A model file must load without running code, so a fitted booster is never
pickled: :func:`export_lightgbm` (a LightGBM ``Booster``) and :func:`export` (a
scikit-learn ``HistGradientBoostingClassifier``) copy its trees into a few flat
arrays (one row per node, every tree's nodes one after
another), and :class:`Forest` predicts from those arrays alone, all rows and all
trees at once, one tree level per numpy step. The arrays go into the model's
``.npz`` like every other table.

For serving, the constructor also lays every tree out as a complete binary tree
of the forest's depth (a leaf above the last level is repeated down to it, its
split "feature 0 > +inf" never taken), one small table per level. A row's place
in level ``d + 1`` is then ``2 * place + (x > threshold)``: each step reads the
feature and threshold of the row's place and compares, with no child look-up
(about half the time of the node-by-node walk); the nodes visited, the leaves reached and every
sum are the same as the plain walk's (tests/recommend/test_gbm_walk.py checks
it against a one-row-at-a-time walk).

:meth:`Forest.contributions` splits each prediction into one share per feature
(the change in a tree's expected value at each split along the row's path,
summed over trees), which is what the engine's reasons are read from.
"""

from __future__ import annotations

import numpy as np

COMPLETE_MAX_DEPTH = 10  # deeper forests walk node by node (2**depth places per tree would be too many)
ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "value", "mean", "roots")


class Forest:
    """A binary classifier's trees: ``predict`` gives the probability of the positive class."""

    def __init__(self, feature, threshold, missing_left, left, right, value, mean, roots, baseline: float):
        self.feature = np.asarray(feature, dtype=np.int32)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.missing_left = np.asarray(missing_left, dtype=bool)
        self.left = np.asarray(left, dtype=np.int32)
        self.right = np.asarray(right, dtype=np.int32)
        self.value = np.asarray(value, dtype=np.float64)  # leaf values (raw score units)
        self.mean = np.asarray(mean, dtype=np.float64)  # every node's expected value over its training rows
        self.roots = np.asarray(roots, dtype=np.int32)
        self.baseline = float(baseline)
        self.leaf = self.feature < 0
        # leaves compare feature 0 with +inf and stay where they are; features are never NaN
        # (the engine builds finite features), so no per-node missing-value branch is needed
        self._feat = np.where(self.leaf, 0, self.feature).astype(np.int32)
        self._thr = np.where(self.leaf, np.inf, self.threshold)
        self._child = np.stack([self.left, self.right], axis=1).ravel().astype(np.int32)  # [left, right] per node
        self.depth = self._depth()
        self._levels = self._complete() if self.depth <= COMPLETE_MAX_DEPTH else None

    def _complete(self):
        """The trees as complete binary trees, one table per level: per level ``d`` the node at
        each place (trees x 2**d, flattened tree-major), its split feature, threshold and
        expected value; and the leaf value, expected value and node at each place of the last level."""
        n_trees = len(self.roots)
        node = self.roots.astype(np.int64)
        levels = []
        for _ in range(self.depth):
            levels.append((self._feat[node].astype(np.intp), self._thr[node], self.mean[node]))
            node = self._child.reshape(-1, 2)[node].reshape(n_trees, -1).ravel()  # a leaf is its own two children
        # every level's split features in one array (``_places`` scales them by the row count once)
        self._feat_levels = np.concatenate([feat for feat, _, _ in levels]) if levels else np.zeros(0, dtype=np.intp)
        self._thr_levels = [thr for _, thr, _ in levels]
        self._mean_levels = np.concatenate([mean for _, _, mean in levels] + [self.mean[node]])  # and the last level's
        self._level_at = np.cumsum([0] + [len(feat) for feat, _, _ in levels], dtype=np.intp)
        return levels, self.value[node], self.mean[node], node

    def _depth(self) -> int:
        if not len(self.roots):
            return 0
        depth = np.zeros(len(self.feature), dtype=np.int64)
        for i in range(len(self.feature)):  # parents come before their children in every tree
            if not self.leaf[i]:
                depth[self.left[i]] = depth[self.right[i]] = depth[i] + 1
        return int(depth.max())

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def _places(self, x: np.ndarray, track: bool = False):
        """The complete-tree walk: each (row, tree)'s place in the last level (rows x trees, an
        index into that level's tables) and, with ``track``, per-feature contributions."""
        levels = self._levels[0]
        n_rows, n_features = x.shape
        n_trees = len(self.roots)
        xt = np.ascontiguousarray(x.T).ravel()  # feature f of row r at f * n_rows + r
        rows = np.arange(n_rows, dtype=np.intp)[:, None]
        place = np.broadcast_to(np.arange(n_trees, dtype=np.intp), (n_rows, n_trees)).copy()  # level 0: the roots
        at = self._feat_levels * n_rows  # where in ``xt`` each place's feature starts
        path = [place.copy()] if track else None
        for d, thr in enumerate(self._thr_levels):
            g = at[self._level_at[d]:self._level_at[d + 1]].take(place)
            g += rows
            go = xt.take(g) > thr.take(place)
            place *= 2
            place += go
            if track:
                path.append(place.copy())
        if not track:
            return place, None
        if not levels:
            return place, np.zeros((n_rows, n_features))
        # each step adds the change in expected value to its split's feature, level by level and
        # row by row as the plain walk's np.add.at does (a repeated leaf adds 0 to feature 0)
        path = np.stack(path) + self._level_at[:, None, None]  # places in the all-levels tables
        mean = self._mean_levels.take(path)
        feat = (self._feat_levels.take(path[:-1]) + rows * n_features).ravel()
        contrib = np.bincount(feat, weights=(mean[1:] - mean[:-1]).ravel(), minlength=n_rows * n_features)
        return place, contrib.reshape(n_rows, n_features)

    def _walk(self, x: np.ndarray, track: bool = False):
        """Follow every row down every tree, one level per step for all (row, tree) pairs at
        once; returns the leaf per (row, tree) and, with ``track``, per-feature contributions
        (rows x features). Leaves point to themselves, so extra steps change nothing."""
        n_rows, n_features = x.shape
        n_trees = len(self.roots)
        node = np.tile(self.roots, n_rows)
        base = np.repeat(np.arange(n_rows, dtype=np.int32) * n_features, n_trees)
        flat = x.ravel()
        contrib = np.zeros(n_rows * n_features) if track else None
        for _ in range(self.depth):
            f = self._feat[node]
            nxt = self._child[2 * node + (flat[base + f] > self._thr[node])]
            if track:
                np.add.at(contrib, base + f, self.mean[nxt] - self.mean[node])  # 0 at a leaf (it stays)
            node = nxt
        return node.reshape(n_rows, n_trees), (contrib.reshape(n_rows, n_features) if track else None)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf (node index) each row reaches in each tree (rows x trees; NaN features are read as 0)."""
        x = _finite(x)
        if self._levels is not None:
            return self._levels[3].take(self._places(x)[0])
        return self._walk(x)[0]

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The log-odds of each row (NaN features are read as 0)."""
        x = _finite(x)
        if x.shape[0] == 0:
            return np.zeros(0)
        if self._levels is not None:
            place, _ = self._places(x)
            return self.baseline + self._levels[1].take(place).sum(axis=1)
        node, _ = self._walk(x)
        return self.baseline + self.value[node].sum(axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The probability of the positive class for each row."""
        return 1.0 / (1.0 + np.exp(-self.raw(x)))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per row and feature, how much the feature moved the log-odds (rows x features);
        with the trees' mean root value, each row sums to its log-odds."""
        x = _finite(x)
        if self._levels is not None:
            return self._places(x, track=True)[1]
        _, contrib = self._walk(x, track=True)
        return contrib

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}_{name}": getattr(self, name) for name in ARRAYS}
        out[f"{prefix}_baseline"] = np.array([self.baseline])
        return out

    @classmethod
    def from_arrays(cls, z, prefix: str) -> Forest | None:
        if f"{prefix}_roots" not in z:
            return None
        return cls(*(z[f"{prefix}_{name}"] for name in ARRAYS), baseline=float(z[f"{prefix}_baseline"][0]))


def export(model) -> Forest:
    """Copy a fitted binary ``HistGradientBoostingClassifier``'s trees into a :class:`Forest`.

    Raises ``ValueError`` for what the arrays cannot hold (categorical splits, more than
    two classes)."""
    predictors = model._predictors  # one list per iteration, one tree per class (one for binary)
    if any(len(per_iter) != 1 for per_iter in predictors):
        raise ValueError("only binary classifiers can be exported")
    feature, threshold, missing_left, left, right, value, mean, roots = ([] for _ in range(8))
    offset = 0
    for (tree,) in predictors:
        nodes = tree.nodes
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits cannot be exported")
        leaf = nodes["is_leaf"].astype(bool)
        feature.append(np.where(leaf, -1, nodes["feature_idx"]).astype(np.int32))
        threshold.append(nodes["num_threshold"].astype(np.float64))
        missing_left.append(nodes["missing_go_to_left"].astype(bool))
        lft = np.where(leaf, np.arange(len(nodes)), nodes["left"]).astype(np.int64) + offset
        rgt = np.where(leaf, np.arange(len(nodes)), nodes["right"]).astype(np.int64) + offset
        left.append(lft.astype(np.int32))
        right.append(rgt.astype(np.int32))
        val = np.where(leaf, nodes["value"], 0.0)
        value.append(val)
        # expected value of each node: the training-count-weighted mean of its leaves, bottom up
        m = val.copy()
        count = nodes["count"].astype(np.float64)
        for i in np.argsort(-nodes["depth"], kind="stable"):
            if not leaf[i]:
                a, b = nodes["left"][i], nodes["right"][i]
                total = count[a] + count[b]
                m[i] = (count[a] * m[a] + count[b] * m[b]) / total if total > 0 else 0.5 * (m[a] + m[b])
        mean.append(m)
        roots.append(offset)
        offset += len(nodes)
    baseline = float(np.ravel(model._baseline_prediction)[0])
    def cat(parts, dtype):
        return (np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype))
    return Forest(
        cat(feature, np.int32), cat(threshold, np.float64), cat(missing_left, bool), cat(left, np.int32),
        cat(right, np.int32), cat(value, np.float64), cat(mean, np.float64), np.asarray(roots, dtype=np.int32), baseline,
    )


def export_lightgbm(booster) -> Forest:
    """Copy a binary LightGBM ``Booster``'s trees into a :class:`Forest` (numerical splits "<=" only)."""
    dump = booster.dump_model()
    if dump.get("num_tree_per_iteration", 1) != 1:
        raise ValueError("only binary boosters can be exported")
    feature, threshold, left, right, value, count, roots = [], [], [], [], [], [], []

    def add(node: dict) -> int:
        i = len(feature)
        feature.append(-1)
        threshold.append(0.0)
        left.append(i)
        right.append(i)
        if "leaf_value" in node or "split_feature" not in node:
            value.append(float(node.get("leaf_value", 0.0)))
            count.append(float(node.get("leaf_count", 0)))
            return i
        if node.get("decision_type", "<=") != "<=":
            raise ValueError("categorical splits cannot be exported")
        value.append(0.0)
        count.append(float(node.get("internal_count", 0)))
        feature[i] = int(node["split_feature"])
        threshold[i] = float(node["threshold"])
        left[i] = add(node["left_child"])
        right[i] = add(node["right_child"])
        return i

    for tree in dump["tree_info"]:
        roots.append(add(tree["tree_structure"]))
    feature_a = np.asarray(feature, dtype=np.int32)
    left_a, right_a = np.asarray(left, dtype=np.int32), np.asarray(right, dtype=np.int32)
    value_a, count_a = np.asarray(value), np.asarray(count)
    mean = value_a.copy()
    for i in range(len(feature_a) - 1, -1, -1):  # children come after their parent
        if feature_a[i] >= 0:
            a, b = left_a[i], right_a[i]
            total = count_a[a] + count_a[b]
            mean[i] = (count_a[a] * mean[a] + count_a[b] * mean[b]) / total if total > 0 else 0.5 * (mean[a] + mean[b])
    return Forest(feature_a, np.asarray(threshold), np.zeros(len(feature_a), dtype=bool), left_a, right_a, value_a, mean,
                  np.asarray(roots, dtype=np.int32), 0.0)


def _finite(x) -> np.ndarray:
    """``x`` as float64 with NaN read as 0 (copied only when it has a NaN). Infinities stay: every
    threshold is finite, so they compare as the largest finite values would."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isnan(x), 0.0, x) if np.isnan(x).any() else x
