"""The pages that run on their own, each in a fresh folder: the quickstart (the whole demo) and the plugin
tutorial (a package installed into a throw-away environment). In their own file, so that the test
runner gives them a worker of their own beside the tutorial series of ``test_docs.py``."""

from __future__ import annotations

import pytest

from test_docs import RUN_PAGES, SERIES, run_page


@pytest.fixture(scope="module")
def folders(module_tmp):
    return {}


@pytest.mark.slow
@pytest.mark.parametrize("page", [page for page in RUN_PAGES if page not in SERIES])
def test_each_page_that_stands_alone_runs_top_to_bottom_and_its_checks_hold(
    page, folders, module_tmp, tmp_path, monkeypatch
):
    run_page(page, folders, module_tmp, tmp_path, monkeypatch)
