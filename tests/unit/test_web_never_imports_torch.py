import subprocess
import sys

HEAVY = ("torch", "diffusers", "peft", "transformers")


def test_importing_the_web_app_leaves_torch_out(tmp_path):
    """The web process must start without torch: build the whole app and list heavy modules."""
    code = (
        "import sys; from app.main import create_app; create_app(); "
        "import app.routes, app.services, app.media, app.recipe; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"AVLORA_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "", f"web process imported: {out.stdout.strip()}"


def test_cli_help_does_not_import_torch():
    code = (
        "import sys; from app.cli import build_parser; build_parser(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
