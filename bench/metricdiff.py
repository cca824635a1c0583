#!/usr/bin/env python3
"""metricdiff.py BEFORE AFTER [PREFIX...]: what moved between two scrapes
of one process's /metrics (bench/profile.sh saves them): counters, and the
_sum and _count of histograms, by full name with labels. With PREFIXes,
only the metrics whose names start with one of them (default dfs_).
Dividing a _sum by its _count gives the mean; dividing a count by the
files or operations of the phase gives calls per operation."""
import re
import sys


def load(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith('#'):
                continue
            m = re.match(r'(\S+)\s+(\S+)$', line.strip())
            if m:
                try:
                    out[m.group(1)] = float(m.group(2))
                except ValueError:
                    pass
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    before, after = load(sys.argv[1]), load(sys.argv[2])
    prefixes = sys.argv[3:] or ['dfs_']
    for key in sorted(after):
        name = key.split('{')[0]
        if not any(name.startswith(p) for p in prefixes):
            continue
        if not name.endswith(('_sum', '_count', '_total')):
            continue
        d = after[key] - before.get(key, 0)
        if d:
            print(f'{d:14.4f} {key}')


if __name__ == '__main__':
    main()
