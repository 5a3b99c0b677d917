"""The course's own experiments: studies a notebook runs with the library, not part of its API.

* :mod:`r1lib.course.equal_compute`: notebook 07's comparison of distillation and RL on one small
  student at equal compute (:class:`~r1lib.course.equal_compute.EqualComputeComparison`).

Nothing in the library imports from here; importing this package loads none of its modules.
"""
