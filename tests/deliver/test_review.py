"""The review page of a short build, opened in a real headless browser (Debian's chromium, Playwright)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tests.support.callouts import write_callout
from tests.support.media import corpus, ffprobe

CHROMIUM = "/usr/bin/chromium"  # Debian's (Playwright's own browser download cannot run here)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]

CONTRIBUTORS = [("ana", "Ana Lucía Pérez", "MX"), ("bo", "Bo Chen 陈波", "CN"), ("cy", "Cyrus Tehrani", "IR"),
                ("dee", "Dee Upstream", "EG"), ("eli", "Eli Composer", "IL"), ("fox", "François Ölçer", "FR")]
ROWS = [
    {"record_id": "V1", "file": "media/frog.mp4", "kind": "video", "title": "Frog", "contributors": "ana:director;bo",
     "tags": "one"},
    {"record_id": "V2", "file": "media/bunny.webm", "kind": "animation", "title": "Bunny", "contributors": "cy",
     "remix_of": "V0", "tags": "one"},
    {"record_id": "V0", "file": "media/green.mp4", "kind": "video", "title": "Green", "contributors": "dee",
     "tags": "lawn"},
    {"record_id": "P1", "file": "media/photo.jpg", "kind": "photo", "title": "Elva", "contributors": "fox"},
    {"record_id": "M1", "file": "media/piano.wav", "kind": "music", "title": "Piano", "contributors": "eli:composer"},
    {"record_id": "B1", "file": "media/broken.mp4", "kind": "video", "title": "Broken", "contributors": "fox",
     "tags": "one"},
]
FILES = {"media/frog.mp4": "frog_toy_h264_aac_720x480_30fps.mp4",
         "media/bunny.webm": "bunny_vp8_vorbis_320x240_30fps.webm",
         "media/green.mp4": "greenscreen_man_h264_aac_1280x720_30fps.mp4", "media/photo.jpg": "elva_photo_3072x1780.jpg",
         "media/piano.wav": "piano_music_pcm_s16_44k_stereo.wav", "media/broken.mp4": "README.md"}
SPEC = """\
title: "RE: Review"
callout: callout
runtime: "0:30"
pool_cents: 10000
segments:
  - {id: open, type: montage, select: {kinds: [video, animation], tags: [one], limit: 3}, shot_seconds: 2.5,
     transition: {type: crossfade, seconds: 0.5}}
  - {id: title, type: card, text: "RE: Review", seconds: 3, transition_in: {type: dip, seconds: 1}}
  - {id: break, type: act_break, seconds: 1}
  - {id: photo, type: feature, record: P1, max_seconds: 4}
  - {id: fill, type: fill, bed: M1}
  - {id: credits, type: credits, seconds: 8, transition_in: {type: dip, seconds: 1}}
"""


def make_callout(root: Path) -> Path:
    """A call-out of six records (one that intake quarantines) and a 30 s spec with an act break."""
    write_callout(root / "callout", ROWS, CONTRIBUTORS, {k: corpus(v) for k, v in FILES.items()})
    (root / "spec.yaml").write_text(SPEC)
    return root / "spec.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, cache_dir):
    """The 30 s episode built once, then again after an edit to the title card's words."""
    from flows.pipeline import build_flow

    root = tmp_path_factory.mktemp("review")
    spec = make_callout(root)
    build_flow(str(spec), "preview", str(root / "out"), str(cache_dir))
    folder = root / "out" / "spec" / "preview"
    first = (folder / "review" / "index.html").read_text(encoding="utf-8")
    thumbs_before = set((cache_dir / "review-thumbs").rglob("*.jpg"))
    spec.write_text(SPEC.replace('text: "RE: Review"', 'text: "RE: Reviewed"'))
    build = build_flow(str(spec), "preview", str(root / "out"), str(cache_dir))
    thumbs_after = set((cache_dir / "review-thumbs").rglob("*.jpg"))
    return folder, build, first, thumbs_after - thumbs_before


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (run.sh setup installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, built):
    """The review page opened from its file:// path, with what it logged and what it asked for."""
    folder = built[0]
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.errors, pg.requests = [], []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.goto((folder / "review" / "index.html").as_uri())
    pg.wait_for_function("document.getElementById('player').readyState >= 1", timeout=30_000)
    yield pg
    pg.close()


