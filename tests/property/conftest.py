"""Loads the hypothesis profile before the properties are collected; prints the tallies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _settings
from ._stats import summary

if TYPE_CHECKING:
    import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = summary()
    if lines:
        terminalreporter.section(f"fault schedules (hypothesis profile {_settings.PROFILE})")
        for line in lines:
            terminalreporter.write_line(line)
