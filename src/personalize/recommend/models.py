"""The building blocks the engine blends: popularity, item neighbours, content neighbours.

Each function takes plain arrays and returns plain arrays or scipy sparse
matrices. Neighbour tables are CSR matrices with at most ``k`` entries per row
(row = an item, columns = its neighbours), so memory grows with ``n_items * k``
and never with ``n_items ** 2``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from .data import CART, PURCHASE, VIEW, InteractionLog, ItemTable

DAY = 86400.0


def kind_weights(log: InteractionLog, weights: dict[int, float]) -> np.ndarray:
    """Return one weight per interaction row from its kind (unknown kinds weigh 0)."""
    table = np.zeros(max(VIEW, CART, PURCHASE) + 1, dtype=np.float32)
    for kind, w in weights.items():
        table[int(kind)] = w
    kinds = np.clip(log.kind.astype(np.int64), 0, len(table) - 1)
    return table[kinds]


def decay(age_seconds: np.ndarray, half_life_days: float) -> np.ndarray:
    """Halve a weight every ``half_life_days``; a non-positive half life means no decay."""
    if half_life_days <= 0:
        return np.ones_like(age_seconds, dtype=np.float64)
    return np.exp2(-np.maximum(age_seconds, 0.0) / (half_life_days * DAY))


def user_item_matrix(log: InteractionLog, values: np.ndarray, n_users: int | None = None) -> sp.csr_matrix:
    """Sum ``values`` per (user, item) into a CSR matrix of shape (n_users, n_items)."""
    n_users = log.n_users if n_users is None else n_users
    m = sp.csr_matrix(
        (values.astype(np.float64), (log.user.astype(np.int64), log.item.astype(np.int64))),
        shape=(n_users, log.n_items),
    )
    m.sum_duplicates()
    return m


def popularity(log: InteractionLog, now: float, half_life_days: float, users: np.ndarray | None = None) -> np.ndarray:
    """Return each item's recency-decayed number of buyers, scaled so the top item is 1.

    One user counts once per item (at their latest interaction), so one bulk buyer
    cannot make an item a best seller. ``users`` optionally restricts the count to
    a subset of user indexes (a segment).
    """
    if users is not None:
        log = log.select(np.isin(log.user, users))
    scores = np.zeros(log.n_items, dtype=np.float64)
    if len(log) == 0:
        return scores.astype(np.float32)
    key = log.user.astype(np.int64) * log.n_items + log.item
    order = np.lexsort((-log.ts, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    latest = order[first]
    np.add.at(scores, log.item[latest], decay(now - log.ts[latest], half_life_days))
    top = scores.max()
    return (scores / top if top > 0 else scores).astype(np.float32)


def repeat_rate(log: InteractionLog, prior: float = 2.0) -> np.ndarray:
    """Return, per item, the smoothed share of its buyers who bought it on more than one occasion.

    Items nobody bought get the catalogue-wide share; ``prior`` pseudo-buyers pull
    rarely bought items towards that share.
    """
    buys = log.select(log.kind == PURCHASE)
    n = log.n_items
    if len(buys) == 0:
        return np.ones(n, dtype=np.float32)
    # one occasion = one (user, item, moment); count the occasions of every (user, item) pair
    pair = buys.user.astype(np.int64) * n + buys.item.astype(np.int64)
    order = np.lexsort((buys.ts, pair))
    pair_s, ts_s = pair[order], buys.ts[order]
    new_occasion = np.ones(len(order), dtype=bool)
    new_occasion[1:] = (pair_s[1:] != pair_s[:-1]) | (ts_s[1:] != ts_s[:-1])
    pairs, count = np.unique(pair_s[new_occasion], return_counts=True)
    items = pairs % n
    buyers = np.bincount(items, minlength=n).astype(np.float64)
    repeaters = np.bincount(items, weights=(count > 1).astype(np.float64), minlength=n)
    overall = repeaters.sum() / max(buyers.sum(), 1.0)
    return ((repeaters + prior * overall) / (buyers + prior)).astype(np.float32)


def trend(log: InteractionLog, now: float, half_life_days: float = 14.0) -> np.ndarray:
    """Return, per item, how much more of its buyers are recent than over the whole log.

    1 means as popular lately as ever; seasonal items in season score above 1.
    Shares are smoothed by one buyer's worth so rare items stay near 1.
    """
    recent = popularity(log, now, half_life_days).astype(np.float64)
    overall = popularity(log, now, 0.0).astype(np.float64)
    if recent.sum() == 0 or overall.sum() == 0:
        return np.ones(log.n_items, dtype=np.float32)
    smooth = 1.0 / max(log.n_items, 1)
    return ((recent / recent.sum() + smooth) / (overall / overall.sum() + smooth)).astype(np.float32)


def _top_k_dense(block: np.ndarray, k: int, row_offset: int, exclude_self: bool, signed: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``k`` largest positive entries (or, ``signed``, largest by magnitude) of each row of a dense block (as COO triples)."""
    n_rows, n_cols = block.shape
    if exclude_self:
        rows = np.arange(n_rows)
        cols = rows + row_offset
        ok = cols < n_cols
        block[rows[ok], cols[ok]] = 0.0
    k = min(k, n_cols)
    key = np.abs(block) if signed else block
    if k < n_cols:
        idx = np.argpartition(-key, k - 1, axis=1)[:, :k]
    else:
        idx = np.tile(np.arange(n_cols), (n_rows, 1))
    vals = np.take_along_axis(block, idx, axis=1)
    keep = vals != 0 if signed else vals > 0
    r = np.repeat(np.arange(n_rows) + row_offset, k).reshape(n_rows, k)
    return r[keep], idx[keep], vals[keep]


