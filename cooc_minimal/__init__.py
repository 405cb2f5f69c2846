"""cooc_minimal: the small library behind the course on patch co-occurrence in SSL.

Data flows one way (see the course map in the README):
images -> patches -> augment -> backbone -> projector -> loss.
"""

__version__ = "0.1.0"
