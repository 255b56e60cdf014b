"""The delivery: the files a network and YouTube accept, made from the master's Timeline and rendered
pieces, into ``deliver/`` beside episode.mp4, indexed by ``deliverables.json``.

``deliver`` is the one entry. Each deliverable is keyed like the join (the pieces' keys, the level,
its own settings, the captions it carries) and written atomically with a hidden sidecar recording its
key, size and MD5, so a rerun after an interruption (or with nothing changed) reuses every file that is
complete and encodes only what is missing. The captions beside the episode are copied in (``captions.scc``
for the network, ``captions.srt`` and ``captions.vtt`` for the web). ``deliverables.json`` is written
last, so its presence means the delivery is whole.

A mezzanine's delivery adds the sound stems (``stems``): the mezzanine's M&E is their music and
effects, and the three are delivered as WAVs whose sum is checked against the mix.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from render import __version__
from render.callout.folder import CallOut
from render.compose.store import RenderedPiece, RenderedStems
from render.core import ffmpeg
from render.core.cache import atomic_path, key_of, write_text_atomic
from render.core.errors import UserError
from render.core.house import HouseFormat
from render.core.timebase import dropframe_frames, dropframe_timecode, to_seconds
from render.deliver import cuesheet, mezzanine, qc, stems, web
from render.deliver import leader as leader_mod
from render.deliver.captions import files as caption_files
from render.deliver.captions.files import PROGRAMME_START
from render.deliver.source import Programme, programme
from render.edit.spec import EpisodeSpec, delivery_targets
from render.edit.timeline import STEMS, Timeline
from render.master import chapters as chapters_mod
from render.master.programme import CAPTIONS_LANGUAGE

DELIVER_VERSION = 2
SCHEMA = "remixtv.deliverables/1"
INDEX = "deliverables.json"


@dataclass(frozen=True, slots=True)
class Request:
    """What to deliver: the targets (``network``: the ProRes mezzanine; ``xdcam``: the XDCAM HD422 MXF;
    ``web``: the YouTube file) and the leader of the mezzanines."""

    targets: tuple[str, ...]
    leader: leader_mod.Leader = field(default_factory=leader_mod.Leader)


def targets(spec: EpisodeSpec, profile: str, flag: str | None) -> tuple[str, ...]:
    """What to deliver: ``--deliver`` (``flag``) if given, else the spec's ``deliver:``. Deliverables are
    made from the master's pieces, so asking for them with any other profile is a user error."""
    wanted = spec.deliver
    if flag is not None:
        wanted, problems = delivery_targets(flag, "--deliver")
        if problems:
            raise UserError(problems)
    if wanted and profile != "master":
        said = "--deliver" if flag is not None else f"{spec.path}: deliver:"
        raise UserError([(f"{said} {','.join(wanted)}: deliverables are made from the master; "
                          f"build with --profile master")])
    return wanted


def request(targets: tuple[str, ...], leader: tuple[tuple[str, str], ...] = ()) -> Request:
    """A Request from a spec's (or the command line's) targets and leader part starts."""
    return Request(targets, leader_mod.Leader(**dict(leader)))


def programme_timecode(request: Request) -> str:
    """The timecode of the programme's first frame on the delivery's clock: the leader's programme
    timecode (01:00:00;00 by default) when a mezzanine (ProRes or XDCAM) is delivered, else 00:00:00;00. The
    cue sheet and captions.scc are written on it."""
    return request.leader.programme if {"network", "xdcam"} & set(request.targets) else PROGRAMME_START


def needs_stems(targets: Sequence[str]) -> bool:
    """Whether a delivery needs the pieces' sound stems: every mezzanine carries the M&E, and the stems
    are delivered with it."""
    return bool({"network", "xdcam"} & set(targets))


@dataclass(frozen=True, slots=True)
class _Job:
    """One deliverable to make: its file, role, key, estimated size, and how to write it."""

    name: str
    role: str
    key: str
    bytes_needed: int
    write: Callable[[Path, Path], list[str]]  # (temporary output, work folder) -> argv to run
    extra: dict
    check: Callable[[Path], dict] | None = None  # the finished file's QC, kept in its sidecar
    seconds: float | None = None  # its length when not the programme's (a leader and tail around it)