def shot_starts(build: dict) -> list[int]:
    """Programme frame of every shot's first frame, from build.json (independently of the page)."""
    out = []
    for seg in build["segments"]:
        at = seg["start_frame"]
        for shot in seg["shots"]:
            out.append(at)
            at += shot["frames"]
    return out


def test_page_loads_alone_and_plays_the_episode(page, built):
    folder = built[0]
    assert page.errors == []
    inside = (folder.as_uri() + "/")
    assert page.requests and all(u.startswith(inside) for u in page.requests), page.requests
    video = next(s for s in ffprobe(folder / "episode.mp4")["streams"] if s["codec_type"] == "video")
    assert page.evaluate("document.getElementById('player').duration") == pytest.approx(float(video["duration"]),
                                                                                       abs=1e-3)
    # chapters at the act break, from the WebVTT track (cues load once the track is shown or hidden)
    cues = page.evaluate("""() => new Promise(done => {
        const t = document.getElementById('player').textTracks[0]; t.mode = 'hidden';
        const read = () => t.cues && t.cues.length ? done([...t.cues].map(c => [c.startTime, c.text]))
                                                   : setTimeout(read, 50);
        read(); })""")
    build = json.loads((folder / "build.json").read_text())
    assert [text for _, text in cues] == [c["title"] for c in build["chapters"]] == ["open", "photo"]
    assert cues[1][0] == pytest.approx(build["act_breaks"][0]["end_frame"] * 1001 / 30000, abs=1e-3)
    assert (folder / "review" / "chapters.vtt").read_text().startswith("WEBVTT")
    # the episode's closed captions, as a track the player can turn on: every cue of captions.vtt
    captions = page.evaluate("""() => new Promise(done => {
        const t = [...document.getElementById('player').textTracks].find(t => t.kind === 'captions');
        if (!t) return done(null);
        t.mode = 'hidden';
        const read = () => t.cues && t.cues.length ? done([...t.cues].map(c => c.text)) : setTimeout(read, 50);
        read(); })""")
    written = (folder / "captions.vtt").read_text().split("\n\n")[1:]
    assert captions is not None and len(captions) == len([c for c in written if "-->" in c]) > 0


def test_clicking_a_shot_seeks_to_its_first_frame(page, built):
    build = json.loads((built[0] / "build.json").read_text())
    starts = shot_starts(build)
    assert page.locator(".strip .shot").count() == len(starts) >= 6
    for i in (len(starts) - 1, 1, 4):
        page.click(f"#shot-{i} img")
        assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(
            starts[i] * 1001 / 30000, abs=1e-6)
        assert page.get_attribute(f"#shot-{i}", "class").split() == ["shot", "seek", "current"]
    # playing across a cut moves the highlight (and the playhead) to the next shot
    before = (starts[1] - 10) * 1001 / 30000
    page.evaluate(f"v = document.getElementById('player'); v.muted = true; v.currentTime = {before}; v.play()")
    page.wait_for_function(f"document.getElementById('player').currentTime > {starts[1] * 1001 / 30000 + 0.2}",
                           timeout=30_000)
    page.evaluate("document.getElementById('player').pause()")
    assert page.evaluate("document.querySelector('.strip .current').id") == "shot-1"
    sizes = page.evaluate("[...document.querySelectorAll('.strip img')].map(i => [i.naturalWidth, i.naturalHeight])")
    assert set(map(tuple, sizes)) == {(192, 108)}
    # each thumbnail is its shot's picture: the act break's is black, the photo's is not, the fill's is green
    review = built[0] / "review"
    kinds = [(seg["id"], shot["kind"]) for seg in build["segments"] for shot in seg["shots"]]

    def mean_rgb(i: int) -> tuple[float, ...]:
        src = page.get_attribute(f"#shot-{i} img", "src")
        return tuple(ImageStat.Stat(Image.open(review / src).convert("RGB")).mean)

    black = mean_rgb(kinds.index(("break", "black")))
    photo = mean_rgb(kinds.index(("photo", "image")))
    green = mean_rgb(kinds.index(("fill", "video")))
    assert max(black) < 30 < min(photo) and green[1] > 2 * max(green[0], green[2])


