"""Usage analysis and policy replay (``tokensieve analyze``, ``tokensieve replay``).

The modules of this subpackage use the core through tokensieve's public API only, and
are imported on demand: ``import tokensieve`` never loads them.

- :mod:`tokensieve.analyze.simulate`: generated coding-agent sessions with their ground truth.
- :mod:`tokensieve.analyze.replay`: sessions replayed request by request through policies.
"""
