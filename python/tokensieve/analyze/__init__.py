"""Usage analysis of request logs (``tokensieve analyze``) and policy replay (``tokensieve replay``).

The modules of this subpackage use the core through tokensieve's public API only, and
are imported on demand: ``import tokensieve`` never loads them. See docs/analysis.md.

- :mod:`tokensieve.analyze.sources`, :mod:`~tokensieve.analyze.figures`,
  :mod:`~tokensieve.analyze.report`, :mod:`~tokensieve.analyze.html`: request logs read as
  streams, their figures, the terminal tables and the HTML report (``tokensieve analyze``).
- :mod:`tokensieve.analyze.simulate`: generated coding-agent sessions with their ground truth.
- :mod:`tokensieve.analyze.replay`: sessions replayed request by request through policies.
"""
