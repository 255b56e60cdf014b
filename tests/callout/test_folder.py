"""The call-out folder contract: malformed rows are reported with their line and skipped."""

from render.callout.folder import load_callout
from tests.support.callouts import write_callout


def test_malformed_rows_are_skipped_with_line_numbers(tmp_path):
    folder = write_callout(tmp_path / "c", [
        {"record_id": "A", "file": "media/a.mp4", "kind": "video", "title": "Multi\nline title", "contributors": "Ana"},
        {"record_id": "A", "file": "media/b.mp4", "kind": "video", "contributors": "bo"},
        {"record_id": "C", "file": "media/c.mp4", "kind": "hologram", "contributors": "bo"},
        {"record_id": "D", "file": "", "kind": "text", "contributors": "bo", "text": "Words"},
        {"record_id": "E", "file": "media/e.mp4", "kind": "video", "contributors": ""},
    ], [("ana", "Ana Ñ", "ES"), ("bo", "Bo", "CN")])
    with open(folder / "submissions.csv", "a", encoding="utf-8") as f:
        f.write('F,media/f.mp4,video,"unterminated,ana,,,,yes\n')
    c = load_callout(folder)
    assert [r.record_id for r in c.records] == ["A", "D"]
    text = "\n".join(c.warnings)
    assert "submissions.csv:4: skipped A: record_id A already used on line 2" in text
    assert "submissions.csv:5: skipped C: kind 'hologram' is not one of" in text
    assert "submissions.csv:7: skipped E: contributors is empty" in text
    assert "submissions.csv:8: skipped" in text
    assert c.contributor("ANA").credit_name == "Ana Ñ"  # usernames match case-insensitively


def test_bom_and_unicode_names(tmp_path):
    folder = write_callout(tmp_path / "c", [{"record_id": "A", "file": "", "kind": "text", "contributors": "zé",
                                              "text": "hi"}], [("zé", "José 🎺 مريم", "PT")])
    raw = (folder / "contributors.csv").read_bytes()
    (folder / "contributors.csv").write_bytes(b"\xef\xbb\xbf" + raw)
    c = load_callout(folder)
    assert c.contributor("ZÉ").credit_name == "José 🎺 مريم"
    assert c.warnings == ()
