"""Training reports: several optimizers in one call show up side by side in HTML and Markdown, with the
numbers of the JSON's `training.runs` (the ground-truth mlp step: CrypTen SGD update is free)."""

from __future__ import annotations

import re

import pytest
from conftest import MODELS

from hawkeye_onnx.html_report import render_html
from hawkeye_onnx.network import DEFAULT_NETWORKS
from hawkeye_onnx.training import TrainOptions, profile_train


@pytest.fixture(scope="module")
def two_optimizers():
    return profile_train(MODELS / "mlp.onnx", [TrainOptions(optimizer="sgd"), TrainOptions(optimizer="adam")],
                         backends=["crypten", "semi2k"], batch=1)


def test_html_compares_the_optimizers(two_optimizers) -> None:
    page = render_html(two_optimizers, DEFAULT_NETWORKS)
    data = two_optimizers.to_dict()
    assert 'id="optimizers-table"' in page
    for run in data["training"]["runs"]:
        for backend, rb in run["backends"].items():
            row = re.search(rf'<tr data-optimizer="{run["optimizer"]}" data-backend="{backend}">(.*?)</tr>', page)
            assert row, (run["optimizer"], backend)
            exact = [int(x) for x in re.findall(r'data-exact="(\d+)"', row.group(1))]
            phases = [rb["phases"][p]["online"]["bytes"] for p in ("forward", "loss", "backward", "update")]
            assert exact[:5] == [*phases, rb["total"]["online"]["bytes"]], (run["optimizer"], backend, exact)
    # the measured CrypTen step: SGD's update is free (public lr, local truncation), Adam's is not
    sgd, adam = (r["backends"]["crypten"]["phases"]["update"]["online"]["bytes"] for r in data["training"]["runs"])
    assert sgd == 0 < adam


def test_single_optimizer_has_no_comparison_table() -> None:
    prof = profile_train(MODELS / "mlp.onnx", TrainOptions(), backends=["crypten"], batch=1)
    assert 'id="optimizers-table"' not in render_html(prof, DEFAULT_NETWORKS)
