"""What people look at: short reprs, Jupyter tables (_repr_html_) and readable figures."""
import base64
import io
import re

import pytest

import initlab as il
from initlab.experiments import compare


@pytest.fixture(scope="module")
def comparison():
    return compare("digits", inits=["he_normal", "zeros", "normal(std=1.0)", "xavier_normal", "lecun_normal",
                                    "orthogonal", "torch_default"],
                   depth=2, width=16, epochs=2, progress=False, max_samples=240)


@pytest.fixture(scope="module")
def report():
    X, y = il.datasets.load_digits()
    net = il.Network([64, 16, 16, 10], seed=0)
    return net.fit(X[:200], y[:200], epochs=2, validation_split=0.25, progress=False)


def _images(html):
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)


def test_comparison_repr_is_short(comparison):
    text = repr(comparison)
    assert len(text) < 200, text
    assert text.startswith("Comparison(name='compare', runs=7") and "he_normal" in text
    assert "..." in text  # seven initializers: six are shown


def test_comparison_html_has_the_table_and_the_figure(comparison):
    html = comparison._repr_html_()
    assert html.count("<tr>") == 1 + len(comparison.runs)
    for title in ("init", "val acc", "verdict at init"):
        assert f"<th>{title}</th>" in html
    assert "<td>normal(std=1.0)</td>" in html and "<td>symmetric</td>" in html  # zeros: symmetric
    pytest.importorskip("matplotlib")
    images = _images(html)
    assert len(images) == 1
    from PIL import Image
    width, height = Image.open(io.BytesIO(base64.b64decode(images[0]))).size
    assert width >= 600 and height >= 400


def test_report_repr_and_html(report):
    assert len(repr(report)) < 100
    html = report._repr_html_()
    assert "<th>val_loss</th>" in html and "<th>update_ratio</th>" in html
    assert html.count("<tr>") == (1 + len(report.history)) + (1 + len(report.layer_stats[-1]))
    pytest.importorskip("matplotlib")
    assert len(_images(html)) == 1


def test_diagnosis_repr_and_html():
    X, y = il.datasets.load_digits()
    d = il.Network([64, 16, 16, 10], init="zeros", seed=0).diagnose(X[:64], y[:64])
    assert len(repr(d)) < 120 and "symmetric" in repr(d)
    html = d._repr_html_()
    assert "<b>verdict: symmetric</b>" in html and "<th>finding</th>" in html
    assert html.count("<td>symmetric</td>") == 1 and "kaiming_normal_" in html
    assert "<th>stable_rank</th>" in html
    # the findings table (header + findings) and the layer table (header + rows)
    assert html.count("<tr>") == (1 + len(d.findings)) + (1 + len(d.layers))
    healthy = il.Network([64, 64, 10], seed=0).diagnose(X[:128], y[:128])
    assert "<b>verdict: healthy</b>" in healthy._repr_html_()


# ---- figures ---------------------------------------------------------------------------------------
def _drawn_figures(monkeypatch, make):
    """The matplotlib figures `make` saves (captured at figures._save)."""
    pytest.importorskip("matplotlib")
    from initlab.inspect import figures
    captured = []
    original = figures._save

    def capture(fig, path):
        captured.append(fig)
        return original(fig, path)

    monkeypatch.setattr(figures, "_save", capture)
    make()
    return captured


def _check_readable(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    assert fig._suptitle is not None and fig._suptitle.get_text(), "every figure has a title"
    width, height = fig.get_size_inches() * 110
    assert width >= 600 and height >= 400
    axes = [ax for ax in fig.axes if ax.get_visible()]
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None] + list(fig.legends)
    assert legends, "a legend says which line is which"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in axes:  # never over the curves
            assert not box.overlaps(ax.get_window_extent(renderer)), (legend, ax)


def test_comparison_figures_are_readable(tmp_path, monkeypatch, comparison):
    figs = _drawn_figures(monkeypatch, lambda: comparison.save(tmp_path))
    assert len(figs) == 3
    for fig in figs:
        _check_readable(fig)
    from PIL import Image
    width, height = Image.open(tmp_path / "loss_curves.png").size
    assert width >= 600 and height >= 400          # was 368 x 272


def test_report_figure_is_readable(tmp_path, report):
    pytest.importorskip("matplotlib")
    fig = report.figure()
    _check_readable(fig)
    path = report.plot(tmp_path / "report.png")
    from PIL import Image
    assert Image.open(path).size[0] >= 1200