def _top_k_csr(m: sp.csr_matrix, k: int, row_offset: int) -> sp.csr_matrix:
    """Keep the ``k`` largest positive entries of each CSR row, dropping the diagonal (row ``r`` is
    item ``r + row_offset``), as a float32 CSR block of the same shape. Rows with at most ``k``
    such entries are kept whole without a Python step; only longer rows are cut. Indices are
    left in ``m``'s order (:func:`_stack` sorts them)."""
    n_rows = m.shape[0]
    row = np.repeat(np.arange(n_rows, dtype=np.int32), np.diff(m.indptr))
    keep = (m.data > 0) & (m.indices != row + row_offset)
    counts = np.bincount(row[keep], minlength=n_rows)
    long_rows = np.flatnonzero(counts > k)
    for r in long_rows:
        lo, hi = m.indptr[r], m.indptr[r + 1]
        inside = np.flatnonzero(keep[lo:hi]) + lo
        keep[inside[np.argpartition(-m.data[inside], k - 1)[k:]]] = False
    counts[long_rows] = k
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((m.data[keep].astype(np.float32), m.indices[keep], indptr), shape=m.shape)


def _stack(blocks: list[sp.csr_matrix], n: int) -> sp.csr_matrix:
    """The row blocks of a neighbour table as one (n x n) float32 CSR table, indices sorted."""
    if not blocks:
        return sp.csr_matrix((n, n), dtype=np.float32)
    table = sp.vstack(blocks, format="csr", dtype=np.float32)
    table.sort_indices()
    return table


def _to_table(rows: list, cols: list, vals: list, n: int) -> sp.csr_matrix:
    if rows:
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    else:
        r = c = np.zeros(0, dtype=np.int64)
        v = np.zeros(0)
    table = sp.csr_matrix((v.astype(np.float32), (r, c)), shape=(n, n))
    table.sort_indices()
    return table


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit = None


@contextlib.contextmanager
def one_blas_thread():
    """BLAS on one thread while inside. The limit is the process's: with work in threads
    (:func:`in_threads`) it is set when the first enters and restored when the last leaves, so one
    leaving never lifts it under another. OpenBLAS raises its thread count again only when asked
    from the process's main thread (tried: asked from another, it stays at one), so ``in_threads``
    enters here in its caller's thread around its pool, and the last to leave is the caller."""
    global _blas_users, _blas_limit
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def thread_count(wanted: int, tasks: int) -> int:
    """How many threads :func:`in_threads` runs for ``tasks`` tasks: ``wanted``, at most one per task
    and per core of the machine."""
    return max(1, min(wanted, tasks, os.cpu_count() or 1))


def in_threads(fn, args: list[tuple], threads: int) -> list:
    """``[fn(*a) for a in args]``, at most ``threads`` of them at once (never more than the machine's
    cores). Made for the training windows and rankers, whose work is numpy, scipy and LightGBM: they
    let go of the interpreter while they compute, so on two cores two take little more than one."""
    threads = thread_count(threads, len(args))
    if threads == 1:
        return [fn(*a) for a in args]
    # BLAS on one thread meanwhile: the tasks take the cores (see one_blas_thread)
    with one_blas_thread(), ThreadPoolExecutor(threads, thread_name_prefix="personalize-fit") as pool:
        return list(pool.map(lambda a: fn(*a), args))


