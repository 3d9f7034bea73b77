from __future__ import annotations

from pathlib import Path

import pytest
from ui_helpers import user_environment


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """See ui_helpers.user_environment."""
    return user_environment(tmp_path)
