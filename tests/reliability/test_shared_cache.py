"""Two renders of one piece on one cache at once (two builds side by side): one renders, the other waits
for it and takes it from the cache."""

from __future__ import annotations

import threading
from fractions import Fraction

from render.compose import store
from render.compose.pieces import Piece
from render.core.cache import Cache
from render.core.house import PROFILES
from render.edit import plan
from tests.support.media import corpus, ffprobe, source_of


def test_a_piece_wanted_twice_at_once_is_rendered_once(tmp_path):
    cache = Cache(tmp_path / "cache")
    src = source_of(corpus("carphone_h264_176x144_29.97fps_lowquality.mp4"), cache, kind="video")
    shot = plan.source_shot(src, None, None, max_frames=30, start=Fraction(0), exact=True)
    piece = Piece(src.record.record_id, 0, (shot,))
    got, go = [], threading.Barrier(2)

    def render() -> None:
        go.wait()
        got.append(store.render_piece(piece, {src.record.record_id: src}, PROFILES["preview"], "blur", cache))

    threads = [threading.Thread(target=render) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(r.cached for r in got) == [False, True]
    assert got[0].video == got[1].video and int(ffprobe(got[0].video)["streams"][0]["nb_frames"]) == 30
