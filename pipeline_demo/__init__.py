"""``forensics demo``: the whole pipeline on a synthetic dataset, and its HTML report.

An application built on every package (synth, preprocessing, the detectors, the refiner), so
it lives outside the core and joins the ``forensics`` command through the
``forensics.commands`` entry point group.
"""
