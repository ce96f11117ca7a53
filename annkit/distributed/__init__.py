"""Running annkit's embarrassingly parallel work on a distributed engine (Ray, the optional
``annkit[ray]`` extra): exact ground truth sharded over the base, and benchmark sweeps.

Import :mod:`annkit.distributed.ray_backend` only when ``--ray`` is used: it imports Ray.
"""
