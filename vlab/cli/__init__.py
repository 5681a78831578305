"""The ``vlab`` command line (:mod:`vlab.cli.main`): one module per command. Nothing else imports it."""
