"""Algorithms of the seeds that are not a training objective: EM for mixtures, k-means and Gaussian-mixture
clustering, coordinate descent for sparse regression, slow feature analysis, SimSiam's gradient flow, update rules
for two-player games (:mod:`vlab.algorithms.gda`), Newton refinement of optima and the amortisation gap."""
