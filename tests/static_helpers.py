"""What the static-file tests share: a directory tree to serve, and traversal attempts."""

from __future__ import annotations

from pathlib import Path

CSS = b"body { font-family: serif; }\n" * 40
JS = b"console.log('identity');\n"
CANARY = b"the canary must never be read\n"


def make_tree(tmp_path: Path) -> Path:
    """A directory to serve, ``tmp_path/public``, with a canary file next to it (outside)."""
    (tmp_path / "canary.txt").write_bytes(CANARY)
    root = tmp_path / "public"
    (root / "css").mkdir(parents=True)
    (root / "css" / "site.css").write_bytes(CSS)
    (root / "app.js").write_bytes(JS)
    (root / "app.js.br").write_bytes(b"brotli bytes")
    (root / "app.js.gz").write_bytes(b"gzip bytes")
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8b archive")
    (root / "data.bin").write_bytes(bytes(range(256)))
    (root / ".env").write_bytes(b"SECRET=1\n")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    (root / "empty").mkdir()
    (root / "inside-link.css").symlink_to(root / "css" / "site.css")
    (root / "outside-link.txt").symlink_to(tmp_path / "canary.txt")
    (root / "outside-dir").symlink_to(tmp_path)
    return root


#: Request paths that must all be a 404 for ``add_static("/static", make_tree(...))``.
TRAVERSALS = [
    "/static/../canary.txt",
    "/static/%2e%2e/canary.txt",
    "/static/%2E%2E/canary.txt",
    "/static/.%2e/canary.txt",
    "/static/%2e./canary.txt",
    "/static/..%2fcanary.txt",
    "/static/..%2Fcanary.txt",
    "/static/%2e%2e%2fcanary.txt",
    "/static/css/../../canary.txt",
    "/static/css/%2e%2e/%2e%2e/canary.txt",
    "/static/..\\canary.txt",
    "/static/..%5ccanary.txt",
    "/static/css\\..\\..\\canary.txt",
    "/static/%c0%ae%c0%ae/canary.txt",
    "/static/%c0%ae%c0%ae%c0%afcanary.txt",
    "/static/%e0%80%ae%e0%80%ae/canary.txt",
    "/static/%252e%252e/canary.txt",
    "/static/%252e%252e%252fcanary.txt",
    "/static/..;/canary.txt",
    "/static/....//canary.txt",
    "/static/.../canary.txt",
    "/static/./../canary.txt",
    "/static//canary.txt",
    "/static/%2fcanary.txt",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/css//site.css",
    "/static/./css/site.css",
    "/static/css/./site.css",
    "/static/canary.txt%00.css",
    "/static/css/site.css%00",
    "/static/%00",
    "/static/a%0ab",
    "/static/outside-link.txt",
    "/static/outside-dir/canary.txt",
    "/static/.env",
    "/static/%2eenv",
    "/static/css/.",
    "/static/CON",
    "/static/NUL.txt",
    "/static/aux",
    "/static/C:/Windows/win.ini",
    "/static/C:%5cWindows%5cwin.ini",
    "/static/missing.css",
]
