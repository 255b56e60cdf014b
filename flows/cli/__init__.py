"""``remixtv``: the command line. The only place errors become exit codes.

Exit codes: 0 ok; 1 a user mistake (bad spec, bad folder, not enough material), printed one
problem per line; 2 a media tool failed (the command and stderr tail are printed); 3 ``build
--strict`` built the episode but a QC limit failed (qc.json beside it says which and where); 4 a
transient failure (storage, network, lost Dask workers) outlasted the retries: run it again, it resumes;
130 stopped by Ctrl-C, 143 by ``kill`` (SIGTERM). Stopped either way, finished work is kept and
nothing half-written is left where a result belongs.

One module per command (``run(args) -> int``); ``terminal`` draws what they show.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

from . import analyze, build, demo, export, intake, nightly, schema, terminal, validate

REPO = Path(__file__).resolve().parents[2]

_S3_ENDPOINT_HELP = ("S3-compatible endpoint for s3:// URIs (default $REMIXTV_S3_ENDPOINT, else boto3's "
                     "$AWS_ENDPOINT_URL / ~/.aws/config, else AWS); credentials come from the standard AWS chain")
_DASK_HELP = ("run tasks on Dask: local:N (a cluster of N worker processes here) or a scheduler address like "
              "tcp://host:8786 (default $REMIXTV_DASK_ADDRESS; without it, a thread pool here)")
_VAR_HELP = "set a spec variable ({{NAME}}); repeatable"


def parser() -> argparse.ArgumentParser:
    """Every verb and its options."""
    top = argparse.ArgumentParser(prog="remixtv", description="Build TV episodes from crowd-sourced call-outs.")
    top.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs")
    sub = top.add_subparsers(dest="verb", required=True)
    dask = {"metavar": "ADDRESS", "default": os.environ.get("REMIXTV_DASK_ADDRESS") or None, "help": _DASK_HELP}
    profile = {"choices": ("preview", "master"), "default": "preview"}

    p = _verb(sub, build, "build", "build an episode from a spec")
    p.add_argument("spec", help="episode spec YAML; its callout: is a folder or an s3://bucket/prefix URI")
    p.add_argument("--profile", **profile)
    p.add_argument("--out", default="out", help="a folder or an s3://bucket/prefix URI; the episode goes to "
                   "OUT/<spec name>/<profile>/ (default out)")
    p.add_argument("--cache", default=None, help="cache folder (default $REMIXTV_CACHE or ~/.cache/remixtv)")
    p.add_argument("--s3-endpoint", metavar="URL", default=None, help=_S3_ENDPOINT_HELP)
    p.add_argument("--dask", **dask)
    p.add_argument("--strict", action="store_true", help="exit 3 when a QC limit fails (see qc.json)")
    p.add_argument("--var", action="append", metavar="NAME=VALUE", help=_VAR_HELP)
    p.add_argument("--watch", action="store_true", help="rebuild on every save of the spec and say what changed")
    p.add_argument("--deliver", metavar="TARGETS", default=None,
                   help="with --profile master, also write deliver/: network (ProRes mezzanine), xdcam (XDCAM HD422 "
                        "MXF), web (YouTube MP4), "
                        "comma-separated; overrides the spec's deliver:")
    p.add_argument("--export", metavar="FORMATS", default=None,
                   help="also write the cut for an NLE into export/: otio, otioz, fcp7xml, edl, mlt, comma-separated")

    p = _verb(sub, validate, "validate", "check a spec and its call-out without rendering")
    p.add_argument("spec", help="episode spec YAML; an s3:// call-out is staged into the cache to be checked")
    p.add_argument("--var", action="append", metavar="NAME=VALUE", help=_VAR_HELP)
    p.add_argument("--s3-endpoint", metavar="URL", default=None, help=_S3_ENDPOINT_HELP)

    p = _verb(sub, intake, "intake", "run intake alone: accept or quarantine every record of a call-out",
              aliases=["ingest"])
    p.add_argument("callout")
    p.add_argument("--profile", **profile)
    p.add_argument("--write-clips", metavar="DIR", default=None, help="write each accepted record conformed")
    p.add_argument("--out", default=None, help="where intake.json goes (default out/intake/<call-out id>)")
    p.add_argument("--cache", default=None)
    p.add_argument("--dask", **dask)

    p = _verb(sub, schema, "schema", "print the spec's JSON Schema (or, with --markdown, the field reference)")
    p.add_argument("--markdown", action="store_true")

    p = _verb(sub, analyze, "analyze", "analyse every record of a call-out: loudness, tempo, shots, flags")
    p.add_argument("callout")
    p.add_argument("--out", default=None, help="where analysis.json goes (default out/analysis/<call-out id>)")
    p.add_argument("--cache", default=None)

    p = _verb(sub, demo, "demo", "generate the demo call-out and build its preview")
    p.add_argument("--out", default="out")
    p.add_argument("--profile", **profile)
    p.add_argument("--cache", default=None)
    p.add_argument("--dask", **dask)

    p = _verb(sub, export, "export", "hand the cut to an NLE: otio, otioz, fcp7xml, edl or mlt (+ media/)")
    p.add_argument("spec", help="episode spec YAML")
    p.add_argument("--format", required=True, metavar="FORMAT", help="one of otio, otioz, fcp7xml, edl, mlt")
    p.add_argument("--media", choices=("conformed", "original"), default="conformed",
                   help="conformed: the clips as the render used them, at the house format, in OUT/media "
                        "(default); original: the uploads themselves")
    p.add_argument("--out", default=None, help="folder for <spec name>.<ext> and media/ (default out/<spec name>/export)")
    p.add_argument("--profile", **profile)
    p.add_argument("--start-timecode", default="00:00:00;00", metavar="HH:MM:SS;FF",
                   help="the programme's first timecode (01:00:00;00 after a delivery leader)")
    p.add_argument("--cache", default=None, help="cache folder (default $REMIXTV_CACHE or ~/.cache/remixtv)")
    p.add_argument("--var", action="append", metavar="NAME=VALUE", help=_VAR_HELP)

    _nightly_options(_verb(sub, nightly, "nightly", "the nightly preview of every spec: serve it on a schedule, "
                           "or run it once now"))
    return top


def _verb(sub, module, name: str, summary: str, aliases: list[str] | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=summary, aliases=aliases or [])
    p.set_defaults(command=module)  # its ``run`` is looked up when called
    return p


def _nightly_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("serve", "run"),
                   help="serve: register the deployment with $PREFECT_API_URL and build when due; run: build once now")
    p.add_argument("--specs", default=str(REPO / "episode_specs"), help="folder of *.yaml specs (default: the repo's)")
    p.add_argument("--out", default="out/nightly", help="where previews go: DIR/<spec>/preview/ (default out/nightly)")
    p.add_argument("--cache", default=None)
    p.add_argument("--cron", default=None, help="serve: when to run (default $REMIXTV_NIGHTLY_CRON or '0 3 * * *')")
    p.add_argument("--timezone", default=None, help="serve: IANA zone of the cron (default $REMIXTV_NIGHTLY_TZ or UTC)")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so both stop a command the same way."""


