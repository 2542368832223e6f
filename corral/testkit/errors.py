"""The one error the testkit raises: setup or teardown of the fake site failed."""

from __future__ import annotations

from corral.errors import GenericError


class TestkitError(GenericError):
    """A testkit command could not do what was asked; the message says why (one line)."""

    __test__ = False  # not a pytest test class despite the name
