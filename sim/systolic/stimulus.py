"""GEMM job lists for the tests: random shapes plus the cases that matter."""

import numpy as np

from reference.gemm import MODES

__all__ = ["job_list"]


def job_list(R, C, n_random, seed=0, max_dim=None):
    """``[M, K, N, mode, kind]`` jobs for an R×C array.

    Always included: M, K and N of 1; sizes below, equal to, and above R
    and C, multiples and not; every mode; -128·-128 summed over a long K; a
    short M over nine tiles (the weight-bank wait); nt over three column
    blocks of B's rows, stride 1; tn with A's stride past 128 / (R - 1)
    words; a pair of identical jobs
    whose next operands load while the first computes (back to back).
    """
    rng = np.random.default_rng(seed)
    hi = max_dim or 3 * max(R, C) + 2
    jobs = [
        [1, 1, 1, "nn", "random"],
        [1, 2 * R + 1, 1, "nt", "random"],
        [2 * R + 3, 1, C + 1, "tn", "random"],
        [R + 1, 2 * R - 1 if R > 1 else 3, 2 * C + 1, "nn", "random"],
        [3, 4 * R + 1, C, "nt", "extreme"],
        [max(R, C) + 2, 3 * R + 2, C + 2, "tn", "extreme"],
        # M = R, K and N one below the array's sides; then M below R, K = R, N = C.
        [R, max(R - 1, 1), max(C - 1, 1), "tn", "random"],
        [max(R - 1, 1), R, C, "nt", "random"],
        # Nine tiles of a short M: on a tall array (C < R) the weight-bank wait binds, 2·max(M, C) < M + R - 1.
        [max(1, min(C, R - 2)), 2 * R + 1, 2 * C + 1, "nn", "random"],
        # nt over three column blocks with B's stride 1 (K = R): each block's first row of the stored
        # N x K B is n0 words on, an odd multiple of C for the middle one.
        [2, R, 2 * C + 1, "nt", "random"],
    ]
    if R > 1:
        # tn with A's stride W past 128 / (R - 1) words: a column read's last lane reads (R - 1)·W words
        # on, past 2^7 (the mutation sweep found those bits of the stride's multiples unused).
        jobs.append([R * -(-128 // (R - 1)), R, C, "tn", "random"])
    for _ in range(n_random):
        M, K, N = (int(v) for v in rng.integers(1, hi + 1, 3))
        jobs.append([M, K, N, str(rng.choice(MODES)), "random"])
    big = 4 * max(R, C)
    jobs += [[big, 2 * R, 2 * C, "nn", "random"], [big, 2 * R, 2 * C, "nn", "random"]]
    return jobs