def test_loudness_chart_and_qc_marks(page, built):
    folder = built[0]
    qc = json.loads((folder / "qc.json").read_text())
    assert page.inner_text("#qc-verdict") == ("QC PASS" if qc["passed"] else "QC FAIL")
    for name, check in qc["checks"].items():
        assert page.locator(f'.check[data-check="{name}"]').count() == 1
        marks = len(check.get("ranges", [])) + len(check.get("expected", []))
        assert page.locator(f'.qc-range[data-check="{name}"]').count() == marks
    assert page.locator(".qc-range").count() >= 3  # the title card, the photo and the roll are silent by design
    chart = page.locator("#loudness svg")
    assert chart.count() == 1 and page.locator("#loudness svg path").count() > 5
    box = chart.bounding_box()
    axis = page.locator("#axis").bounding_box()
    assert (box["x"], box["width"]) == pytest.approx((axis["x"], axis["width"]), abs=1)  # one time axis


def test_everyone_credited_has_a_section(page, built):
    folder = built[0]
    credits = json.loads((folder / "credits.json").read_text())
    ledger = {p["username"]: p for p in json.loads((folder / "ledger.json").read_text())["payees"]}
    text = page.inner_text("body")
    assert credits["people"]
    for person in credits["people"]:
        assert person["credit_name"] in text
        section = page.locator(f"#person-{person['username']}")
        assert section.count() == 1 and person["credit_name"] in section.inner_text()
        assert f"{ledger[person['username']]['cents'] / 100:,.2f}" in section.inner_text()
    who = credits["people"][-1]
    page.click(f".roll a[href='#person-{who['username']}']")
    assert page.evaluate("location.hash") == f"#person-{who['username']}"
    top = page.locator(f"#person-{who['username']}").bounding_box()["y"]
    assert 0 <= top < 100  # the section is where the link landed
    # the quarantined record and its reason, the build's warnings
    intake = page.inner_text("#intake")
    assert "B1" in intake and "unreadable" in intake
    assert "only 2 of 3 requested records match" in intake


def test_an_edit_says_what_changed_and_redraws_only_its_pieces(built):
    folder, build, first, new_thumbs = built
    assert "nothing to compare with" in first
    page = (folder / "review" / "index.html").read_text(encoding="utf-8")
    changed = page[page.index('id="changes"'):]
    assert "re-rendered: title" in changed
    assert build["pieces"]["rendered_segments"] == ["title"]
    assert len(new_thumbs) == 1  # the title card's one shot; every other thumbnail came from the cache
    assert json.loads((folder / "review" / "previous.json").read_text())["segments"]["title"]["pieces"] != \
        json.loads((folder / "review" / "this.json").read_text())["segments"]["title"]["pieces"]
    shown = set(re.findall(r'src="thumbs/([^"]+)"', page))
    assert shown == {p.name for p in (folder / "review" / "thumbs").glob("*.jpg")}  # the old title's is gone


def test_changes_name_what_differs_between_two_builds():
    from render.deliver.review import changes

    def build(title_piece: str, start: int, records: list[str], lufs: float, black: bool, names: list[str]) -> dict:
        return {"frames": 900, "duration": "00:00:30.030", "rate": "30000/1001", "built": "2026-01-01T00:00:00+00:00",
                "segments": {"title": {"start_frame": 0, "pieces": [title_piece]},
                             "fill": {"start_frame": start, "pieces": ["f"]}},
                "records_used": records, "loudness": {"integrated_lufs": lufs, "true_peak_dbtp": -3.0, "lra_lu": 5.0},
                "qc": {"black": black}, "qc_summary": {"black": "none" if black else "1 range: 00:00:01.000"},
                "credited": names, "identity": title_piece + str(start)}

    said = changes(build("a", 90, ["V1", "V2"], -24.0, True, ["Ana", "Bo"]),
                   build("b", 120, ["V2", "V3"], -23.2, False, ["Bo", "Cy"]))
    assert (said["rerendered"], said["moved"]) == (["title"], ["fill"])
    assert (said["records_added"], said["records_removed"]) == (["V3"], ["V1"])
    assert (said["credited_added"], said["credited_removed"]) == (["Cy"], ["Ana"])
    assert said["figures"] == ["integrated -24.0 → -23.2 LUFS"]
    assert said["qc"] == [{"check": "black", "was": True, "now": False, "before": "none",
                           "after": "1 range: 00:00:01.000"}]
    assert not said["same"]
