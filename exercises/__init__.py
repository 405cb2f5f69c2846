"""Exercise sets, one per chapter: stubs here, reference answers in ``solutions/``,
checks in ``checks/``. Run ``make check-exercises`` (or ``CHAPTER=NN``)."""
