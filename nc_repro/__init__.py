"""nc-repro's library package: what the top-level commands share and no user runs directly.

It holds the reproduction checks behind ``reproduce.py``: ``claims`` (what a claim is, how a
check reads finished grid runs), ``report`` (the Markdown reports) and ``papers`` (each paper's
claims and the grids they are measured on).
"""

__version__ = "0.2.0"
