"""Normalizing flows: bijections with log-determinants, composed into flows on R^d."""

from vlab.flows.core import *  # noqa: F403
