"""Usage analysis of request logs (``tokensieve analyze``) and policy replay (``tokensieve replay``).

Nothing is imported here: each module is loaded when its command runs, so
``import tokensieve`` stays light. See docs/analysis.md.
"""
