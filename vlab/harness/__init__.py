"""The experiment harness: the experiment contract (:mod:`~vlab.harness.experiment`), config schemas, loading and
validation, the run folder, launching a run, metrics and figures. Names from configs are resolved here into the
callables and constructors the mathematics takes."""