def _stop_on_sigterm() -> None:
    """``kill`` (SIGTERM: service managers, ``timeout``) stops a command as Ctrl-C does.

    Python's own SIGTERM ends the process on the spot: no ``finally``, no ``atexit``. Prefect's
    temporary API server (a uvicorn child) was then left running for good, holding its port.
    An ignored SIGTERM stays ignored. Prefect's flow engine installs its own handler while a flow
    runs and, on SIGTERM, reports the crash, puts this one back and signals again; the runner of
    ``nightly serve`` replaces it for good (it pauses its schedule and exits 0).
    """
    def terminated(signum, frame):
        raise _Terminated

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, terminated)


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (see the module's docstring)."""
    args = parser().parse_args(argv)
    if getattr(args, "s3_endpoint", None):
        os.environ["REMIXTV_S3_ENDPOINT"] = args.s3_endpoint  # read by flows.storage.client, here and in the flows

    from render.core.errors import FfmpegError, UserError

    _stop_on_sigterm()
    try:
        return args.command.run(args)
    except UserError as exc:
        return terminal.fail(exc.problems)
    except FfmpegError as exc:
        return terminal.fail([str(exc)], 2)
    except _Terminated:
        return terminal.fail(["stopped (SIGTERM)"], 143)
    except KeyboardInterrupt:
        return terminal.fail(["interrupted"], 130)
    except Exception as exc:
        from flows.runners import is_transient

        if not is_transient(exc):
            raise
        said = (f"stopped by a transient failure that outlasted the retries ({type(exc).__name__}: {exc}); "
                f"run the same command again: everything finished so far is kept")
        return terminal.fail([said], 4)
