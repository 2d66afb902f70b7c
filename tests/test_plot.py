"""The figure style helpers of jscore.plot: distinct series, honest log axes, PNG + PDF output."""

import numpy as np
import pytest

from jscore import plot


def test_series_are_distinct():
    first = [plot.series(i) for i in range(100)]
    assert len({(s["color"], s["marker"]) for s in first}) == 100
    assert len({s["marker"] for s in first[:10]}) == 10
    assert len({str(s["linestyle"]) for s in first[:6]}) == 6


def test_log_scale_only_for_positive_values_and_save_writes_png_and_pdf(tmp_path):
    with plot.style():
        fig, axes = plot.figure(2)
        axes[0].plot([1, 10], [1e-3, 1.0], label="a", **plot.series(0))
        assert plot.log_scale(axes[0], "y", [1e-3, 1.0, np.nan])
        assert axes[0].get_yscale() == "log"
        axes[1].plot([1, 10], [-0.01, 0.5])
        assert not plot.log_scale(axes[1], "y", [-0.01, 0.5])
        assert not plot.log_scale(axes[1], "x", [])
        assert axes[1].get_yscale() == "linear"
        leg = plot.legend_outside(axes[0])
        assert leg is not None and plot.legend_outside(axes[1]) is None
        paths = plot.save(fig, tmp_path / "f.png")
    assert [p.rsplit(".", 1)[1] for p in paths] == ["png", "pdf"]
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    assert not list(tmp_path.glob("*.tmp.*"))
    with pytest.raises(ValueError, match="axis"):
        plot.log_scale(axes[0], "z", [1.0])
