"""`trio-election control-plane path|build`: where the binaries are, and reusing them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from trio_election._cli import main
from trio_election.testing import find_binaries

if TYPE_CHECKING:
    from pathlib import Path


def test_path_names_the_folder_of_the_binaries(capsys: pytest.CaptureFixture[str]) -> None:
    found = find_binaries()
    if found is None:
        pytest.skip("no control plane binaries here")
    assert main(["control-plane", "path"]) == 0
    assert capsys.readouterr().out == f"{found.bin_dir}\n"
    # present: build has nothing to do and says nothing with --if-needed
    assert main(["control-plane", "build", "--if-needed"]) == 0
    assert capsys.readouterr().out == ""


def test_path_fails_when_they_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    assert main(["control-plane", "path"]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{tmp_path}\n"
    assert "lacks an executable kube-apiserver or etcd" in captured.err