def deliver(timeline: Timeline, callout: CallOut, rendered: Sequence[RenderedPiece], loudness: dict | None,
            house: HouseFormat, folder: Path, request: Request, piece_stems: Sequence[RenderedStems] = (),
            captions: caption_files.Written | None = None) -> dict:
    """Write the requested deliverables, the music cue sheet and the caption files into ``folder``, and
    ``deliverables.json`` last; returns the index.

    ``rendered`` and ``loudness`` are what the master's join used and reported; the deliverables
    carry the same pictures and the same levelled sound. ``piece_stems`` (each rendered piece's
    dialogue, music and effects, ``render.compose.store.render_stems``) are needed for a mezzanine
    (``needs_stems``). ``captions`` (the files beside the episode, their SCC on ``programme_timecode``'s
    clock) become the mezzanine's ``c608`` track and the web file's ``mov_text`` track."""
    if needs_stems(request.targets) and not piece_stems:
        raise ValueError("a mezzanine needs the pieces' stems (render.compose.store.render_stems)")
    prog = programme(rendered, loudness, house, piece_stems)
    jobs = _jobs(timeline, prog, house, request, captions)
    todo = [j for j in jobs if _done(folder / j.name, j.key) is None]
    _check_space(folder, sum(j.bytes_needed for j in todo))
    for job in todo:
        _make(folder, job, prog, house)
    for job in jobs:  # a file made before its QC existed is checked now, not encoded again
        done = _done(folder / job.name, job.key)
        if job.check and done is not None and not done.get("qc"):
            write_text_atomic(_sidecar(folder / job.name), json.dumps({**done, "qc": job.check(folder / job.name)}))
    files = [{**_describe(folder, job), **job.extra} for job in jobs]
    stem_jobs = {j.role: j for j in jobs if j.role in stems.ROLES.values()}
    summed = _residual(folder, prog, house, stem_jobs) if stem_jobs else None
    # on the mezzanine's clock when there is one: the programme starts at the leader's programme timecode
    cue_rows = cuesheet.write(timeline, callout, folder, dropframe_frames(programme_timecode(request)))
    files += [{"role": "cue-sheet", "path": name, "size": (folder / name).stat().st_size,
               "md5": md5_of(folder / name), "cues": len(cue_rows)} for name in ("cue_sheet.csv", "cue_sheet.html")]
    files += _caption_files(folder, captions)
    index = {"schema": SCHEMA, "engine": __version__, "title": timeline.title,
             "programme": {"frames": prog.frames, "samples": prog.samples,
                           "duration_s": round(float(to_seconds(prog.frames, house.rate)), 3),
                           "trt": dropframe_timecode(prog.frames), "rate": str(house.rate)},
             "loudness": loudness, "files": files,
             **({"stems": {"sum_residual": summed, "rule": STEM_RULE}} if summed else {}),
             "qc_passed": all(f["qc"]["passed"] for f in files if f.get("qc")) and (summed or {}).get("passed", True)}
    write_text_atomic(folder / INDEX, json.dumps(index, ensure_ascii=False, indent=2))
    return index


def _caption_files(folder: Path, captions: caption_files.Written | None) -> list[dict]:
    """captions.scc, .srt and .vtt copied beside the deliverables (each replaced whole), and their entries."""
    if captions is None:
        return []
    out = []
    for kind, source in (("scc", captions.scc), ("srt", captions.srt), ("vtt", captions.vtt)):
        path = folder / source.name
        data = source.read_bytes()
        if not path.is_file() or path.read_bytes() != data:
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
        out.append({"role": f"captions-{kind}", "path": path.name, "size": len(data),
                    "md5": hashlib.md5(data).hexdigest(), "captions": captions.captions,
                    **({"start_timecode": captions.start_timecode, "drop_frame": True} if kind == "scc" else {})})
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: deliverables.json's summary of which sound goes to which stem (docs/delivery.md has the whole rule)
STEM_RULE = {"stem-dx": "voice records; a clip's own sound inside its analysed speech",
             "stem-mx": "music records and every bed",
             "stem-fx": "a clip's own sound outside its analysed speech",
             "M&E (mezzanine ch3-4)": "stem-mx + stem-fx"}


