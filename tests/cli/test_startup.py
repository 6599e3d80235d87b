"""The command line starts without importing torch, pandas or statsmodels (a quick --help)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_help_and_the_package_import_no_heavy_library() -> None:
    code = (
        "import sys, genmeasures, genmeasures.cli; "
        "from click.testing import CliRunner; "
        "result = CliRunner().invoke(genmeasures.cli.main, ['--help']); "
        "assert result.exit_code == 0, result.output; "
        "print(sorted(m for m in ('torch', 'pandas', 'statsmodels', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_public_names_load_on_first_use() -> None:
    import genmeasures
    from genmeasures import GenMeasuresError, score
    from genmeasures.scoring import score as scoring_score

    assert score is scoring_score and issubclass(GenMeasuresError, Exception)
    assert "score_checkpoints" in dir(genmeasures)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        genmeasures.nope  # noqa: B018
