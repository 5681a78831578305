"""The built-in experiments, installed as ``vlab.experiments``: one module per experiment, named by its module
(``vlab run kl_fit``), each a ``Config`` schema and an :class:`vlab.Experiment` subclass."""
