"""The built-in experiment configs, installed as package data of ``vlab.configs`` (``vlab run kl_fit``)."""
