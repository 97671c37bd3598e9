"""How long ``bleeper browse --dump`` takes on a ~700 KB documentation page, against ``w3m -dump`` on the
same page in the same run (the target: no more than about twice w3m's time).

Both are run as a person would run them, a fresh process each time, alternately, and the median wall time of
each is reported, from a file and over HTTP from a local server. The page is the Rust standard library's
``Iterator`` documentation when the Rust docs are installed (as on the machine in docs/performance.md), or
any page given with ``--page``; without either, a generated documentation page of the same size is used.
"""

from __future__ import annotations

import argparse
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RUST_PAGE = Path.home() / ".rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html/std/iter/trait.Iterator.html"  # fmt: skip
BLEEPER = [sys.executable, "-m", "bleeper"]


def generated_page(size: int = 700_000) -> str:
    """A documentation-like page: headings, prose with inline code and links, lists, code, tables."""
    parts = ["<!doctype html><html><head><title>Generated reference</title></head><body><nav><ul>"]
    parts += [f'<li><a href="#s{n}">Section {n}</a></li>' for n in range(200)]
    parts.append("</ul></nav><main>")
    n = 0
    while sum(map(len, parts)) < size:
        parts.append(
            f'<section id="s{n}"><h2>Section {n}: <code>method_{n}</code></h2>'
            f"<p>Returns the <em>next</em> value of the <a href='../other/page{n}.html'>sequence</a>, or "
            f"<code>None</code> when it is <strong>exhausted</strong>. Calling it again after that may "
            f"or may not resume; see <a href='#s{max(n - 1, 0)}'>the previous section</a> for details of the "
            f"contract every implementation keeps, and the notes below.</p>"
            f"<ul><li>first consequence of {n}</li><li>second, with <code>x + {n}</code></li></ul>"
            f"<pre><code>let mut it = (0..{n}).into_iter();\nwhile let Some(x) = it.next() {{\n"
            f'    println!("{{x}}");\n}}</code></pre>'
            f"<table><tr><th>Input</th><th>Output</th></tr><tr><td>{n}</td><td>{n * 2}</td></tr></table></section>"
        )
        n += 1
    parts.append("</main></body></html>")
    return "".join(parts)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def compare(label: str, address: str, runs: int) -> float:
    ours: list[float] = []
    theirs: list[float] = []
    timed([*BLEEPER, "browse", "--dump", address])  # warm the disk cache and bytecode
    timed(["w3m", "-dump", address])
    for _ in range(runs):
        ours.append(timed([*BLEEPER, "browse", "--dump", "--width", "80", address]))
        theirs.append(timed(["w3m", "-dump", "-cols", "80", address]))
    mine, w3m = statistics.median(ours), statistics.median(theirs)
    print(f"{label:<6} bleeper browse --dump {mine * 1000:7.1f} ms   w3m -dump {w3m * 1000:6.1f} ms   "
          f"ratio {mine / w3m:4.2f}x   (medians of {runs}; min {min(ours) * 1000:.1f} / {min(theirs) * 1000:.1f} ms)")  # fmt: skip
    return mine / w3m


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=Path, help="the HTML page to render [default: Rust's Iterator page]")
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    if shutil.which("w3m") is None:
        print("w3m is not installed: apt install w3m", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        page = args.page or (RUST_PAGE if RUST_PAGE.is_file() else None)
        if page is None:
            page = Path(folder) / "generated.html"
            page.write_text(generated_page(), encoding="utf-8")
        served = Path(folder) / "served"
        served.mkdir()
        shutil.copy(page, served / "page.html")
        # Bytecode cached, as Python keeps it after a first run (this machine sets PYTHONDONTWRITEBYTECODE).
        for folder_to_compile in (Path(__file__).parent.parent / "src", *map(Path, site.getsitepackages())):
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder_to_compile)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        print(f"page: {page} ({page.stat().st_size / 1000:.0f} KB)")
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            compare("file", str(page), args.runs)
            compare("http", f"http://127.0.0.1:{server.server_address[1]}/page.html", args.runs)
        finally:
            server.shutdown()
            server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