def _residual(folder: Path, prog: Programme, house: HouseFormat, stem_jobs: dict[str, _Job]) -> dict:
    """The stems' sum less the mix (``stems.residual``), measured once per set of stem files and kept
    in a hidden sidecar beside them."""
    key = key_of("stems-residual", [stem_jobs[stems.ROLES[s]].key for s in STEMS])
    sidecar = folder / ".stems-residual.json"
    try:
        kept = json.loads(sidecar.read_text())
        if kept.get("key") == key:
            return kept["residual"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    with tempfile.TemporaryDirectory(prefix="remixtv-deliver-") as work:
        measured = stems.residual(prog, {s: folder / stems.FILES[s] for s in STEMS}, Path(work),
                                  timeout_s=120 + 2 * float(to_seconds(prog.frames, house.rate)))
    write_text_atomic(sidecar, json.dumps({"key": key, "residual": measured}))
    return measured


def _stem_jobs(prog: Programme, base: list) -> list[_Job]:
    """The three stem WAVs, each keyed by its pieces' stems and the level."""
    jobs = []
    for i, stem in enumerate(STEMS):
        def write(out: Path, work: Path, stem: str = stem) -> list[str]:
            return stems.argv(prog, stem, work, out)

        jobs.append(_Job(stems.FILES[stem], stems.ROLES[stem],
                         key_of("stem", *base, [s.keys[i] for s in prog.stems], stems.AUDIO_ARGS),
                         stems.estimate_bytes(prog.samples), write,
                         {"stem": stems.WHAT[stem]}))
    return jobs


def _jobs(timeline: Timeline, prog: Programme, house: HouseFormat, request: Request,
          captions: caption_files.Written | None = None) -> list[_Job]:
    base = [DELIVER_VERSION, house.key(), [p.key for p in prog.pieces], prog.level_chain, timeline.title]
    seconds = float(to_seconds(prog.frames, house.rate))
    jobs = []
    for target, fmt in (("network", mezzanine.PRORES), ("xdcam", mezzanine.XDCAM)):
        if target in request.targets:
            jobs.append(_mezzanine_job(timeline, prog, house, request.leader, fmt, base, captions))
    if needs_stems(request.targets):
        jobs += _stem_jobs(prog, base)
    if "web" in request.targets:
        chapters = chapters_mod.chapters(timeline)
        srt = captions.srt if captions else None
        jobs.append(_Job("web.mp4", "web", key_of("web", *base, web.video_args(house), web.AUDIO_ARGS,
                                                   [c.to_json(house.rate) for c in chapters],
                                                   _sha256(srt) if srt else None),
                         int(seconds * (12e6 + 384e3) / 8) + (1 << 20),
                         lambda out, work: web.argv(prog, house, chapters, work, out, timeline.title, srt),
                         {"chapters": [c.to_json(house.rate) for c in chapters], **_track("mov_text", captions, srt)}))
    return jobs


def _track(tag: str, captions: caption_files.Written | None, source: Path | None) -> dict:
    """A deliverable's entry for its caption track: its format, language, the file it was made from and
    how many captions it holds."""
    if captions is None or source is None:
        return {}
    return {"captions": {"track": tag, "language": CAPTIONS_LANGUAGE, "from": source.name,
                         "captions": captions.captions}}


def _mezzanine_job(timeline: Timeline, prog: Programme, house: HouseFormat, ld: leader_mod.Leader,
                   fmt: mezzanine.Format, base: list, captions: caption_files.Written | None) -> _Job:
    """A broadcast mezzanine (``mezzanine.PRORES``, ``mezzanine.XDCAM``): leader, programme and tail, with its
    QC; a MOV carries the captions' SCC as its ``c608`` track (MXF: the SCC goes beside it)."""
    slate_doc = leader_mod.slate(timeline.title, slate_lines(timeline, prog, ld, base))
    total = ld.frames + prog.frames + ld.tail_frames(house.rate)
    role = "mezzanine" if fmt is mezzanine.PRORES else "xdcam"
    carried = captions if fmt.muxer == "mov" else None

    def write(out: Path, work: Path) -> list[str]:
        (work / "slate.ass").write_text(slate_doc, encoding="utf-8")
        (work / "countdown.ass").write_text(leader_mod.countdown(ld.parts()[3][1], house.rate), encoding="utf-8")
        return mezzanine.argv(prog, house, ld, work / "slate.ass", work / "countdown.ass", work, out,
                              timeline.title, fmt=fmt, captions=carried)

    # new words remake the file: the key holds the SCC's bytes and the clock it is on
    scc = [_sha256(carried.scc), carried.start_timecode] if carried else None
    layout = ({"1": "mix left", "2": "mix right", "3": "M&E left", "4": "M&E right"} if fmt.mono_tracks else
              {"1-2": "stereo mix", "3-4": "M&E (music and effects, no dialogue): stem-mx + stem-fx"})
    me_keys = [[s.keys[STEMS.index("mx")], s.keys[STEMS.index("fx")]] for s in prog.stems]
    return _Job(fmt.file, role, key_of(role, *base, list(fmt.video_args), mezzanine.AUDIO_ARGS, ld.to_json(),
                                       slate_doc, scc, me_keys),
                mezzanine.estimate_bytes(total, float(to_seconds(total, house.rate)), house.width, house.height, fmt),
                write,
                {"timecode": {"start": ld.bars, "programme": ld.programme, "drop_frame": True},
                 "leader": {**ld.to_json(), "frames": ld.frames, "tail_frames": ld.tail_frames(house.rate)},
                 "audio_layout": layout,
                 **_track("c608", carried, carried.scc if carried else None)},
                lambda path: qc.check(path, ld, prog.frames, acts(timeline), house.rate),
                float(to_seconds(total, house.rate)))


def acts(timeline: Timeline) -> list[tuple[int, int]]:
    """The programme's acts: the runs of segments between act breaks, as ``[start, end)`` frames."""
    return chapters_mod.acts(timeline)


def slate_lines(timeline: Timeline, prog: Programme, ld: leader_mod.Leader, base: list) -> list[tuple[str, str]]:
    """The slate's lines: version, date, TRT, aspect, audio layout and each act's in and out."""
    lines = [("Version", key_of(*base)[:8]), ("Date", datetime.date.today().isoformat()),
             ("TRT", dropframe_timecode(prog.frames)), ("Aspect", "16:9 1920x1080 29.97p"),
             ("Audio", "1-2 stereo mix, 3-4 M&E, 24-bit 48 kHz, -24 LKFS")]
    for i, (a, b) in enumerate(acts(timeline), 1):
        lines.append((f"Act {i}", f"{ld.programme_timecode(a)} - {ld.programme_timecode(b)}"))
    return lines


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.key")


def _done(path: Path, key: str) -> dict | None:
    """What the sidecar of a complete deliverable records, or None when it must be made."""
    try:
        done = json.loads(_sidecar(path).read_text())
        if done.get("key") == key and path.stat().st_size == done.get("size"):
            return done
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _check_space(folder: Path, needed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UserError([(f"not enough disk space for the delivery: it needs {needed / 1e9:.1f} GB in {folder}, "
                          f"{free / 1e9:.1f} GB is free")])


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _make(folder: Path, job: _Job, prog: Programme, house: HouseFormat) -> None:
    """Encode one deliverable atomically, then its .md5 and its sidecar (written last: it vouches)."""
    out = folder / job.name
    # the encode's time limit grows with what it encodes: a 14 s programme behind the 90 s leader is
    # 106 s of ProRes, which a loaded 2-core machine took longer than the programme's 880 s to write
    seconds = job.seconds or float(to_seconds(prog.frames, house.rate))
    with tempfile.TemporaryDirectory(prefix="remixtv-deliver-") as work, atomic_path(out) as tmp:
        ffmpeg.run(job.write(tmp, Path(work)), timeout_s=600 + 20 * seconds)
    digest = md5_of(out)
    write_text_atomic(out.with_name(out.name + ".md5"), f"{digest}  {out.name}\n")
    report = job.check(out) if job.check else None
    write_text_atomic(_sidecar(out), json.dumps({"key": job.key, "size": out.stat().st_size, "md5": digest,
                                                 "qc": report}))


def _describe(folder: Path, job: _Job) -> dict:
    """deliverables.json's entry for a finished file: role, path, size, duration, codecs, MD5."""
    path = folder / job.name
    done = _done(path, job.key) or {}
    info = ffmpeg.ffprobe_output(path)
    streams = []
    for s in info.get("streams", []):
        kind = s.get("codec_type")
        entry = {"type": kind, "codec": s.get("codec_name"), "tag": s.get("codec_tag_string")}
        if kind == "video":
            # MXF indexes no frame count: its length in frames, then
            frames = int(s.get("nb_frames") or 0) or round(Fraction(s.get("duration") or 0) * Fraction(
                s.get("r_frame_rate") or 0))
            entry.update(profile=s.get("profile"), pix_fmt=s.get("pix_fmt"), width=s.get("width"),
                         height=s.get("height"), rate=s.get("r_frame_rate"), frames=frames,
                         bit_rate=int(s.get("bit_rate") or 0),
                         color=[s.get("color_primaries"), s.get("color_transfer"), s.get("color_space"),
                                s.get("color_range")])
        elif kind == "audio":
            entry.update(sample_fmt=s.get("sample_fmt"), sample_rate=int(s.get("sample_rate") or 0),
                         channels=s.get("channels"), bits=s.get("bits_per_raw_sample") or s.get("bits_per_sample"),
                         bit_rate=int(s.get("bit_rate") or 0))
            if str(s.get("codec_name", "")).startswith("pcm") and s.get("duration_ts"):
                entry.update(samples=int(s["duration_ts"]))  # PCM: its time base is the sample rate
        elif kind == "data":
            entry.update(timecode=(s.get("tags") or {}).get("timecode"))
        elif kind == "subtitle":
            entry.update(language=(s.get("tags") or {}).get("language"))
        streams.append(entry)
    timecode = (info["format"].get("tags") or {}).get("timecode")  # MXF: the material package's
    return {"role": job.role, "path": job.name, "size": path.stat().st_size,
            **({"file_timecode": timecode} if timecode else {}),
            "duration_s": round(float(Fraction(info["format"]["duration"])), 3), "md5": done.get("md5"),
            "md5_file": job.name + ".md5", "streams": streams, **({"qc": done["qc"]} if done.get("qc") else {})}
