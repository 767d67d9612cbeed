"""The page factory's labels are exact: for every image type, what the labels say is where the ink is."""

import numpy as np
import pytest

from common.geometry import CANONICAL
from common.layouts import LAYOUTS, LEADS
from common.metric import MAX_SNR, image_snr
from common.types import IMAGE_TYPES
from synth.factory import make_page
from synth.labels import sub_column_x
from synth.signals import simulate_record


def labels_to_signals(labels):
    """Read each printed lead back from the labelled centre lines, with the sheet geometry."""
    x_sub = sub_column_x(CANONICAL.width_px, labels.x_upsample)
    placement, layout = labels.placement, labels.layout
    out = {}
    for lead in LEADS:
        truth = labels.signals_mv[LEADS.index(lead)]
        pred = np.full(truth.shape, np.nan)
        for panel in layout.lead_panels(lead):
            i0, i1 = panel.sample_range(labels.fs_hz, truth.size)
            x = placement.panel_x_px(panel, np.arange(i0, i1) / labels.fs_hz)
            # Only this panel's sub-columns: the neighbouring panel's trace is another lead.
            own = (x_sub >= x[0]) & (x_sub <= x[-1])
            y = np.interp(x, x_sub[own], labels.row_y_px[panel.row, own])
            pred[i0:i1] = CANONICAL.y_to_mv(y, placement.baselines_y_px[panel.row])
        printed = np.isfinite(truth)
        assert np.isfinite(pred[printed]).all()
        out[lead] = (truth[printed], pred[printed])
    return out


@pytest.fixture(scope="module", params=[250, 1025])
def page(request):
    record = simulate_record(np.random.default_rng(3), fs_hz=500.0, record_id="sim")
    return make_page(record, index=1, seed=11, image_types=IMAGE_TYPES, fs_choices=[request.param])


def test_centre_line_reads_back_above_25_db(page):
    pairs = labels_to_signals(page.labels)
    snr = image_snr({k: t for k, (t, _) in pairs.items()}, {k: p for k, (_, p) in pairs.items()}, page.labels.fs_hz)
    assert 10 * np.log10(snr) >= 25.0, f"labels read back at {10 * np.log10(snr):.2f} dB (cap {MAX_SNR})"


