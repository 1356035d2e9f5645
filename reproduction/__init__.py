"""The paper-running wing, above the commands: grids (``grids``), claim checks (``claims``),
the Markdown reports (``report``) and each paper's claims (``papers``). ``reproduce.py``,
``sweep.py`` and ``figures.py`` drive it; it runs the commands as subprocesses (docs/layers.md).
"""
