"""Paired differences over seeds with their 95% confidence intervals (Student's t)."""

import math
import statistics

#: Two-sided 95% quantiles of Student's t by degrees of freedom (any statistics table).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262}


def paired_difference(row: dict, base: dict, key: str):
    """
    Mean per-seed difference row - base over their common seeds, with its 95% interval.

    ``row`` and ``base`` map seeds to runs (dicts holding ``key``). Returns (mean, low, high,
    seeds); the interval is NaN with fewer than 2 common seeds.
    """
    seeds = sorted(set(row) & set(base), key=int)
    diffs = [row[s][key] - base[s][key] for s in seeds]
    if not diffs:
        return float('nan'), float('nan'), float('nan'), 0
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
        return mean, float('nan'), float('nan'), len(diffs)
    half = T95[len(diffs) - 1] * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half, len(diffs)


def difference_text(mean: float, low: float, high: float, n: int, base: str = 'A') -> str:
    """Format a paired difference: with its interval only where 2 or more seeds give one."""
    if n == 0:
        return f'no seed shared with {base}'
    if n == 1:
        return f'{mean:+.4f} (n=1: no interval)'
    return f'{mean:+.4f} [{low:+.4f}, {high:+.4f}] n={n}'


def mean_sd(values) -> str:
    """Mean ± sample standard deviation (0 for one value), 4 decimals."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{statistics.mean(values):.4f} ± {sd:.4f}'


def summary_row(name: str, seeds: dict, base: dict, keys, classes, base_name: str = 'A') -> dict:
    """
    Return one table row: the seeds, mean ± sd of each of ``keys``, and the classes' IoU.

    Each key also gets its paired difference to ``base`` (the runs of row ``base_name``;
    none for that row itself or when there is no base), and each of ``classes`` its mean IoU.
    """
    runs = list(seeds.values())
    row = {'row': name, 'seeds': len(runs)}
    for key in keys:
        row[key] = mean_sd([r[key] for r in runs])
        if base and name != base_name:
            row[f'{key} - {base_name} (95% CI)'] = difference_text(
                *paired_difference(seeds, base, key), base=base_name)
    for cls in classes:
        row[cls] = f'{sum(r["per_class_iou"][cls] for r in runs) / len(runs):.3f}'
    return row