def spd_inverse(a: np.ndarray) -> np.ndarray:
    """Invert a symmetric positive definite matrix through its Cholesky factor (may overwrite ``a``).

    Works in ``a``'s precision (float32 halves the time and memory of float64) and
    on one BLAS thread: on a shared 2-core machine a second thread that has to
    wait for a core makes the factorization two to three times slower, while on an
    idle one it saves well under a second at the sizes EASE is used for.
    """
    from scipy.linalg import lapack

    single = a.dtype == np.float32
    potrf, potri = (lapack.spotrf, lapack.spotri) if single else (lapack.dpotrf, lapack.dpotri)
    with one_blas_thread():
        factor, info = potrf(a, lower=1, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError("matrix is not positive definite")
        inv, info = potri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError("matrix inversion failed")
    # only the lower triangle is filled in: mirror it in place
    upper = np.triu_indices(len(inv), 1)
    inv[upper] = inv.T[upper]
    return inv


def ease_neighbours(x: sp.csr_matrix, lam: float, k: int, *, signed: bool = False) -> sp.csr_matrix:
    """Fit EASE (Steck 2019) on a user x item matrix and keep each item's top-``k`` weights.

    Dense in ``n_items ** 2`` while fitting (float32): call it only for small
    catalogues. Row ``i`` holds the weights with which item ``i`` in a history
    votes for others. With ``signed`` the ``k`` largest weights by magnitude are
    kept, negative ones included (an item can speak against another);
    otherwise the ``k`` largest positive ones.
    """
    n = x.shape[1]
    xf = sp.csr_matrix(x, dtype=np.float32)
    gram = (xf.T @ xf).toarray()
    gram[np.diag_indices(n)] += np.float32(lam)
    p = spd_inverse(np.asfortranarray(gram))
    del gram
    p /= (-np.diag(p)).copy()[None, :]
    p[np.diag_indices(n)] = 0.0
    rows, cols, vals = [], [], []
    for lo in range(0, n, 2048):
        r, c, v = _top_k_dense(p[lo:lo + 2048].copy(), k, lo, exclude_self=True, signed=signed)
        rows.append(r)
        cols.append(c)
        vals.append(v)
    return _to_table(rows, cols, vals, n)


def cosine_neighbours(x: sp.csr_matrix, k: int, block: int = 2048, budget: int = 8_000_000) -> sp.csr_matrix:
    """Return each item's ``k`` most similar items by cosine over the columns of ``x``.

    Works in blocks of at most ``block`` items whose co-occurrence rows hold at most about
    ``budget`` entries between them (an item's row can hold no more entries than the items its
    buyers' rows hold in all), so peak memory stays bounded when a few items are in almost every
    basket; the rows are scaled in place.
    """
    n = x.shape[1]
    xc = x.tocsc().astype(np.float32)
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    inverse = 1.0 / norms  # float32, as the counts
    xt = xc.T.tocsr()
    xr = xc.tocsr()  # the right-hand side as CSR once (a CSC one is converted again at every product)
    blocks = []
    for lo, hi in entry_blocks(entry_bound(x), budget, block):
        co = xt[lo:hi] @ xr
        co.data *= np.repeat(inverse[lo:hi], np.diff(co.indptr))
        co.data *= inverse[co.indices]
        blocks.append(_top_k_csr(co, k, lo))
        del co
    return _stack(blocks, n)


def entry_bound(x: sp.spmatrix) -> np.ndarray:
    """For each column ``j`` of ``x`` (rows: customers or orders), the most entries row ``j`` of
    ``x.T @ x`` can hold: the entries of the rows holding ``j``, summed (at most the columns)."""
    x = sp.csr_matrix(x)
    pattern = sp.csr_matrix((np.ones(x.nnz), x.indices, x.indptr), shape=x.shape)
    return np.minimum(pattern.T @ np.diff(x.indptr).astype(np.float64), x.shape[1])


def entry_blocks(bound: np.ndarray, budget: float, most: int):
    """``(lo, hi)`` cuts of ``range(len(bound))`` into blocks of at most ``most`` positions whose
    ``bound`` sums to at most about ``budget`` (at least one position a block), so a block of best
    sellers holds no more entries than a block of the long tail."""
    reach = np.cumsum(bound)
    lo = 0
    while lo < len(bound):
        hi = int(np.searchsorted(reach, (reach[lo - 1] if lo else 0.0) + budget, side="right"))
        hi = min(max(hi, lo + 1), lo + most, len(bound))
        yield lo, hi
        lo = hi


def content_neighbours(items: ItemTable, k: int, block: int = 2048, min_similarity: float = 0.1) -> sp.csr_matrix:
    """Return each item's ``k`` most similar items by TF-IDF cosine over title, category and description."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(items)
    docs = [
        f"{t} {c} {c} {d}" for t, c, d in zip(items.titles, items.categories, items.descriptions, strict=True)
    ]
    if n == 0 or not any(doc.strip() for doc in docs):
        return sp.csr_matrix((n, n), dtype=np.float32)
    try:
        vec = TfidfVectorizer(min_df=1, max_df=0.5, sublinear_tf=True, dtype=np.float32)
        m = vec.fit_transform(docs).tocsr()
    except ValueError:  # every word too common or no words at all
        return sp.csr_matrix((n, n), dtype=np.float32)
    mt = m.T.tocsr()
    blocks = []
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        sim = (m[lo:hi] @ mt).tocsr()
        sim.data[sim.data < min_similarity] = 0.0
        sim.eliminate_zeros()
        blocks.append(_top_k_csr(sim, k, lo))
    return _stack(blocks, n)
