"""Generate the Python code for proto/ into damfleet/v1/ (committed), or check it is current.

    python scripts/gen_proto.py           # regenerate
    python scripts/gen_proto.py --check   # exit 1 if the committed code is stale

Generated code is committed so workers and clients need no protoc at install time; the
check runs in the test suite so a .proto edit without regeneration cannot land.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
OUT_PACKAGE = REPO / "damfleet" / "v1"


def generate(out_root: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) over every .proto; returns the generated files."""
    from grpc_tools import protoc  # imported here: only needed by developers

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated = sorted(p for p in (out_root / "damfleet" / "v1").iterdir() if p.suffix in (".py", ".pyi"))
    # grpc stubs for files without services are empty boilerplate; keep only real ones.
    kept = []
    for path in generated:
        if path.name.endswith("_pb2_grpc.py") and "Stub" not in path.read_text():
            path.unlink()
            continue
        kept.append(path)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if damfleet/v1 is not current")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
        stale = []
        wanted = {p.name for p in files}
        for path in files:
            target = OUT_PACKAGE / path.name
            if not target.exists() or not filecmp.cmp(path, target, shallow=False):
                stale.append(path.name)
                if not args.check:
                    OUT_PACKAGE.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
        extra = [
            p.name
            for p in OUT_PACKAGE.iterdir()
            if (p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))) and p.name not in wanted
        ]
        if not args.check:
            for name in extra:
                (OUT_PACKAGE / name).unlink()
            init = OUT_PACKAGE / "__init__.py"
            if not init.exists():
                init.write_text('"""Generated protobuf code for proto/damfleet/v1 (see scripts/gen_proto.py)."""\n')
    if args.check and (stale or extra):
        print(f"stale generated code in damfleet/v1: {sorted(stale + extra)}; run python scripts/gen_proto.py")
        return 1
    print("generated code is current" if args.check else f"regenerated: {sorted(stale) or 'nothing changed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