def test_masks_contain_centre_line(page):
    labels = page.labels
    k = labels.x_upsample
    cols = np.arange(CANONICAL.width_px)
    for row in range(labels.layout.n_rows):
        y = labels.row_y_px[row, cols * k + k // 2]
        inside = np.isfinite(y) & (y >= 0) & (y <= CANONICAL.height_px - 1)
        assert inside.sum() > 500
        yi = np.round(y[inside]).astype(int)
        assert (labels.row_masks[row, yi, cols[inside]] > 0).mean() == 1.0


@pytest.mark.parametrize("image_type", IMAGE_TYPES)
def test_keypoints_and_ink_under_the_labelled_map(page, image_type):
    labels, image = page.labels, page.images[image_type]
    m = image.sheet_map
    image_kp = labels.image_keypoints(m)
    back = m.image_to_sheet(image_kp.astype(np.float64))
    assert np.abs(back - labels.keypoints_px).max() < 0.5
    if image.sheet_map.displacement_px is None:  # then the homography alone is the whole map
        from common.sheet_map import apply_homography

        via_h = apply_homography(m.image_to_sheet_h, image_kp.astype(np.float64))
        assert np.abs(via_h - labels.keypoints_px).max() < 0.5
    # The ink of the degraded image, rectified with the labelled map, lies on the labelled centre line:
    # per column, the trace is darker at the label than 3 trace widths above and below.
    sheet = image.sheet_map.rectify(image.image_rgb).astype(np.float32).mean(axis=2)
    k = labels.x_upsample
    cols = np.arange(200, CANONICAL.width_px - 100, 7)
    offset = int(3 * labels.trace_width_px + 4)
    wins = []
    for row in range(labels.layout.n_rows):
        y = labels.row_y_px[row, cols * k + k // 2]
        ok = np.isfinite(y) & (y > offset + 1) & (y < CANONICAL.height_px - offset - 2)
        yc = np.round(y[ok]).astype(int)
        c = cols[ok]
        on = sheet[yc, c]
        off = np.minimum(sheet[yc - offset, c], sheet[yc + offset, c])
        wins.append(on < off)
    frac = np.concatenate(wins).mean()
    assert frac > 0.75, f"{image_type}: trace ink found on the labelled line in only {frac:.0%} of columns"


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_renders_with_consistent_labels(layout):
    record = simulate_record(np.random.default_rng(0), fs_hz=500.0)
    page = make_page(record, index=0, seed=1, image_types=["0001"], layouts=[layout], fs_choices=[500])
    assert page.labels.layout_name == layout
    assert page.labels.row_masks.shape[0] == LAYOUTS[layout].n_rows
    pairs = labels_to_signals(page.labels)
    assert all(t.size == p.size for t, p in pairs.values())


def test_pages_are_deterministic():
    record = simulate_record(np.random.default_rng(0), fs_hz=500.0)
    a = make_page(record, index=4, seed=2, image_types=["0005"])
    b = make_page(record, index=4, seed=2, image_types=["0005"])
    assert np.array_equal(a.images["0005"].image_rgb, b.images["0005"].image_rgb)
    assert np.array_equal(a.labels.row_y_px, b.labels.row_y_px, equal_nan=True)


@pytest.mark.parametrize("layout_name", sorted(LAYOUTS))
def test_sampled_rows_stay_inside_the_sheet_and_vary(layout_name):
    """Row blocks go anywhere that keeps the outer baselines ROW_MARGIN_PX inside the sheet (tall layouts
    are narrowed to fit), with pitches spread over the sampled range."""
    from synth.render import ROW_MARGIN_PX, sample_style, style_placement

    tops, pitches = [], []
    for seed in range(200):
        placement = style_placement(sample_style(np.random.default_rng(seed), layout_name))
        b = np.asarray(placement.baselines_y_px)
        assert b[0] >= ROW_MARGIN_PX - 1e-6 and b[-1] <= CANONICAL.height_px - ROW_MARGIN_PX + 1e-6
        tops.append(b[0])
        if b.size > 1:
            pitches.append(float(np.median(np.diff(b))))
    assert np.ptp(tops) > 100.0  # the block moves
    if pitches:
        assert np.ptp(pitches) > 0.2 * np.median(pitches)  # and its pitch changes


def test_eik_look_keeps_the_rest_of_a_seeds_page():
    """The ECG-Image-Kit marks come from a stream of their own: off, a seed draws what it always drew; on, the
    same seed keeps its layout, placement and paper and gains bold bars, an abutting pulse, names below."""
    from synth.render import sample_style

    for seed in range(20):
        classic = sample_style(np.random.default_rng(seed))
        assert sample_style(np.random.default_rng(seed), eik_look=0.0) == classic
        eik = sample_style(np.random.default_rng(seed), eik_look=1.0)
        assert (eik.layout_name, eik.x0_shift_px, eik.row_shift_px, eik.paper_rgb) == (
            classic.layout_name, classic.x0_shift_px, classic.row_shift_px, classic.paper_rgb)
        assert eik.separator_style == "bold" and eik.pulse_style == "abut" and eik.label_dy_mv < 0
        assert eik.trace_grey is not None and eik.trace_grey <= 51


def test_eik_look_bars_are_drawn_but_not_labelled():
    """A bold bar (3x the trace's width, +-0.315 mV) stands at every lead change; it is ink on the page, not in the
    row's trace mask, so stage 1 learns that it is not trace."""
    from synth.render import eik_look_of, render_page, sample_style

    record = simulate_record(np.random.default_rng(8), fs_hz=500.0)
    style = eik_look_of(sample_style(np.random.default_rng(3), "3x4+II"), np.random.default_rng(1))
    page = render_page(record.leads_mv, 500.0, "r", style)
    labels = page.labels
    grey = page.sheet_rgb.min(axis=2).astype(np.float64)
    panel = labels.layout.row_panels(0)[1]
    x = int(round(float(labels.placement.panel_x_px(panel, panel.t0_s))))
    base = labels.baselines_y_px[0]
    band = slice(int(base - 20), int(base + 21))
    assert (grey[band, x] < 100).mean() > 0.9  # dark all across the band
    width = int((grey[int(base) + 18, x - 10 : x + 11] < 100).sum())
    assert width >= 2 * style.trace_width_px  # bold, not a trace-wide tick
    assert labels.row_masks[0][int(base) + 18, x - 1 : x + 2].max() < 128  # the bar is not the row's trace
